//! `max-image-size`, `min-efficiency` and `max-growth` held against each
//! image's figures: the bounds it is past, each with the Dockerfile line
//! most to blame; warned on, or (`size-policy: fail`) the release withheld.

use anyhow::bail;

use crate::actions::workflow::{Annotation, Level};
use crate::cli::{ImageGrowth, SizeArgs, SizePolicy};
use crate::commands::Session;
use crate::layers::Analysis;
use crate::plan::dockerfile::created_by_step;
use crate::report::publish_layers::{Growth, ImageLayers};
use crate::units::bytes;

use super::Target;

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

/// Each breach as a warning on its Dockerfile line; with `fail`, the
/// error that withholds the release.
pub(super) fn judge(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::report::publish_layers::Change;

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
