//! The event payload (`GITHUB_EVENT_PATH`), reduced to what decides a plan.
//!
//! Every field is optional or defaulted: payloads differ between GitHub,
//! Forgejo and Gitea, and a missing field must lead to a safe fallback, not a
//! parse failure.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The SHA GitHub sends for "no commit" (a created or deleted ref).
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push(Push),
    PullRequest(PullRequest),
    MergeGroup {
        base_sha: String,
        head_sha: String,
    },
    Release(Release),
    /// `workflow_dispatch`, `schedule`, `repository_dispatch` and any event
    /// that carries no range of commits.
    Other {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub git_ref: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub base_sha: String,
    pub head_sha: String,
    pub base_ref: String,
    pub default_branch: Option<String>,
}

/// A `release` event (`published`, `released`, `prereleased`, `created`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub action: Option<String>,
    pub tag: String,
    pub prerelease: bool,
    pub draft: bool,
}

/// The release actions that put a release out; `edited`, `deleted` and
/// `unpublished` don't, and a plain `on: release` delivers them too.
pub const RELEASING_ACTIONS: [&str; 4] = ["published", "released", "prereleased", "created"];

impl Release {
    /// Why this event builds nothing, if it doesn't: a draft is not out
    /// yet, and only the releasing actions put a release out. A payload
    /// without an action (some forges' dispatches) is taken as published.
    pub fn builds_nothing(&self) -> Option<String> {
        if self.draft {
            return Some(format!(
                "release `{}` is a draft: nothing is built until it is published",
                self.tag
            ));
        }
        match self.action.as_deref() {
            Some(action) if !RELEASING_ACTIONS.contains(&action) => Some(format!(
                "release `{}` was {action}: only {} releases are built",
                self.tag,
                RELEASING_ACTIONS.join(", ")
            )),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(
        "couldn't read the event payload {path:?}: {source}; GITHUB_EVENT_PATH must name the runner's event file (unset GITHUB_EVENT_NAME to run without an event)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the event payload {path:?} is not valid JSON for a `{event}` event: {source}; pass the file the runner wrote, unchanged"
    )]
    Malformed {
        path: PathBuf,
        event: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the `{event}` event payload {path:?} has no {field}; pass the file the runner wrote, unchanged"
    )]
    Missing {
        path: PathBuf,
        event: String,
        field: &'static str,
    },
}

#[derive(Deserialize, Default)]
struct Payload {
    action: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    before: Option<String>,
    after: Option<String>,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    repository: Option<Repository>,
    pull_request: Option<PullRequestPayload>,
    merge_group: Option<MergeGroupPayload>,
    release: Option<ReleasePayload>,
}

#[derive(Deserialize)]
struct Repository {
    default_branch: Option<String>,
    full_name: Option<String>,
    owner: Option<Owner>,
}

/// GitHub names the owner `login`; Gitea and Forgejo also `username`.
#[derive(Deserialize)]
struct Owner {
    login: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct ReleasePayload {
    tag_name: String,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    draft: bool,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    number: u64,
    base: RefPayload,
    head: RefPayload,
}

#[derive(Deserialize)]
struct RefPayload {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
}

#[derive(Deserialize)]
struct MergeGroupPayload {
    base_sha: String,
    head_sha: String,
}

impl Event {
    pub fn load(name: &str, path: &Path) -> Result<Self, EventError> {
        let bytes = std::fs::read(path).map_err(|source| EventError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(name, &bytes).map_err(|e| match e {
            ParseError::Json(source) => EventError::Malformed {
                path: path.to_owned(),
                event: name.to_owned(),
                source,
            },
            ParseError::Missing(field) => EventError::Missing {
                path: path.to_owned(),
                event: name.to_owned(),
                field,
            },
        })
    }

    fn parse(name: &str, bytes: &[u8]) -> Result<Self, ParseError> {
        let payload: Payload = serde_json::from_slice(bytes).map_err(ParseError::Json)?;
        let default_branch = payload.repository.and_then(|r| r.default_branch);
        let sha = |s: Option<String>| s.filter(|s| !s.is_empty() && s != ZERO_SHA);
        Ok(match name {
            "push" => Event::Push(Push {
                git_ref: payload.git_ref.ok_or(ParseError::Missing("`ref`"))?,
                before: sha(payload.before),
                after: sha(payload.after),
                created: payload.created,
                deleted: payload.deleted,
                forced: payload.forced,
                default_branch,
            }),
            "pull_request" | "pull_request_target" => {
                let pr = payload
                    .pull_request
                    .ok_or(ParseError::Missing("`pull_request`"))?;
                Event::PullRequest(PullRequest {
                    number: pr.number,
                    base_sha: pr.base.sha,
                    head_sha: pr.head.sha,
                    base_ref: pr.base.git_ref,
                    default_branch,
                })
            }
            "merge_group" => {
                let group = payload
                    .merge_group
                    .ok_or(ParseError::Missing("`merge_group`"))?;
                Event::MergeGroup {
                    base_sha: group.base_sha,
                    head_sha: group.head_sha,
                }
            }
            "release" => {
                let release = payload.release.ok_or(ParseError::Missing("`release`"))?;
                Event::Release(Release {
                    action: payload.action,
                    tag: release.tag_name,
                    prerelease: release.prerelease,
                    draft: release.draft,
                })
            }
            other => Event::Other {
                name: other.to_owned(),
            },
        })
    }
}

impl Event {
    /// A release event's prerelease flag, when the release is `tag`'s.
    pub fn release_flag(&self, tag: &str) -> Option<bool> {
        match self {
            Event::Release(release) if release.tag == tag => Some(release.prerelease),
            _ => None,
        }
    }
}

/// The repository's owner as the payload names it: Forgejo leaves
/// `GITHUB_REPOSITORY_OWNER` empty on some events, its payload doesn't.
pub fn repository_owner(path: &Path) -> Option<String> {
    let payload: Payload = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let repository = payload.repository?;
    let owner = repository.owner.and_then(|o| o.login.or(o.username));
    owner
        .or_else(|| {
            let full = repository.full_name?;
            full.split_once('/').map(|(owner, _)| owner.to_owned())
        })
        .filter(|o| !o.trim().is_empty())
}

enum ParseError {
    Json(serde_json::Error),
    Missing(&'static str),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        crate::fixtures::fixture(&format!("github-events/{name}"))
    }

    #[test]
    fn ordinary_push() {
        let Event::Push(push) = Event::load("push", &fixture("push-normal.json")).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.git_ref, "refs/heads/master");
        assert_eq!(
            push.before.as_deref(),
            Some("a10867b14bb761a232cd80139fbd4c0d33264240")
        );
        assert_eq!(
            push.after.as_deref(),
            Some("199eddf46df50de8d02e99bf1c5fdb4101338224")
        );
        assert!(!push.forced && !push.created && !push.deleted);
        assert_eq!(push.default_branch.as_deref(), Some("master"));
    }

    #[test]
    fn zero_shas_become_none() {
        let Event::Push(created) = Event::load("push", &fixture("push-new-branch.json")).unwrap()
        else {
            panic!("not a push")
        };
        assert!(created.created);
        assert_eq!(created.before, None);
        let Event::Push(deleted) =
            Event::load("push", &fixture("push-branch-deleted.json")).unwrap()
        else {
            panic!("not a push")
        };
        assert!(deleted.deleted);
        assert_eq!(deleted.after, None);
    }

    #[test]
    fn pull_request_uses_the_head_sha() {
        let event = Event::load("pull_request", &fixture("pull_request-synchronize.json")).unwrap();
        assert_eq!(
            event,
            Event::PullRequest(PullRequest {
                number: 2,
                base_sha: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into(),
                head_sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
                base_ref: "master".into(),
                default_branch: Some("master".into()),
            })
        );
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("event.json");
        std::fs::write(&bad, b"{not json").unwrap();
        let err = Event::load("push", &bad).unwrap_err().to_string();
        assert!(
            err.contains("event.json") && err.contains("not valid JSON"),
            "{err}"
        );

        std::fs::write(&bad, b"{}").unwrap();
        let err = Event::load("pull_request", &bad).unwrap_err().to_string();
        assert!(err.contains("has no `pull_request`"), "{err}");

        let err = Event::load("push", &dir.path().join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("absent.json") && err.contains("GITHUB_EVENT_PATH"),
            "{err}"
        );
    }

    #[test]
    fn dispatch_and_schedule_carry_no_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, b"{\"inputs\": {}}").unwrap();
        assert_eq!(
            Event::load("workflow_dispatch", &path).unwrap(),
            Event::Other {
                name: "workflow_dispatch".into()
            }
        );
    }

    fn release(fixture_name: &str) -> Release {
        match Event::load("release", &fixture(fixture_name)).unwrap() {
            Event::Release(release) => release,
            other => panic!("not a release: {other:?}"),
        }
    }

    #[test]
    fn release_events_carry_the_tag_and_the_flags() {
        for (name, action, tag, prerelease) in [
            ("release-published.json", "published", "0.0.1", false),
            ("release-prereleased.json", "prereleased", "0.0.1", true),
            ("release-released.json", "released", "0.0.1", false),
            ("release-created.json", "created", "0.0.1", false),
            ("release-published-v-tag.json", "published", "v1.0.0", false),
            ("gitea-release-published.json", "published", "0.0.5", false),
        ] {
            assert_eq!(
                release(name),
                Release {
                    action: Some(action.into()),
                    tag: tag.into(),
                    prerelease,
                    draft: false,
                },
                "{name}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, b"{\"action\": \"published\"}").unwrap();
        let err = Event::load("release", &path).unwrap_err().to_string();
        assert!(err.contains("has no `release`"), "{err}");
    }

    #[test]
    fn the_owner_comes_from_github_and_forgejo_payloads() {
        for (name, owner) in [
            ("release-published.json", "Codertocat"),
            ("gitea-release-published.json", "anbraten"),
            ("workflow_dispatch.json", "octo-org"),
        ] {
            assert_eq!(
                repository_owner(&fixture(name)).as_deref(),
                Some(owner),
                "{name}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, b"{\"repository\": {\"full_name\": \"forge/infra\"}}").unwrap();
        assert_eq!(repository_owner(&path).as_deref(), Some("forge"));
        std::fs::write(&path, b"{\"inputs\": {}}").unwrap();
        assert_eq!(repository_owner(&path), None);
    }
}
