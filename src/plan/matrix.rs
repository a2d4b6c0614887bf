//! The `matrix` output: one object per selected image (pure).

use serde::Serialize;

use crate::plan::image::Image;
use crate::plan::select::Selected;

/// Reasons beyond this many are counted, not listed, to keep the matrix small.
const REASONS_SHOWN: usize = 3;
/// The `matrix-tier-N` outputs: a workflow declares one job per tier, so
/// their number is fixed. The last one also holds every deeper tier, whose
/// images then wait for their bases through `publish`'s `depends-on`.
pub const TIER_OUTPUTS: usize = 8;

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

/// The release a matrix builds: its version, if any, and whether `latest`
/// stays where it is.
pub struct Release<'a> {
    pub version: Option<&'a semver::Version>,
    pub prerelease: bool,
}

pub fn entries(images: &[Image], selected: &[Selected], release: &Release<'_>) -> Vec<Entry> {
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
                version: release.version.map(ToString::to_string),
                prerelease: release.prerelease,
            }
        })
        .collect()
}

/// `entries` split by tier for the `matrix-tier-N` outputs: always
/// `TIER_OUTPUTS` lists (empty ones too, so every `fromJSON` parses), tiers
/// beyond the last in the last.
pub fn tiers(entries: &[Entry]) -> Vec<Vec<&Entry>> {
    let mut tiers = vec![Vec::new(); TIER_OUTPUTS];
    for entry in entries {
        tiers[entry.tier.min(TIER_OUTPUTS - 1)].push(entry);
    }
    tiers
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

    fn entry(name: &str, tier: usize) -> Entry {
        Entry {
            path: format!("ops/docker/{name}"),
            basename: name.into(),
            name: name.into(),
            image: format!("acme/{name}"),
            dockerfile: format!("ops/docker/{name}/Dockerfile"),
            context: format!("ops/docker/{name}"),
            reason: String::new(),
            depends_on: Vec::new(),
            tier,
            version: None,
            prerelease: false,
        }
    }

    #[test]
    fn tiers_are_a_fixed_set_and_the_last_takes_deeper_ones() {
        let entries: Vec<Entry> = [("a", 0), ("b", 0), ("c", 1), ("d", 7), ("e", 9)]
            .iter()
            .map(|(name, tier)| entry(name, *tier))
            .collect();
        let names: Vec<Vec<&str>> = tiers(&entries)
            .iter()
            .map(|t| t.iter().map(|e| e.name.as_str()).collect())
            .collect();
        let none: Vec<&str> = Vec::new();
        assert_eq!(
            names,
            [
                vec!["a", "b"],
                vec!["c"],
                none.clone(),
                none.clone(),
                none.clone(),
                none.clone(),
                none,
                vec!["d", "e"]
            ]
        );
    }

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
            version: Some(&version),
            prerelease: true,
        };
        let json = serde_json::to_value(entries(&images, &selected, &release)).unwrap();
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
