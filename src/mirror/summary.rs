//! The job summary and the outputs of a copy (pure).

use std::fmt::Write as _;

use crate::actions::outputs::Outputs;
use crate::report::{bytes, code, prose};

use super::{Listed, Report, State};

/// `command` copied from `from` to `to`: one row per tag, then the blobs.
pub fn summary(command: &str, from: &str, to: &str, report: &Report) -> String {
    let mut md = format!(
        "### registry-action {command}{}\n\n{} → {}\n\n| tag | digest | |\n|---|---|---|\n",
        if report.dry_run { " (dry run)" } else { "" },
        code(from),
        code(to)
    );
    for t in &report.tags {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            code(&t.tag),
            code(&t.digest),
            t.state.as_str()
        );
    }
    if !report.referrers.is_empty() {
        md.push_str(
            "\nReferrers the source's referrers API lists:\n\n| referrer | of | | listed on the target by |\n|---|---|---|---|\n",
        );
        for r in &report.referrers {
            let listed = match &r.listed {
                Listed::ReferrersApi => "its referrers API".to_owned(),
                Listed::FallbackTag(tag) => format!("the fallback tag {}", code(tag)),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {listed} |",
                code(&r.digest),
                code(&r.subject),
                r.state.as_str()
            );
        }
    }
    let verb = if report.dry_run { "to send" } else { "sent" };
    let _ = writeln!(
        md,
        "\nBlobs: {} {verb} ({}), {} mounted, {} already there.",
        report.blobs_sent,
        bytes(report.bytes_sent),
        report.blobs_mounted,
        report.blobs_present
    );
    md
}

/// One `mirror-to` target of a release, and how its copy went.
#[derive(Debug)]
pub struct Mirrored {
    pub target: String,
    pub result: Result<Report, String>,
}

/// The `publish` summary's mirror table: one row per target.
pub fn mirrors(mirrored: &[Mirrored]) -> String {
    let mut md = String::from("#### Mirrors\n\n| mirror | result |\n|---|---|\n");
    for m in mirrored {
        let result = match &m.result {
            Ok(r) => format!(
                "{} tags; {} blobs sent ({}), {} mounted, {} already there",
                r.tags.len(),
                r.blobs_sent,
                bytes(r.bytes_sent),
                r.blobs_mounted,
                r.blobs_present
            ),
            Err(e) => format!("**failed**: {}", prose(e)),
        };
        let _ = writeln!(md, "| {} | {result} |", code(&m.target));
    }
    md
}

/// The outputs of `mirror`, `backup` and `restore`: each tag's digest and
/// the blob counts.
pub fn outputs(report: &Report) -> Result<Outputs, serde_json::Error> {
    let mut outputs = Outputs::new();
    // A fallback tag the target's referrers API made needless isn't there.
    let copied: serde_json::Map<String, serde_json::Value> = report
        .tags
        .iter()
        .filter(|t| t.state != State::Indexed)
        .map(|t| (t.tag.clone(), t.digest.clone().into()))
        .collect();
    outputs.set_json("copied", &copied)?;
    outputs.set("blobs-sent", report.blobs_sent.to_string());
    outputs.set("bytes-sent", report.bytes_sent.to_string());
    outputs.set("blobs-mounted", report.blobs_mounted.to_string());
    outputs.set("blobs-present", report.blobs_present.to_string());
    Ok(outputs)
}

/// `publish`'s `mirrors` output: target → `ok` or `failed`.
pub fn mirror_results(mirrored: &[Mirrored]) -> serde_json::Map<String, serde_json::Value> {
    mirrored
        .iter()
        .map(|m| {
            let result = if m.result.is_ok() { "ok" } else { "failed" };
            (m.target.clone(), result.into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{ReferrerCopy, TagCopy};

    #[test]
    fn rows_and_totals() {
        let md = summary(
            "mirror",
            "docker.io/library/alpine",
            "127.0.0.1:5000/mirror/alpine",
            &Report {
                tags: vec![
                    TagCopy {
                        tag: "3.20".into(),
                        digest: "sha256:ab".into(),
                        state: State::Copied,
                    },
                    TagCopy {
                        tag: "3.19".into(),
                        digest: "sha256:cd".into(),
                        state: State::UpToDate,
                    },
                ],
                blobs_sent: 2,
                bytes_sent: 3 << 20,
                blobs_mounted: 1,
                blobs_present: 4,
                dry_run: false,
                referrers: vec![ReferrerCopy {
                    subject: "sha256:ab".into(),
                    digest: "sha256:ef".into(),
                    state: State::Copied,
                    listed: Listed::FallbackTag("sha256-ab".into()),
                }],
            },
        );
        assert!(md.starts_with("### registry-action mirror\n"), "{md}");
        assert!(md.contains("| `3.20` | `sha256:ab` | copied |"), "{md}");
        assert!(md.contains("| `3.19` | `sha256:cd` | up to date |"), "{md}");
        assert!(
            md.contains("| `sha256:ef` | `sha256:ab` | copied | the fallback tag `sha256-ab` |"),
            "{md}"
        );
        assert!(
            md.contains("Blobs: 2 sent (3.0 MiB), 1 mounted, 4 already there."),
            "{md}"
        );
    }

    #[test]
    fn one_row_per_mirror() {
        let md = mirrors(&[
            Mirrored {
                target: "ghcr.io/acme/app".into(),
                result: Ok(Report {
                    tags: Vec::new(),
                    blobs_sent: 1,
                    bytes_sent: 2048,
                    blobs_mounted: 0,
                    blobs_present: 3,
                    ..Report::default()
                }),
            },
            Mirrored {
                target: "127.0.0.1:9/acme/app".into(),
                result: Err("couldn't reach | it".into()),
            },
        ]);
        assert!(
            md.contains("| `ghcr.io/acme/app` | 0 tags; 1 blobs sent (2.0 KiB), 0 mounted, 3 already there |"),
            "{md}"
        );
        assert!(
            md.contains("| `127.0.0.1:9/acme/app` | **failed**: couldn't reach \\| it |"),
            "{md}"
        );
    }
}
