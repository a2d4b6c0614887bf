//! The job summary: Markdown appended to the file `GITHUB_STEP_SUMMARY` names.

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// GitHub uploads nothing at all for a step summary over 1 MiB, so stay a
/// little under it.
pub const SUMMARY_LIMIT: usize = 1_000_000;

fn truncation_note(left_out: usize) -> String {
    format!(
        "\n> **Summary truncated**: {left_out} bytes left out to stay under GitHub's \
         1 MiB step-summary limit; the full results are in the log.\n"
    )
}

/// `markdown` cut to at most `budget` bytes. The cut falls after the last
/// whole line that fits, so no table row or link is left half-drawn, and a
/// note says how much is missing.
pub fn fit(markdown: &str, budget: usize) -> Cow<'_, str> {
    if markdown.len() <= budget {
        return Cow::Borrowed(markdown);
    }
    // The note for the largest possible count is the longest it can get.
    let room = budget.saturating_sub(truncation_note(markdown.len()).len());
    let mut end = room;
    while !markdown.is_char_boundary(end) {
        end -= 1;
    }
    let head = match markdown[..end].rfind('\n') {
        Some(newline) => &markdown[..=newline],
        None => &markdown[..end],
    };
    let fitted = head.to_owned() + &truncation_note(markdown.len() - head.len());
    if fitted.len() <= budget {
        Cow::Owned(fitted)
    } else {
        Cow::Borrowed("")
    }
}

/// Appends to the step summary, fitted into what earlier writes left of
/// [`SUMMARY_LIMIT`]; a summary already over it is left as it is.
pub fn append(path: &Path, markdown: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let used = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let fitted = fit(markdown, SUMMARY_LIMIT.saturating_sub(used));
    if fitted.is_empty() {
        return Ok(());
    }
    file.write_all(fitted.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What `fit` kept before its note, and the count the note gives.
    fn split_note(fitted: &str) -> (&str, usize) {
        let start = fitted.rfind("\n> **Summary truncated**: ").unwrap();
        let count = fitted[start..].split_whitespace().nth(3).unwrap();
        (&fitted[..start], count.parse().unwrap())
    }

    #[test]
    fn note_text() {
        assert_eq!(
            truncation_note(42),
            "\n> **Summary truncated**: 42 bytes left out to stay under GitHub's 1 MiB \
             step-summary limit; the full results are in the log.\n"
        );
    }

    #[test]
    fn fitting_text_is_borrowed_unchanged() {
        for (markdown, budget) in [
            ("", 0),
            ("", 10),
            ("# Title\n", 8),
            ("# Title\n", 100),
            ("é🦀", 6),
        ] {
            let fitted = fit(markdown, budget);
            assert!(matches!(fitted, Cow::Borrowed(_)));
            assert_eq!(fitted, markdown);
        }
    }

    #[test]
    fn cuts_after_the_last_whole_line() {
        let markdown: String = (0..100).map(|i| format!("| row {i:03} |\n")).collect();
        let budget = 600;
        let fitted = fit(&markdown, budget);
        assert!(fitted.len() <= budget);
        let (head, left_out) = split_note(&fitted);
        assert!(markdown.starts_with(head));
        assert!(head.ends_with(" |\n"), "{head:?}");
        assert_eq!(head.len() + left_out, markdown.len());
        // No further whole line would have fitted.
        let next_line = markdown[head.len()..].split_inclusive('\n').next().unwrap();
        let longest_note = truncation_note(markdown.len()).len();
        assert!(head.len() + next_line.len() + longest_note > budget);
    }

    #[test]
    fn result_never_exceeds_the_budget() {
        let multibyte = "Ünïcödé ✓ 🦀 results\n".repeat(200);
        let one_line_multibyte = "🦀é✓".repeat(500);
        let no_newline = "x".repeat(5000);
        let long_first_line = format!("{}\nshort\n", "y".repeat(3000));
        let inputs = [
            multibyte.as_str(),
            one_line_multibyte.as_str(),
            no_newline.as_str(),
            long_first_line.as_str(),
        ];
        for markdown in inputs {
            for budget in (0..markdown.len()).step_by(7).chain([200, 201, 202, 203]) {
                let fitted = fit(markdown, budget);
                assert!(fitted.len() <= budget, "{} > {budget}", fitted.len());
                if fitted.is_empty() {
                    assert!(budget < truncation_note(markdown.len()).len());
                    continue;
                }
                let (head, left_out) = split_note(&fitted);
                assert!(markdown.starts_with(head));
                assert_eq!(head.len() + left_out, markdown.len());
            }
        }
    }

    #[test]
    fn cuts_mid_line_on_a_char_boundary_when_no_line_fits() {
        let markdown = "🦀".repeat(1000);
        let budget = 300;
        let fitted = fit(&markdown, budget);
        let (head, left_out) = split_note(&fitted);
        let room = budget - truncation_note(markdown.len()).len();
        assert_eq!(head, "🦀".repeat(room / 4));
        assert_eq!(left_out, markdown.len() - head.len());
        assert!(fitted.len() <= budget);
    }

    #[test]
    fn too_small_a_budget_gives_nothing() {
        let markdown = "a\n".repeat(100);
        assert_eq!(fit(&markdown, 0), "");
        assert_eq!(fit(&markdown, 50), "");
        let just_the_note = truncation_note(markdown.len());
        assert_eq!(fit(&markdown, just_the_note.len()), just_the_note);
    }

    #[test]
    fn fits_the_real_limit() {
        let row = "| image | ✓ | sha256:0123456789abcdef |\n";
        let markdown = row.repeat(SUMMARY_LIMIT / row.len() + 10);
        let fitted = fit(&markdown, SUMMARY_LIMIT);
        assert!(fitted.len() <= SUMMARY_LIMIT);
        assert!(fitted.len() > SUMMARY_LIMIT - row.len() - 200);
        let (head, _) = split_note(&fitted);
        assert_eq!(head.len() % row.len(), 0);
    }

    #[test]
    fn append_creates_and_accumulates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        append(&path, "# Plan\n").unwrap();
        append(&path, "- images/a\n").unwrap();
        append(&path, "").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Plan\n- images/a\n"
        );
    }

    #[test]
    fn append_fits_into_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let earlier = "e".repeat(SUMMARY_LIMIT - 1000);
        std::fs::write(&path, &earlier).unwrap();
        let markdown = "line of results\n".repeat(200);
        append(&path, &markdown).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= SUMMARY_LIMIT);
        assert_eq!(&text[..earlier.len()], earlier);
        let (head, left_out) = split_note(&text[earlier.len()..]);
        assert_eq!(head.len() + left_out, markdown.len());
    }

    #[test]
    fn append_leaves_a_full_summary_alone() {
        let dir = tempfile::tempdir().unwrap();
        for size in [SUMMARY_LIMIT, SUMMARY_LIMIT + 5000, SUMMARY_LIMIT - 10] {
            let path = dir.path().join(format!("summary-{size}.md"));
            let earlier = "e".repeat(size);
            std::fs::write(&path, &earlier).unwrap();
            append(&path, "# More\nresults\n").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), earlier);
        }
    }

    #[test]
    fn append_reports_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = append(&dir.path().join("no/such/summary.md"), "x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
