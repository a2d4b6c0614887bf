//! The build key (pure): one digest over everything an image build's
//! result depends on that the run controls — the context as the engine
//! receives it (Dockerfile included), the stage, arguments, labels,
//! platform, network, builder, and every base image by digest. Two builds
//! with one key make the same image but for the per-commit labels, so a
//! new commit of an unchanged image directory needs no build at all. An
//! index of several platforms carries the key of its children's keys.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// The manifest annotation that carries the key of the build that made it.
pub const ANNOTATION: &str = "io.github.webgrip.registry-action.build-key";

/// Labels that change with every commit or release: not build inputs.
const PER_COMMIT_LABELS: [&str; 3] = [
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.version",
];

pub struct Inputs<'a> {
    /// The context's identity (`engine::ContextPlan::identity`).
    pub context: &'a str,
    pub stage: Option<&'a str>,
    pub build_args: &'a HashMap<String, String>,
    pub labels: &'a HashMap<String, String>,
    pub platform: Option<&'a str>,
    pub network: Option<&'a str>,
    /// `buildkit` or `legacy`: they make different images.
    pub builder: &'a str,
    pub inline_cache: bool,
    /// Secret ids only: like BuildKit's cache, a new secret value alone
    /// doesn't make a new image.
    pub secret_ids: &'a [String],
    /// Every image the build reads (bases, `--from` images, the
    /// `# syntax=` frontend), as written → the digest it names now.
    pub bases: &'a BTreeMap<String, String>,
}

/// Maps are sorted and field order fixed, so equal inputs serialise to
/// equal bytes.
#[derive(Serialize)]
struct Canonical<'a> {
    version: u32,
    context: &'a str,
    stage: Option<&'a str>,
    build_args: BTreeMap<&'a str, &'a str>,
    labels: BTreeMap<&'a str, &'a str>,
    platform: Option<&'a str>,
    network: Option<&'a str>,
    builder: &'a str,
    inline_cache: bool,
    secret_ids: Vec<&'a str>,
    bases: &'a BTreeMap<String, String>,
}

/// `sha256:<hex>` over the canonical form of `inputs`.
pub fn key(inputs: &Inputs<'_>) -> String {
    let mut secret_ids: Vec<&str> = inputs.secret_ids.iter().map(String::as_str).collect();
    secret_ids.sort_unstable();
    let canonical = Canonical {
        version: 1,
        context: inputs.context,
        stage: inputs.stage,
        build_args: sorted(inputs.build_args),
        labels: sorted(inputs.labels)
            .into_iter()
            .filter(|(k, _)| !PER_COMMIT_LABELS.contains(k))
            .collect(),
        platform: inputs.platform,
        network: inputs.network,
        builder: inputs.builder,
        inline_cache: inputs.inline_cache,
        secret_ids,
        bases: inputs.bases,
    };
    let bytes = serde_json::to_vec(&canonical).expect("strings and booleans always serialise");
    crate::registry::sha256_digest(&bytes)
}

/// The key of an index over images of these keys, in its order: each
/// child's key names its platform, so the same builds for the same
/// platforms, listed alike, give the same key.
pub fn index_key(children: &[String]) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        version: u32,
        children: &'a [String],
    }
    let bytes = serde_json::to_vec(&Canonical {
        version: 1,
        children,
    })
    .expect("strings always serialise");
    crate::registry::sha256_digest(&bytes)
}

fn sorted(map: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        build_args: HashMap<String, String>,
        labels: HashMap<String, String>,
        secret_ids: Vec<String>,
        bases: BTreeMap<String, String>,
    }

    fn owned() -> Owned {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        Owned {
            build_args: map(&[("A", "1"), ("B", "2")]),
            labels: map(&[
                ("org.opencontainers.image.revision", "abc"),
                ("org.opencontainers.image.created", "2026-01-01T00:00:00Z"),
                ("org.opencontainers.image.title", "app"),
                ("team", "infra"),
            ]),
            secret_ids: vec!["npm".into(), "aws".into()],
            bases: BTreeMap::from([("alpine:3".into(), "sha256:aa".into())]),
        }
    }

    fn inputs(o: &Owned) -> Inputs<'_> {
        Inputs {
            context: "sha256:cc",
            stage: None,
            build_args: &o.build_args,
            labels: &o.labels,
            platform: Some("linux/amd64"),
            network: None,
            builder: "buildkit",
            inline_cache: true,
            secret_ids: &o.secret_ids,
            bases: &o.bases,
        }
    }

    #[test]
    fn per_commit_labels_and_order_leave_the_key_alone() {
        let first = owned();
        let mut second = owned();
        second
            .labels
            .insert("org.opencontainers.image.revision".into(), "def".into());
        second
            .labels
            .insert("org.opencontainers.image.version".into(), "1.2.3".into());
        second.secret_ids.reverse();
        let key = key(&inputs(&first));
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert_eq!(key, super::key(&inputs(&second)));
    }

    #[test]
    fn every_build_input_changes_the_key() {
        let o = owned();
        let base = key(&inputs(&o));
        let mut changed_args = owned();
        changed_args.build_args.insert("A".into(), "9".into());
        let mut changed_label = owned();
        changed_label.labels.insert("team".into(), "web".into());
        let mut changed_base = owned();
        changed_base
            .bases
            .insert("alpine:3".into(), "sha256:bb".into());
        let mut more_secrets = owned();
        more_secrets.secret_ids.push("gh".into());
        for (what, other) in [
            ("build-args", key(&inputs(&changed_args))),
            ("labels", key(&inputs(&changed_label))),
            ("bases", key(&inputs(&changed_base))),
            ("secret ids", key(&inputs(&more_secrets))),
            (
                "context",
                key(&Inputs {
                    context: "sha256:dd",
                    ..inputs(&o)
                }),
            ),
            (
                "stage",
                key(&Inputs {
                    stage: Some("test"),
                    ..inputs(&o)
                }),
            ),
            (
                "platform",
                key(&Inputs {
                    platform: Some("linux/arm64"),
                    ..inputs(&o)
                }),
            ),
            (
                "network",
                key(&Inputs {
                    network: Some("host"),
                    ..inputs(&o)
                }),
            ),
            (
                "builder",
                key(&Inputs {
                    builder: "legacy",
                    ..inputs(&o)
                }),
            ),
            (
                "cache",
                key(&Inputs {
                    inline_cache: false,
                    ..inputs(&o)
                }),
            ),
        ] {
            assert_ne!(other, base, "{what}");
        }
    }

    #[test]
    fn an_index_key_follows_its_children_and_their_order() {
        let (amd, arm) = ("sha256:aa".to_owned(), "sha256:bb".to_owned());
        let both = index_key(&[amd.clone(), arm.clone()]);
        assert!(both.starts_with("sha256:") && both.len() == 71, "{both}");
        assert_eq!(both, index_key(&[amd.clone(), arm.clone()]));
        assert_ne!(both, index_key(&[arm.clone(), amd.clone()]));
        assert_ne!(both, index_key(std::slice::from_ref(&amd)));
        assert_ne!(both, index_key(&[amd, "sha256:cc".into()]));
    }
}
