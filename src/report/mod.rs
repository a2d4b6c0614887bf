//! Rendering for people: job-summary markdown (pure).

pub mod check_run;
pub mod cleanup;
pub mod monitor;
pub mod plan;
pub mod publish;
pub mod publish_layers;
pub mod scan;
pub mod usage;
pub mod verify;

pub use crate::units::bytes;

pub use crate::markdown::{cell, code, html, link, prose};

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

    const HOSTILE: [&str; 17] = [
        "a|b",
        "odd \\| even \\\\| three \\\\\\|",
        "ends with a backslash\\",
        "line\nbreak | x",
        "cr\r\n| --- |",
        "ends with \\",
        "\\|",
        "`code | span`",
        "one ` backtick",
        "https://x.example/a\n\n| forged | row |",
        "\n::stop-commands::pwn",
        "<!-- the rest of the summary is a comment",
        "<details open><summary>x</summary>",
        "&lt; &amp; &#124; <https://x.example>",
        "*em* _em_ ~~del~~ **strong**",
        "[link](https://x.example) ![img](https://x.example/i.png)",
        "ends with a lone <",
    ];

    /// The cells of the one body row of `row` under a four-column header,
    /// as GitHub's markdown (cmark-gfm, here its port comrak) renders them:
    /// the text a reader sees, with any HTML but `<code>` kept raw so that
    /// a comment or a tag shows up as a difference (as does markup, by the
    /// characters it takes).
    fn rendered_cells(row: &str) -> Vec<Vec<String>> {
        use comrak::nodes::NodeValue;
        let md = format!("| a | b | c | d |\n|---|---|---|---|\n{row}\n");
        let mut options = comrak::Options::default();
        options.extension.table = true;
        options.extension.strikethrough = true;
        options.extension.autolink = true;
        let arena = comrak::Arena::new();
        let root = comrak::parse_document(&arena, &md, &options);
        let mut rows = Vec::new();
        for node in root.descendants() {
            if matches!(node.data.borrow().value, NodeValue::TableRow(false)) {
                rows.push(node.children().map(rendered_text).collect());
            }
        }
        rows
    }

    fn rendered_text<'a>(node: &'a comrak::nodes::AstNode<'a>) -> String {
        use comrak::nodes::NodeValue;
        let mut text = String::new();
        for n in node.descendants() {
            match &n.data.borrow().value {
                NodeValue::Text(t) => text.push_str(t),
                NodeValue::Code(c) => text.push_str(&c.literal),
                NodeValue::HtmlInline(h) if h == "<code>" || h == "</code>" => {}
                NodeValue::HtmlInline(h) => text.push_str(&format!("[html {h}]")),
                _ => {}
            }
        }
        text.trim().to_owned()
    }

    #[test]
    fn untrusted_text_renders_as_given_in_its_own_cell() {
        for text in HOSTILE {
            let row = format!(
                "| {} | {} | {} | |",
                cell(text),
                code(text),
                link(text, "https://x.example/a")
            );
            let shown = text.replace(['\n', '\r'], " ").trim().to_owned();
            let cells = rendered_cells(&row);
            assert_eq!(cells.len(), 1, "{text:?}: {row}");
            assert_eq!(cells[0][..3], [shown.as_str(); 3], "{row}");
        }
    }

    #[test]
    fn prose_keeps_our_code_spans_and_never_lets_a_name_out() {
        let ours = prose("changed `ops/a|b` and `<!--x`");
        assert_eq!(ours, "changed <code>ops/a\\|b</code> and `<!--x`");
        assert_eq!(
            rendered_cells(&format!("| {ours} | | | |"))[0][0],
            "changed ops/a|b and <!--x"
        );
        // A name that brings a backtick: shown as written.
        let odd = "changed `a`b<!--`";
        assert_eq!(
            rendered_cells(&format!("| {} | | | |", prose(odd)))[0][0],
            odd
        );
        // Two backticks pair differently, but every part is still escaped.
        let even = prose("changed `a`*b*`<!--`");
        let shown = &rendered_cells(&format!("| {even} | | | |"))[0][0];
        assert_eq!(shown, "changed a*b*<!--", "{even}");
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
