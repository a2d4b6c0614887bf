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
    /// Every signature, then every attestation checked, in both formats.
    pub seen: Vec<Seen>,
    /// The attestation checked: its predicate type, spec version and the
    /// number of components it lists.
    pub attestation: Option<(String, Option<String>, usize)>,
}

/// One signature or attestation found beside the image, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `cosign legacy` (`.sig`/`.att` tags) or `Sigstore bundle v0.3`.
    pub format: &'static str,
    /// Where it was found (a tag's layer, a referrer manifest), plain text.
    pub place: String,
    /// The attestation's predicate type; `None` for a signature.
    pub predicate: Option<String>,
    /// Why it doesn't count, when it doesn't.
    pub verdict: Result<(), String>,
}

impl Seen {
    pub fn verified(&self) -> bool {
        self.verdict.is_ok()
    }
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
    let signatures: Vec<&Seen> = v.seen.iter().filter(|s| s.predicate.is_none()).collect();
    let _ = writeln!(
        md,
        "| {} | {} | {} | ✅ {} of {} signatures verified with the key | {attestation} |",
        code(&v.image),
        code(&v.digest),
        key(v),
        signatures.iter().filter(|s| s.verified()).count(),
        signatures.len()
    );
    md.push_str("\n| found | format | where | verdict |\n|---|---|---|---|\n");
    for seen in &v.seen {
        let what = match &seen.predicate {
            Some(predicate) => format!("attestation {}", code(predicate)),
            None => "signature".to_owned(),
        };
        let verdict = match &seen.verdict {
            Ok(()) => "✅ verified with the key".to_owned(),
            Err(why) => format!("❌ {}", cell(why)),
        };
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {verdict} |",
            seen.format,
            cell(&seen.place)
        );
    }
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
            seen: vec![
                Seen {
                    format: "cosign legacy",
                    place: "sha256-ab.sig layer 1".into(),
                    predicate: None,
                    verdict: Err("signed | by another key".into()),
                },
                Seen {
                    format: "Sigstore bundle v0.3",
                    place: "referrers tag sha256-ab".into(),
                    predicate: None,
                    verdict: Ok(()),
                },
            ],
            attestation: Some(("https://cyclonedx.org/bom".into(), Some("1.6".into()), 3)),
        });
        assert!(md.contains("| `r/ns/app:latest` | `sha256:ab` | `sha256:0123456789ab` (`keys/cosign.pub`) | ✅ 1 of 2 signatures verified with the key | ✅ `https://cyclonedx.org/bom` 1.6, 3 components |"), "{md}");
        assert!(md.contains("| signature | cosign legacy | sha256-ab.sig layer 1 | ❌ signed \\| by another key |"), "{md}");
        assert!(md.contains("| signature | Sigstore bundle v0.3 | referrers tag sha256-ab | ✅ verified with the key |"), "{md}");
        let md = summary(&Verified {
            image: "i".into(),
            digest: "d".into(),
            key_id: "sha256:ff".into(),
            key_file: None,
            seen: Vec::new(),
            attestation: None,
        });
        assert!(md.contains("| `sha256:ff` (inline PEM) |"), "{md}");
        assert!(md.contains("| not checked |"), "{md}");
    }
}
