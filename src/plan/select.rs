//! Changed paths → the images to build, in dependency order (pure).

use std::collections::{BTreeMap, HashMap};

use crate::plan::filter::{Globs, PathFilter};
use crate::plan::image::Image;
use crate::reference::Reference;

/// What the event and its changes ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every image (a schedule, a dispatch, a `v1.2.3` tag, an unknowable range).
    All { reason: String },
    /// One image, by name, released at a version (`<image>-v1.2.3`).
    Release { image: String, reason: String },
    /// The images that own these changed files.
    Changes { files: Vec<String> },
    /// No image (a deleted branch or tag).
    Nothing { reason: String },
}

#[derive(Debug, Clone)]
pub struct Rules {
    pub filter: PathFilter,
    pub rebuild_all_on: Globs,
    /// The commit this run pushes as a tag: a `FROM` naming it follows its
    /// sibling like `latest` does.
    pub sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Index into the images slice.
    pub image: usize,
    pub reasons: Vec<String>,
    /// Selected images it builds on (indexes): the bases this run pushes
    /// first, so the ones to wait for. An unchanged base is already pushed.
    pub depends_on: Vec<usize>,
    /// 0 for images with no base in `depends_on`, else one more than their
    /// deepest base: build tier by tier.
    pub tier: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error(
        "the images {0:?} build on each other in a cycle; a Dockerfile can't build FROM an image that builds FROM it — fix the FROM lines"
    )]
    Cycle(Vec<String>),
    #[error(
        "the release tag names image {0:?}, which is not an image directory under the context root; tag as `<image>-v<semver>` with one of the image names"
    )]
    UnknownImage(String),
}

pub fn select(
    images: &[Image],
    trigger: &Trigger,
    rules: &Rules,
) -> Result<Vec<Selected>, SelectError> {
    let deps = dependencies(images, rules.sha.as_deref());
    // Over every dependency: finds cycles, and orders the walk that adds dependents.
    let depth = tiers(images, &deps)?;
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    match trigger {
        Trigger::Nothing { .. } => {}
        Trigger::All { reason } => select_all(images, rules, reason, &mut reasons),
        Trigger::Release { image, reason } => {
            let index = images
                .iter()
                .position(|i| &i.name == image)
                .ok_or_else(|| SelectError::UnknownImage(image.clone()))?;
            reasons.entry(index).or_default().push(reason.clone());
        }
        Trigger::Changes { files } => {
            let files: Vec<&String> = files.iter().filter(|f| rules.filter.accepts(f)).collect();
            let rebuild_all = files.iter().find_map(|file| {
                rules
                    .rebuild_all_on
                    .first_match(file)
                    .map(|glob| format!("`{file}` matches rebuild-all-on `{glob}`"))
            });
            match rebuild_all {
                Some(reason) => select_all(images, rules, &reason, &mut reasons),
                None => {
                    let owners = Owners::new(images);
                    for file in files {
                        if let Some(index) = owners.of(file) {
                            reasons
                                .entry(index)
                                .or_default()
                                .push(format!("changed `{file}`"));
                        }
                    }
                }
            }
        }
    }
    // A release versions one image; its dependents were built on their own push.
    if !matches!(trigger, Trigger::Release { .. }) {
        add_dependents(images, &deps, &depth, &mut reasons);
    }
    let in_run = within(&deps, &reasons);
    let run_tiers = tiers(images, &in_run)?;
    let mut selected: Vec<Selected> = reasons
        .into_iter()
        .map(|(image, reasons)| Selected {
            image,
            reasons,
            depends_on: in_run[image].clone(),
            tier: run_tiers[image],
        })
        .collect();
    selected.sort_by(|a, b| (a.tier, &images[a.image].path).cmp(&(b.tier, &images[b.image].path)));
    Ok(selected)
}

fn select_all(
    images: &[Image],
    rules: &Rules,
    reason: &str,
    reasons: &mut BTreeMap<usize, Vec<String>>,
) {
    for (index, image) in images.iter().enumerate() {
        if rules.filter.accepts(&image.dockerfile) {
            reasons.entry(index).or_default().push(reason.to_owned());
        }
    }
}

/// Image directories by path, to find a file's image by its ancestors.
struct Owners<'a>(HashMap<&'a str, usize>);

impl<'a> Owners<'a> {
    fn new(images: &'a [Image]) -> Self {
        Owners(
            images
                .iter()
                .enumerate()
                .map(|(i, image)| (image.path.as_str(), i))
                .collect(),
        )
    }

    /// The deepest image directory holding `file` (nesting is possible
    /// with `max-depth` > 1): its parent directories, nearest first.
    fn of(&self, file: &str) -> Option<usize> {
        let mut dir = file;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if let Some(&index) = self.0.get(parent) {
                return Some(index);
            }
            dir = parent;
        }
        None
    }
}

/// Each image's dependencies restricted to the images selected: what this
/// run builds before it.
fn within(deps: &[Vec<usize>], selected: &BTreeMap<usize, Vec<String>>) -> Vec<Vec<usize>> {
    deps.iter()
        .map(|d| {
            d.iter()
                .copied()
                .filter(|i| selected.contains_key(i))
                .collect()
        })
        .collect()
}

/// Whether a `FROM` takes what a run pushing `sha` moves of its sibling:
/// no tag, `latest`, or that commit's SHA tag. A version or a digest is a
/// pin, which rebuilding the sibling changes nothing for.
pub fn follows(base: &Reference, sha: Option<&str>) -> bool {
    base.digest().is_none()
        && match base.tag() {
            None | Some("latest") => true,
            Some(tag) => sha.is_some_and(|sha| sha.eq_ignore_ascii_case(tag)),
        }
}

/// For each image, the images of this repository its `FROM` lines follow
/// (see `follows`): one name lookup per base, not a comparison of every
/// pair, since a monorepo can hold a thousand images.
fn dependencies(images: &[Image], sha: Option<&str>) -> Vec<Vec<usize>> {
    let by_name: HashMap<String, usize> = images
        .iter()
        .enumerate()
        .map(|(i, image)| (image.reference.name(), i))
        .collect();
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut deps: Vec<usize> = image
                .bases
                .iter()
                .filter(|base| follows(base, sha))
                .filter_map(|base| by_name.get(&base.name()).copied())
                .filter(|&j| j != i)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect()
}

fn tiers(images: &[Image], deps: &[Vec<usize>]) -> Result<Vec<usize>, SelectError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done(usize),
    }
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Result<usize, Vec<usize>> {
        match marks[i] {
            Mark::Done(tier) => return Ok(tier),
            Mark::Visiting => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                return Err(stack[start..].to_vec());
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        stack.push(i);
        let mut tier = 0;
        for &d in &deps[i] {
            tier = tier.max(visit(d, deps, marks, stack)? + 1);
        }
        stack.pop();
        marks[i] = Mark::Done(tier);
        Ok(tier)
    }
    let mut marks = vec![Mark::New; images.len()];
    (0..images.len())
        .map(|i| {
            visit(i, deps, &mut marks, &mut Vec::new()).map_err(|cycle| {
                SelectError::Cycle(cycle.iter().map(|&c| images[c].name.clone()).collect())
            })
        })
        .collect()
}

/// An image is rebuilt when an image it builds on is, so that it picks up
/// the new base; walking by tier reaches chains of any length in one pass.
fn add_dependents(
    images: &[Image],
    deps: &[Vec<usize>],
    tiers: &[usize],
    reasons: &mut BTreeMap<usize, Vec<String>>,
) {
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by_key(|&i| tiers[i]);
    for i in order {
        let rebuilt: Vec<String> = deps[i]
            .iter()
            .filter(|d| reasons.contains_key(d))
            .map(|&d| format!("base image `{}` is rebuilt", images[d].name))
            .collect();
        if !rebuilt.is_empty() {
            reasons.entry(i).or_default().extend(rebuilt);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::image::Destination;

    const SHA: &str = "8272236a3c3f0a9fd1d2b0e3b5e2f2d0c5a3e1f4";

    fn images(specs: &[(&str, &str)]) -> Vec<Image> {
        let dest = Destination {
            registry: "docker.io".into(),
            namespace: "acme".into(),
        };
        specs
            .iter()
            .map(|(name, from)| {
                Image::new("ops/docker", name, from, &dest, &Default::default()).unwrap()
            })
            .collect()
    }

    fn rules(include: &[&str], exclude: &[&str], all_on: &[&str]) -> Rules {
        let g = |input, list: &[&str]| {
            Globs::new(
                input,
                &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        Rules {
            filter: PathFilter::new(g("include", include), g("exclude", exclude)),
            rebuild_all_on: g("rebuild-all-on", all_on),
            sha: Some(SHA.into()),
        }
    }

    fn names(images: &[Image], selected: &[Selected]) -> Vec<String> {
        selected
            .iter()
            .map(|s| images[s.image].name.clone())
            .collect()
    }

    fn changes(files: &[&str]) -> Trigger {
        Trigger::Changes {
            files: files.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn changed_files_select_their_image_once() {
        let imgs = images(&[
            ("a", "FROM scratch"),
            ("b", "FROM scratch"),
            ("c", "FROM scratch"),
        ]);
        let picked = select(
            &imgs,
            &changes(&[
                "ops/docker/a/Dockerfile",
                "ops/docker/a/x",
                "README.md",
                "ops/docker/c/y",
            ]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["a", "c"]);
        assert_eq!(
            picked[0].reasons,
            [
                "changed `ops/docker/a/Dockerfile`",
                "changed `ops/docker/a/x`"
            ]
        );
    }

    #[test]
    fn exclude_drops_files_and_include_limits_them() {
        let imgs = images(&[("a", "FROM scratch"), ("b", "FROM scratch")]);
        let picked = select(
            &imgs,
            &changes(&["ops/docker/a/README.md", "ops/docker/b/main.sh"]),
            &rules(&[], &["**/*.md"], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["b"]);
        let picked = select(
            &imgs,
            &Trigger::All {
                reason: "schedule".into(),
            },
            &rules(&["ops/docker/a/**"], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["a"]);
    }

    #[test]
    fn rebuild_all_on_selects_everything_and_says_why() {
        let imgs = images(&[("a", "FROM scratch"), ("b", "FROM scratch")]);
        let picked = select(
            &imgs,
            &changes(&["ci/base.env"]),
            &rules(&[], &[], &["ci/**"]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["a", "b"]);
        assert_eq!(
            picked[1].reasons,
            ["`ci/base.env` matches rebuild-all-on `ci/**`"]
        );
    }

    #[test]
    fn dependents_follow_their_base_and_are_ordered_by_tier() {
        let imgs = images(&[
            ("app", "FROM acme/runtime:latest"),
            ("base", "FROM scratch"),
            ("runtime", "FROM docker.io/acme/base\n"),
            ("other", "FROM scratch"),
        ]);
        let picked = select(
            &imgs,
            &changes(&["ops/docker/base/Dockerfile"]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["base", "runtime", "app"]);
        assert_eq!(picked.iter().map(|s| s.tier).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(picked[2].reasons, ["base image `runtime` is rebuilt"]);
        assert_eq!(picked[2].depends_on, [2]);
    }

    #[test]
    fn an_unchanged_base_is_not_waited_for() {
        let imgs = images(&[("app", "FROM acme/base"), ("base", "FROM scratch")]);
        let picked = select(
            &imgs,
            &changes(&["ops/docker/app/x"]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["app"]);
        assert_eq!(picked[0].depends_on, Vec::<usize>::new());
        assert_eq!(picked[0].tier, 0);
    }

    #[test]
    fn a_pinned_sibling_is_no_dependency() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let imgs = images(&[
            ("rust-ci-runner", "FROM scratch"),
            ("tauri-ci-runner", "FROM acme/rust-ci-runner:1.3.0"),
            ("techdocs-builder", "FROM scratch"),
            (
                "mkdocs-runner",
                &format!("FROM acme/techdocs-builder:1.2.7@{digest}"),
            ),
            ("app", &format!("FROM acme/rust-ci-runner:{SHA}")),
            ("web", "FROM acme/techdocs-builder:latest"),
            // A digest pins, with no tag or with one that alone would follow.
            ("digest-only", &format!("FROM acme/rust-ci-runner@{digest}")),
            (
                "latest-and-digest",
                &format!("FROM acme/techdocs-builder:latest@{digest}"),
            ),
        ]);
        let picked = select(
            &imgs,
            &changes(&[
                "ops/docker/rust-ci-runner/Dockerfile",
                "ops/docker/techdocs-builder/Dockerfile",
            ]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(
            names(&imgs, &picked),
            ["rust-ci-runner", "techdocs-builder", "app", "web"]
        );
        assert_eq!(picked[2].depends_on, [0]);
        assert_eq!(picked[3].depends_on, [2]);
        assert_eq!(
            picked.iter().map(|s| s.tier).collect::<Vec<_>>(),
            [0, 0, 1, 1]
        );
    }

    #[test]
    fn cycles_are_an_error_naming_the_images() {
        let imgs = images(&[("a", "FROM acme/b"), ("b", "FROM acme/a")]);
        let err = select(&imgs, &changes(&[]), &rules(&[], &[], &[])).unwrap_err();
        assert_eq!(err, SelectError::Cycle(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn release_of_one_image_and_unknown_names() {
        let imgs = images(&[("a", "FROM scratch"), ("b", "FROM scratch")]);
        let release = Trigger::Release {
            image: "b".into(),
            reason: "tag b-v1.0.0".into(),
        };
        let picked = select(&imgs, &release, &rules(&[], &[], &[])).unwrap();
        assert_eq!(names(&imgs, &picked), ["b"]);
        let unknown = Trigger::Release {
            image: "zz".into(),
            reason: String::new(),
        };
        assert_eq!(
            select(&imgs, &unknown, &rules(&[], &[], &[])).unwrap_err(),
            SelectError::UnknownImage("zz".into())
        );
    }

    #[test]
    fn a_file_belongs_to_its_own_directory_not_a_prefix_of_it() {
        let imgs = images(&[("app", "FROM scratch"), ("app-two", "FROM scratch")]);
        let picked = select(
            &imgs,
            &changes(&["ops/docker/app-two/x", "ops/docker/app"]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["app-two"]);
    }

    #[test]
    fn nested_images_belong_to_the_deepest_directory() {
        let dest = Destination {
            registry: "docker.io".into(),
            namespace: "acme".into(),
        };
        let imgs = vec![
            Image::new(
                "ops/docker",
                "team",
                "FROM scratch",
                &dest,
                &Default::default(),
            )
            .unwrap(),
            Image::new(
                "ops/docker",
                "team/api",
                "FROM scratch",
                &dest,
                &Default::default(),
            )
            .unwrap(),
        ];
        let picked = select(
            &imgs,
            &changes(&["ops/docker/team/api/main.go"]),
            &rules(&[], &[], &[]),
        )
        .unwrap();
        assert_eq!(names(&imgs, &picked), ["team/api"]);
    }
}
