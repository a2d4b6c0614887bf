//! Each built image's layer analysis (`crate::layers`): read from the
//! bytes publish reads anyway, kept on the manifest, set against the
//! image's `latest`, and held to `max-image-size`, `min-efficiency` and
//! `max-growth` under `size-policy`.
//!
//! Where the layers' bytes come from:
//! - the export (classic store, 20.10, and the containerd store when we
//!   push): the analysis taps the export as the converter reads it
//!   ([`crate::engine::LayerTap`]); layers the registry holds already
//!   are not converted but still read from the saved export for it;
//! - an image the engine's BuildKit pushed itself: publish has read no
//!   layer, so each layer blob is streamed back from the registry once,
//!   gunzipped, and only its tar headers kept.
//!
//! A layer that can't be analysed never fails the publish by itself: the
//! summary says why there are no figures, and only `size-policy: fail`
//! with a bound set makes the missing figure an error.

use std::collections::BTreeMap;

use anyhow::bail;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use crate::actions::outputs::Outputs;
use crate::actions::workflow::{Annotation, Level};
use crate::cli::{ImageGrowth, SizeArgs, SizePolicy};
use crate::commands::Session;
use crate::engine::{LayerTap, OciImage, Source, manifest_annotation, pushed_layers};
use crate::layers::tap::Tap;
use crate::layers::{Analysis, History, Limits, layer_instructions};
use crate::plan::dockerfile::{created_by_line, created_by_step};
use crate::platform::Platform;
use crate::registry::Registry;
use crate::report::publish_layers::{Change, Figures, Growth, ImageLayers};
use crate::units::bytes;

use super::Target;
use super::layers::{Pushed, pushed};
use super::platforms::Exported;
use crate::report::publish::Published;

/// The manifest annotation holding our figures, so the next publish reads
/// `latest`'s without reading its layers.
pub(super) const FIGURES: &str = "io.github.webgrip.registry-action.layers";
/// Set (to anything) by the publish bench only, to measure what the
/// analysis costs; not an input.
const BENCH_OFF: &str = "REGISTRY_ACTION_BENCH_NO_LAYER_ANALYSIS";

/// What the annotation holds: uncompressed sizes.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Kept {
    size: u64,
    layers: Vec<u64>,
    wasted: u64,
    efficiency: f64,
}

impl LayerTap for Tap {
    fn begin(&mut self, member: &str) {
        Tap::begin(self, member);
    }
    fn bytes(&mut self, chunk: &[u8]) {
        Tap::bytes(self, chunk);
    }
    fn end(&mut self) {
        Tap::end(self);
    }
    fn order(&mut self, members: &[String]) {
        Tap::order(self, members);
    }
}

/// A tap for the export, unless the bench turned the analysis off.
pub(super) fn tap() -> Option<Tap> {
    std::env::var_os(BENCH_OFF)
        .is_none()
        .then(|| Tap::start(Limits::default()))
}

/// One image's analysis, or why there is none.
pub(super) type Analysed = Option<Result<Analysis, String>>;

/// The figures of a tapped export, its config giving the instructions.
pub(super) fn finish_tap(tap: Option<Tap>, image: &OciImage) -> Analysed {
    let tap = tap?;
    Some(
        history(image)
            .and_then(|history| {
                tap.finish(&history, Limits::default())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("the layers couldn't be analysed: {e}")),
    )
}

/// The figures of an image the engine's BuildKit pushed: each layer read
/// back from the registry once, in order.
pub(super) async fn analyse_pushed(
    registry: &Registry,
    repository: &str,
    image: &OciImage,
) -> Analysed {
    std::env::var_os(BENCH_OFF).is_none().then_some(())?;
    let read = async {
        let history = history(image)?;
        let mut analyzer = crate::layers::Analyzer::new(Limits::default());
        for layer in &image.layers {
            let stream = registry
                .blob_stream(repository, layer.digest.as_str(), layer.size)
                .await
                .map_err(|e| e.to_string())?;
            let reader = tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
            let bridge = tokio_util::io::SyncIoBridge::new(reader);
            analyzer =
                tokio::task::spawn_blocking(move || analyzer.add_stored(bridge).map(|()| analyzer))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(analyzer.finish(&history))
    };
    Some(
        read.await
            .map_err(|e| format!("the layers couldn't be read back for the analysis: {e}")),
    )
}

fn history(image: &OciImage) -> Result<Vec<History>, String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        history: Vec<History>,
    }
    let Source::File(path) = &image.config.source else {
        return Err("the image config is not on disk".into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("reading the config: {e}"))?;
    serde_json::from_slice::<Config>(&bytes)
        .map(|c| c.history)
        .map_err(|e| format!("the config's history: {e}"))
}

/// The figures as a manifest annotation.
pub(super) fn annotation(analysed: &Analysed) -> Option<(String, String)> {
    let Some(Ok(analysis)) = analysed else {
        return None;
    };
    let kept = Kept {
        size: analysis.total_size,
        layers: analysis.layers.iter().map(|l| l.size).collect(),
        wasted: analysis.wasted_bytes,
        efficiency: analysis.efficiency,
    };
    let json = serde_json::to_string(&kept).ok()?;
    Some((FIGURES.to_owned(), json))
}

/// What the summary shows of one built image.
async fn image_layers(
    target: &Target,
    platform: &Platform,
    first: bool,
    image: &OciImage,
    analysed: &Analysed,
    notes: &mut Vec<String>,
) -> Option<ImageLayers> {
    let analysed = analysed.as_ref()?;
    let compressed: Vec<u64> = image.layers.iter().map(|l| l.size).collect();
    let figures = match analysed {
        Ok(analysis) => {
            let latest = match latest_of(target, platform, first).await {
                Ok(latest) => latest,
                Err(e) => {
                    notes.push(format!(
                        "{platform}: `latest` couldn't be read to compare the layers with: {e:#}"
                    ));
                    None
                }
            };
            let content = &target.dockerfile_text;
            let lines = analysis
                .layers
                .iter()
                .map(|l| {
                    l.instruction
                        .as_deref()
                        .and_then(|i| created_by_line(content, i))
                })
                .collect();
            let growth = latest.and_then(|latest| growth(&latest, analysis, &compressed, content));
            Ok(Figures {
                analysis: analysis.clone(),
                compressed: compressed.clone(),
                lines,
                growth,
            })
        }
        Err(why) => Err(why.clone()),
    };
    Some(ImageLayers {
        platform: platform.to_string(),
        compressed: compressed.iter().sum(),
        figures,
    })
}

/// The image `latest` names for `platform`: as resolved for the first
/// platform of a run that pushes; else read here, a run that doesn't push
/// (a pull request's) included, since that is where growth matters most.
async fn latest_of(
    target: &Target,
    platform: &Platform,
    first: bool,
) -> anyhow::Result<Option<Pushed>> {
    if first && target.push {
        return Ok(target.image.latest.clone());
    }
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    pushed(registry, repository, "latest", Some(platform)).await
}

/// The change against `latest`: uncompressed when `latest` carries our
/// figures, else compressed on both sides (the manifest's sizes).
fn growth(latest: &Pushed, now: &Analysis, compressed: &[u64], content: &str) -> Option<Growth> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        history: Vec<History>,
    }
    let history = serde_json::from_slice::<Config>(&latest.config)
        .ok()?
        .history;
    let blobs = pushed_layers(&latest.manifest.bytes, "")?;
    let kept = manifest_annotation(&latest.manifest.bytes, FIGURES)
        .and_then(|json| serde_json::from_str::<Kept>(&json).ok())
        .filter(|kept| kept.layers.len() == blobs.len());
    let (before_sizes, now_sizes, uncompressed): (Vec<u64>, Vec<u64>, bool) = match kept {
        Some(kept) => (
            kept.layers,
            now.layers.iter().map(|l| l.size).collect(),
            true,
        ),
        None => (
            blobs.iter().map(|b| b.size).collect(),
            compressed.to_vec(),
            false,
        ),
    };
    let before_instructions = layer_instructions(&history, before_sizes.len());
    let now_instructions: Vec<Option<String>> =
        now.layers.iter().map(|l| l.instruction.clone()).collect();
    let shown = |i: Option<String>| i.map(|i| created_by_step(&i)).unwrap_or_default();
    let before: Vec<(String, u64)> = before_instructions
        .into_iter()
        .map(shown)
        .zip(before_sizes)
        .collect();
    let after: Vec<(String, u64)> = now_instructions
        .into_iter()
        .map(shown)
        .zip(now_sizes)
        .collect();
    let lines: BTreeMap<String, Option<usize>> = now
        .layers
        .iter()
        .filter_map(|l| l.instruction.as_deref())
        .map(|i| (created_by_step(i), created_by_line(content, i)))
        .collect();
    let changes = changes(&before, &after)
        .into_iter()
        .map(|mut change| {
            change.line = lines.get(&change.instruction).copied().flatten();
            change
        })
        .collect();
    Some(Growth {
        before: before.iter().map(|(_, s)| s).sum(),
        now: after.iter().map(|(_, s)| s).sum(),
        uncompressed,
        changes,
    })
}

/// Per instruction, its layers' sizes before and now; those that changed,
/// the largest change first.
fn changes(before: &[(String, u64)], now: &[(String, u64)]) -> Vec<Change> {
    let mut sizes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (instruction, size) in before {
        sizes.entry(instruction).or_default().0 += size;
    }
    for (instruction, size) in now {
        sizes.entry(instruction).or_default().1 += size;
    }
    let mut changes: Vec<Change> = sizes
        .into_iter()
        .filter(|(_, (before, now))| before != now)
        .map(|(instruction, (before, now))| Change {
            instruction: instruction.to_owned(),
            line: None,
            before,
            now,
        })
        .collect();
    changes.sort_by_key(|c| std::cmp::Reverse(c.now.abs_diff(c.before)));
    changes
}

/// A bound the image is past, and the Dockerfile line most to blame.
#[derive(Debug, PartialEq)]
pub(super) struct Breach {
    pub(super) message: String,
    pub(super) line: Option<usize>,
}

/// Every bound each image is past; an image without figures is one too
/// when a bound is set and `size-policy: fail` needs them.
pub(super) fn breaches(args: &SizeArgs, images: &[ImageLayers]) -> Vec<Breach> {
    let bounded =
        args.max_image_size.is_some() || args.min_efficiency.is_some() || args.max_growth.is_some();
    let mut found = Vec::new();
    for image in images {
        let on = image.platform.clone();
        let figures = match &image.figures {
            Ok(figures) => figures,
            Err(why) if bounded && args.size_policy == SizePolicy::Fail => {
                found.push(Breach {
                    message: format!(
                        "{on}: {why}; `size-policy: fail` needs the figures to check the bounds — set `size-policy: warn` to publish without them"
                    ),
                    line: None,
                });
                continue;
            }
            Err(_) => continue,
        };
        let analysis = &figures.analysis;
        let line_of =
            |index: Option<usize>| index.and_then(|i| figures.lines.get(i).copied().flatten());
        let instruction = |index: Option<usize>| {
            index
                .and_then(|i| analysis.layers.get(i)?.instruction.as_deref())
                .map(created_by_step)
                .unwrap_or_else(|| "an instruction of the base image".into())
        };
        if let Some(max) = args.max_image_size.filter(|max| analysis.total_size > *max) {
            let largest = largest_by(analysis, |l| l.size);
            found.push(Breach {
                message: format!(
                    "{on}: the image is {} uncompressed, over `max-image-size` ({}); its largest layer ({}) comes from `{}`",
                    bytes(analysis.total_size),
                    bytes(max),
                    bytes(largest.map_or(0, |i| analysis.layers[i].size)),
                    instruction(largest)
                ),
                line: line_of(largest),
            });
        }
        if let Some(min) = args.min_efficiency.filter(|min| analysis.efficiency < *min) {
            let wasteful = largest_by(analysis, |l| l.wasted);
            found.push(Breach {
                message: format!(
                    "{on}: efficiency {:.4} is under `min-efficiency` ({min}): {} wasted, most of it ({}) by `{}` (files a later layer replaces or deletes)",
                    analysis.efficiency,
                    bytes(analysis.wasted_bytes),
                    bytes(wasteful.map_or(0, |i| analysis.layers[i].wasted)),
                    instruction(wasteful)
                ),
                line: line_of(wasteful),
            });
        }
        if let (Some(max), Some(growth)) = (args.max_growth, &figures.growth) {
            if let Some(breach) = growth_breach(&on, max, growth) {
                found.push(breach);
            }
        }
    }
    found
}

fn growth_breach(on: &str, max: ImageGrowth, growth: &Growth) -> Option<Breach> {
    let grown = growth.now.checked_sub(growth.before)?;
    let (past, bound) = match max {
        ImageGrowth::Bytes(max) => (grown > max, bytes(max)),
        ImageGrowth::Share(share) => (
            grown as f64 > growth.before as f64 * share,
            format!("{}%", share * 100.0),
        ),
    };
    if !past {
        return None;
    }
    let most = growth
        .changes
        .iter()
        .filter(|c| c.now > c.before)
        .max_by_key(|c| c.now - c.before);
    let measured = if growth.uncompressed {
        "uncompressed"
    } else {
        "compressed"
    };
    Some(Breach {
        message: format!(
            "{on}: the image grew by {} ({measured}) against `latest`, over `max-growth` ({bound}){}",
            bytes(grown),
            most.map(|c| format!(
                "; most of it ({}) from `{}`",
                bytes(c.now - c.before),
                c.instruction
            ))
            .unwrap_or_default()
        ),
        line: most.and_then(|c| c.line),
    })
}

/// The layer with the most of `what`, if any has some.
fn largest_by(analysis: &Analysis, what: impl Fn(&crate::layers::Layer) -> u64) -> Option<usize> {
    analysis
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| what(l) > 0)
        .max_by_key(|(i, l)| (what(l), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

/// Every image built weighed: its section of the summary, a warning per
/// bound it is past; with `size-policy: fail`, the error that withholds
/// the release.
pub(super) async fn weigh(
    session: &Session,
    target: &Target,
    args: &SizeArgs,
    images: &[Exported],
    report: &mut Published,
) -> anyhow::Result<Option<anyhow::Error>> {
    report.dockerfile = target.dockerfile_rel.clone();
    for (i, exported) in images.iter().enumerate() {
        let shown = image_layers(
            target,
            &exported.platform,
            i == 0,
            &exported.image,
            &exported.analysed,
            &mut report.notes,
        )
        .await;
        report.layers.extend(shown);
    }
    Ok(judge(session, target, args, &breaches(args, &report.layers)).err())
}

/// Each breach as a warning on its Dockerfile line; with `fail`, the
/// error that withholds the release.
fn judge(
    session: &Session,
    target: &Target,
    args: &SizeArgs,
    breaches: &[Breach],
) -> anyhow::Result<()> {
    for breach in breaches {
        let mut annotation = Annotation::new(Level::Warning, &breach.message)
            .with_title("image size")
            .with_file(&target.dockerfile_rel);
        if let Some(line) = breach.line {
            annotation = annotation.with_line(u32::try_from(line).unwrap_or(1));
        }
        session.workflow.annotate(&annotation);
    }
    if args.size_policy == SizePolicy::Fail && !breaches.is_empty() {
        bail!(
            "{} is past its size bounds ({}); `size-policy: fail`, so nothing was tagged — make the image smaller, or raise the bound",
            target.image.reference.familiar(),
            breaches
                .iter()
                .map(|b| b.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// `size`, `wasted-bytes`, `efficiency`: with several platforms, the
/// largest size and waste and the lowest score.
pub(super) fn set_outputs(outputs: &mut Outputs, images: &[ImageLayers]) {
    let analyses: Vec<&Analysis> = images
        .iter()
        .filter_map(|i| i.figures.as_ref().ok())
        .map(|f| &f.analysis)
        .collect();
    if analyses.is_empty() {
        return;
    }
    let size = analyses.iter().map(|a| a.total_size).max().unwrap_or(0);
    let wasted = analyses.iter().map(|a| a.wasted_bytes).max().unwrap_or(0);
    let efficiency = analyses
        .iter()
        .map(|a| a.efficiency)
        .fold(1.0_f64, f64::min);
    outputs.set("size", size.to_string());
    outputs.set("wasted-bytes", wasted.to_string());
    outputs.set("efficiency", efficiency.to_string());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn changes_per_instruction_largest_first() {
        let before = [("COPY a /a".to_owned(), 10), ("RUN make".to_owned(), 100)];
        let now = [
            ("COPY a /a".to_owned(), 10),
            ("RUN make".to_owned(), 150),
            ("RUN fetch".to_owned(), 300),
        ];
        let changes: Vec<(String, u64, u64)> = changes(&before, &now)
            .into_iter()
            .map(|c| (c.instruction, c.before, c.now))
            .collect();
        assert_eq!(
            changes,
            [
                ("RUN fetch".to_owned(), 0, 300),
                ("RUN make".to_owned(), 100, 150)
            ]
        );
    }

    #[test]
    fn growth_past_a_size_or_a_share() {
        let growth = Growth {
            before: 1000,
            now: 1300,
            uncompressed: true,
            changes: vec![Change {
                instruction: "RUN fetch".into(),
                line: Some(4),
                before: 0,
                now: 300,
            }],
        };
        let breach = growth_breach("linux/amd64", ImageGrowth::Share(0.2), &growth).unwrap();
        assert_eq!(breach.line, Some(4));
        assert_eq!(
            breach.message,
            "linux/amd64: the image grew by 300 B (uncompressed) against `latest`, over `max-growth` (20%); most of it (300 B) from `RUN fetch`"
        );
        assert_eq!(growth_breach("p", ImageGrowth::Share(0.3), &growth), None);
        assert!(growth_breach("p", ImageGrowth::Bytes(299), &growth).is_some());
        assert_eq!(growth_breach("p", ImageGrowth::Bytes(300), &growth), None);
    }
}
