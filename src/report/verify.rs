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

/// What a row of the summary found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Signature,
    Attestation,
}

/// One signature or attestation found beside the image, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub what: What,
    /// `cosign legacy` (`.sig`/`.att` tags) or `Sigstore bundle v0.3`.
    pub format: &'static str,
    /// Where it was found (a tag's layer, a referrer manifest), plain text.
    pub place: String,
    /// The statement's predicate type (a bundle signature's is cosign's
    /// `https://sigstore.dev/cosign/sign/v1`); `None` when there is none
    /// (a legacy signature's simple-signing payload) or it is unknown.
    pub predicate: Option<String>,
    /// The key a bundle names as its signer (its hint, as a fingerprint):
    /// shown when the public key doesn't verify it.
    pub named_key: Option<String>,
    /// Why it doesn't count, when it doesn't.
    pub verdict: Result<(), String>,
}

impl Seen {
    pub fn verified(&self) -> bool {
        self.verdict.is_ok()
    }

    pub fn is_attestation(&self) -> bool {
        self.what == What::Attestation
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
    let signatures: Vec<&Seen> = v.seen.iter().filter(|s| !s.is_attestation()).collect();
    let _ = writeln!(
        md,
        "| {} | {} | {} | ✅ {} of {} signatures verified with the key | {attestation} |",
        code(&v.image),
        code(&v.digest),
        key(v),
        signatures.iter().filter(|s| s.verified()).count(),
        signatures.len()
    );
    md.push_str(
        "\n| found | format | where | key | predicate type | verdict |\n|---|---|---|---|---|---|\n",
    );
    for seen in &v.seen {
        let what = match seen.what {
            What::Signature => "signature",
            What::Attestation => "attestation",
        };
        let predicate = match &seen.predicate {
            Some(predicate) => code(predicate),
            None => "—".to_owned(),
        };
        let (signer, verdict) = match &seen.verdict {
            Ok(()) => (key(v), "✅ verified with the key".to_owned()),
            Err(why) => (named_key(seen), format!("❌ {}", cell(why))),
        };
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {signer} | {predicate} | {verdict} |",
            seen.format,
            cell(&seen.place)
        );
    }
    md
}

/// The key a rejected bundle names, said as its claim; `—` when it
/// names none (a legacy layer never does).
fn named_key(seen: &Seen) -> String {
    match &seen.named_key {
        Some(named) => format!("{} (the bundle's hint)", short(named)),
        None => "—".to_owned(),
    }
}

/// `sha256:<12 hex>` in code: enough of a key's identity to tell keys apart.
fn short(key_id: &str) -> String {
    let short: String = key_id.chars().take("sha256:".len() + 12).collect();
    code(&short)
}

/// `sha256:<12 hex>` (`cosign.pub`): enough of the identity to tell keys
/// apart at a glance (the `key-id` output has all of it), and where it came
/// from.
fn key(v: &Verified) -> String {
    let from = match &v.key_file {
        Some(file) => code(file),
        None => "inline PEM".to_owned(),
    };
    format!("{} ({from})", short(&v.key_id))
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
                    what: What::Signature,
                    format: "cosign legacy",
                    place: "sha256-ab.sig layer 1".into(),
                    predicate: None,
                    named_key: None,
                    verdict: Err("signed | by another key".into()),
                },
                Seen {
                    what: What::Signature,
                    format: "Sigstore bundle v0.3",
                    place: "referrers tag sha256-ab".into(),
                    predicate: Some("https://sigstore.dev/cosign/sign/v1".into()),
                    named_key: Some(format!("sha256:{}", "0123456789abcdef".repeat(4))),
                    verdict: Ok(()),
                },
                Seen {
                    what: What::Attestation,
                    format: "Sigstore bundle v0.3",
                    place: "referrers API (sha256:cd)".into(),
                    predicate: Some("https://slsa.dev/provenance/v1".into()),
                    named_key: Some(format!("sha256:{}", "fedcba9876543210".repeat(4))),
                    verdict: Err("its signature doesn't verify".into()),
                },
            ],
            attestation: Some(("https://cyclonedx.org/bom".into(), Some("1.6".into()), 3)),
        });
        assert!(md.contains("| `r/ns/app:latest` | `sha256:ab` | `sha256:0123456789ab` (`keys/cosign.pub`) | ✅ 1 of 2 signatures verified with the key | ✅ `https://cyclonedx.org/bom` 1.6, 3 components |"), "{md}");
        assert!(md.contains("| signature | cosign legacy | sha256-ab.sig layer 1 | — | — | ❌ signed \\| by another key |"), "{md}");
        assert!(md.contains("| signature | Sigstore bundle v0.3 | referrers tag sha256-ab | `sha256:0123456789ab` (`keys/cosign.pub`) | `https://sigstore.dev/cosign/sign/v1` | ✅ verified with the key |"), "{md}");
        assert!(md.contains("| attestation | Sigstore bundle v0.3 | referrers API (sha256:cd) | `sha256:fedcba987654` (the bundle's hint) | `https://slsa.dev/provenance/v1` | ❌ its signature doesn't verify |"), "{md}");
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
