//! Workflow commands (`::name key=value::message`), the stdout half of the
//! runner contract: annotations, masks, log groups and debug lines.

use std::fmt;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

/// The runner keeps this many UTF-16 code units of an annotation message.
const MAX_MESSAGE_UTF16: usize = 4096;

/// The shortest line of a multi-line secret that gets a mask of its own.
pub const MIN_LINE_MASK: usize = 4;

/// Escapes a command's message. `%` goes first so that the escapes added
/// after it are not escaped again.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value, where `:` would end the properties and `,`
/// would start the next one.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Makes untrusted text safe as a whole plain line of the log, one that is
/// not a command of ours: a file name, a commit message, build output. The
/// runner takes a line for a command when, after leading white space, it
/// starts with `::`, or when it holds the legacy `##[` anywhere, and it
/// matches culture-sensitively, skipping characters that collate as nothing
/// (controls, zero-width marks). So the text is escaped as command data
/// (no line break survives), a leading `:` becomes `%3A`, and a `[` after
/// `##` becomes `%5B`.
pub fn log_line(text: &str) -> String {
    inert(&escape_data(text), "%3A", "%5B")
}

/// JSON printed as a plain line: the same value, with a `[` after `##`
/// written `\u005b` (a `#` is only ever inside a string, so such a `[` is
/// too).
pub fn log_json(json: &serde_json::Value) -> String {
    inert(&json.to_string(), ":", "\\u005b")
}

/// `line` with its leading `:` and every `[` after `##` replaced.
fn inert(line: &str, colon: &str, bracket: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut leading = true;
    let mut hashes = 0;
    for c in line.chars() {
        let ignored = collates_as_nothing(c);
        let escaped = match c {
            ':' if leading => Some(colon),
            '[' if hashes >= 2 => Some(bracket),
            _ => None,
        };
        leading &= ignored || c.is_whitespace();
        match escaped {
            Some(escape) => out.push_str(escape),
            None => out.push(c),
        }
        hashes = match c {
            '#' => hashes + 1,
            _ if ignored => hashes,
            _ => 0,
        };
    }
    out
}

/// Characters a culture-sensitive search skips: controls and Unicode's
/// default-ignorable code points (soft hyphen, zero-width spaces and
/// joiners, direction marks, variation selectors, tags).
fn collates_as_nothing(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0xAD | 0x34F
                | 0x61C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFF8
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `::error`/`::warning`/`::notice`. Lines and columns start at 1; `file`
/// should be relative to the repository root with `/` separators, or the
/// annotation will not attach to the pull request's diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
}

impl Annotation {
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Self {
            level,
            message: message.into(),
            title: None,
            file: None,
            line: None,
            end_line: None,
            col: None,
            end_column: None,
        }
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn with_line(mut self, line: u32) -> Self {
        self.line = Some(line);
        self
    }

    pub fn with_end_line(mut self, end_line: u32) -> Self {
        self.end_line = Some(end_line);
        self
    }

    pub fn with_col(mut self, col: u32) -> Self {
        self.col = Some(col);
        self
    }

    pub fn with_end_column(mut self, end_column: u32) -> Self {
        self.end_column = Some(end_column);
        self
    }

    /// The command line, without its newline. The position is normalised the
    /// way the runner would (`ValidateLinesAndColumns`), so what is written is
    /// what gets shown.
    pub fn to_command(&self) -> String {
        let (line, end_line, col, end_column) = self.position();
        let mut props = Vec::new();
        if let Some(file) = self.file.as_deref().filter(|f| !f.is_empty()) {
            props.push(format!("file={}", escape_property(file)));
        }
        let numbers = [
            ("line", line),
            ("endLine", end_line),
            ("col", col),
            ("endColumn", end_column),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                props.push(format!("{key}={value}"));
            }
        }
        if let Some(title) = self.title.as_deref().filter(|t| !t.is_empty()) {
            // act (Forgejo, Gitea) splits a property on every `=` and drops
            // it when there is more than one, so the title would vanish
            // there; the full-width sign reads the same.
            props.push(format!(
                "title={}",
                escape_property(&title.replace('=', "＝"))
            ));
        }
        let message = escape_data(truncate_utf16(&self.message, MAX_MESSAGE_UTF16));
        if props.is_empty() {
            format!("::{}::{message}", self.level)
        } else {
            format!("::{} {}::{message}", self.level, props.join(","))
        }
    }

    /// `(line, end_line, col, end_column)` after the runner's rules.
    fn position(&self) -> (Option<u32>, Option<u32>, Option<u32>, Option<u32>) {
        let (mut line, mut end_line) = (self.line.or(self.end_line), self.end_line);
        let (mut col, mut end_column) = (self.col.or(self.end_column), self.end_column);
        if let (Some(start), Some(end)) = (line, end_line) {
            if end < start {
                (line, end_line) = (None, None);
            } else if end != start {
                (col, end_column) = (None, None);
            }
        }
        if line.is_none() || matches!((col, end_column), (Some(start), Some(end)) if end < start) {
            (col, end_column) = (None, None);
        }
        (line, end_line, col, end_column)
    }

    /// The line printed outside Actions, for a person at a terminal.
    fn to_plain(&self) -> String {
        let mut out = format!("{}: ", self.level);
        if let Some(title) = self.title.as_deref().filter(|t| !t.is_empty()) {
            out.push_str(title);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if let Some(file) = self.file.as_deref().filter(|f| !f.is_empty()) {
            let (line, _, col, _) = self.position();
            out.push_str(" (");
            out.push_str(file);
            for number in [line, col].into_iter().flatten() {
                out.push_str(&format!(":{number}"));
            }
            out.push(')');
        }
        out
    }
}

/// The longest prefix of `s` with at most `max` UTF-16 code units: the runner
/// counts in C# string length, and cutting there itself could split a
/// surrogate pair.
fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (index, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..index];
        }
    }
    s
}

/// Where commands go. One lock around the writer keeps every command a whole
/// line even when several tasks log at once; the runner and act only parse
/// lines that start with `::`.
pub struct Workflow {
    in_actions: bool,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Workflow {
    pub fn new(in_actions: bool, out: Box<dyn Write + Send>) -> Self {
        Self {
            in_actions,
            out: Mutex::new(out),
        }
    }

    pub fn stdout(in_actions: bool) -> Self {
        Self::new(in_actions, Box::new(std::io::stdout()))
    }

    pub fn in_actions(&self) -> bool {
        self.in_actions
    }

    /// Masks a secret before it can be printed. A multi-line secret is also
    /// masked line by line, because tools print it split across lines; lines
    /// shorter than [`MIN_LINE_MASK`] are left alone, or the `{` and `}` of a
    /// JSON key would be starred out of the whole log. Blank values are
    /// skipped: the runner only warns about them.
    pub fn add_mask(&self, secret: &str) {
        if !self.in_actions || secret.trim().is_empty() {
            return;
        }
        self.write_line(&format!("::add-mask::{}", escape_data(secret)));
        if secret.contains(['\n', '\r']) {
            let lines = secret.split(['\r', '\n']).map(str::trim);
            for line in lines.filter(|l| l.chars().count() >= MIN_LINE_MASK) {
                self.write_line(&format!("::add-mask::{}", escape_data(line)));
            }
        }
    }

    pub fn annotate(&self, annotation: &Annotation) {
        if self.in_actions {
            self.write_line(&annotation.to_command());
        } else {
            self.write_line(&log_line(&annotation.to_plain()));
        }
    }

    /// Folds what is written until the guard drops into one log group.
    pub fn group(&self, title: &str) -> Group<'_> {
        if self.in_actions {
            self.write_line(&format!("::group::{}", escape_data(title)));
        } else {
            self.write_line(&log_line(&format!("== {title} ==")));
        }
        Group { workflow: self }
    }

    /// Opens a group for untrusted text; see [`Verbatim`].
    pub fn verbatim(&self, title: &str) -> Verbatim<'_> {
        if !self.in_actions {
            self.write_line(&log_line(&format!("== {title} ==")));
            return Verbatim {
                workflow: self,
                resume: None,
            };
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.write_line(&format!("::group::{}", escape_data(title)));
        self.write_line(&format!("::stop-commands::{token}"));
        Verbatim {
            workflow: self,
            resume: Some(token),
        }
    }

    /// Shown only when the run has step debugging on; off Actions, `tracing`
    /// already covers debug output.
    pub fn debug(&self, message: &str) {
        if self.in_actions {
            self.write_line(&format!("::debug::{}", escape_data(message)));
        }
    }

    pub fn notice(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Notice, message));
    }

    pub fn warning(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Warning, message));
    }

    pub fn error(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Error, message));
    }

    /// Write errors are dropped: commands only decorate the log, and a closed
    /// stdout (`| head`, a cancelled runner) must not fail or abort the real
    /// work. A poisoned lock still holds a usable writer, so it is reused.
    fn write_line(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    }
}

/// A log group of untrusted text, such as build output: the runner is told
/// to stop reading workflow commands until the group ends, so a `RUN echo
/// ::add-mask::…` or a crafted file name can't issue commands in our name.
/// Off a runner nobody is told, and the text is escaped line by line
/// instead: our output may still end up in a runner's log (`docker run`
/// in a `run:` step).
#[must_use = "the group ends as soon as this guard is dropped"]
pub struct Verbatim<'a> {
    workflow: &'a Workflow,
    resume: Option<String>,
}

impl Verbatim<'_> {
    pub fn line(&self, text: &str) {
        if self.resume.is_some() {
            self.workflow.write_line(text);
        } else {
            self.workflow.write_line(&log_line(text));
        }
    }
}

impl Drop for Verbatim<'_> {
    fn drop(&mut self) {
        if let Some(token) = &self.resume {
            self.workflow.write_line(&format!("::{token}::"));
            self.workflow.write_line("::endgroup::");
        }
    }
}

/// Ends its log group when dropped, so a `?` inside the group cannot leave
/// the rest of the log folded into it.
#[must_use = "the group ends as soon as this guard is dropped"]
pub struct Group<'a> {
    workflow: &'a Workflow,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if self.workflow.in_actions {
            self.workflow.write_line("::endgroup::");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::actions::capture::Capture;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[test]
    fn verbatim_groups_stop_commands_until_they_end() {
        let capture = Capture::default();
        let workflow = Workflow::new(true, Box::new(capture.clone()));
        {
            let block = workflow.verbatim("build app");
            block.line("::add-mask::not-ours");
        }
        let text = capture.text();
        let lines: Vec<&str> = text.lines().collect();
        let token = lines[1].strip_prefix("::stop-commands::").unwrap();
        assert_eq!(token.len(), 32);
        assert_eq!(
            lines,
            [
                "::group::build app",
                lines[1],
                "::add-mask::not-ours",
                &format!("::{token}::"),
                "::endgroup::"
            ]
        );
    }

    fn workflow(in_actions: bool) -> (Workflow, Capture) {
        let capture = Capture::default();
        (
            Workflow::new(in_actions, Box::new(capture.clone())),
            capture,
        )
    }

    /// `ActionCommand.UnescapeData`: replacements in the runner's order.
    fn unescape_data(s: &str) -> String {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%25", "%")
    }

    /// `ActionCommand.UnescapeProperty`: `%0D %0A %3A %2C %25`, in that order.
    fn unescape_property(s: &str) -> String {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%25", "%")
    }

    /// `ActionCommand.TryParseV2`, enough to read back what we emit.
    fn parse(line: &str) -> (String, BTreeMap<String, String>, String) {
        let rest = line.trim_start().strip_prefix("::").unwrap();
        let end = rest.find("::").unwrap();
        let (info, data) = (&rest[..end], &rest[end + 2..]);
        let (name, props) = info.split_once(' ').unwrap_or((info, ""));
        let props = props
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), unescape_property(v)))
            .collect();
        (name.to_owned(), props, unescape_data(data))
    }

    const TRICKY: [&str; 14] = [
        "",
        "plain",
        "100%",
        "%25",
        "%0A",
        "%250A",
        "%%0D%3A%2C",
        "a\r\nb",
        "\n\n",
        "key: value, other: value",
        "::error::nested",
        "50% done\nnext: 1,2",
        "tab\tand ünïcödé ✓ 🦀",
        "%3A:%2C,%0D\r%0A\n%25%",
    ];

    #[test]
    fn escape_data_cases() {
        for (raw, expected) in [
            ("", ""),
            ("plain text", "plain text"),
            ("100%", "100%25"),
            ("%0A", "%250A"),
            ("a\nb", "a%0Ab"),
            ("a\r\nb", "a%0D%0Ab"),
            ("a: b, c", "a: b, c"),
            ("%\r\n", "%25%0D%0A"),
        ] {
            assert_eq!(escape_data(raw), expected, "raw {raw:?}");
        }
    }

    /// What the runner would take for a command in a plain line: after
    /// leading white space a `::`, or a `##[` anywhere, with characters that
    /// collate as nothing skipped (as an ICU culture-sensitive match does).
    fn runner_sees_command(line: &str) -> bool {
        let significant: String = line.chars().filter(|c| !collates_as_nothing(*c)).collect();
        significant.trim_start().starts_with("::") || significant.contains("##[")
    }

    const HOSTILE: [&str; 14] = [
        "x\n::stop-commands::pwn",
        "::stop-commands::pwn",
        "  \t::add-mask::pwn",
        "\u{200B}::error::pwn",
        ":\u{AD}:warning::pwn",
        "a\r::set-output name=x::y",
        "%0A\n::stop-commands::pwn",
        "ok ##[add-mask]pwn",
        "###[error]pwn",
        "#\u{AD}#[stop-commands]pwn",
        "#\u{0}#\u{200D}[stop-commands]pwn",
        "#\u{7F}#[group]pwn",
        "\n##[endgroup]",
        "\u{FEFF}\u{2060}##\u{E0001}[debug]pwn",
    ];

    #[test]
    fn log_lines_carry_no_command() {
        for raw in HOSTILE.iter().chain(&TRICKY) {
            let line = log_line(raw);
            assert!(!line.contains(['\r', '\n']), "{raw:?} → {line:?}");
            assert!(!runner_sees_command(&line), "{raw:?} → {line:?}");
            let prefixed = log_line(&format!(" INFO changed {raw}"));
            assert!(!runner_sees_command(&prefixed), "{raw:?} → {prefixed:?}");
        }
        // Each one is a command as it stands.
        for raw in HOSTILE {
            assert!(raw.split(['\r', '\n']).any(runner_sees_command), "{raw:?}");
        }
    }

    #[test]
    fn log_line_cases() {
        for (raw, expected) in [
            ("plain: text, 50%", "plain: text, 50%25"),
            ("%0A::x", "%250A::x"),
            ("x\n::stop-commands::pwn", "x%0A::stop-commands::pwn"),
            ("::stop-commands::pwn", "%3A:stop-commands::pwn"),
            (" \u{200B}::x", " \u{200B}%3A:x"),
            ("a ::b", "a ::b"),
            ("ok ##[add-mask]pwn", "ok ##%5Badd-mask]pwn"),
            ("###[", "###%5B"),
            ("#\u{AD}#[", "#\u{AD}#%5B"),
            ("# #[ and #[ and ##x[", "# #[ and #[ and ##x["),
            ("##[a] ##[b]", "##%5Ba] ##%5Bb]"),
        ] {
            assert_eq!(log_line(raw), expected, "raw {raw:?}");
        }
    }

    #[test]
    fn log_json_keeps_the_value() {
        let value = serde_json::json!({
            "matrix": [{"reason": "changed `##[stop-commands]x`\n::error::y", "list": ["##", "[1]"]}],
        });
        let line = log_json(&value);
        assert!(!runner_sees_command(&line), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
    }

    #[test]
    fn plain_output_is_escaped_off_a_runner() {
        let (wf, out) = workflow(false);
        wf.warning("file x\n::stop-commands::pwn");
        {
            let _group = wf.group("build ##[a]");
            let block = wf.verbatim("build\n::x");
            block.line("::add-mask::pwn");
        }
        assert_eq!(
            out.text(),
            "warning: file x%0A::stop-commands::pwn\n== build ##%5Ba] ==\n== build%0A::x ==\n%3A:add-mask::pwn\n"
        );
    }

    #[test]
    fn escape_property_cases() {
        for (raw, expected) in [
            ("", ""),
            ("src/main.rs", "src/main.rs"),
            ("a: b, c", "a%3A b%2C c"),
            ("%3A", "%253A"),
            ("C:\\x,y", "C%3A\\x%2Cy"),
            ("line\r\nnext", "line%0D%0Anext"),
            ("%:,\r\n", "%25%3A%2C%0D%0A"),
        ] {
            assert_eq!(escape_property(raw), expected, "raw {raw:?}");
        }
    }

    #[test]
    fn escapes_round_trip_in_the_runner_decode_order() {
        for raw in TRICKY {
            assert_eq!(unescape_data(&escape_data(raw)), raw, "data {raw:?}");
            assert_eq!(
                unescape_property(&escape_property(raw)),
                raw,
                "property {raw:?}"
            );
            assert!(!escape_data(raw).contains(['\r', '\n']));
            assert!(!escape_property(raw).contains(['\r', '\n', ':', ',']));
        }
    }

    #[test]
    fn level_display_and_serialize() {
        for (level, name) in [
            (Level::Error, "error"),
            (Level::Warning, "warning"),
            (Level::Notice, "notice"),
        ] {
            assert_eq!(level.to_string(), name);
            assert_eq!(serde_json::to_value(level).unwrap(), name);
        }
    }

    #[test]
    fn annotation_serializes_without_empty_fields() {
        let a = Annotation::new(Level::Warning, "m")
            .with_file("f")
            .with_line(3);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"level": "warning", "message": "m", "file": "f", "line": 3})
        );
    }

    #[test]
    fn to_command_cases() {
        let base = |level| Annotation::new(level, "msg");
        for (annotation, expected) in [
            (base(Level::Error), "::error::msg"),
            (base(Level::Warning), "::warning::msg"),
            (base(Level::Notice), "::notice::msg"),
            (
                base(Level::Error).with_file("src/a.rs"),
                "::error file=src/a.rs::msg",
            ),
            (
                base(Level::Error).with_file("src/a.rs").with_line(3),
                "::error file=src/a.rs,line=3::msg",
            ),
            (
                base(Level::Error)
                    .with_file("a")
                    .with_line(3)
                    .with_end_line(3)
                    .with_col(2)
                    .with_end_column(9)
                    .with_title("T"),
                "::error file=a,line=3,endLine=3,col=2,endColumn=9,title=T::msg",
            ),
            // A column on a single line without an end line.
            (
                base(Level::Warning).with_line(4).with_col(7),
                "::warning line=4,col=7::msg",
            ),
            // Columns need a line.
            (
                base(Level::Warning).with_col(2).with_end_column(5),
                "::warning::msg",
            ),
            // Columns are dropped across several lines.
            (
                base(Level::Notice)
                    .with_line(3)
                    .with_end_line(5)
                    .with_col(2)
                    .with_end_column(9),
                "::notice line=3,endLine=5::msg",
            ),
            // An end before the start drops the lines, and so the columns.
            (
                base(Level::Notice)
                    .with_line(5)
                    .with_end_line(3)
                    .with_col(2),
                "::notice::msg",
            ),
            // The runner promotes an end line alone to the start line.
            (
                base(Level::Error).with_end_line(8),
                "::error line=8,endLine=8::msg",
            ),
            // Likewise an end column alone.
            (
                base(Level::Error).with_line(1).with_end_column(4),
                "::error line=1,col=4,endColumn=4::msg",
            ),
            // An end column before the start column drops both.
            (
                base(Level::Error)
                    .with_line(1)
                    .with_col(9)
                    .with_end_column(4),
                "::error line=1::msg",
            ),
            // Empty strings are no value.
            (
                base(Level::Error).with_file("").with_title(""),
                "::error::msg",
            ),
            (
                Annotation::new(Level::Error, "50% done\nnext")
                    .with_file("dir,x/a:b.rs")
                    .with_title("Scan: 3 found, 1 fixed"),
                "::error file=dir%2Cx/a%3Ab.rs,title=Scan%3A 3 found%2C 1 fixed::50%25 done%0Anext",
            ),
            // `=` in the title is swapped for a look-alike (act drops it).
            (
                base(Level::Warning).with_title("a=b == c"),
                "::warning title=a＝b ＝＝ c::msg",
            ),
        ] {
            assert_eq!(annotation.to_command(), expected, "{annotation:?}");
        }
    }

    #[test]
    fn to_command_round_trips() {
        for text in TRICKY {
            let a = Annotation::new(Level::Error, text)
                .with_title(text)
                .with_file(text)
                .with_line(2);
            let command = a.to_command();
            assert!(!command.contains(['\r', '\n']), "{command:?}");
            let (name, props, data) = parse(&command);
            assert_eq!(name, "error");
            assert_eq!(data, text);
            assert_eq!(props.get("line").map(String::as_str), Some("2"));
            let expected = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            assert_eq!(props.get("title").cloned(), expected(text), "{command}");
            assert_eq!(props.get("file").cloned(), expected(text), "{command}");
        }
    }

    #[test]
    fn message_is_cut_to_4096_utf16_units() {
        let ascii = "x".repeat(5000);
        let (_, _, data) = parse(&Annotation::new(Level::Error, ascii).to_command());
        assert_eq!(data.len(), 4096);

        // 'é' is one UTF-16 unit but two bytes: cut by units, not bytes.
        let accents = "é".repeat(5000);
        let (_, _, data) = parse(&Annotation::new(Level::Error, accents).to_command());
        assert_eq!(data.chars().count(), 4096);

        // A crab is two units; 2049 of them would be 4098, so 2048 remain.
        let crabs = "🦀".repeat(3000);
        let (_, _, data) = parse(&Annotation::new(Level::Error, crabs).to_command());
        assert_eq!(data, "🦀".repeat(2048));

        // An odd budget does not split a pair.
        let odd = format!("x{}", "🦀".repeat(3000));
        let (_, _, data) = parse(&Annotation::new(Level::Error, odd).to_command());
        assert_eq!(data, format!("x{}", "🦀".repeat(2047)));

        // The cut happens before escaping, so escapes do not count.
        let newlines = "\n".repeat(5000);
        let command = Annotation::new(Level::Error, newlines).to_command();
        assert_eq!(command, format!("::error::{}", "%0A".repeat(4096)));
    }

    #[test]
    fn truncate_utf16_cases() {
        for (s, max, expected) in [
            ("", 3, ""),
            ("abc", 3, "abc"),
            ("abcd", 3, "abc"),
            ("aé", 2, "aé"),
            ("a🦀", 2, "a"),
            ("a🦀", 3, "a🦀"),
            ("🦀", 0, ""),
        ] {
            assert_eq!(truncate_utf16(s, max), expected, "{s:?} {max}");
        }
    }

    #[test]
    fn plain_annotations_outside_actions() {
        for (annotation, expected) in [
            (Annotation::new(Level::Error, "boom"), "error: boom\n"),
            (
                Annotation::new(Level::Warning, "old base").with_title("Dockerfile"),
                "warning: Dockerfile: old base\n",
            ),
            (
                Annotation::new(Level::Notice, "n").with_file("a/Dockerfile"),
                "notice: n (a/Dockerfile)\n",
            ),
            (
                Annotation::new(Level::Warning, "m")
                    .with_title("t")
                    .with_file("a/Dockerfile")
                    .with_line(3),
                "warning: t: m (a/Dockerfile:3)\n",
            ),
            (
                Annotation::new(Level::Error, "m")
                    .with_file("f")
                    .with_line(3)
                    .with_col(5),
                "error: m (f:3:5)\n",
            ),
            (
                Annotation::new(Level::Error, "m")
                    .with_file("f")
                    .with_col(5),
                "error: m (f)\n",
            ),
            (
                Annotation::new(Level::Error, "m").with_line(3),
                "error: m\n",
            ),
        ] {
            let (wf, out) = workflow(false);
            wf.annotate(&annotation);
            assert_eq!(out.text(), expected, "{annotation:?}");
        }
    }

    #[test]
    fn annotate_in_actions_writes_the_command() {
        let (wf, out) = workflow(true);
        let a = Annotation::new(Level::Warning, "m")
            .with_file("f")
            .with_line(1);
        wf.annotate(&a);
        assert_eq!(out.text(), "::warning file=f,line=1::m\n");
    }

    #[test]
    fn convenience_wrappers() {
        let (wf, out) = workflow(true);
        wf.notice("n: 1");
        wf.warning("w\nx");
        wf.error("e%");
        assert_eq!(
            out.text(),
            "::notice::n: 1\n::warning::w%0Ax\n::error::e%25\n"
        );

        let (wf, out) = workflow(false);
        wf.notice("n");
        wf.warning("w");
        wf.error("e");
        assert_eq!(out.text(), "notice: n\nwarning: w\nerror: e\n");
    }

    #[test]
    fn add_mask_cases() {
        for (secret, expected) in [
            ("hunter2", "::add-mask::hunter2\n"),
            ("100%", "::add-mask::100%25\n"),
            ("", ""),
            ("  \n ", ""),
            (
                "line1\nline2",
                "::add-mask::line1%0Aline2\n::add-mask::line1\n::add-mask::line2\n",
            ),
            (
                "-----BEGIN KEY-----\r\nabcd\r\n\r\n-----END KEY-----\n",
                "::add-mask::-----BEGIN KEY-----%0D%0Aabcd%0D%0A%0D%0A-----END KEY-----%0A\n\
                 ::add-mask::-----BEGIN KEY-----\n\
                 ::add-mask::abcd\n\
                 ::add-mask::-----END KEY-----\n",
            ),
            // Lines are trimmed; short ones are not masked on their own.
            (
                "{\n  \"key\": \"s3cr3t\"\n}",
                "::add-mask::{%0A  \"key\": \"s3cr3t\"%0A}\n::add-mask::\"key\": \"s3cr3t\"\n",
            ),
            ("abc\rdefg", "::add-mask::abc%0Ddefg\n::add-mask::defg\n"),
        ] {
            let (wf, out) = workflow(true);
            wf.add_mask(secret);
            assert_eq!(out.text(), expected, "secret {secret:?}");
        }
    }

    #[test]
    fn add_mask_round_trips() {
        let (wf, out) = workflow(true);
        wf.add_mask("a%0Ab\ncdef");
        let masks: Vec<String> = out.text().lines().map(|l| parse(l).2).collect();
        assert_eq!(masks, ["a%0Ab\ncdef", "a%0Ab", "cdef"]);
    }

    #[test]
    fn nothing_but_annotations_and_groups_outside_actions() {
        let (wf, out) = workflow(false);
        wf.add_mask("secret\nvalue");
        wf.debug("details");
        assert_eq!(out.text(), "");
        assert!(!wf.in_actions());
    }

    #[test]
    fn debug_in_actions() {
        let (wf, out) = workflow(true);
        wf.debug("x: 1\ny: 50%");
        assert_eq!(out.text(), "::debug::x: 1%0Ay: 50%25\n");
        assert!(wf.in_actions());
    }

    #[test]
    fn group_ends_on_drop() {
        let (wf, out) = workflow(true);
        {
            let _group = wf.group("Build images/a\nnext");
            wf.debug("inside");
        }
        wf.debug("after");
        assert_eq!(
            out.text(),
            "::group::Build images/a%0Anext\n::debug::inside\n::endgroup::\n::debug::after\n"
        );
    }

    #[test]
    fn group_ends_on_early_return() {
        fn fails(wf: &Workflow) -> Result<(), String> {
            let _group = wf.group("step");
            Err("failed".to_owned())?;
            wf.debug("unreachable");
            Ok(())
        }
        let (wf, out) = workflow(true);
        assert!(fails(&wf).is_err());
        assert_eq!(out.text(), "::group::step\n::endgroup::\n");
    }

    #[test]
    fn group_outside_actions() {
        let (wf, out) = workflow(false);
        {
            let _group = wf.group("Build");
            wf.warning("w");
        }
        assert_eq!(out.text(), "== Build ==\nwarning: w\n");
    }

    #[test]
    fn each_command_is_one_write_and_flushed() {
        #[derive(Clone, Default)]
        struct Calls(Arc<Mutex<Vec<String>>>);
        impl Write for Calls {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let text = String::from_utf8(buf.to_vec()).unwrap();
                self.0.lock().unwrap().push(text);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.0.lock().unwrap().push("<flush>".to_owned());
                Ok(())
            }
        }
        let calls = Calls::default();
        let wf = Workflow::new(true, Box::new(calls.clone()));
        wf.error("a\nb");
        wf.add_mask("s");
        assert_eq!(
            *calls.0.lock().unwrap(),
            ["::error::a%0Ab\n", "<flush>", "::add-mask::s\n", "<flush>"]
        );
    }

    #[test]
    fn lines_stay_whole_across_threads() {
        let (wf, out) = workflow(true);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let wf = &wf;
                scope.spawn(move || {
                    for i in 0..50 {
                        wf.warning(&format!("thread {t} message {i}"));
                    }
                });
            }
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 400);
        assert!(text.lines().all(|l| {
            l.strip_prefix("::warning::thread ")
                .is_some_and(|rest| rest.contains(" message "))
        }));
    }

    #[test]
    fn write_errors_are_ignored() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        for in_actions in [true, false] {
            let wf = Workflow::new(in_actions, Box::new(Closed));
            let _group = wf.group("g");
            wf.add_mask("s");
            wf.debug("d");
            wf.error("e");
        }
    }

    #[test]
    fn workflow_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Workflow>();
    }
}
