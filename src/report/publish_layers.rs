//! The `publish` summary's layer section: per image built, its sizes, each
//! layer with the instruction that made it, dive's wasted bytes and
//! efficiency, the largest wasted files, and the change against `latest`.
//! Instructions and file names come from the image: untrusted, escaped.

use std::fmt::Write as _;

use crate::layers::Analysis;
use crate::report::{bytes, code};

/// Instructions longer than this are cut in the table.
const SHOWN_INSTRUCTION: usize = 120;
/// Changes against `latest` listed, largest first.
const SHOWN_CHANGES: usize = 10;

/// One platform's image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLayers {
    pub platform: String,
    /// Its layers' compressed bytes, as pushed.
    pub compressed: u64,
    /// Or why there are none.
    pub figures: Result<Figures, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub analysis: Analysis,
    /// Each layer's compressed bytes.
    pub compressed: Vec<u64>,
    /// Each layer's Dockerfile line, where it could be told.
    pub lines: Vec<Option<usize>>,
    pub growth: Option<Growth>,
}

/// The change against the image's `latest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub before: u64,
    pub now: u64,
    /// Uncompressed sizes (`latest` carried our figures), else compressed.
    pub uncompressed: bool,
    /// Per instruction, largest change first.
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub instruction: String,
    pub line: Option<usize>,
    pub before: u64,
    pub now: u64,
}

/// The section, one part per image.
pub fn section(images: &[ImageLayers], dockerfile: &str) -> String {
    let mut md = String::new();
    for image in images {
        let _ = writeln!(md, "\n#### Layers of {}\n", code(&image.platform));
        match &image.figures {
            Ok(figures) => figures_md(&mut md, image.compressed, figures, dockerfile),
            Err(why) => {
                let _ = writeln!(
                    md,
                    "{} compressed; no layer analysis: {}",
                    bytes(image.compressed),
                    crate::markdown::cell(why)
                );
            }
        }
    }
    md
}

fn figures_md(md: &mut String, compressed: u64, figures: &Figures, dockerfile: &str) {
    let a = &figures.analysis;
    let _ = writeln!(
        md,
        "{} compressed, {} uncompressed; wasted {} (efficiency {:.4}, as dive scores it)\n",
        bytes(compressed),
        bytes(a.total_size),
        bytes(a.wasted_bytes),
        a.efficiency
    );
    md.push_str(
        "| # | instruction | line | size | compressed | wasted |\n|---|---|---|---|---|---|\n",
    );
    for (i, layer) in a.layers.iter().enumerate() {
        let instruction = layer
            .instruction
            .as_deref()
            .map(crate::plan::dockerfile::created_by_step)
            .map(|i| code(&shorten(&i)))
            .unwrap_or_else(|| "—".into());
        let line = figures
            .lines
            .get(i)
            .copied()
            .flatten()
            .map(|l| format!("{} {l}", code(dockerfile)))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {instruction} | {line} | {} | {} | {} |",
            i + 1,
            bytes(layer.size),
            figures
                .compressed
                .get(i)
                .map(|&c| bytes(c))
                .unwrap_or_default(),
            if layer.wasted > 0 {
                bytes(layer.wasted)
            } else {
                String::new()
            }
        );
    }
    if !a.wasted_files.is_empty() {
        md.push_str("\nLargest wasted files (held by several layers, or removed):\n\n| file | layers | wasted |\n|---|---|---|\n");
        for w in &a.wasted_files {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                code(&w.path),
                w.count,
                bytes(w.bytes)
            );
        }
    }
    if let Some(growth) = &figures.growth {
        growth_md(md, growth);
    }
}

fn growth_md(md: &mut String, growth: &Growth) {
    let measured = if growth.uncompressed {
        "uncompressed"
    } else {
        "compressed, as `latest` carries no figures of ours"
    };
    let _ = writeln!(
        md,
        "\nAgainst `latest`: {} → {} ({}, {measured})",
        bytes(growth.before),
        bytes(growth.now),
        signed(growth.before, growth.now)
    );
    if growth.changes.is_empty() {
        return;
    }
    md.push_str("\n| instruction | before | now | change |\n|---|---|---|---|\n");
    for c in growth.changes.iter().take(SHOWN_CHANGES) {
        let instruction = if c.instruction.is_empty() {
            "—".to_owned()
        } else {
            code(&shorten(&c.instruction))
        };
        let _ = writeln!(
            md,
            "| {instruction} | {} | {} | {} |",
            bytes(c.before),
            bytes(c.now),
            signed(c.before, c.now)
        );
    }
}

/// `+1.2 MiB`, `-300 B` or `±0 B`.
fn signed(before: u64, now: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("+{}", bytes(now - before)),
        std::cmp::Ordering::Less => format!("-{}", bytes(before - now)),
        std::cmp::Ordering::Equal => "±0 B".into(),
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_INSTRUCTION) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Layer, Wasted};

    #[test]
    fn layers_waste_and_growth_with_untrusted_names_escaped() {
        let analysis = Analysis {
            layers: vec![
                Layer {
                    size: 2 << 20,
                    wasted: 0,
                    instruction: Some("COPY busybox /bin/busybox # buildkit".into()),
                },
                Layer {
                    size: 300,
                    wasted: 300,
                    instruction: Some("RUN /bin/sh -c rm x|y # buildkit".into()),
                },
            ],
            total_size: (2 << 20) + 300,
            wasted_bytes: 300,
            efficiency: 0.5,
            wasted_files: vec![Wasted {
                path: "/a|b\n<x>".into(),
                count: 2,
                bytes: 300,
            }],
        };
        let md = section(
            &[ImageLayers {
                platform: "linux/amd64".into(),
                compressed: 1 << 20,
                figures: Ok(Figures {
                    analysis,
                    compressed: vec![1 << 20, 0],
                    lines: vec![Some(2), None],
                    growth: Some(Growth {
                        before: 2 << 20,
                        now: (2 << 20) + 300,
                        uncompressed: true,
                        changes: vec![Change {
                            instruction: "RUN /bin/sh -c rm x|y".into(),
                            line: None,
                            before: 0,
                            now: 300,
                        }],
                    }),
                }),
            }],
            "app/Dockerfile",
        );
        assert!(md.contains("#### Layers of `linux/amd64`"), "{md}");
        assert!(
            md.contains(
                "1.0 MiB compressed, 2.0 MiB uncompressed; wasted 300 B (efficiency 0.5000"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| 1 | `COPY busybox /bin/busybox` | `app/Dockerfile` 2 | 2.0 MiB | 1.0 MiB |  |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 2 | <code>RUN /bin/sh -c rm x\\|y</code> |  | 300 B | 0 B | 300 B |"),
            "{md}"
        );
        assert!(
            md.contains("| <code>/a\\|b &lt;x&gt;</code> | 2 | 300 B |"),
            "{md}"
        );
        assert!(
            md.contains("Against `latest`: 2.0 MiB → 2.0 MiB (+300 B, uncompressed)"),
            "{md}"
        );
    }

    #[test]
    fn an_image_without_figures_says_why() {
        let md = section(
            &[ImageLayers {
                platform: "linux/arm64".into(),
                compressed: 2048,
                figures: Err("layer 0 isn't a readable tar stream".into()),
            }],
            "Dockerfile",
        );
        assert!(
            md.contains(
                "2.0 KiB compressed; no layer analysis: layer 0 isn't a readable tar stream"
            ),
            "{md}"
        );
    }
}
