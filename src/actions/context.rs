//! The run's context, read from the `GITHUB_*` variables every runner sets.
//!
//! Paths differ between runners (`/github/workspace` on GitHub,
//! `/workspace/<owner>/<repo>` on Forgejo), so nothing here is hard-coded:
//! everything comes from the environment map handed in.

use std::collections::HashMap;
use std::path::PathBuf;

use super::boundary::{Boundary, PathError};

/// Which runner, if any, started us. Forgejo also sets `GITEA_ACTIONS`, so
/// it is tested first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Forgejo,
    Gitea,
    /// A laptop or any other CI: results go to stdout.
    Local,
}

impl Forge {
    pub fn in_actions(self) -> bool {
        self != Forge::Local
    }
}

impl std::fmt::Display for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Forge::GitHub => "GitHub Actions",
            Forge::Forgejo => "Forgejo Actions",
            Forge::Gitea => "Gitea Actions",
            Forge::Local => "local",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Context {
    pub forge: Forge,
    pub workspace: PathBuf,
    pub event_name: Option<String>,
    pub event_path: Option<PathBuf>,
    pub sha: Option<String>,
    pub git_ref: Option<String>,
    /// `owner/name`.
    pub repository: Option<String>,
    pub repository_owner: Option<String>,
    pub api_url: String,
    pub server_url: String,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    pub runner_temp: Option<PathBuf>,
    /// The workflow run (`GITHUB_RUN_ID`), whose jobs the API lists.
    pub run_id: Option<String>,
    /// `GITHUB_RUN_ATTEMPT`, `GITHUB_RUN_NUMBER` (Forgejo's run pages are
    /// numbered by it) and `GITHUB_WORKFLOW_REF`
    /// (`owner/name/path@ref`), for the build provenance.
    pub run_attempt: Option<String>,
    pub run_number: Option<String>,
    pub workflow_ref: Option<String>,
    pub debug: bool,
}

impl Context {
    /// The workspace boundary every path input is resolved inside.
    pub fn boundary(&self) -> Result<Boundary, PathError> {
        Boundary::new(&self.workspace, self.runner_temp.as_deref())
    }

    pub fn from_process_env() -> Self {
        Self::from_env(&std::env::vars().collect(), std::env::current_dir().ok())
    }

    /// `cwd` is the workspace when `GITHUB_WORKSPACE` is unset (a laptop).
    pub fn from_env(env: &HashMap<String, String>, cwd: Option<PathBuf>) -> Self {
        let get = |name: &str| {
            env.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let flag = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let forge = if flag("FORGEJO_ACTIONS") {
            Forge::Forgejo
        } else if flag("GITEA_ACTIONS") {
            Forge::Gitea
        } else if flag("GITHUB_ACTIONS") {
            Forge::GitHub
        } else {
            Forge::Local
        };
        let repository = get("GITHUB_REPOSITORY");
        let repository_owner = get("GITHUB_REPOSITORY_OWNER").or_else(|| {
            repository
                .as_deref()
                .and_then(|r| r.split_once('/'))
                .map(|(owner, _)| owner.to_owned())
        });
        Context {
            forge,
            workspace: get("GITHUB_WORKSPACE")
                .map(PathBuf::from)
                .or(cwd)
                .unwrap_or_else(|| PathBuf::from(".")),
            event_name: get("GITHUB_EVENT_NAME"),
            event_path: get("GITHUB_EVENT_PATH").map(PathBuf::from),
            sha: get("GITHUB_SHA"),
            git_ref: get("GITHUB_REF"),
            repository,
            repository_owner,
            api_url: get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            server_url: get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            output_file: get("GITHUB_OUTPUT").map(PathBuf::from),
            summary_file: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            runner_temp: get("RUNNER_TEMP").map(PathBuf::from),
            run_id: get("GITHUB_RUN_ID"),
            run_attempt: get("GITHUB_RUN_ATTEMPT"),
            run_number: get("GITHUB_RUN_NUMBER"),
            workflow_ref: get("GITHUB_WORKFLOW_REF"),
            debug: get("RUNNER_DEBUG").as_deref() == Some("1"),
        }
    }

    pub fn in_actions(&self) -> bool {
        self.forge.in_actions()
    }

    /// `owner` and `name` of the repository, when the runner told us.
    pub fn owner_and_name(&self) -> Option<(&str, &str)> {
        self.repository.as_deref()?.split_once('/')
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forgejo_is_recognised_before_gitea_and_github() {
        let all = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITEA_ACTIONS", "true"),
            ("FORGEJO_ACTIONS", "true"),
        ]);
        assert_eq!(Context::from_env(&all, None).forge, Forge::Forgejo);
        let gitea = env(&[("GITHUB_ACTIONS", "true"), ("GITEA_ACTIONS", "true")]);
        assert_eq!(Context::from_env(&gitea, None).forge, Forge::Gitea);
        let github = env(&[("GITHUB_ACTIONS", "true")]);
        assert_eq!(Context::from_env(&github, None).forge, Forge::GitHub);
        assert_eq!(Context::from_env(&env(&[]), None).forge, Forge::Local);
    }

    #[test]
    fn paths_come_from_the_environment_and_empty_means_unset() {
        let ctx = Context::from_env(
            &env(&[
                ("GITHUB_WORKSPACE", "/workspace/o/r"),
                ("GITHUB_OUTPUT", "/var/run/act/workflow/outputcmd.txt"),
                ("GITHUB_STEP_SUMMARY", ""),
                ("GITHUB_REPOSITORY", "WebGrip/infra"),
                ("GITHUB_API_URL", "https://code.example/api/v1"),
            ]),
            Some(PathBuf::from("/elsewhere")),
        );
        assert_eq!(ctx.workspace, PathBuf::from("/workspace/o/r"));
        assert_eq!(
            ctx.output_file,
            Some(PathBuf::from("/var/run/act/workflow/outputcmd.txt"))
        );
        assert_eq!(ctx.summary_file, None);
        assert_eq!(ctx.repository_owner.as_deref(), Some("WebGrip"));
        assert_eq!(ctx.owner_and_name(), Some(("WebGrip", "infra")));
        assert_eq!(ctx.api_url, "https://code.example/api/v1");
    }

    #[test]
    fn a_laptop_uses_the_current_directory() {
        let ctx = Context::from_env(&env(&[]), Some(PathBuf::from("/src/repo")));
        assert_eq!(ctx.workspace, PathBuf::from("/src/repo"));
        assert_eq!(ctx.api_url, "https://api.github.com");
        assert!(!ctx.in_actions());
    }
}
