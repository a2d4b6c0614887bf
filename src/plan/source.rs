//! Where changed files come from: local git or the GitHub API.

use std::future::Future;

use crate::plan::strategy::Range;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// This source can't answer this range (a commit missing from a shallow
    /// clone, an old tip gone after a force push): try the next one.
    #[error("{0}")]
    Unavailable(String),
    /// The source answered but may have cut the list: never plan on it.
    #[error("{0}")]
    Incomplete(String),
    /// Something is wrong that a fallback would only hide.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub trait ChangeSource {
    /// `git` or `github`, for the summary.
    fn name(&self) -> &'static str;

    /// Repository-relative paths changed in `range`; a renamed file appears
    /// at both its paths.
    fn changed_files(
        &self,
        range: &Range,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;
}
