//! The job summary as GitHub renders it: CommonMark with GFM's tables,
//! strikethrough and autolinks, parsed by comrak (a port of GitHub's
//! cmark-gfm), so a test sees the structure a reader would.

use std::collections::BTreeSet;

use comrak::nodes::{AstNode, NodeValue};
use comrak::{Anchorizer, Arena, Options, parse_document};

/// HTML the summaries write themselves; any other tag or comment came
/// from untrusted text.
const OURS_INLINE: [&str; 2] = ["<code>", "</code>"];
const OURS_BLOCK: [&str; 2] = ["<details>", "</details>"];

fn options() -> Options<'static> {
    let mut options = Options::default();
    options.extension.table = true;
    options.extension.strikethrough = true;
    options.extension.autolink = true;
    options
}

/// The cells of a table row as GitHub's table splits it: on every `|` no
/// backslash escapes, the outer pipes dropped.
pub fn row_cells(row: &str) -> usize {
    let mut pipes = 0usize;
    let mut escaped = false;
    for c in row.trim().chars() {
        if c == '|' && !escaped {
            pipes += 1;
        }
        escaped = c == '\\' && !escaped;
    }
    pipes.saturating_sub(1)
}

/// Fails unless the summary's structure is the one written: no HTML but
/// our own (an `<!--` would hide the rest, a tag restyle it), every line
/// that starts a table row is a row of a table (not swallowed by an HTML
/// or code block), and every row has its header's count of cells. Returns
/// how many tables there were.
pub fn assert_summary_whole(markdown: &str) -> usize {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options());
    let lines: Vec<&str> = markdown.lines().collect();
    let mut table_lines = 0;
    let mut tables = 0;
    for node in root.descendants() {
        let data = node.data.borrow();
        match &data.value {
            NodeValue::HtmlBlock(block) => assert!(
                OURS_BLOCK.iter().any(|t| block.literal.starts_with(t))
                    && !block.literal.contains("<!--"),
                "an HTML block {:?} in\n{markdown}",
                block.literal
            ),
            NodeValue::HtmlInline(html) => assert!(
                OURS_INLINE.contains(&html.as_str()),
                "inline HTML {html:?} in\n{markdown}"
            ),
            NodeValue::Table(table) => {
                tables += 1;
                let (start, end) = (data.sourcepos.start.line, data.sourcepos.end.line);
                table_lines += end - start + 1;
                for line in &lines[start - 1..end] {
                    assert_eq!(
                        row_cells(line),
                        table.num_columns,
                        "row {line:?} in\n{markdown}"
                    );
                }
            }
            _ => {}
        }
    }
    let row_lines = lines.iter().filter(|l| l.starts_with('|')).count();
    assert_eq!(
        row_lines, table_lines,
        "table rows outside any table in\n{markdown}"
    );
    tables
}

/// Fails unless a paragraph, heading, list item or table cell of the
/// summary reads `text` as given (line breaks as spaces): no character
/// taken for markup, no escape left showing.
pub fn assert_shows(markdown: &str, text: &str) {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options());
    let wanted = text.replace(['\n', '\r'], " ");
    let wanted = wanted.trim();
    let shown: Vec<String> = root
        .descendants()
        .filter(|n| {
            matches!(
                n.data.borrow().value,
                NodeValue::Paragraph | NodeValue::Heading(_) | NodeValue::TableCell
            )
        })
        .map(rendered_text)
        .collect();
    assert!(
        shown.iter().any(|s| s.contains(wanted)),
        "{wanted:?} is not shown as given; the summary reads {shown:#?}\n{markdown}"
    );
}

/// One cell of a table: its text as shown, and the code spans in it.
pub struct Cell {
    pub text: String,
    pub code: Vec<String>,
}

/// Every table of `markdown`, as rows (the header first) of cells.
pub fn tables(markdown: &str) -> Vec<Vec<Vec<Cell>>> {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options());
    root.descendants()
        .filter(|n| matches!(n.data.borrow().value, NodeValue::Table(_)))
        .map(|table| {
            table
                .children()
                .map(|row| {
                    row.children()
                        .map(|cell| Cell {
                            text: rendered_text(cell),
                            code: code_spans(cell),
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn code_spans<'a>(node: &'a AstNode<'a>) -> Vec<String> {
    node.descendants()
        .filter_map(|n| match &n.data.borrow().value {
            NodeValue::Code(c) => Some(c.literal.clone()),
            _ => None,
        })
        .collect()
}

/// Where the links and images of `markdown` point, as written.
pub fn links(markdown: &str) -> Vec<String> {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options());
    root.descendants()
        .filter_map(|n| match &n.data.borrow().value {
            NodeValue::Link(link) | NodeValue::Image(link) => Some(link.url.clone()),
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives the headings of `markdown` (`#` + one of
/// these links to a heading).
pub fn anchors(markdown: &str) -> BTreeSet<String> {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options());
    let mut anchorizer = Anchorizer::new();
    root.descendants()
        .filter(|n| matches!(n.data.borrow().value, NodeValue::Heading(_)))
        .map(|heading| anchorizer.anchorize(&rendered_text(heading)))
        .collect()
}

fn rendered_text<'a>(node: &'a AstNode<'a>) -> String {
    let mut text = String::new();
    for n in node.descendants() {
        match &n.data.borrow().value {
            NodeValue::Text(t) => text.push_str(t),
            NodeValue::Code(c) => text.push_str(&c.literal),
            NodeValue::SoftBreak | NodeValue::LineBreak => text.push(' '),
            _ => {}
        }
    }
    text
}

#[test]
fn the_model_sees_what_github_would() {
    assert_eq!(row_cells(r"| a \| b | `c\|` | d\\| e |"), 4);
    let table = "| a | b |\n|---|---|\n| `x\\|y` | <code>1</code> |\n";
    assert_eq!(assert_summary_whole(table), 1);
    assert_shows(table, "x|y");
    for broken in [
        "| a | b |\n|---|---|\n| x <!-- | y |\n\n<!--\n\n| c | d |\n|---|---|\n",
        "| a |\n|---|\n| <b>x</b> |\n",
        "| a | b |\n|---|---|\n| x | y | z |\n",
    ] {
        let caught = std::panic::catch_unwind(|| assert_summary_whole(broken));
        assert!(caught.is_err(), "{broken}");
    }
    let caught = std::panic::catch_unwind(|| assert_shows("a *b* c\n", "a *b* c"));
    assert!(caught.is_err());
}

#[test]
fn tables_links_and_anchors_read_as_github_would() {
    let doc = "# A `b`: c\n\n## A `b`: c\n\n[x](other.md#y) ![i](img.png)\n\n| input | d |\n|---|---|\n| `u`, `p` | `v` |\n";
    let anchors = anchors(doc);
    assert_eq!(
        anchors,
        BTreeSet::from(["a-b-c".to_owned(), "a-b-c-1".to_owned()])
    );
    assert_eq!(links(doc), ["other.md#y", "img.png"]);
    let tables = tables(doc);
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0][0][0].text, "input");
    assert_eq!(tables[0][1][0].code, ["u", "p"]);
    assert_eq!(tables[0][1][0].text, "u, p");
}
