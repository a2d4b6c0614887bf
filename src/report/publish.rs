//! The `publish` job summary.

use std::fmt::Write as _;

use crate::report::{bytes, code, prose};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    pub image: String,
    pub tags: Vec<String>,
    pub digest: String,
    /// Compressed bytes of the image (config and layers).
    pub size: u64,
    /// Blob bytes sent to the registry (0 when it had them all).
    pub uploaded: u64,
    pub built: bool,
    pub pushed: bool,
    pub seconds: f64,
    /// What was skipped or withheld, and why.
    pub notes: Vec<String>,
    /// The platforms built, as their configs declare them.
    pub platforms: Vec<String>,
    /// The base images the build resolved (as the Dockerfile names them →
    /// digest), for the provenance.
    pub bases: std::collections::BTreeMap<String, String>,
    /// The formats the digest was signed in, when it was.
    pub signed: Option<Formats>,
    /// Each image built, its layers analysed.
    pub layers: Vec<crate::report::publish_layers::ImageLayers>,
    /// The Dockerfile, as the layers' lines name it.
    pub dockerfile: String,
}

/// Which of cosign's formats a signature was written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Formats {
    /// `.sig`/`.att` tags.
    pub legacy: bool,
    /// Sigstore bundles as referrers.
    pub bundle: bool,
}

/// What each verifier makes of each format: (verifier and the version
/// checked, legacy, bundle). cosign's rows are run by the tests; the
/// admission controllers' come from their documentation and issues.
const VERIFIERS: [(&str, Verdict, Verdict); 5] = [
    (
        "cosign 2.x (2.5.0, tested)",
        Verdict::Yes,
        Verdict::No("reads `.sig` tags only"),
    ),
    ("cosign 3.x (3.1.1, tested)", Verdict::Yes, Verdict::Yes),
    (
        "Kyverno `type: Cosign` (1.18)",
        Verdict::Yes,
        Verdict::No("reads `.sig` tags only"),
    ),
    (
        "Kyverno `type: SigstoreBundle` (1.13–1.19)",
        Verdict::No("reads referrers only"),
        Verdict::No("key-signed bundles are refused (kyverno#16267, #16854)"),
    ),
    (
        "sigstore policy-controller (0.13)",
        Verdict::Yes,
        Verdict::No("key-signed cosign 3 bundles fail (policy-controller#1958)"),
    ),
];

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Yes,
    No(&'static str),
}

/// Who will accept what was written: one row per verifier.
fn compatibility(formats: Formats) -> String {
    let mut md = String::from(
        "\nSigned with a key and no transparency log (verify with `--key` and `--insecure-ignore-tlog=true`); who accepts what this run wrote:\n\n| verifier | accepts | why |\n|---|---|---|\n",
    );
    for (verifier, legacy, bundle) in VERIFIERS {
        let written = [(formats.legacy, legacy), (formats.bundle, bundle)];
        let accepted = written
            .iter()
            .any(|(wrote, verdict)| *wrote && matches!(verdict, Verdict::Yes));
        let why: Vec<&str> = written
            .iter()
            .filter_map(|(wrote, verdict)| match verdict {
                Verdict::No(why) if *wrote && !accepted => Some(*why),
                _ => None,
            })
            .collect();
        let _ = writeln!(
            md,
            "| {verifier} | {} | {} |",
            if accepted { "✅" } else { "❌" },
            why.join("; ")
        );
    }
    md
}

/// A run with nothing to publish: why, in place of the table.
pub fn nothing(why: &str) -> String {
    format!("### registry-action publish\n\n{why}: nothing is published.\n")
}

pub fn summary(p: &Published) -> String {
    let mut md = String::from(
        "### registry-action publish\n\n| image | tags | digest | size | sent | time |\n|---|---|---|---|---|---|\n",
    );
    let tags = p.tags.iter().map(|t| code(t)).collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        md,
        "| {} | {tags} | {} | {} | {} | {:.1} s |",
        code(&p.image),
        code(&p.digest),
        if p.built { bytes(p.size) } else { "—".into() },
        if p.pushed {
            bytes(p.uploaded)
        } else {
            "not pushed".into()
        },
        p.seconds
    );
    if p.platforms.len() > 1 {
        let listed: Vec<String> = p.platforms.iter().map(|pl| code(pl)).collect();
        let _ = writeln!(md, "\nOne index over {}.", listed.join(", "));
    }
    for note in &p.notes {
        let _ = writeln!(md, "\n> {}", prose(note));
    }
    if let Some(formats) = p.signed {
        md.push_str(&compatibility(formats));
    }
    md.push_str(&crate::report::publish_layers::section(
        &p.layers,
        &p.dockerfile,
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_and_the_notes() {
        let md = summary(&Published {
            image: "acme/app".into(),
            tags: vec!["0123".into(), "latest".into()],
            digest: "sha256:ab".into(),
            size: 3 << 20,
            uploaded: 2048,
            built: true,
            pushed: true,
            seconds: 1.25,
            notes: vec!["`latest` stays".into()],
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            bases: Default::default(),
            signed: None,
            ..Published::default()
        });
        assert!(
            md.contains("One index over `linux/amd64`, `linux/arm64`."),
            "{md}"
        );
        assert!(
            md.contains(
                "| `acme/app` | `0123` `latest` | `sha256:ab` | 3.0 MiB | 2.0 KiB | 1.2 s |"
            ),
            "{md}"
        );
        assert!(md.ends_with("\n> `latest` stays\n"), "{md}");
    }

    #[test]
    fn the_verifiers_that_accept_each_format() {
        let legacy = compatibility(Formats {
            legacy: true,
            bundle: false,
        });
        assert!(
            legacy.contains("| cosign 2.x (2.5.0, tested) | ✅ |  |"),
            "{legacy}"
        );
        assert!(
            legacy.contains(
                "| Kyverno `type: SigstoreBundle` (1.13–1.19) | ❌ | reads referrers only |"
            ),
            "{legacy}"
        );
        assert!(legacy.contains("--insecure-ignore-tlog=true"), "{legacy}");
        let bundle = compatibility(Formats {
            legacy: false,
            bundle: true,
        });
        assert!(
            bundle.contains("| cosign 2.x (2.5.0, tested) | ❌ | reads `.sig` tags only |"),
            "{bundle}"
        );
        assert!(
            bundle.contains("| cosign 3.x (3.1.1, tested) | ✅ |  |"),
            "{bundle}"
        );
        let both = compatibility(Formats {
            legacy: true,
            bundle: true,
        });
        assert_eq!(both.matches("| ✅ |").count(), 4, "{both}");
        assert!(both.contains("| Kyverno `type: SigstoreBundle` (1.13–1.19) | ❌ | reads referrers only; key-signed bundles are refused"), "{both}");
    }
}
