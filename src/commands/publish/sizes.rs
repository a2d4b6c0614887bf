//! Each built image's layer analysis (`crate::layers`): read from the
//! bytes publish reads anyway, kept on the manifest, set against the
//! image's `latest` (`growth.rs`), and held to `max-image-size`,
//! `min-efficiency` and `max-growth` under `size-policy` (`bounds.rs`).
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

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use crate::actions::outputs::Outputs;
use crate::cli::SizeArgs;
use crate::commands::Session;
use crate::engine::{LayerTap, OciImage, Source};
use crate::layers::tap::Tap;
use crate::layers::{Analysis, Analyzer, History, LayerError, Limits, Tree, read_stored_tree};
use crate::plan::dockerfile::created_by_line;
use crate::platform::Platform;
use crate::registry::Registry;
use crate::report::publish::Published;
use crate::report::publish_layers::{Figures, ImageLayers};

use super::Target;
use super::bounds::{breaches, judge};
use super::growth::growth;
use super::layers::{PARALLEL_UPLOADS, Pushed, latest_image, pushed};
use super::platforms::Exported;

/// The manifest annotation holding our figures, so the next publish reads
/// `latest`'s without reading its layers.
pub(super) const FIGURES: &str = "io.github.webgrip.registry-action.layers";
/// Set (to anything) by the publish bench only, to measure what the
/// analysis costs; not an input.
const BENCH_OFF: &str = "REGISTRY_ACTION_BENCH_NO_LAYER_ANALYSIS";

/// What the annotation holds: uncompressed sizes.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct Kept {
    pub(super) size: u64,
    pub(super) layers: Vec<u64>,
    pub(super) wasted: u64,
    pub(super) efficiency: f64,
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
/// back from the registry once, a few at a time as a push sends them, and
/// stacked in order. At most `max_entries` paths are kept in all (each
/// layer in flight may hold as many).
pub(super) async fn analyse_pushed(
    registry: &Registry,
    repository: &str,
    image: &OciImage,
) -> Analysed {
    std::env::var_os(BENCH_OFF).is_none().then_some(())?;
    let limits = Limits::default();
    let read = async {
        let history = history(image)?;
        let trees: Vec<Tree> = futures_util::stream::iter(image.layers.iter().enumerate())
            .map(|(index, layer)| async move {
                let stream = registry
                    .blob_stream(repository, layer.digest.as_str(), layer.size)
                    .await
                    .map_err(|e| e.to_string())?;
                let reader =
                    tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
                let bridge = tokio_util::io::SyncIoBridge::new(reader);
                tokio::task::spawn_blocking(move || {
                    read_stored_tree(bridge, index, limits, &mut 0).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            })
            .buffered(PARALLEL_UPLOADS)
            .try_fold(Vec::new(), |mut trees, tree: Tree| async move {
                let held: usize = trees.iter().map(Tree::len).sum::<usize>() + tree.len();
                if held > limits.max_entries {
                    return Err(LayerError::TooManyEntries {
                        limit: limits.max_entries,
                    }
                    .to_string());
                }
                trees.push(tree);
                Ok(trees)
            })
            .await?;
        let mut analyzer = Analyzer::new(limits);
        for tree in &trees {
            analyzer.add_tree(tree).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(analyzer.finish(&history))
    };
    Some(
        read.await
            .map_err(|e| format!("the layers couldn't be read back for the analysis: {e}")),
    )
}

fn history(image: &OciImage) -> Result<Vec<History>, String> {
    let Source::File(path) = &image.config.source else {
        return Err("the image config is not on disk".into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("reading the config: {e}"))?;
    crate::layers::config_history(&bytes).map_err(|e| format!("the config's history: {e}"))
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
/// platform of a run that pushes, and as the layers reused read it for
/// another; else read here, in a run that doesn't push (a pull
/// request's), since that is where growth matters most.
async fn latest_of(
    target: &Target,
    platform: &Platform,
    first: bool,
) -> anyhow::Result<Option<Pushed>> {
    match (first, target.push) {
        (true, true) => return Ok(target.image.latest.clone()),
        (false, true) => return latest_image(target, platform).await,
        (_, false) => {}
    }
    let (registry, repository) = (&target.image.registry, &target.image.repository);
    pushed(registry, repository, "latest", Some(platform)).await
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
