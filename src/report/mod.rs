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
/// own), a `|` would start another cell, `<` an HTML comment or tag that
/// hides the rest, `&` an entity, a backtick a code span, `*`, `_`, `~`
/// and brackets emphasis or a link. Every backslash is escaped too, or one
/// before a `|` would pair with the escape's and free the pipe.
pub fn cell(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '`' | '*' | '_' | '~' | '[' | ']' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '\n' | '\r' => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Untrusted text set as code. A code span shows its text literally, so
/// text a span can't hold (a backtick would close it; a `\|` a table
/// needs would show its backslash) goes in `<code>`, whose content markdown
/// reads as prose: escaped by [`cell`], it shows exactly as given.
pub fn code(text: &str) -> String {
    if text.contains(['`', '\\', '|', '\n', '\r']) {
        format!("<code>{}</code>", cell(text))
    } else {
        format!("`{text}`")
    }
}

/// Untrusted text inside an HTML block (a `<details>` line), where
/// markdown is not read: only HTML's own characters are escaped.
pub fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// Prose we wrote around untrusted names, such as ``changed `a/b` ``: the
/// text between pairs of backticks is set as [`code`], the rest escaped by
/// [`cell`]. An odd count means a name brought its own backtick, and the
/// whole is shown as written rather than guess which pair is ours.
pub fn prose(text: &str) -> String {
    if text.matches('`').count() % 2 == 1 {
        return cell(text);
    }
    text.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { code(part) } else { cell(part) })
        .collect()
}

/// A link reading `text`, or the text alone when `url` is not a plain
/// `http(s)` address: a report's link is untrusted, and a line break in it
/// would break the table, a `)` the link. Characters markdown would read
/// are percent-encoded, which leaves the address the same.
pub fn link(text: &str, url: &str) -> String {
    let text = cell(text);
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
