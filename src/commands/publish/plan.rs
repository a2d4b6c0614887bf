//! What a `publish` run does, decided before any of it is done: from the
//! inputs and the facts the other stages read from the registry, the engine
//! and the forge. No I/O here, nothing async: the stages gather the facts,
//! ask the planner, then carry the plan out (`cleanup`'s shape).

use crate::registry::Manifest;
use crate::tags::TagSet;

use super::bases::Base;
use super::unchanged::Earlier;

/// The inputs that shape the plan, as the run was asked.
#[derive(Debug, Clone, Default)]
pub(super) struct Asked {
    /// `push`.
    pub push: bool,
    /// `push-by-digest`: pushed untagged, for `merge`.
    pub by_digest: bool,
    /// `rebuild`.
    pub rebuild: bool,
    /// A `scanner` other than `none`: the gate scans what a build exports.
    pub scanned: bool,
    /// How many `platforms` were given (none: the engine's own).
    pub platforms: usize,
    /// A `sign-key` was given.
    pub signs: bool,
    /// An `sbom` was asked for.
    pub sbom: bool,
    /// `cache`: the build reuses the inline cache of `cache_from`.
    pub cache: bool,
    /// `cache-from` as given, one image a line.
    pub cache_from: Vec<String>,
    /// The image's name as `cache-from` entries spell it.
    pub image: String,
}

/// What the registry and the forge said, read before planning.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// The tags the rules give this commit and release (`tags::tags`).
    pub tags: TagSet,
    /// The commit `latest` was built from, when it had to be compared.
    pub latest: Option<LatestNow>,
    /// What the SHA tag names already (with `push-by-digest`: the merged
    /// index's child for this platform).
    pub existing: Option<Manifest>,
    /// The `depends-on` bases this commit's Dockerfile follows: rebuilt by
    /// this run's other jobs.
    pub bases: Vec<Base>,
    /// An earlier image of the same build key, when one was looked for.
    pub earlier: Option<Earlier>,
    /// Why an index of the same build key could not stand in.
    pub passed_over: Vec<String>,
}

/// The commit the image `latest` names was built from, and how it relates
/// to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LatestNow {
    pub revision: String,
    /// Whether this commit is an ancestor of `revision`, and who said so
    /// (`git`, `github`); `None`: neither the clone nor the forge knows.
    pub ancestry: Option<(bool, &'static str)>,
}

/// Everything a run will do, in the order it does it.
#[derive(Debug)]
pub(super) struct PublishPlan {
    pub origin: Origin,
    /// The tags, `latest` held back when it would move backwards.
    pub tags: TagSet,
    pub push: Push,
    /// Written after the SHA tag, registry-side, as the same manifest.
    pub more_tags: Vec<String>,
    pub signing: Signing,
    /// Copy the release to `mirror-to`.
    pub mirror: bool,
    /// For the summary: what was found but could not be released again.
    pub notes: Vec<String>,
}

/// Where the image comes from.
#[derive(Debug)]
pub(super) enum Origin {
    /// The SHA tag names it already: nothing is built.
    Reuse(Manifest),
    /// An image (or index) of the same build inputs, released again under
    /// this commit.
    ReleaseAgain(Earlier),
    Build(Build),
}

/// What a build waits for and reuses.
#[derive(Debug)]
pub(super) struct Build {
    pub bases: Bases,
    /// The images whose inline cache the build may reuse.
    pub cache_from: Vec<String>,
}

#[derive(Debug)]
pub(super) enum Bases {
    /// No `depends-on`.
    None,
    /// Each base's image of this commit is waited for, then built FROM.
    Wait(Vec<Base>),
    /// `push: false`: nor does the bases' job push, so the Dockerfile's
    /// `FROM`s are built as written.
    AsWritten,
}

/// How the image reaches the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    /// `push: false`.
    Nothing,
    /// Under the SHA tag, which is never moved to another digest.
    ShaTag,
    /// By digest only, for `merge`.
    ByDigest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signing {
    /// No `sign-key`.
    Unsigned,
    /// `push: false`: nothing to sign, and the summary says so.
    NothingPushed,
    /// The pushed digest is signed.
    Digest { attest: Attest },
}

/// Whether the SBOM is attested beside the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attest {
    /// No `sbom`.
    No,
    /// The SBOM made from this run's scan.
    Sbom,
    /// Asked for, but nothing is built, so there is no scan to make it
    /// from: the summary says so.
    NoScan,
}

impl PublishPlan {
    pub(super) fn new(asked: &Asked, found: Found) -> Self {
        let same_build = looks_for_same_build(asked, &found);
        let (tags, more_tags) = tags(asked, found.tags, found.latest.as_ref());
        let existing = found.existing.filter(|_| !asked.rebuild);
        let earlier = found
            .earlier
            .filter(|e| same_build && e.images.len() == asked.platforms.max(1));
        let origin = match (existing, earlier) {
            (Some(manifest), _) => Origin::Reuse(manifest),
            (None, Some(earlier)) => Origin::ReleaseAgain(earlier),
            (None, _) => Origin::Build(Build {
                bases: match (found.bases.is_empty(), asked.push) {
                    (true, _) => Bases::None,
                    (false, true) => Bases::Wait(found.bases),
                    (false, false) => Bases::AsWritten,
                },
                cache_from: cache_from(asked, &tags),
            }),
        };
        let built = matches!(origin, Origin::Build(_));
        PublishPlan {
            signing: signing(asked, built),
            push: push(asked),
            mirror: asked.push && !asked.by_digest,
            origin,
            tags,
            more_tags,
            notes: found.passed_over,
        }
    }
}

/// Whether an image (or, for several platforms, an index) of the same
/// build key may stand in for a build: not with `rebuild`, nor when the
/// SHA tag names one already, nor with a scan gate (it scans the files a
/// build exports). A base this run rebuilds gets a new digest, so an image
/// waiting for one is never the same build as before; a push by digest
/// always builds. It stands in only as what is asked: one image for one
/// platform, an index of as many for several.
pub(super) fn looks_for_same_build(asked: &Asked, found: &Found) -> bool {
    asked.push
        && !asked.rebuild
        && found.existing.is_none()
        && !asked.scanned
        && !asked.by_digest
        && found.bases.is_empty()
}

/// The commit `latest` names that must be compared with this one before
/// `latest` moves: only when this run pushes `latest`, and names another
/// commit.
pub(super) fn latest_to_compare<'a>(
    push: bool,
    tags: &TagSet,
    revision: Option<&'a str>,
) -> Option<&'a str> {
    revision.filter(|r| push && tags.latest && !r.eq_ignore_ascii_case(&tags.sha))
}

/// The tag set as pushed, and the tags written after the SHA tag: `latest`
/// never moves backwards, a push by digest moves no tag, and `push: false`
/// writes none.
pub(super) fn tags(
    asked: &Asked,
    mut set: TagSet,
    latest: Option<&LatestNow>,
) -> (TagSet, Vec<String>) {
    if let Some(latest) =
        latest.filter(|l| latest_to_compare(asked.push, &set, Some(&l.revision)).is_some())
    {
        guard_latest(latest, &mut set);
    }
    if asked.by_digest {
        set.tags.clear();
        set.latest = false;
    }
    let more = match push(asked) {
        Push::ShaTag => set
            .tags
            .iter()
            .filter(|t| **t != set.sha)
            .cloned()
            .collect(),
        Push::Nothing | Push::ByDigest => Vec::new(),
    };
    (set, more)
}

/// `latest` stays where it is when it was built from a commit that
/// descends from this one.
fn guard_latest(latest: &LatestNow, set: &mut TagSet) {
    let short = &latest.revision[..latest.revision.len().min(7)];
    match latest.ancestry {
        Some((true, source)) => {
            set.latest = false;
            set.tags.retain(|t| t != "latest");
            set.withheld.push(format!(
                "`latest` stays on `{short}`, built from a newer commit (per {source})"
            ));
        }
        Some((false, _)) => {}
        None => set.withheld.push(format!(
            "`latest` was built from `{short}`, which neither the clone nor the GitHub API knows; moved it"
        )),
    }
}

fn push(asked: &Asked) -> Push {
    match (asked.push, asked.by_digest) {
        (false, _) => Push::Nothing,
        (true, false) => Push::ShaTag,
        (true, true) => Push::ByDigest,
    }
}

/// What is signed: the pushed digest, with the SBOM only a build's scan
/// makes.
pub(super) fn signing(asked: &Asked, built: bool) -> Signing {
    match (asked.signs, asked.push) {
        (false, _) => Signing::Unsigned,
        (true, false) => Signing::NothingPushed,
        (true, true) => Signing::Digest {
            attest: match (asked.sbom, built) {
                (false, _) => Attest::No,
                (true, true) => Attest::Sbom,
                (true, false) => Attest::NoScan,
            },
        },
    }
}

/// The images whose inline cache the build may reuse: `cache-from` as
/// given, else the tags this release moves (they name the previous build
/// of this image), always with `latest`.
fn cache_from(asked: &Asked, set: &TagSet) -> Vec<String> {
    if !asked.cache {
        return Vec::new();
    }
    if !asked.cache_from.is_empty() {
        return asked.cache_from.clone();
    }
    let mut moving: Vec<String> = std::iter::once("latest")
        .chain(
            set.tags
                .iter()
                .map(String::as_str)
                .filter(|t| *t != set.sha && *t != "latest"),
        )
        .map(|tag| format!("{}:{tag}", asked.image))
        .collect();
    moving.dedup();
    moving
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::commands::publish::layers::Pushed;
    use crate::commands::publish::unchanged::Reusable;
    use crate::platform::Platform;
    use crate::reference::Reference;
    use crate::tags::{Facts, Latest};

    /// Sets a case's inputs and facts apart from the defaults.
    type Arrange = fn(&mut Asked, &mut Found);

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
    const NEWER: &str = "fedcba9876543210fedcba9876543210fedcba98";
    const IMAGE: &str = "registry.example/acme/app";

    /// The event a run publishes for.
    #[derive(Clone, Copy)]
    enum On {
        /// A push to the default branch.
        Main,
        /// A push to another branch.
        Branch,
        PullRequest,
        /// A published release of this version.
        Release(&'static str),
        /// A published release flagged prerelease.
        Prerelease(&'static str),
    }

    /// The tags `tags::tags` gives this commit on `on`, as `resolve` asks.
    fn tags_on(on: On) -> TagSet {
        let version = match on {
            On::Release(v) | On::Prerelease(v) => Some(semver::Version::parse(v).unwrap()),
            _ => None,
        };
        let git_ref = match on {
            On::Main => "refs/heads/main".to_owned(),
            On::Branch => "refs/heads/topic".to_owned(),
            On::PullRequest => "refs/pull/7/merge".to_owned(),
            On::Release(v) | On::Prerelease(v) => format!("refs/tags/v{v}"),
        };
        crate::tags::tags(&Facts {
            sha: SHA,
            git_ref: Some(&git_ref),
            default_branch: Some("main"),
            pull_request: matches!(on, On::PullRequest),
            version: version.as_ref(),
            prerelease: matches!(on, On::Prerelease(_)),
            latest: Latest::Auto,
            extra: &[],
            published: &[],
        })
        .unwrap()
    }

    fn pushing() -> Asked {
        Asked {
            push: true,
            cache: true,
            image: IMAGE.into(),
            ..Asked::default()
        }
    }

    fn found(on: On) -> Found {
        Found {
            tags: tags_on(on),
            latest: None,
            existing: None,
            bases: Vec::new(),
            earlier: None,
            passed_over: Vec::new(),
        }
    }

    fn manifest(digest: &str) -> Manifest {
        Manifest {
            bytes: b"{}".to_vec(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: digest.into(),
        }
    }

    fn earlier(tag: &str) -> Earlier {
        Earlier {
            tag: tag.into(),
            key: "key".into(),
            images: vec![reusable(None)],
        }
    }

    /// An index of the same build key over `platforms`' images.
    fn earlier_index(tag: &str, platforms: &[&str]) -> Earlier {
        Earlier {
            tag: tag.into(),
            key: "index key".into(),
            images: platforms
                .iter()
                .map(|p| reusable(Some(Platform::parse(p).unwrap())))
                .collect(),
        }
    }

    fn reusable(platform: Option<Platform>) -> Reusable {
        Reusable {
            platform,
            image: Pushed {
                manifest: manifest("sha256:earlier"),
                config: b"{}".to_vec(),
            },
            key: "key".into(),
        }
    }

    fn base(name: &str) -> Base {
        Base {
            name: name.into(),
            image: Reference::parse(&format!("registry.example/acme/{name}")).unwrap(),
            lines: vec![1],
            dirs: vec![format!("images/{name}")],
        }
    }

    /// The origin as one word and what it carries, to compare in tables.
    fn origin(plan: &PublishPlan) -> String {
        match &plan.origin {
            Origin::Reuse(found) => format!("reuse {}", found.digest),
            Origin::ReleaseAgain(earlier) => format!("release again {}", earlier.tag),
            Origin::Build(Build { bases, .. }) => match bases {
                Bases::None => "build".into(),
                Bases::Wait(bases) => format!(
                    "build after {}",
                    bases
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Bases::AsWritten => "build FROM as written".into(),
            },
        }
    }

    #[test]
    fn reuse_release_again_or_build() {
        let cases: [(&str, Arrange, &str); 15] = [
            ("nothing pushed yet", |_, _| {}, "build"),
            (
                "the SHA tag names an image",
                |_, f| f.existing = Some(manifest("sha256:there")),
                "reuse sha256:there",
            ),
            (
                "the SHA tag names an image, `rebuild`",
                |a, f| {
                    a.rebuild = true;
                    f.existing = Some(manifest("sha256:there"));
                },
                "build",
            ),
            (
                "an image of the same build key",
                |_, f| f.earlier = Some(earlier("abc1234")),
                "release again abc1234",
            ),
            (
                "the SHA tag wins over the same build key",
                |_, f| {
                    f.existing = Some(manifest("sha256:there"));
                    f.earlier = Some(earlier("abc1234"));
                },
                "reuse sha256:there",
            ),
            (
                "the same build key, but a scan gate to feed",
                |a, f| {
                    a.scanned = true;
                    f.earlier = Some(earlier("abc1234"));
                },
                "build",
            ),
            (
                "several platforms, an index of the same build key",
                |a, f| {
                    a.platforms = 2;
                    f.earlier = Some(earlier_index("abc1234", &["linux/amd64", "linux/arm64"]));
                },
                "release again abc1234",
            ),
            (
                "several platforms, but one image of the same build key",
                |a, f| {
                    a.platforms = 2;
                    f.earlier = Some(earlier("abc1234"));
                },
                "build",
            ),
            (
                "one platform, but an index of the same build key",
                |a, f| {
                    a.platforms = 1;
                    f.earlier = Some(earlier_index("abc1234", &["linux/amd64", "linux/arm64"]));
                },
                "build",
            ),
            (
                "several platforms, the same build key, but a scan gate to feed",
                |a, f| {
                    a.platforms = 2;
                    a.scanned = true;
                    f.earlier = Some(earlier_index("abc1234", &["linux/amd64", "linux/arm64"]));
                },
                "build",
            ),
            (
                "several platforms, the same build key, `rebuild`",
                |a, f| {
                    a.platforms = 2;
                    a.rebuild = true;
                    f.earlier = Some(earlier_index("abc1234", &["linux/amd64", "linux/arm64"]));
                },
                "build",
            ),
            (
                "the same build key, but a base rebuilt by this run",
                |_, f| {
                    f.bases = vec![base("base")];
                    f.earlier = Some(earlier("abc1234"));
                },
                "build after base",
            ),
            (
                "bases, not pushing",
                |a, f| {
                    a.push = false;
                    f.bases = vec![base("base"), base("tools")];
                },
                "build FROM as written",
            ),
            (
                "pushed by digest, the merged index lists this platform",
                |a, f| {
                    a.by_digest = true;
                    f.existing = Some(manifest("sha256:child"));
                },
                "reuse sha256:child",
            ),
            (
                "pushed by digest, the same build key",
                |a, f| {
                    a.by_digest = true;
                    f.earlier = Some(earlier("abc1234"));
                },
                "build",
            ),
        ];
        for (case, arrange, expected) in cases {
            let (mut asked, mut found) = (pushing(), found(On::Main));
            arrange(&mut asked, &mut found);
            let plan = PublishPlan::new(&asked, found);
            assert_eq!(origin(&plan), expected, "{case}");
        }
    }

    #[test]
    fn the_same_build_is_looked_for_only_where_it_may_stand_in() {
        let cases: [(&str, Arrange, bool); 9] = [
            ("one platform, pushed, no gate", |_, _| {}, true),
            ("`push: false`", |a, _| a.push = false, false),
            ("`rebuild`", |a, _| a.rebuild = true, false),
            ("a scanner", |a, _| a.scanned = true, false),
            ("`push-by-digest`", |a, _| a.by_digest = true, false),
            ("two platforms", |a, _| a.platforms = 2, true),
            (
                "two platforms, a scanner",
                |a, _| {
                    a.platforms = 2;
                    a.scanned = true;
                },
                false,
            ),
            (
                "a base to wait for",
                |_, f| f.bases = vec![base("base")],
                false,
            ),
            (
                "the SHA tag is there",
                |_, f| f.existing = Some(manifest("sha256:there")),
                false,
            ),
        ];
        for (case, arrange, expected) in cases {
            let (mut asked, mut found) = (pushing(), found(On::Main));
            arrange(&mut asked, &mut found);
            assert_eq!(looks_for_same_build(&asked, &found), expected, "{case}");
        }
    }

    #[test]
    fn tags_for_each_event() {
        let cases: [(On, &[&str], &[&str]); 5] = [
            (On::Main, &[SHA, "latest"], &["latest"]),
            (On::Branch, &[SHA], &[]),
            (On::PullRequest, &[SHA], &[]),
            (
                On::Release("1.2.3"),
                &[SHA, "1.2.3", "1.2", "1", "latest"],
                &["1.2.3", "1.2", "1", "latest"],
            ),
            (
                On::Prerelease("1.3.0-rc.1"),
                &[SHA, "1.3.0-rc.1"],
                &["1.3.0-rc.1"],
            ),
        ];
        for (on, tags, more) in cases {
            let plan = PublishPlan::new(&pushing(), found(on));
            assert_eq!(plan.tags.tags, tags);
            assert_eq!(plan.more_tags, more);
            assert_eq!(plan.tags.sha, SHA);
            assert_eq!(plan.tags.latest, tags.contains(&"latest"));
            assert_eq!(plan.push, Push::ShaTag);
        }
        let prerelease = PublishPlan::new(&pushing(), found(On::Prerelease("1.3.0-rc.1")));
        assert_eq!(
            prerelease.tags.withheld,
            [
                "`1.3.0-rc.1` is a prerelease: no `1.3` / `1` tags",
                "`latest`: `1.3.0-rc.1` is a prerelease"
            ]
        );
    }

    #[test]
    fn latest_never_moves_backwards() {
        let latest = |ancestry| LatestNow {
            revision: NEWER.into(),
            ancestry,
        };
        type Ancestry = Option<(bool, &'static str)>;
        let cases: [(Ancestry, &[&str], Option<&str>); 4] = [
            (
                Some((true, "git")),
                &[SHA, "1.2.3", "1.2", "1"],
                Some("`latest` stays on `fedcba9`, built from a newer commit (per git)"),
            ),
            (
                Some((true, "github")),
                &[SHA, "1.2.3", "1.2", "1"],
                Some("`latest` stays on `fedcba9`, built from a newer commit (per github)"),
            ),
            (
                Some((false, "git")),
                &[SHA, "1.2.3", "1.2", "1", "latest"],
                None,
            ),
            (
                None,
                &[SHA, "1.2.3", "1.2", "1", "latest"],
                Some(
                    "`latest` was built from `fedcba9`, which neither the clone nor the GitHub API knows; moved it",
                ),
            ),
        ];
        for (ancestry, tags, note) in cases {
            let found = Found {
                latest: Some(latest(ancestry)),
                ..found(On::Release("1.2.3"))
            };
            let plan = PublishPlan::new(&pushing(), found);
            assert_eq!(plan.tags.tags, tags, "{ancestry:?}");
            assert_eq!(plan.tags.latest, tags.contains(&"latest"), "{ancestry:?}");
            assert_eq!(
                plan.more_tags.contains(&"latest".to_owned()),
                tags.contains(&"latest")
            );
            assert_eq!(plan.tags.withheld.last().map(String::as_str), note);
        }
    }

    #[test]
    fn latest_is_compared_only_when_this_run_would_move_it_elsewhere() {
        let main = tags_on(On::Main);
        assert_eq!(latest_to_compare(true, &main, Some(NEWER)), Some(NEWER));
        // Built from this very commit (a re-run), in any case.
        let same = SHA.to_ascii_uppercase();
        assert_eq!(latest_to_compare(true, &main, Some(&same)), None);
        assert_eq!(latest_to_compare(false, &main, Some(NEWER)), None);
        assert_eq!(latest_to_compare(true, &main, None), None);
        let branch = tags_on(On::Branch);
        assert_eq!(latest_to_compare(true, &branch, Some(NEWER)), None);
    }

    #[test]
    fn push_false_and_push_by_digest_write_no_further_tag() {
        let local = Asked {
            push: false,
            ..pushing()
        };
        let plan = PublishPlan::new(&local, found(On::Release("1.2.3")));
        assert_eq!(plan.push, Push::Nothing);
        // Still the tags a push would give, for the outputs and summary.
        assert_eq!(plan.tags.tags, [SHA, "1.2.3", "1.2", "1", "latest"]);
        assert!(plan.more_tags.is_empty());
        assert!(!plan.mirror);

        let by_digest = Asked {
            by_digest: true,
            ..pushing()
        };
        let plan = PublishPlan::new(&by_digest, found(On::Release("1.2.3")));
        assert_eq!(plan.push, Push::ByDigest);
        assert!(plan.tags.tags.is_empty());
        assert!(!plan.tags.latest);
        assert!(plan.more_tags.is_empty());
        assert!(!plan.mirror);

        let plan = PublishPlan::new(&pushing(), found(On::Release("1.2.3")));
        assert!(plan.mirror);
    }

    #[test]
    fn what_gets_signed() {
        let cases: [(&str, Arrange, Signing); 6] = [
            ("no key", |_, _| {}, Signing::Unsigned),
            (
                "a key, built",
                |a, _| a.signs = true,
                Signing::Digest { attest: Attest::No },
            ),
            (
                "a key and an SBOM, built",
                |a, _| {
                    a.signs = true;
                    a.sbom = true;
                },
                Signing::Digest {
                    attest: Attest::Sbom,
                },
            ),
            (
                "a key and an SBOM, the SHA tag reused",
                |a, f| {
                    a.signs = true;
                    a.sbom = true;
                    f.existing = Some(manifest("sha256:there"));
                },
                Signing::Digest {
                    attest: Attest::NoScan,
                },
            ),
            (
                "a key, released again",
                |a, f| {
                    a.signs = true;
                    a.sbom = true;
                    f.earlier = Some(earlier("abc1234"));
                },
                Signing::Digest {
                    attest: Attest::NoScan,
                },
            ),
            (
                "a key, `push: false`",
                |a, _| {
                    a.signs = true;
                    a.push = false;
                },
                Signing::NothingPushed,
            ),
        ];
        for (case, arrange, expected) in cases {
            let (mut asked, mut found) = (pushing(), found(On::Main));
            arrange(&mut asked, &mut found);
            assert_eq!(PublishPlan::new(&asked, found).signing, expected, "{case}");
        }
    }

    #[test]
    fn several_platforms_release_one_index_under_every_tag() {
        let asked = Asked {
            platforms: 2,
            signs: true,
            ..pushing()
        };
        let found_index = Found {
            earlier: Some(earlier_index("abc1234", &["linux/amd64", "linux/arm64"])),
            ..found(On::Release("2.0.0"))
        };
        let plan = PublishPlan::new(&asked, found_index);
        assert_eq!(origin(&plan), "release again abc1234");
        assert_eq!(plan.push, Push::ShaTag);
        assert_eq!(plan.more_tags, ["2.0.0", "2.0", "2", "latest"]);
        assert_eq!(plan.signing, Signing::Digest { attest: Attest::No });
        assert!(plan.notes.is_empty());

        let why = "`abc1234` has this build's key but can't be released again: its linux/arm64 image is gone";
        let passed_over = Found {
            passed_over: vec![why.into()],
            ..found(On::Release("2.0.0"))
        };
        let plan = PublishPlan::new(&asked, passed_over);
        assert_eq!(origin(&plan), "build");
        assert_eq!(plan.more_tags, ["2.0.0", "2.0", "2", "latest"]);
        assert_eq!(plan.notes, [why]);
    }

    #[test]
    fn the_build_reuses_the_cache_of_the_tags_it_moves() {
        let cache_of = |asked: &Asked, on| match PublishPlan::new(asked, found(on)).origin {
            Origin::Build(build) => build.cache_from,
            other => panic!("built nothing: {other:?}"),
        };
        assert_eq!(
            cache_of(&pushing(), On::Release("1.2.3")),
            [
                format!("{IMAGE}:latest"),
                format!("{IMAGE}:1.2.3"),
                format!("{IMAGE}:1.2"),
                format!("{IMAGE}:1")
            ]
        );
        assert_eq!(
            cache_of(&pushing(), On::Branch),
            [format!("{IMAGE}:latest")]
        );
        let given = Asked {
            cache_from: vec!["registry.example/acme/cache:main".into()],
            ..pushing()
        };
        assert_eq!(
            cache_of(&given, On::Main),
            ["registry.example/acme/cache:main"]
        );
        let uncached = Asked {
            cache: false,
            ..given
        };
        assert!(cache_of(&uncached, On::Main).is_empty());
    }
}
