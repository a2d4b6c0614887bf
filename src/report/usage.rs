//! The `usage` job summary.

use std::fmt::Write as _;

use crate::report::{bytes, code, html};
use crate::usage::Report;

pub fn summary(report: &Report) -> String {
    let mut md = format!(
        "### registry-action usage: {}\n\n| repository | tags | SHA tags | manifests | signatures | stored | growth |\n|---|---|---|---|---|---|---|\n",
        code(&report.registry)
    );
    for r in &report.repositories {
        let growth = match r.growth {
            Some(g) => format!("{} bytes, {:+} tags", signed(g.bytes), g.tags),
            None => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {growth} |",
            code(&r.repository),
            r.tags,
            r.sha_tags,
            r.manifests,
            r.signatures,
            bytes(r.bytes)
        );
    }
    let _ = writeln!(md, "\n**Total stored:** {}\n", bytes(report.total_bytes));
    for r in &report.repositories {
        if let Some(v) = r.versions {
            let _ = writeln!(
                md,
                "- {}: {} package versions, {} tagged and {} untagged; the untagged ones hold {} more (`cleanup` with `untagged: delete` removes those nothing kept references)",
                code(&r.repository),
                v.tagged + v.untagged,
                v.tagged,
                v.untagged,
                bytes(v.untagged_bytes)
            );
        }
    }
    for r in report.repositories.iter().filter(|r| r.orphans > 0) {
        let _ = writeln!(
            md,
            "- {}: {} of its signatures, attestations and referrers indexes are orphans, their image gone (`cleanup` with `orphans: delete` removes them)",
            code(&r.repository),
            r.orphans
        );
    }
    for r in report.repositories.iter().filter(|r| !r.largest.is_empty()) {
        let _ = writeln!(
            md,
            "<details><summary>Largest images of <code>{}</code></summary>\n\n| size | tags | digest |\n|---|---|---|",
            html(&r.repository)
        );
        for image in &r.largest {
            let tags: Vec<String> = image.tags.iter().take(5).map(|t| code(t)).collect();
            let more = image.tags.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" +{more}")
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {} | {}{more} | {} |",
                bytes(image.bytes),
                tags.join(" "),
                code(&image.digest)
            );
        }
        md.push_str("\n</details>\n");
    }
    md
}

fn signed(n: i64) -> String {
    let size = bytes(n.unsigned_abs());
    if n < 0 {
        format!("−{size}")
    } else {
        format!("+{size}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::usage::{Growth, Image, Repository};

    #[test]
    fn table_and_largest_images() {
        let report = Report {
            registry: "127.0.0.1:5000".into(),
            generated: "2026-01-01T00:00:00Z".into(),
            total_bytes: 2 << 20,
            repositories: vec![Repository {
                repository: "acme/app".into(),
                tags: 4,
                sha_tags: 2,
                signatures: 1,
                orphans: 0,
                manifests: 2,
                bytes: 2 << 20,
                largest: vec![Image {
                    digest: "sha256:ab".into(),
                    tags: vec!["latest".into()],
                    bytes: 1 << 20,
                }],
                versions: None,
                growth: Some(Growth {
                    bytes: -2048,
                    tags: 3,
                    sha_tags: 3,
                }),
            }],
        };
        let md = summary(&report);
        assert!(
            md.contains("| `acme/app` | 4 | 2 | 2 | 1 | 2.0 MiB | −2.0 KiB bytes, +3 tags |"),
            "{md}"
        );
        assert!(md.contains("**Total stored:** 2.0 MiB"), "{md}");
        assert!(md.contains("| 1.0 MiB | `latest` | `sha256:ab` |"), "{md}");
    }
}
