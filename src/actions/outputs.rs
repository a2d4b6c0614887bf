//! Step outputs: collected during a run, then written once to the file that
//! `GITHUB_OUTPUT` names (in Actions) or printed as JSON (on a laptop).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::Path;

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Json(serde_json::Value),
}

impl Value {
    /// The text a workflow sees in `steps.<id>.outputs.<name>`: JSON is
    /// compact, ready for `fromJSON`.
    fn render(&self) -> Cow<'_, str> {
        match self {
            Value::Text(text) => Cow::Borrowed(text),
            Value::Json(json) => Cow::Owned(json.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Outputs in the order they were first set, so the file and the JSON read
/// the way the run went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    entries: Vec<(String, Value)>,
}

impl Outputs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.insert(name, Value::Text(value.into()));
    }

    pub fn set_json<T: serde::Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let json = serde_json::to_value(value)?;
        self.insert(name, Value::Json(json));
        Ok(())
    }

    fn insert(&mut self, name: &str, value: Value) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name.to_owned(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Appends every output in the toolkit's heredoc form, each with its own
    /// random delimiter so no value can end an entry early, and all in one
    /// write so a failure leaves no half-written entry behind.
    ///
    /// Values are written exactly. act (Forgejo, Gitea) drops leading blank
    /// lines of a value and silently stops reading at a line over 64 KiB, so
    /// big data belongs in a file whose path is the output.
    pub fn write_to_file(&self, path: &Path) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (name, value) in self.iter() {
            let delimiter = format!("ghadelimiter_{}", Uuid::new_v4());
            text.push_str(&heredoc(name, &value.render(), &delimiter)?);
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(text.as_bytes())
    }

    /// All outputs as one object, for the CLI's stdout.
    pub fn to_json(&self) -> serde_json::Value {
        let object = self.iter().map(|(name, value)| {
            let json = match value {
                Value::Text(text) => serde_json::Value::String(text.clone()),
                Value::Json(json) => json.clone(),
            };
            (name.to_owned(), json)
        });
        serde_json::Value::Object(object.collect())
    }
}

/// One `name<<delimiter` entry. The runner reads a line as `NAME=VALUE` when
/// `=` comes before `<<`, so a name with `=`, `<<` or a line break would
/// corrupt every entry after it.
fn heredoc(name: &str, value: &str, delimiter: &str) -> io::Result<String> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("output {name:?}: {why}"),
        ))
    };
    if name.is_empty() || name.contains(['=', '\r', '\n']) || name.contains("<<") {
        return refuse("a name must be non-empty and free of `=`, `<<` and line breaks");
    }
    if name.contains(delimiter) {
        return refuse("the name contains the heredoc delimiter");
    }
    if value.contains(delimiter) {
        return refuse("the value contains the heredoc delimiter");
    }
    let mut entry = String::with_capacity(name.len() + value.len() + 2 * delimiter.len() + 5);
    // Writing to a String cannot fail.
    let _ = write!(entry, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
    Ok(entry)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// `FileCommandManager.SetEnvFileCommand` on Linux: lines end at `\n`;
    /// `NAME=VALUE` when `=` comes before `<<`, else a heredoc whose value
    /// is the exact text between its header and delimiter lines.
    fn parse_github(text: &str) -> Result<Vec<(String, String)>, String> {
        fn read_line<'a>(text: &'a str, index: &mut usize) -> Option<(&'a str, usize)> {
            let rest = text.get(*index..).filter(|r| !r.is_empty())?;
            match rest.find('\n') {
                Some(lf) => {
                    *index += lf + 1;
                    Some((&rest[..lf], 1))
                }
                None => {
                    *index = text.len();
                    Some((rest, 0))
                }
            }
        }
        let mut entries = Vec::new();
        let mut index = 0;
        while let Some((line, _)) = read_line(text, &mut index) {
            if line.is_empty() {
                continue;
            }
            let equals = line.find('=');
            let heredoc = line.find("<<");
            match (equals, heredoc) {
                (Some(e), h) if h.is_none_or(|h| e < h) => {
                    entries.push((line[..e].to_owned(), line[e + 1..].to_owned()));
                }
                (_, Some(h)) => {
                    let (name, delimiter) = (&line[..h], &line[h + 2..]);
                    if name.is_empty() || delimiter.is_empty() {
                        return Err(format!("invalid format {line:?}"));
                    }
                    let (start, mut end) = (index, index);
                    loop {
                        match read_line(text, &mut index) {
                            None => return Err(format!("delimiter {delimiter:?} not found")),
                            Some((l, _)) if l == delimiter => break,
                            Some((_, newline)) => end = index - newline,
                        }
                    }
                    entries.push((name.to_owned(), text[start..end.max(start)].to_owned()));
                }
                _ => return Err(format!("invalid format {line:?}")),
            }
        }
        Ok(entries)
    }

    fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const VALUES: [&str; 16] = [
        "",
        "plain",
        "a\nb",
        "a\n\nb",
        "\n",
        "\n\n",
        "\nleading",
        "trailing\n",
        "crlf\r\nline\r\n",
        "x=y",
        "x<<EOF",
        "EOF\nghadelimiter_\nghadelimiter_x",
        "name<<ghadelimiter_00000000-0000-0000-0000-000000000000",
        "  spaced  ",
        "ünïcödé ✓ 🦀",
        "{\"include\":[{\"dir\":\"images/a\"}]}",
    ];

    #[test]
    fn set_keeps_first_insertion_order_and_replaces_in_place() {
        let mut outputs = Outputs::new();
        assert!(outputs.is_empty());
        outputs.set("a", "1");
        outputs.set("b", String::from("2"));
        outputs.set("c", "3");
        outputs.set("b", "two");
        let names: Vec<_> = outputs.iter().map(|(n, v)| (n, v.to_string())).collect();
        assert_eq!(
            names,
            [
                ("a", String::from("1")),
                ("b", String::from("two")),
                ("c", String::from("3"))
            ]
        );
        assert_eq!(outputs.len(), 3);
        assert!(!outputs.is_empty());
        assert_eq!(outputs.get("b"), Some(&Value::Text("two".into())));
        assert_eq!(outputs.get("B"), None);
        assert_eq!(outputs.get("missing"), None);
    }

    #[test]
    fn set_json_stores_json_and_can_replace_text() {
        #[derive(serde::Serialize)]
        struct Image<'a> {
            dir: &'a str,
            tags: Vec<&'a str>,
        }
        let mut outputs = Outputs::new();
        outputs.set("matrix", "placeholder");
        outputs
            .set_json(
                "matrix",
                &[Image {
                    dir: "images/a",
                    tags: vec!["1.0", "latest"],
                }],
            )
            .unwrap();
        outputs.set_json("count", &3).unwrap();
        outputs.set_json("names", ["a", "b"].as_slice()).unwrap();
        assert_eq!(
            outputs.get("matrix"),
            Some(&Value::Json(
                json!([{"dir": "images/a", "tags": ["1.0", "latest"]}])
            ))
        );
        assert_eq!(
            outputs.get("matrix").unwrap().to_string(),
            r#"[{"dir":"images/a","tags":["1.0","latest"]}]"#
        );
        assert_eq!(outputs.get("count").unwrap().to_string(), "3");
        assert_eq!(outputs.get("names").unwrap().to_string(), r#"["a","b"]"#);
        assert_eq!(outputs.iter().next().map(|(n, _)| n), Some("matrix"));
    }

    #[test]
    fn set_json_error_leaves_outputs_unchanged() {
        let mut outputs = Outputs::new();
        outputs.set("map", "before");
        let bad: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(outputs.set_json("map", &bad).is_err());
        assert!(outputs.set_json("other", &bad).is_err());
        assert_eq!(outputs.get("map"), Some(&Value::Text("before".into())));
        assert_eq!(outputs.len(), 1);
    }

    #[test]
    fn value_display() {
        for (value, expected) in [
            (Value::Text("a\nb".into()), "a\nb"),
            (Value::Text(String::new()), ""),
            (Value::Json(json!("s")), r#""s""#),
            (Value::Json(json!(null)), "null"),
            (Value::Json(json!(true)), "true"),
            (Value::Json(json!({"a": [1, 2]})), r#"{"a":[1,2]}"#),
        ] {
            assert_eq!(value.to_string(), expected, "{value:?}");
        }
    }

    #[test]
    fn heredoc_format() {
        for (name, value, expected) in [
            ("n", "v", "n<<D\nv\nD\n"),
            ("n", "", "n<<D\n\nD\n"),
            ("n", "a\nb\n", "n<<D\na\nb\n\nD\n"),
            ("fail-on", "x=y", "fail-on<<D\nx=y\nD\n"),
        ] {
            assert_eq!(heredoc(name, value, "D").unwrap(), expected);
        }
    }

    #[test]
    fn heredoc_refuses_what_would_corrupt_the_file() {
        let delimiter = "ghadelimiter_1234";
        for (name, value, why) in [
            ("", "v", "name must be"),
            ("a=b", "v", "name must be"),
            ("a<<b", "v", "name must be"),
            ("a\nb", "v", "name must be"),
            ("a\rb", "v", "name must be"),
            ("x_ghadelimiter_1234", "v", "name contains"),
            ("n", "ghadelimiter_1234", "value contains"),
            ("n", "a\nghadelimiter_1234\nb", "value contains"),
            ("n", "prefix ghadelimiter_12345", "value contains"),
        ] {
            let err = heredoc(name, value, delimiter).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("output {name:?}: ")),
                "{message}"
            );
            assert!(message.contains(why), "{message}");
        }
        assert!(heredoc("n", "ghadelimiter_123", delimiter).is_ok());
        assert!(heredoc("a<b", "v", delimiter).is_ok());
    }

    #[test]
    fn write_to_file_round_trips_through_the_runner_parser() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        let mut outputs = Outputs::new();
        for (i, value) in VALUES.iter().enumerate() {
            outputs.set(&format!("value-{i}"), *value);
        }
        outputs
            .set_json("json", &json!({"a": "x\ny", "b": [1]}))
            .unwrap();
        outputs.write_to_file(&path).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let mut expected: Vec<(String, String)> = VALUES
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("value-{i}"), v.to_string()))
            .collect();
        expected.push(("json".into(), r#"{"a":"x\ny","b":[1]}"#.into()));
        assert_eq!(parse_github(&text).unwrap(), expected);
    }

    #[test]
    fn write_to_file_uses_a_fresh_uuid_delimiter_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        let mut outputs = Outputs::new();
        outputs.set("a", "1");
        outputs.set("b", "2");
        outputs.write_to_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        let mut delimiters = Vec::new();
        for (entry, name, value) in [(&lines[0..3], "a", "1"), (&lines[3..6], "b", "2")] {
            let (n, delimiter) = entry[0].split_once("<<").unwrap();
            assert_eq!(n, name);
            assert_eq!(entry[1], value);
            assert_eq!(entry[2], delimiter);
            let uuid = delimiter.strip_prefix("ghadelimiter_").unwrap();
            assert_eq!(Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
            delimiters.push(delimiter);
        }
        assert_ne!(delimiters[0], delimiters[1]);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn write_to_file_appends_and_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        std::fs::write(&path, "earlier=1\n").unwrap();
        let mut first = Outputs::new();
        first.set("a", "1");
        first.write_to_file(&path).unwrap();
        let mut second = Outputs::new();
        second.set("a", "2");
        second.write_to_file(&path).unwrap();
        let parsed = parse_github(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(parsed, pairs(&[("earlier", "1"), ("a", "1"), ("a", "2")]));

        let missing = dir.path().join("new");
        first.write_to_file(&missing).unwrap();
        let parsed = parse_github(&std::fs::read_to_string(&missing).unwrap()).unwrap();
        assert_eq!(parsed, pairs(&[("a", "1")]));
    }

    #[test]
    fn write_to_file_with_no_outputs_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        Outputs::new().write_to_file(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn write_to_file_refuses_a_bad_name_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        std::fs::write(&path, "before=1\n").unwrap();
        let mut outputs = Outputs::new();
        outputs.set("good", "1");
        outputs.set("bad=name", "2");
        let err = outputs.write_to_file(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(r#""bad=name""#), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before=1\n");
    }

    #[test]
    fn write_to_file_reports_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut outputs = Outputs::new();
        outputs.set("a", "1");
        let err = outputs
            .write_to_file(&dir.path().join("no/such/dir/output"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn parser_mirror_matches_the_runner_on_known_inputs() {
        for (text, expected) in [
            ("", Ok(vec![])),
            ("\n\na=1\n\n", Ok(vec![("a", "1")])),
            ("a=b<<c\n", Ok(vec![("a", "b<<c")])),
            ("a<<E\nx\nE", Ok(vec![("a", "x")])),
            ("a<<E\n\nE\n", Ok(vec![("a", "")])),
            ("a<<E\n\n\nE\n", Ok(vec![("a", "\n")])),
            ("a<<E\nx\n", Err(())),
            ("<<E\nE\n", Err(())),
            ("junk\n", Err(())),
        ] {
            let parsed = parse_github(text).map_err(|_| ());
            assert_eq!(parsed, expected.map(|v| pairs(&v)), "text {text:?}");
        }
    }

    #[test]
    fn to_json_cases() {
        let mut outputs = Outputs::new();
        assert_eq!(outputs.to_json(), json!({}));
        outputs.set("digest", "sha256:abc");
        outputs.set("changed", "true");
        outputs.set_json("count", &2).unwrap();
        outputs.set_json("images", &["a", "b"]).unwrap();
        outputs
            .set_json("matrix", &json!({"include": [{"dir": "a"}]}))
            .unwrap();
        outputs.set("multi", "x\ny");
        assert_eq!(
            outputs.to_json(),
            json!({
                "digest": "sha256:abc",
                "changed": "true",
                "count": 2,
                "images": ["a", "b"],
                "matrix": {"include": [{"dir": "a"}]},
                "multi": "x\ny",
            })
        );
    }
}
