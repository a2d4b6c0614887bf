//! The `matrix` output: one object per selected image (pure).

use serde::Serialize;

use crate::plan::image::Image;
use crate::plan::select::Selected;

/// Reasons beyond this many are counted, not listed, to keep the matrix small.
const REASONS_SHOWN: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Entry {
    pub path: String,
    pub basename: String,
    pub name: String,
    pub image: String,
    pub dockerfile: String,
    pub context: String,
    pub reason: String,
    pub depends_on: Vec<String>,
    pub tier: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Always present, so `fromJSON` workflows can pass it to `publish`.
    pub prerelease: bool,
}

/// The release a matrix builds, if any.
pub struct Release<'a> {
    pub version: &'a semver::Version,
    pub prerelease: bool,
}

pub fn entries(
    images: &[Image],
    selected: &[Selected],
    release: Option<&Release<'_>>,
) -> Vec<Entry> {
    selected
        .iter()
        .map(|s| {
            let image = &images[s.image];
            Entry {
                path: image.path.clone(),
                basename: image.basename.clone(),
                name: image.name.clone(),
                image: image.reference.familiar(),
                dockerfile: image.dockerfile.clone(),
                context: image.path.clone(),
                reason: reason(&s.reasons),
                depends_on: s
                    .depends_on
                    .iter()
                    .map(|&d| images[d].name.clone())
                    .collect(),
                tier: s.tier,
                version: release.map(|r| r.version.to_string()),
                prerelease: release.is_some_and(|r| r.prerelease),
            }
        })
        .collect()
}

fn reason(reasons: &[String]) -> String {
    let mut text = reasons
        .iter()
        .take(REASONS_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > REASONS_SHOWN {
        text.push_str(&format!(" (+{} more)", reasons.len() - REASONS_SHOWN));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::image::Destination;

    #[test]
    fn entry_shape_is_what_workflows_read() {
        let dest = Destination {
            registry: "docker.io".into(),
            namespace: "webgrip".into(),
        };
        let images = vec![
            Image::new(
                "ops/docker",
                "base",
                "FROM scratch",
                &dest,
                &Default::default(),
            )
            .unwrap(),
            Image::new(
                "ops/docker",
                "helm-deploy",
                "FROM webgrip/base",
                &dest,
                &Default::default(),
            )
            .unwrap(),
        ];
        let selected = vec![Selected {
            image: 1,
            reasons: (1..=5).map(|i| format!("changed `f{i}`")).collect(),
            depends_on: vec![0],
            tier: 1,
        }];
        let version = semver::Version::parse("1.2.3").unwrap();
        let release = Release {
            version: &version,
            prerelease: true,
        };
        let json = serde_json::to_value(entries(&images, &selected, Some(&release))).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "path": "ops/docker/helm-deploy",
                "basename": "helm-deploy",
                "name": "helm-deploy",
                "image": "webgrip/helm-deploy",
                "dockerfile": "ops/docker/helm-deploy/Dockerfile",
                "context": "ops/docker/helm-deploy",
                "reason": "changed `f1`; changed `f2`; changed `f3` (+2 more)",
                "depends-on": ["base"],
                "tier": 1,
                "version": "1.2.3",
                "prerelease": true
            }])
        );
    }
}
