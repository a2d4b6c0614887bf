//! The change against `latest`, per instruction: from `latest`'s manifest
//! and config, and our figures on its manifest when it carries them.

use std::collections::BTreeMap;

use crate::engine::{manifest_annotation, pushed_layers};
use crate::layers::{Analysis, layer_instructions};
use crate::plan::dockerfile::{created_by_line, created_by_step};
use crate::report::publish_layers::{Change, Growth};

use super::layers::Pushed;
use super::sizes::{FIGURES, Kept};

/// The change against `latest`: uncompressed when `latest` carries our
/// figures, else compressed on both sides (the manifest's sizes).
pub(super) fn growth(
    latest: &Pushed,
    now: &Analysis,
    compressed: &[u64],
    content: &str,
) -> Option<Growth> {
    let history = crate::layers::config_history(&latest.config).ok()?;
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
}
