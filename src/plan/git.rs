//! Changed files from the local clone, through the `git` command.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use tokio::process::Command;

use crate::plan::source::{ChangeSource, SourceError};
use crate::plan::strategy::{Range, short};

pub struct GitSource {
    dir: PathBuf,
}

enum Output {
    Ok(Vec<u8>),
    Refused(String),
}

impl GitSource {
    /// `None` when `dir` is not inside a git work tree (no checkout step ran).
    pub async fn open(dir: &Path) -> anyhow::Result<Option<Self>> {
        let source = GitSource {
            dir: dir.to_owned(),
        };
        Ok(
            match source.run(&["rev-parse", "--is-inside-work-tree"]).await? {
                Output::Ok(out) if out.starts_with(b"true") => Some(source),
                _ => None,
            },
        )
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let output = Command::new("git")
            // The runner mounts a workspace owned by another uid; without this
            // git refuses it as "dubious ownership". We only read.
            .args(["-c", "safe.directory=*", "-c", "core.quotePath=false"])
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("couldn't run `git`; install git or use `source: github`")?;
        Ok(if output.status.success() {
            Output::Ok(output.stdout)
        } else {
            Output::Refused(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        })
    }

    /// The commit a revision names, if this clone has it.
    pub async fn commit(&self, rev: &str) -> anyhow::Result<Option<String>> {
        // A revision is user input: never let it read as an option.
        if rev.starts_with('-') {
            return Ok(None);
        }
        let spec = format!("{rev}^{{commit}}");
        Ok(
            match self
                .run(&["rev-parse", "--verify", "--quiet", &spec])
                .await?
            {
                Output::Ok(out) => Some(String::from_utf8_lossy(&out).trim().to_owned()),
                Output::Refused(_) => None,
            },
        )
    }

    /// The commit tag `tag` names, if this clone has the tag.
    pub async fn tag_commit(&self, tag: &str) -> anyhow::Result<Option<String>> {
        self.commit(&format!("refs/tags/{tag}")).await
    }

    /// The newest commit that changed any of `paths` (inside this clone),
    /// if the clone's history reaches it.
    pub async fn last_change(&self, paths: &[&Path]) -> anyhow::Result<Option<String>> {
        let mut args = vec![
            "log".to_owned(),
            "-1".into(),
            "--format=%H".into(),
            "--".into(),
        ];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(match self.run(&args).await? {
            Output::Ok(out) => {
                Some(String::from_utf8_lossy(&out).trim().to_owned()).filter(|sha| !sha.is_empty())
            }
            Output::Refused(_) => None,
        })
    }

    async fn require(&self, rev: &str) -> Result<String, SourceError> {
        self.commit(rev).await?.ok_or_else(|| {
            SourceError::Unavailable(format!(
                "commit `{}` is not in the local clone (shallow checkout? use `fetch-depth: 0`)",
                short(rev)
            ))
        })
    }

    /// A branch name as the checkout knows it: the remote-tracking branch
    /// first, since actions/checkout creates no local branches.
    async fn branch_or_commit(&self, rev: &str) -> Result<String, SourceError> {
        for candidate in [
            format!("refs/remotes/origin/{rev}"),
            format!("refs/heads/{rev}"),
        ] {
            if let Some(commit) = self.commit(&candidate).await? {
                return Ok(commit);
            }
        }
        self.require(rev).await
    }

    /// Whether `ancestor` is an ancestor of `descendant`; `None` when the
    /// clone lacks either commit.
    pub async fn is_ancestor(
        &self,
        ancestor: &str,
        descendant: &str,
    ) -> anyhow::Result<Option<bool>> {
        let (Some(a), Some(d)) = (self.commit(ancestor).await?, self.commit(descendant).await?)
        else {
            return Ok(None);
        };
        Ok(Some(matches!(
            self.run(&["merge-base", "--is-ancestor", &a, &d]).await?,
            Output::Ok(_)
        )))
    }

    async fn merge_base(&self, a: &str, b: &str) -> Result<String, SourceError> {
        match self.run(&["merge-base", a, b]).await? {
            Output::Ok(out) => Ok(String::from_utf8_lossy(&out).trim().to_owned()),
            Output::Refused(_) => Err(SourceError::Unavailable(format!(
                "`{}` and `{}` have no common ancestor in the local clone",
                short(a),
                short(b)
            ))),
        }
    }

    async fn diff(&self, base: &str, head: &str) -> Result<Vec<String>, SourceError> {
        // --no-renames lists a rename as a deletion and an addition, so both
        // paths count; --relative keeps paths relative to the workspace.
        let args = [
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--relative",
            base,
            head,
            "--",
        ];
        match self.run(&args).await? {
            Output::Ok(out) => Ok(out
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()),
            Output::Refused(err) => Err(SourceError::Failed(anyhow::anyhow!(
                "`git diff {}..{}` failed: {err}",
                short(base),
                short(head)
            ))),
        }
    }
}

impl ChangeSource for GitSource {
    fn name(&self) -> &'static str {
        "git"
    }

    async fn changed_files(&self, range: &Range) -> Result<Vec<String>, SourceError> {
        match range {
            Range::Diff { base, head } => {
                let (base, head) = (self.require(base).await?, self.require(head).await?);
                self.diff(&base, &head).await
            }
            Range::Since { base, head } | Range::PullRequest { base, head, .. } => {
                let (base, head) = (
                    self.branch_or_commit(base).await?,
                    self.require(head).await?,
                );
                let fork = self.merge_base(&base, &head).await?;
                self.diff(&fork, &head).await
            }
            Range::Forced { old, new } => {
                let (old, new) = (self.require(old).await?, self.require(new).await?);
                let fork = self.merge_base(&old, &new).await?;
                let mut files: BTreeSet<String> =
                    self.diff(&fork, &new).await?.into_iter().collect();
                files.extend(self.diff(&old, &new).await?);
                Ok(files.into_iter().collect())
            }
        }
    }
}
