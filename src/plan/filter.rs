//! Path globs: `include`, `exclude` and `rebuild-all-on`.
//!
//! Globs match repository-relative paths with `/` separators; `*` stays
//! inside one directory and `**` crosses directories, as in `.gitignore`-style
//! tools users already know from changed-files and paths-filter.

use glob::{MatchOptions, Pattern};

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid glob {glob:?} in `{input}`: {reason}; fix the pattern (e.g. `ops/docker/**/*.md`)"
)]
pub struct GlobError {
    pub input: &'static str,
    pub glob: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Globs {
    patterns: Vec<(String, Pattern)>,
}

impl Globs {
    /// `input` names the action input the globs came from, for errors.
    pub fn new(input: &'static str, globs: &[String]) -> Result<Self, GlobError> {
        let patterns = globs
            .iter()
            .map(|g| {
                Pattern::new(g)
                    .map(|p| (g.clone(), p))
                    .map_err(|e| GlobError {
                        input,
                        glob: g.clone(),
                        reason: e.msg.to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Globs { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first glob that matches `path`.
    pub fn first_match(&self, path: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|(_, p)| p.matches_with(path, OPTIONS))
            .map(|(g, _)| g.as_str())
    }
}

/// Which paths count: those matching `include` (or all, when it is empty)
/// and no `exclude` glob.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Globs,
    exclude: Globs,
}

impl PathFilter {
    pub fn new(include: Globs, exclude: Globs) -> Self {
        PathFilter { include, exclude }
    }

    pub fn accepts(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.first_match(path).is_some())
            && self.exclude.first_match(path).is_none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn globs(list: &[&str]) -> Globs {
        Globs::new(
            "include",
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn star_stays_in_a_directory_and_double_star_crosses() {
        let g = globs(&["ops/docker/*/Dockerfile"]);
        assert_eq!(
            g.first_match("ops/docker/app/Dockerfile"),
            Some("ops/docker/*/Dockerfile")
        );
        assert_eq!(g.first_match("ops/docker/a/b/Dockerfile"), None);
        let g = globs(&["**/*.md"]);
        assert!(g.first_match("ops/docker/app/README.md").is_some());
        assert!(g.first_match("README.md").is_some());
        assert!(g.first_match("ops/docker/app/main.go").is_none());
    }

    #[test]
    fn include_then_exclude() {
        let filter = PathFilter::new(globs(&["ops/**"]), globs(&["**/*.md"]));
        assert!(filter.accepts("ops/docker/app/Dockerfile"));
        assert!(!filter.accepts("ops/docker/app/README.md"));
        assert!(!filter.accepts("src/main.rs"));
        let everything = PathFilter::new(globs(&[]), globs(&["docs/**"]));
        assert!(everything.accepts("src/main.rs"));
        assert!(!everything.accepts("docs/a/b.md"));
    }

    #[test]
    fn a_bad_glob_names_the_input_and_the_pattern() {
        let err = Globs::new("exclude", &["ops/[docker".to_string()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"ops/[docker\""), "{msg}");
        assert!(msg.contains("`exclude`"), "{msg}");
    }
}
