//! What a plan decided, for outputs and the summary.

use crate::plan::matrix::Entry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// Changed files between two commits, from a source.
    Range {
        range: String,
        source: &'static str,
        files: usize,
    },
    All(String),
    Release {
        tag: String,
        version: String,
        prerelease: bool,
    },
    Nothing(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub event: Option<String>,
    pub compared: Compared,
    pub entries: Vec<Entry>,
    /// How many image directories exist under the context root.
    pub images_found: usize,
    /// Fallbacks taken on the way, in order.
    pub notes: Vec<String>,
    /// The commit the matrix builds.
    pub sha: Option<String>,
}
