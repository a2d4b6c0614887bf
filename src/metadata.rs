//! Image metadata (pure): the standard OCI labels and `KEY=VALUE` inputs.

use std::collections::HashMap;

/// What the standard labels say.
pub struct Provenance<'a> {
    /// `https://github.com/owner/repo`.
    pub source: Option<String>,
    pub revision: &'a str,
    /// RFC 3339.
    pub created: String,
    pub version: Option<String>,
    pub title: &'a str,
}

/// `org.opencontainers.image.*` labels; the revision label is what the
/// `latest` guard reads back from the registry.
pub fn oci_labels(p: &Provenance<'_>) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let mut put = |key: &str, value: String| {
        labels.insert(format!("org.opencontainers.image.{key}"), value);
    };
    if let Some(source) = &p.source {
        put("source", source.clone());
    }
    put("revision", p.revision.to_owned());
    put("created", p.created.clone());
    put(
        "version",
        p.version.clone().unwrap_or_else(|| p.revision.to_owned()),
    );
    put("title", p.title.to_owned());
    labels
}

/// `KEY=VALUE` lines (a multiline input or repeated flags).
pub fn pairs(input: &'static str, lines: &[String]) -> Result<HashMap<String, String>, String> {
    lines
        .iter()
        .flat_map(|v| crate::actions::inputs::split_list(v))
        .map(|line| match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(format!(
                "`{input}`: {line:?} is not KEY=VALUE; write one KEY=VALUE per line"
            )),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_value_lines() {
        let parsed = pairs("build-args", &["A=1\nB=x=y\n".into(), "C=".into()]).unwrap();
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "x=y");
        assert_eq!(parsed["C"], "");
        let err = pairs("labels", &["novalue".into()]).unwrap_err();
        assert!(
            err.contains("`labels`") && err.contains("\"novalue\""),
            "{err}"
        );
    }

    #[test]
    fn labels() {
        let labels = oci_labels(&Provenance {
            source: Some("https://github.com/acme/mono".into()),
            revision: "abc",
            created: "2026-01-01T00:00:00Z".into(),
            version: None,
            title: "app",
        });
        assert_eq!(labels["org.opencontainers.image.revision"], "abc");
        assert_eq!(labels["org.opencontainers.image.version"], "abc");
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://github.com/acme/mono"
        );
        assert_eq!(labels.len(), 5);
    }
}
