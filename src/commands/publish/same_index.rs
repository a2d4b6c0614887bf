//! Several platforms, the same build: an index an earlier commit pushed
//! with this build's key stands in for the build only once what it lists
//! is checked again — one image per platform asked, in that order, each
//! still in the repository, each of the key this run computes for its
//! platform, each config declaring that platform. The checks are pure; the
//! reads are `children_of`'s.

use crate::build_key::ANNOTATION;
use crate::engine::manifest_annotation;
use crate::oci::{Descriptor, children};
use crate::platform::Platform;
use crate::registry::Manifest;
use crate::registry::contents::Contents;

use super::Target;
use super::layers::Pushed;
use super::unchanged::Reusable;

/// Whether an index of this build's key can be released again.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Its images, in the order of the platforms asked.
    Same(Vec<Reusable>),
    /// Why not, for the summary.
    Differs(String),
}

/// Each image `index` lists, read and checked against the platform asked
/// in its place and that platform's key (`keys`, in `target.platforms`'
/// order).
pub(super) async fn children_of(
    target: &Target,
    index: &Manifest,
    keys: &[String],
) -> anyhow::Result<Verdict> {
    let entries = match listed(&index.bytes, &target.platforms) {
        Ok(entries) => entries,
        Err(why) => return Ok(Verdict::Differs(why)),
    };
    // Read side by side; judged in order, as if read one after another.
    let reads = entries
        .into_iter()
        .zip(&target.platforms)
        .zip(keys)
        .map(|((entry, asked), key)| child(target, entry, asked, key));
    let mut images = Vec::with_capacity(keys.len());
    for read in futures_util::future::join_all(reads).await {
        match read? {
            Ok(image) => images.push(image),
            Err(why) => return Ok(Verdict::Differs(why)),
        }
    }
    Ok(Verdict::Same(images))
}

/// The image `entry` names, read and checked against the platform `asked`
/// in its place and that platform's `key`; or why it can't stand in.
async fn child(
    target: &Target,
    entry: Descriptor,
    asked: &Platform,
    key: &str,
) -> anyhow::Result<Result<Reusable, String>> {
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    // `latest`'s image of the first platform, read when resolving.
    let known = (target.image.latest.as_ref())
        .filter(|latest| latest.manifest.digest == entry.digest.as_str());
    let manifest = match known {
        Some(latest) => latest.manifest.clone(),
        None => match registry.manifest(repository, &entry.digest).await? {
            Some(manifest) => manifest,
            None => {
                return Ok(Err(format!(
                    "its `{asked}` image `{}` is no longer in the repository",
                    entry.digest
                )));
            }
        },
    };
    let config = match config_of(&manifest, asked, key) {
        Ok(config) => config,
        Err(why) => return Ok(Err(why)),
    };
    let config = match known {
        Some(latest) => latest.config.clone(),
        None => {
            registry
                .blob(repository, &config.digest, config.size)
                .await?
        }
    };
    Ok(declares(&config, asked).map(|()| Reusable {
        platform: entry.platform,
        image: Pushed { manifest, config },
        key: key.to_owned(),
    }))
}

/// The entries of `index`, one per platform `asked`, in that order, each
/// of a platform this tool knows: an index with another list (a platform
/// more or less, another order) is another build.
pub(super) fn listed(index: &[u8], asked: &[Platform]) -> Result<Vec<Descriptor>, String> {
    let entries = children(index).ok_or("it is not an index")?;
    let shown = || {
        asked
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fits = entries.len() == asked.len()
        && entries.iter().zip(asked).all(|(entry, asked)| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.serves(asked) && Platform::parse(&p.to_string()).is_ok())
        });
    if !fits {
        return Err(format!(
            "its {} entries are not one image each for {}, in that order",
            entries.len(),
            shown()
        ));
    }
    Ok(entries)
}

/// The config of `manifest`, the image listed for `asked`, when it is an
/// image of `key`.
pub(super) fn config_of(
    manifest: &Manifest,
    asked: &Platform,
    key: &str,
) -> Result<Descriptor, String> {
    let Ok(Contents::Image { config, .. }) = manifest.contents() else {
        return Err(format!(
            "its `{asked}` entry `{}` is not an image",
            manifest.digest
        ));
    };
    match manifest_annotation(&manifest.bytes, ANNOTATION) {
        Some(found) if found == key => Ok(config),
        Some(_) => Err(format!(
            "its `{asked}` image `{}` has another build key",
            manifest.digest
        )),
        None => Err(format!(
            "its `{asked}` image `{}` has no build key",
            manifest.digest
        )),
    }
}

/// Whether `config` declares the platform `asked` for.
pub(super) fn declares(config: &[u8], asked: &Platform) -> Result<(), String> {
    match Platform::of_config(config) {
        Some(declared) if declared.serves(asked) => Ok(()),
        _ => Err(format!("its `{asked}` image's config is not of `{asked}`")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const KEY: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn p(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// An index listing `entries` as (digest letter, platform value).
    fn index(entries: &[(char, serde_json::Value)]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(c, platform)| {
                let mut entry = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest(*c),
                    "size": 100,
                });
                if !platform.is_null() {
                    entry["platform"] = platform.clone();
                }
                entry
            })
            .collect();
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
    }

    fn of(os: &str, architecture: &str) -> serde_json::Value {
        json!({"os": os, "architecture": architecture})
    }

    #[test]
    fn an_index_fits_when_it_lists_the_platforms_asked_in_their_order() {
        let asked = [p("linux/amd64"), p("linux/arm64")];
        let fits = index(&[('a', of("linux", "amd64")), ('b', of("linux", "arm64"))]);
        let entries = listed(&fits, &asked).unwrap();
        let digests: Vec<String> = entries.iter().map(|e| e.digest.to_string()).collect();
        assert_eq!(digests, [digest('a'), digest('b')]);
        let variant = index(&[
            ('a', of("linux", "amd64")),
            (
                'b',
                json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
            ),
        ]);
        assert!(listed_ok(&variant, &asked), "arm64/v8 serves linux/arm64");

        let cases: [(&str, Vec<u8>); 6] = [
            (
                "reversed",
                index(&[('b', of("linux", "arm64")), ('a', of("linux", "amd64"))]),
            ),
            ("one platform less", index(&[('a', of("linux", "amd64"))])),
            (
                "one platform more",
                index(&[
                    ('a', of("linux", "amd64")),
                    ('b', of("linux", "arm64")),
                    ('c', of("linux", "s390x")),
                ]),
            ),
            (
                "an entry without a platform",
                index(&[('a', of("linux", "amd64")), ('b', serde_json::Value::Null)]),
            ),
            (
                "a platform no one builds for",
                index(&[
                    ('a', of("linux", "amd64")),
                    (
                        'b',
                        json!({"os": "linux", "architecture": "arm64", "variant": "v8`|x"}),
                    ),
                ]),
            ),
            (
                "an image manifest",
                br#"{"schemaVersion":2,"layers":[]}"#.to_vec(),
            ),
        ];
        for (case, bytes) in cases {
            assert!(!listed_ok(&bytes, &asked), "{case}");
        }
        assert_eq!(
            listed(&index(&[('a', of("linux", "amd64"))]), &asked).unwrap_err(),
            "its 1 entries are not one image each for `linux/amd64`, `linux/arm64`, in that order"
        );
    }

    fn listed_ok(bytes: &[u8], asked: &[Platform]) -> bool {
        listed(bytes, asked).is_ok()
    }

    fn image(annotations: serde_json::Value) -> Manifest {
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest('c'),
                "size": 7,
            },
            "layers": [],
            "annotations": annotations,
        }))
        .unwrap();
        Manifest {
            digest: crate::registry::sha256_digest(&bytes),
            bytes,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        }
    }

    #[test]
    fn a_child_stands_in_only_as_an_image_of_its_platforms_key() {
        let arm = p("linux/arm64");
        let same = image(json!({ANNOTATION: KEY}));
        assert_eq!(
            config_of(&same, &arm, KEY).unwrap().digest.to_string(),
            digest('c')
        );
        let other = image(json!({ANNOTATION: "sha256:2222"}));
        assert_eq!(
            config_of(&other, &arm, KEY).unwrap_err(),
            format!(
                "its `linux/arm64` image `{}` has another build key",
                other.digest
            )
        );
        let keyless = image(json!({}));
        assert_eq!(
            config_of(&keyless, &arm, KEY).unwrap_err(),
            format!(
                "its `linux/arm64` image `{}` has no build key",
                keyless.digest
            )
        );
        let nested = Manifest {
            bytes: index(&[('a', of("linux", "arm64"))]),
            ..image(json!({}))
        };
        assert!(
            config_of(&nested, &arm, KEY)
                .unwrap_err()
                .ends_with("is not an image")
        );
    }

    #[test]
    fn a_childs_config_must_declare_its_platform() {
        let arm = p("linux/arm64");
        let config = |value: serde_json::Value| serde_json::to_vec(&value).unwrap();
        assert_eq!(
            declares(&config(of("linux", "arm64")), &arm),
            Ok(()),
            "as asked"
        );
        for (case, bytes) in [
            ("another architecture", config(of("linux", "amd64"))),
            ("no platform", config(json!({"config": {}}))),
            ("not JSON", b"\xff".to_vec()),
        ] {
            assert_eq!(
                declares(&bytes, &arm),
                Err("its `linux/arm64` image's config is not of `linux/arm64`".into()),
                "{case}"
            );
        }
    }
}
