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
}
