//! The `verify` job summary.

use std::fmt::Write as _;

use crate::report::{cell, code};

/// What `verify` proved about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The image as given.
    pub image: String,
    pub digest: String,
    /// The public key's identity, `sha256:` of its SubjectPublicKeyInfo DER.
    pub key_id: String,
    /// The file `public-key` named; `None` when the PEM was given inline.
    pub key_file: Option<String>,
    /// Signature layers that verified, of all layers in `.sig`.
    pub signatures: usize,
    pub layers: usize,
    /// The attestation checked: its predicate type, spec version and the
    /// number of components it lists.
    pub attestation: Option<(String, Option<String>, usize)>,
}

pub fn summary(v: &Verified) -> String {
    let mut md = String::from(
        "### registry-action verify\n\n| image | digest | public key | signature | attestation |\n|---|---|---|---|---|\n",
    );
    let attestation = match &v.attestation {
        Some((kind, version, components)) => format!(
            "✅ {}{}, {components} components",
            code(kind),
            version
                .as_deref()
                .map(|v| format!(" {}", cell(v)))
                .unwrap_or_default()
        ),
        None => "not checked".into(),
    };
    let _ = writeln!(
        md,
        "| {} | {} | {} | ✅ {} of {} layers verified with the key | {attestation} |",
        code(&v.image),
        code(&v.digest),
        key(v),
        v.signatures,
        v.layers
    );
    md
}

/// `sha256:<12 hex>` (`cosign.pub`): enough of the identity to tell keys
/// apart at a glance (the `key-id` output has all of it), and where it came
/// from.
fn key(v: &Verified) -> String {
    let short: String = v.key_id.chars().take("sha256:".len() + 12).collect();
    let from = match &v.key_file {
        Some(file) => code(file),
        None => "inline PEM".to_owned(),
    };
    format!("`{short}` ({from})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_with_what_verified() {
        let md = summary(&Verified {
            image: "r/ns/app:latest".into(),
            digest: "sha256:ab".into(),
            key_id: format!("sha256:{}", "0123456789abcdef".repeat(4)),
            key_file: Some("keys/cosign.pub".into()),
            signatures: 1,
            layers: 2,
            attestation: Some(("https://cyclonedx.org/bom".into(), Some("1.6".into()), 3)),
        });
        assert!(md.contains("| `r/ns/app:latest` | `sha256:ab` | `sha256:0123456789ab` (`keys/cosign.pub`) | ✅ 1 of 2 layers verified with the key | ✅ `https://cyclonedx.org/bom` 1.6, 3 components |"), "{md}");
        let md = summary(&Verified {
            image: "i".into(),
            digest: "d".into(),
            key_id: "sha256:ff".into(),
            key_file: None,
            signatures: 1,
            layers: 1,
            attestation: None,
        });
        assert!(md.contains("| `sha256:ff` (inline PEM) |"), "{md}");
        assert!(md.contains("| not checked |"), "{md}");
    }
}
