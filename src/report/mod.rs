//! Rendering for people: job-summary markdown (pure).

pub mod check_run;
pub mod cleanup;
pub mod monitor;
pub mod plan;
pub mod publish;
pub mod scan;
pub mod usage;
pub mod verify;

pub use crate::units::bytes;

/// Escapes untrusted text for the summary's markdown, in a table cell or a
/// line of prose: a line break would end the row (or start a block of its
/// own) and a `|` would start another cell. Backslashes are doubled first,
/// or one before a `|` would pair with the escape's and free the pipe.
pub fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// A link reading `text`, or the text alone when `url` is not a plain
/// `http(s)` address: a report's link is untrusted, and a line break in it
/// would break the table, a `)` the link. Characters markdown would read
/// are percent-encoded, which leaves the address the same.
pub fn link(text: &str, url: &str) -> String {
    let text = cell(text).replace('[', "\\[").replace(']', "\\]");
    let web = url.starts_with("https://") || url.starts_with("http://");
    if !web || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return text;
    }
    let mut encoded = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' | ')' | '[' | ']' | '<' | '>' | '|' | '`' | '"' | '\\' => {
                encoded.push_str(&format!("%{:02X}", u32::from(c)));
            }
            c => encoded.push(c),
        }
    }
    format!("[{text}]({encoded})")
}

/// One finding in a sentence, for annotations: id, package, the fix, the
/// advisory's title (unless it only repeats the id) and its link.
pub fn finding_message(f: &crate::scan::Finding) -> String {
    let fix = match &f.fixed {
        Some(fixed) => format!("fixed in {fixed}"),
        None => "no fix yet".to_owned(),
    };
    let mut text = format!("{} in {} {} ({fix})", f.id, f.package, f.installed);
    if !f.title.is_empty() && f.title != f.id {
        text.push_str(": ");
        text.push_str(&f.title);
    }
    if let Some(url) = &f.url {
        text.push('\n');
        text.push_str(url);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cells of a table row as GitHub's parser (cmark-gfm) splits it:
    /// a backslash escapes the punctuation after it (a `\\` is one escaped
    /// backslash), every other `|` ends a cell; the outer pipes dropped.
    pub(crate) fn row_cells(row: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut chars = row.trim().chars();
        while let Some(c) = chars.next() {
            let cell = cells.last_mut().expect("a cell");
            match c {
                '\\' => {
                    cell.push(c);
                    cell.extend(chars.next());
                }
                '|' => cells.push(String::new()),
                c => cell.push(c),
            }
        }
        cells.remove(0);
        cells.pop();
        cells
    }

    /// Fails unless every row of every table in `md` has as many cells as
    /// its header.
    pub(crate) fn assert_tables_whole(md: &str) {
        let mut header = None;
        for line in md.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            let width = row_cells(line).len();
            let expected = *header.get_or_insert(width);
            assert_eq!(width, expected, "row {line:?} in\n{md}");
        }
    }

    const HOSTILE: [&str; 10] = [
        "a|b",
        "odd \\| even \\\\| three \\\\\\|",
        "ends with a backslash\\",
        "line\nbreak | x",
        "cr\r\n| --- |",
        "ends with \\",
        "\\|",
        "`code | span`",
        "https://x.example/a\n\n| forged | row |",
        "\n::stop-commands::pwn",
    ];

    #[test]
    fn cells_keep_the_row_whole() {
        for text in HOSTILE {
            let row = format!(
                "| {} | `{}` | {} |",
                cell(text),
                cell(text),
                link(text, text)
            );
            assert!(!row.contains(['\n', '\r']), "{row:?}");
            assert_eq!(row_cells(&row).len(), 3, "{text:?}: {row}");
        }
    }

    #[test]
    fn links_only_to_plain_web_addresses() {
        for (text, url, expected) in [
            (
                "CVE-1",
                "https://avd.example/CVE-1",
                "[CVE-1](https://avd.example/CVE-1)",
            ),
            (
                "CVE-2",
                "http://x.example/a_(b)|c",
                "[CVE-2](http://x.example/a_%28b%29%7Cc)",
            ),
            (
                "[x]",
                "https://x.example/<y>",
                "[\\[x\\]](https://x.example/%3Cy%3E)",
            ),
            ("CVE-3", "https://x.example/a\nb", "CVE-3"),
            ("CVE-4", "https://x.example/a b", "CVE-4"),
            ("CVE-5", "javascript:alert(1)", "CVE-5"),
            ("a|b", "file:///etc/passwd", "a\\|b"),
        ] {
            assert_eq!(link(text, url), expected, "{url:?}");
        }
    }
}
