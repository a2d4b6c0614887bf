//! Untrusted text made safe for job-summary markdown (pure): what every
//! rendering of names, findings and links goes through.

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
