//! The `plan` job summary.

use std::fmt::Write as _;

use crate::plan::outcome::{Compared, Outcome};
use crate::report::{code, prose};

pub fn summary(outcome: &Outcome) -> String {
    let mut md = String::from("### registry-action plan\n\n");
    let event = outcome
        .event
        .as_deref()
        .map(|e| format!(" for {}", code(e)))
        .unwrap_or_default();
    let _ = match &outcome.compared {
        Compared::Range {
            range,
            source,
            files,
        } => writeln!(
            md,
            "Compared {}{event} with **{source}**: {files} changed file{}.",
            code(range),
            plural(*files)
        ),
        Compared::All(reason) => writeln!(md, "Every image selected{event}: {}.", prose(reason)),
        Compared::Release {
            tag,
            version,
            prerelease,
        } => {
            let kind = if *prerelease {
                ", a prerelease: only its exact version tag, never `latest`"
            } else {
                ""
            };
            writeln!(
                md,
                "Release tag {}{event}: version {}{kind}.",
                code(tag),
                code(version)
            )
        }
        Compared::Nothing(reason) => writeln!(md, "Nothing to build{event}: {}.", prose(reason)),
    };
    for note in &outcome.notes {
        let _ = writeln!(md, "\n> {}", prose(note));
    }
    let _ = writeln!(
        md,
        "\n**{} of {} image{}** selected{}.\n",
        outcome.entries.len(),
        outcome.images_found,
        plural(outcome.images_found),
        outcome
            .sha
            .as_deref()
            .map(|s| format!(" at {}", code(s)))
            .unwrap_or_default()
    );
    if !outcome.entries.is_empty() {
        md.push_str("| image | path | tier | why |\n|---|---|---|---|\n");
        for e in &outcome.entries {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                code(&e.image),
                code(&e.path),
                e.tier,
                prose(&e.reason)
            );
        }
    }
    md
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::matrix::Entry;

    /// `acme/app` at `ops/docker/app`, tier 0, selected for `reason`.
    fn app_entry(reason: String) -> Entry {
        Entry {
            path: "ops/docker/app".into(),
            basename: "app".into(),
            name: "app".into(),
            image: "acme/app".into(),
            dockerfile: "ops/docker/app/Dockerfile".into(),
            context: "ops/docker/app".into(),
            reason,
            depends_on: vec![],
            tier: 0,
            version: None,
            prerelease: false,
        }
    }

    #[test]
    fn says_what_was_compared_and_why_each_image() {
        let outcome = Outcome {
            event: Some("push".into()),
            compared: Compared::Range {
                range: "1111111..2222222".into(),
                source: "git",
                files: 3,
            },
            entries: vec![app_entry("changed `ops/docker/app/a|b`".into())],
            images_found: 4,
            notes: vec!["github: commit 1111111 is gone".into()],
            sha: Some("2222222222222222222222222222222222222222".into()),
        };
        assert_eq!(
            summary(&outcome),
            "### registry-action plan\n\n\
             Compared `1111111..2222222` for `push` with **git**: 3 changed files.\n\n\
             > github: commit 1111111 is gone\n\n\
             **1 of 4 images** selected at `2222222222222222222222222222222222222222`.\n\n\
             | image | path | tier | why |\n|---|---|---|---|\n\
             | `acme/app` | `ops/docker/app` | 0 | changed <code>ops/docker/app/a\\|b</code> |\n"
        );
    }

    #[test]
    fn untrusted_text_keeps_to_its_line_and_cell() {
        let hostile = "x\n| forged | row | 1 | y |\n::stop-commands::pwn";
        let outcome = Outcome {
            event: Some("release".into()),
            compared: Compared::Release {
                tag: hostile.into(),
                version: "1.0.0".into(),
                prerelease: false,
            },
            entries: vec![app_entry(format!("changed `{hostile}`"))],
            images_found: 1,
            notes: vec![hostile.into()],
            sha: None,
        };
        let md = summary(&outcome);
        crate::report::tests::assert_tables_whole(&md);
        assert_eq!(
            md.lines().filter(|l| l.contains("forged")).count(),
            3,
            "{md}"
        );
        assert!(!md.lines().any(|l| l.starts_with("| forged")), "{md}");
    }

    #[test]
    fn nothing_to_build() {
        let outcome = Outcome {
            event: Some("push".into()),
            compared: Compared::Nothing("`refs/heads/x` was deleted".into()),
            entries: vec![],
            images_found: 1,
            notes: vec![],
            sha: None,
        };
        let md = summary(&outcome);
        assert!(
            md.contains("Nothing to build for `push`: `refs/heads/x` was deleted."),
            "{md}"
        );
        assert!(md.contains("**0 of 1 image** selected."), "{md}");
        assert!(!md.contains("| image |"));
    }

    #[test]
    fn a_prerelease_says_which_tags_stay() {
        let outcome = Outcome {
            event: Some("release".into()),
            compared: Compared::Release {
                tag: "app-v2.0.0".into(),
                version: "2.0.0".into(),
                prerelease: true,
            },
            entries: vec![],
            images_found: 1,
            notes: vec![],
            sha: None,
        };
        assert!(summary(&outcome).contains(
            "Release tag `app-v2.0.0` for `release`: version `2.0.0`, a prerelease: only its exact version tag, never `latest`."
        ));
    }
}
