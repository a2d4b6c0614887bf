//! Which commits to compare for an event (pure).
//!
//! The event decides a list of ranges, most precise first; the plan tries
//! each with every available source and falls back to selecting every image
//! when none can answer, so a push never selects fewer images than changed.

use crate::actions::event::{Event, Push, Release};
use crate::release::{ReleaseTag, is_prerelease, not_a_release_tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Files that differ between two commits.
    Diff { base: String, head: String },
    /// Files changed on `head` since it forked from `base` (a branch name or
    /// a commit): what a new branch or a pull request introduces.
    Since { base: String, head: String },
    /// A forced push: what the new tip changed since it forked from the old
    /// one, plus everything that differs between the two tips.
    Forced { old: String, new: String },
    /// A pull request's own file list.
    PullRequest {
        number: u64,
        base: String,
        head: String,
    },
}

impl Range {
    pub fn head(&self) -> &str {
        match self {
            Range::Diff { head, .. } | Range::Since { head, .. } => head,
            Range::Forced { new, .. } => new,
            Range::PullRequest { head, .. } => head,
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Range::Diff { base, head } => write!(f, "{}..{}", short(base), short(head)),
            Range::Since { base, head } => write!(f, "{}...{}", short(base), short(head)),
            Range::Forced { old, new } => {
                write!(f, "{}...{} (forced)", short(old), short(new))
            }
            Range::PullRequest { number, base, head } => {
                write!(f, "#{number} {}...{}", short(base), short(head))
            }
        }
    }
}

/// Abbreviates commit SHAs for people; branch names stay whole.
pub fn short(rev: &str) -> &str {
    if crate::names::is_commit_sha(rev) {
        &rev[..7]
    } else {
        rev
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Compare(Vec<Range>),
    All(String),
    /// A release: its tag's `image` is `None` for `v<semver>` (every image).
    Release {
        tag: ReleaseTag,
        prerelease: bool,
    },
    Nothing(String),
}

/// Inputs that replace what the event says: `release-tag` (already
/// parsed), `prerelease` (`None` for `auto`), `base` / `head`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub release: Option<ReleaseTag>,
    pub prerelease: Option<bool>,
    pub base: Option<String>,
    pub head: Option<String>,
}

pub fn intent(event: Option<&Event>, overrides: &Overrides, image_names: &[&str]) -> Intent {
    if let Some(tag) = &overrides.release {
        let flag = event.and_then(|e| e.release_flag(&tag.tag));
        return Intent::Release {
            prerelease: is_prerelease(overrides.prerelease, flag, &tag.version),
            tag: tag.clone(),
        };
    }
    if let Some(base) = &overrides.base {
        let head = overrides
            .head
            .clone()
            .or_else(|| event.and_then(event_head))
            .unwrap_or_else(|| "HEAD".into());
        return Intent::Compare(vec![Range::Diff {
            base: base.clone(),
            head,
        }]);
    }
    let intent = match event {
        None => Intent::All("no event and no `base` to compare with".into()),
        Some(Event::Push(push)) => push_intent(push, overrides.prerelease, image_names),
        Some(Event::Release(release)) => release_intent(release, overrides.prerelease, image_names),
        Some(Event::PullRequest(pr)) => Intent::Compare(vec![Range::PullRequest {
            number: pr.number,
            base: pr.base_sha.clone(),
            head: pr.head_sha.clone(),
        }]),
        Some(Event::MergeGroup { base_sha, head_sha }) => Intent::Compare(vec![Range::Diff {
            base: base_sha.clone(),
            head: head_sha.clone(),
        }]),
        Some(Event::Other { name }) => Intent::All(format!("a `{name}` event builds every image")),
    };
    match (intent, &overrides.head) {
        (Intent::Compare(ranges), Some(head)) => {
            Intent::Compare(ranges.into_iter().map(|r| with_head(r, head)).collect())
        }
        (intent, _) => intent,
    }
}

fn event_head(event: &Event) -> Option<String> {
    match event {
        Event::Push(push) => push.after.clone(),
        Event::PullRequest(pr) => Some(pr.head_sha.clone()),
        Event::MergeGroup { head_sha, .. } => Some(head_sha.clone()),
        Event::Release(_) | Event::Other { .. } => None,
    }
}

fn with_head(range: Range, head: &str) -> Range {
    let head = head.to_owned();
    match range {
        Range::Diff { base, .. } => Range::Diff { base, head },
        Range::Since { base, .. } => Range::Since { base, head },
        Range::Forced { old, .. } => Range::Forced { old, new: head },
        Range::PullRequest { number, base, .. } => Range::PullRequest { number, base, head },
    }
}

fn push_intent(push: &Push, prerelease: Option<bool>, image_names: &[&str]) -> Intent {
    let Some(after) = push.after.clone().filter(|_| !push.deleted) else {
        return Intent::Nothing(format!("`{}` was deleted", push.git_ref));
    };
    if let Some(tag) = push.git_ref.strip_prefix("refs/tags/") {
        return release(tag, prerelease, None, image_names);
    }
    let branch = push
        .git_ref
        .strip_prefix("refs/heads/")
        .unwrap_or(&push.git_ref);
    let since_default = push
        .default_branch
        .as_ref()
        .filter(|default| default.as_str() != branch)
        .map(|default| Range::Since {
            base: default.clone(),
            head: after.clone(),
        });
    match (&push.before, push.forced) {
        (Some(before), false) => Intent::Compare(vec![Range::Diff {
            base: before.clone(),
            head: after,
        }]),
        (Some(before), true) => Intent::Compare(
            std::iter::once(Range::Forced {
                old: before.clone(),
                new: after,
            })
            .chain(since_default)
            .collect(),
        ),
        (None, _) => match since_default {
            Some(range) => Intent::Compare(vec![range]),
            None if push.default_branch.is_some() => Intent::All(format!(
                "`{branch}` is the default branch and has no earlier commit to compare with"
            )),
            None => Intent::All(format!(
                "`{branch}` is new and the event names no default branch to compare with"
            )),
        },
    }
}

fn release_intent(event: &Release, prerelease: Option<bool>, image_names: &[&str]) -> Intent {
    if let Some(why) = event.builds_nothing() {
        return Intent::Nothing(why);
    }
    release(&event.tag, prerelease, Some(event.prerelease), image_names)
}

/// `v1.2.3` releases every image; `<image>-v1.2.3` releases one.
fn release(
    tag: &str,
    prerelease: Option<bool>,
    flag: Option<bool>,
    image_names: &[&str],
) -> Intent {
    match ReleaseTag::parse(tag, image_names) {
        Some(tag) => Intent::Release {
            prerelease: is_prerelease(prerelease, flag, &tag.version),
            tag,
        },
        None => Intent::Nothing(not_a_release_tag(tag)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::actions::event::PullRequest;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn push(git_ref: &str, before: Option<&str>, after: Option<&str>, forced: bool) -> Event {
        Event::Push(Push {
            git_ref: git_ref.into(),
            before: before.map(Into::into),
            after: after.map(Into::into),
            created: before.is_none(),
            deleted: after.is_none(),
            forced,
            default_branch: Some("main".into()),
        })
    }

    fn plan(event: &Event) -> Intent {
        intent(
            Some(event),
            &Overrides::default(),
            &["api", "api-v2", "web"],
        )
    }

    #[test]
    fn ordinary_push_diffs_before_and_after() {
        assert_eq!(
            plan(&push("refs/heads/main", Some(A), Some(B), false)),
            Intent::Compare(vec![Range::Diff {
                base: A.into(),
                head: B.into()
            }])
        );
    }

    #[test]
    fn new_branch_compares_with_the_default_branch() {
        assert_eq!(
            plan(&push("refs/heads/feature", None, Some(B), false)),
            Intent::Compare(vec![Range::Since {
                base: "main".into(),
                head: B.into()
            }])
        );
        assert!(matches!(
            plan(&push("refs/heads/main", None, Some(B), false)),
            Intent::All(reason) if reason.contains("default branch")
        ));
    }

    #[test]
    fn forced_push_falls_back_to_the_default_branch() {
        assert_eq!(
            plan(&push("refs/heads/feature", Some(A), Some(B), true)),
            Intent::Compare(vec![
                Range::Forced {
                    old: A.into(),
                    new: B.into()
                },
                Range::Since {
                    base: "main".into(),
                    head: B.into()
                },
            ])
        );
        assert_eq!(
            plan(&push("refs/heads/main", Some(A), Some(B), true)),
            Intent::Compare(vec![Range::Forced {
                old: A.into(),
                new: B.into()
            }])
        );
    }

    #[test]
    fn deletions_select_nothing() {
        assert!(matches!(
            plan(&push("refs/heads/gone", Some(A), None, false)),
            Intent::Nothing(_)
        ));
        assert!(matches!(
            plan(&push("refs/tags/v1.0.0", Some(A), None, false)),
            Intent::Nothing(_)
        ));
    }

    /// The image and version a planned release names, and its flag.
    fn released(intent: Intent) -> (Option<String>, String, bool) {
        match intent {
            Intent::Release { tag, prerelease } => (tag.image, tag.version.to_string(), prerelease),
            other => panic!("not a release: {other:?}"),
        }
    }

    fn release_event(tag: &str, prerelease: bool, draft: bool) -> Event {
        release_action("published", tag, prerelease, draft)
    }

    fn release_action(action: &str, tag: &str, prerelease: bool, draft: bool) -> Event {
        Event::Release(Release {
            action: Some(action.into()),
            tag: tag.into(),
            prerelease,
            draft,
        })
    }

    #[test]
    fn release_tags() {
        let push_tag = |tag: &str| plan(&push(&format!("refs/tags/{tag}"), None, Some(B), false));
        assert_eq!(released(push_tag("v1.2.3")), (None, "1.2.3".into(), false));
        assert_eq!(
            released(push_tag("api-v2-v1.0.0-rc.1")),
            (Some("api-v2".into()), "1.0.0-rc.1".into(), true)
        );
        assert_eq!(
            released(push_tag("web-v3.0.0")),
            (Some("web".into()), "3.0.0".into(), false)
        );
        assert!(matches!(
            push_tag("nightly"),
            Intent::Nothing(reason) if reason.contains("`nightly`")
        ));
        assert!(matches!(push_tag("unknown-v1.0.0"), Intent::Nothing(_)));
    }

    #[test]
    fn release_events_release_their_tag_with_their_flag() {
        assert_eq!(
            released(plan(&release_event("web-v1.2.3", false, false))),
            (Some("web".into()), "1.2.3".into(), false)
        );
        assert_eq!(
            released(plan(&release_event("v2.0.0", true, false))),
            (None, "2.0.0".into(), true),
            "a release flagged prerelease is one, whatever its version"
        );
        assert!(matches!(
            plan(&release_event("web-v1.2.3", false, true)),
            Intent::Nothing(reason) if reason.contains("draft")
        ));
        assert!(matches!(
            plan(&release_event("0.0.5-rc", false, false)),
            Intent::Release {
                prerelease: true,
                ..
            }
        ));
        assert!(matches!(
            plan(&release_event("example", false, false)),
            Intent::Nothing(reason) if reason.contains("`example` is not a release tag")
        ));
    }

    #[test]
    fn only_the_releasing_actions_build() {
        for action in ["published", "released", "prereleased", "created"] {
            assert_eq!(
                released(plan(&release_action(action, "web-v1.2.3", false, false))),
                (Some("web".into()), "1.2.3".into(), false),
                "{action}"
            );
        }
        for action in ["edited", "deleted", "unpublished"] {
            assert!(
                matches!(
                    plan(&release_action(action, "web-v1.2.3", false, false)),
                    Intent::Nothing(reason)
                        if reason == format!("release `web-v1.2.3` was {action}: only published, released, prereleased, created releases are built")
                ),
                "{action}"
            );
        }
    }

    #[test]
    fn release_tag_input_wins_and_prerelease_input_decides() {
        let names = ["api", "web"];
        let overrides = |tag: &str, prerelease: Option<bool>| Overrides {
            release: ReleaseTag::parse(tag, &names),
            prerelease,
            base: Some(A.into()),
            ..Overrides::default()
        };
        let dispatch = Event::Other {
            name: "workflow_dispatch".into(),
        };
        assert_eq!(
            released(intent(
                Some(&dispatch),
                &overrides("api-v1.0.0", None),
                &names
            )),
            (Some("api".into()), "1.0.0".into(), false)
        );
        assert!(released(intent(None, &overrides("v1.0.0-rc.2", None), &names)).2);
        assert!(!released(intent(None, &overrides("v1.0.0-rc.2", Some(false)), &names)).2);
        assert!(released(intent(None, &overrides("v1.0.0", Some(true)), &names)).2);
        // The event's flag counts for its own tag only.
        let flagged = release_event("web-v9.0.0", true, false);
        assert!(
            released(intent(
                Some(&flagged),
                &overrides("web-v9.0.0", None),
                &names
            ))
            .2
        );
        assert!(
            !released(intent(
                Some(&flagged),
                &overrides("web-v1.0.0", None),
                &names
            ))
            .2
        );
    }

    #[test]
    fn pull_request_uses_its_file_list_and_head() {
        let pr = Event::PullRequest(PullRequest {
            number: 7,
            base_sha: A.into(),
            head_sha: B.into(),
            base_ref: "main".into(),
            default_branch: Some("main".into()),
        });
        assert_eq!(
            plan(&pr),
            Intent::Compare(vec![Range::PullRequest {
                number: 7,
                base: A.into(),
                head: B.into()
            }])
        );
    }

    #[test]
    fn overrides_win() {
        let event = push("refs/heads/main", Some(A), Some(B), false);
        let only_base = Overrides {
            base: Some("v1".into()),
            ..Overrides::default()
        };
        assert_eq!(
            intent(Some(&event), &only_base, &[]),
            Intent::Compare(vec![Range::Diff {
                base: "v1".into(),
                head: B.into()
            }])
        );
        let only_head = Overrides {
            head: Some("cafe".into()),
            ..Overrides::default()
        };
        assert_eq!(
            intent(Some(&event), &only_head, &[]),
            Intent::Compare(vec![Range::Diff {
                base: A.into(),
                head: "cafe".into()
            }])
        );
        assert_eq!(
            intent(None, &only_base, &[]),
            Intent::Compare(vec![Range::Diff {
                base: "v1".into(),
                head: "HEAD".into()
            }])
        );
    }

    #[test]
    fn dispatch_and_no_event_select_all() {
        let dispatch = Event::Other {
            name: "workflow_dispatch".into(),
        };
        assert!(matches!(plan(&dispatch), Intent::All(r) if r.contains("workflow_dispatch")));
        assert!(matches!(
            intent(None, &Overrides::default(), &[]),
            Intent::All(_)
        ));
    }

    #[test]
    fn display_abbreviates_shas_only() {
        assert_eq!(
            Range::Since {
                base: "main".into(),
                head: B.into()
            }
            .to_string(),
            "main...2222222"
        );
    }
}
