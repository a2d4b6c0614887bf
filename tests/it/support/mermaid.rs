//! Mermaid's own parser (the `mermaid` npm package in jsdom, installed by
//! scripts/tools with scripts/mermaid-check.mjs), run on markdown.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const HOW: &str = "run `scripts/tools` (it needs node and npm) or the tests through `scripts/test`";

/// `ok <diagram type>` per ```mermaid block, or the parser's lines when
/// one fails (or there is none).
pub fn check(markdown: &str) -> Result<Vec<String>, Vec<String>> {
    let tools = std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
        PathBuf::from,
    );
    let script = tools.join("mermaid/check.mjs");
    assert!(script.is_file(), "no {}: {HOW}", script.display());
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node didn't start ({e}): {HOW}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if out.status.success() {
        Ok(lines)
    } else {
        Err(lines)
    }
}
