//! Layer analysis (pure, streaming): an image's layers in order, each an
//! uncompressed tar stream, and its config's history → each layer's size
//! and the instruction that made it, the total, and dive's two figures:
//! the bytes of paths that more than one layer holds ("inefficient
//! bytes") and the efficiency score.
//!
//! dive's rule, followed exactly so the figures match its own (checked
//! against dive 0.13.1 in `tests/it/layers.rs`):
//! - a layer's size is the sum of its tar entries' sizes;
//! - in each layer, every leaf of the layer's own tree (a path with no
//!   other path of that layer under it) counts once for its path: its size,
//!   or for a whiteout `.wh.<name>` the bytes the layers below hold under
//!   `<name>` if that was a directory, else nothing;
//! - a path counted in two layers or more is inefficient: all its counted
//!   bytes are wasted;
//! - the score is the sum over paths of their smallest count over the sum
//!   of all counts (1 when there is nothing).
//!
//! dive ignores opaque-directory markers (`.wh..wh..opq`), and so does
//! this. One known difference: a whiteout of a path no lower layer holds
//! (which engines don't write) counts here as nothing removed, where dive
//! stops reading that layer. Nothing but entry headers is read; file
//! contents stream past.

pub mod archive;
pub mod tap;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader, Read};

use serde::Deserialize;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..";
/// Wasted files listed, largest first.
pub const LISTED: usize = 10;

/// Bounds on what an image may hold: each path, and every path of every
/// layer in all (the analysis keeps one record per path).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_path: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            max_path: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer} isn't a readable tar stream: {source}")]
    Tar {
        layer: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer} holds a path of {length} bytes, over the {limit} allowed; refusing it")]
    PathTooLong {
        layer: usize,
        length: usize,
        limit: usize,
    },
    #[error(
        "layer {layer} holds the path {path:?}, which climbs out of the image's root; refusing it"
    )]
    BadPath { layer: usize, path: String },
    #[error("the image's layers hold more than {limit} paths in all; refusing to analyse it")]
    TooManyEntries { limit: usize },
}

impl LayerError {
    /// The same error, naming the layer by its place `layer` in the image.
    pub fn at(self, layer: usize) -> Self {
        match self {
            LayerError::Tar { source, .. } => LayerError::Tar { layer, source },
            LayerError::PathTooLong { length, limit, .. } => LayerError::PathTooLong {
                layer,
                length,
                limit,
            },
            LayerError::BadPath { path, .. } => LayerError::BadPath { layer, path },
            other @ LayerError::TooManyEntries { .. } => other,
        }
    }
}

/// The `history` of an image config's bytes (none listed: empty).
pub fn config_history(config: &[u8]) -> serde_json::Result<Vec<History>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        history: Vec<History>,
    }
    serde_json::from_slice::<Config>(config).map(|c| c.history)
}

/// One entry of the config's `history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct History {
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Sum of the sizes its tar entries declare.
    pub size: u64,
    /// Of the wasted bytes, those counted in this layer: what it wrote
    /// that a later layer replaces or deletes, what it replaces, and what
    /// its whiteouts remove.
    pub wasted: u64,
    /// `created_by` of the history entry that made it, if the history says.
    pub instruction: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wasted {
    pub path: String,
    /// Layers that hold it.
    pub count: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub layers: Vec<Layer>,
    pub total_size: u64,
    pub wasted_bytes: u64,
    pub efficiency: f64,
    /// The largest [`LISTED`], largest first.
    pub wasted_files: Vec<Wasted>,
}

/// A node of one layer's tree, or of the layers stacked below.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    size: u64,
    dir: bool,
}

#[derive(Debug, Default)]
struct Counted {
    total: u64,
    smallest: u64,
    count: usize,
    /// The first layer that counted it, and what it counted: charged to
    /// that layer's waste once a second layer counts the path.
    first_layer: usize,
    first_bytes: u64,
}

/// One layer's own tree (each path with the parents it implies) and its
/// size: all the analysis keeps of a layer's tar stream. Read in any order
/// ([`read_tree`]), added lowest first ([`Analyzer::add_tree`]).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    size: u64,
}

impl Tree {
    /// Paths it holds, parents included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Takes the layers one by one, lowest first.
#[derive(Debug, Default)]
pub struct Analyzer {
    limits: Limits,
    /// The layers so far stacked: what a whiteout removes.
    stacked: BTreeMap<String, Node>,
    paths: HashMap<String, Counted>,
    sizes: Vec<u64>,
    /// Per layer, the wasted bytes counted in it.
    wasted: Vec<u64>,
    /// Paths held in all, against `limits.max_entries`.
    held: usize,
}

impl Analyzer {
    pub fn new(limits: Limits) -> Self {
        Analyzer {
            limits,
            ..Analyzer::default()
        }
    }

    /// The next layer, as an uncompressed tar stream.
    pub fn add_layer(&mut self, tar: impl Read) -> Result<(), LayerError> {
        let tree = read_tree(tar, self.sizes.len(), self.limits, &mut self.held)?;
        self.add_tree(&tree)
    }

    /// The next layer as stored: a tar stream, plain or gzip.
    pub fn add_stored(&mut self, raw: impl Read) -> Result<(), LayerError> {
        let tree = read_stored_tree(raw, self.sizes.len(), self.limits, &mut self.held)?;
        self.add_tree(&tree)
    }

    /// The next layer, as [`read_tree`] read it.
    pub fn add_tree(&mut self, tree: &Tree) -> Result<(), LayerError> {
        self.wasted.push(0);
        for (key, node) in leaves(&tree.nodes) {
            let (path, bytes) = match whiteout_target(key) {
                Some(target) => {
                    let bytes = self.removed_bytes(&target);
                    (target, bytes)
                }
                None => (key.to_owned(), node.size),
            };
            self.count(path, bytes)?;
        }
        self.stack(&tree.nodes);
        self.sizes.push(tree.size);
        Ok(())
    }

    pub fn finish(self, history: &[History]) -> Analysis {
        let instructions = layer_instructions(history, self.sizes.len());
        let layers = self
            .sizes
            .iter()
            .zip(&self.wasted)
            .zip(instructions)
            .map(|((size, wasted), instruction)| Layer {
                size: *size,
                wasted: *wasted,
                instruction,
            })
            .collect();
        let (smallest, total) = self
            .paths
            .values()
            .fold((0u64, 0u64), |(s, t), c| (s + c.smallest, t + c.total));
        let efficiency = if total == 0 {
            1.0
        } else {
            smallest as f64 / total as f64
        };
        let mut wasted_files: Vec<Wasted> = self
            .paths
            .into_iter()
            .filter(|(_, c)| c.count > 1)
            .map(|(path, c)| Wasted {
                path,
                count: c.count,
                bytes: c.total,
            })
            .collect();
        let wasted_bytes = wasted_files.iter().map(|w| w.bytes).sum();
        wasted_files.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        wasted_files.truncate(LISTED);
        Analysis {
            layers,
            total_size: self.sizes.iter().sum(),
            wasted_bytes,
            efficiency,
            wasted_files,
        }
    }

    fn hold(&mut self) -> Result<(), LayerError> {
        hold(&mut self.held, self.limits)
    }

    /// What a whiteout of `target` removes: all bytes under it, if the
    /// layers below hold it as a directory.
    fn removed_bytes(&self, target: &str) -> u64 {
        match self.stacked.get(target) {
            Some(node) if node.dir => {
                node.size
                    + subtree(&self.stacked, target)
                        .map(|(_, n)| n.size)
                        .sum::<u64>()
            }
            _ => 0,
        }
    }

    fn count(&mut self, path: String, bytes: u64) -> Result<(), LayerError> {
        let layer = self.sizes.len();
        if !self.paths.contains_key(&path) {
            self.hold()?;
        }
        let counted = self.paths.entry(path).or_insert(Counted {
            smallest: bytes,
            first_layer: layer,
            first_bytes: bytes,
            ..Counted::default()
        });
        counted.total += bytes;
        counted.smallest = counted.smallest.min(bytes);
        counted.count += 1;
        if counted.count == 2 {
            self.wasted[counted.first_layer] += counted.first_bytes;
        }
        if counted.count >= 2 {
            self.wasted[layer] += bytes;
        }
        Ok(())
    }

    /// The layer laid over the ones below: whiteouts remove, the rest is
    /// set (a parent the layer only implies loses what the one below
    /// said of it, as in dive).
    fn stack(&mut self, tree: &BTreeMap<String, Node>) {
        for key in tree.keys() {
            if let Some(target) = whiteout_target(key) {
                let under: Vec<String> = subtree(&self.stacked, &target)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in under {
                    self.stacked.remove(&k);
                }
                self.stacked.remove(&target);
            }
        }
        for (key, node) in tree {
            if whiteout_target(key).is_none() {
                self.stacked.insert(key.clone(), *node);
            }
        }
    }
}

/// One layer's tree from its uncompressed tar stream (`layer`: its place,
/// for errors); every path it holds counts against `limits.max_entries`
/// in `held`. Nothing but entry headers is read.
pub fn read_tree(
    tar: impl Read,
    layer: usize,
    limits: Limits,
    held: &mut usize,
) -> Result<Tree, LayerError> {
    let failed = |source| LayerError::Tar { layer, source };
    let mut archive = tar::Archive::new(tar);
    let mut tree = Tree::default();
    for entry in archive.entries().map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if raw.len() > limits.max_path {
            return Err(LayerError::PathTooLong {
                layer,
                length: raw.len(),
                limit: limits.max_path,
            });
        }
        let Some(key) = clean(&raw).map_err(|()| LayerError::BadPath { layer, path: raw })? else {
            continue;
        };
        let node = Node {
            size: entry.size(),
            dir: entry.header().entry_type().is_dir(),
        };
        tree.size += node.size;
        insert(&mut tree.nodes, key, node, &mut || hold(held, limits))?;
    }
    Ok(tree)
}

/// [`read_tree`] of a layer as stored: gunzipped first if it is gzip.
pub fn read_stored_tree(
    raw: impl Read,
    layer: usize,
    limits: Limits,
    held: &mut usize,
) -> Result<Tree, LayerError> {
    let mut reader = BufReader::new(raw);
    let gzip = reader
        .fill_buf()
        .map_err(|source| LayerError::Tar { layer, source })?
        .starts_with(&GZIP_MAGIC);
    if gzip {
        read_tree(
            flate2::read::MultiGzDecoder::new(reader),
            layer,
            limits,
            held,
        )
    } else {
        read_tree(reader, layer, limits, held)
    }
}

/// A path and the parents it implies (which carry nothing), as dive's
/// tree adds them; an opaque marker not already there is not added.
fn insert(
    tree: &mut BTreeMap<String, Node>,
    key: String,
    node: Node,
    hold: &mut impl FnMut() -> Result<(), LayerError>,
) -> Result<(), LayerError> {
    let mut at = 0;
    while let Some(slash) = key[at + 1..].find('/') {
        let parent = &key[..at + 1 + slash];
        if !tree.contains_key(parent) {
            hold()?;
            tree.insert(parent.to_owned(), Node::default());
        }
        at += 1 + slash;
    }
    let name = &key[at + 1..];
    if name.starts_with(OPAQUE) && !tree.contains_key(&key) {
        return Ok(());
    }
    if !tree.contains_key(&key) {
        hold()?;
    }
    tree.insert(key, node);
    Ok(())
}

/// One more path held, against `limits.max_entries`.
fn hold(held: &mut usize, limits: Limits) -> Result<(), LayerError> {
    *held += 1;
    if *held > limits.max_entries {
        return Err(LayerError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    Ok(())
}

/// The paths under `dir` (not itself).
fn subtree<'a>(
    map: &'a BTreeMap<String, Node>,
    dir: &str,
) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
    let prefix = format!("{dir}/");
    map.range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
}

/// The layer's leaves: paths with nothing of the layer under them.
fn leaves(tree: &BTreeMap<String, Node>) -> impl Iterator<Item = (&String, &Node)> {
    tree.iter()
        .filter(|(key, _)| subtree(tree, key).next().is_none())
}

/// `/a/.wh.b` → `/a/b`.
fn whiteout_target(key: &str) -> Option<String> {
    let (parent, name) = key.rsplit_once('/')?;
    let target = name.strip_prefix(WHITEOUT)?;
    Some(format!("{parent}/{target}"))
}

/// A tar entry's name as a rooted path (`./a//b/` → `/a/b`); `None` for the
/// root itself; an error for one that climbs out of it.
fn clean(raw: &str) -> Result<Option<String>, ()> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(()),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

/// Each layer's instruction: the history entries that made a layer, in
/// order (`empty_layer` ones skipped); `None` past the history's end.
pub fn layer_instructions(history: &[History], layers: usize) -> Vec<Option<String>> {
    let mut made = history.iter().filter(|h| !h.empty_layer);
    (0..layers)
        .map(|_| made.next().and_then(|h| h.created_by.clone()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A tar of `(path, size)`; a path ending in `/` is a directory.
    fn layer(entries: &[(&str, usize)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, size) in entries {
            let mut header = tar::Header::new_gnu();
            if path.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            } else {
                header.set_size(*size as u64);
                builder
                    .append_data(&mut header, path, &vec![7u8; *size][..])
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    fn analyse(layers: &[Vec<u8>]) -> Analysis {
        let mut analyzer = Analyzer::new(Limits::default());
        for tar in layers {
            analyzer.add_layer(&tar[..]).unwrap();
        }
        analyzer.finish(&[])
    }

    fn wasted(analysis: &Analysis) -> Vec<(&str, usize, u64)> {
        analysis
            .wasted_files
            .iter()
            .map(|w| (w.path.as_str(), w.count, w.bytes))
            .collect()
    }

    #[test]
    fn deleted_overwritten_and_a_removed_directory() {
        let analysis = analyse(&[
            layer(&[
                ("bin/", 0),
                ("bin/sh", 1000),
                ("cache/", 0),
                ("deleted", 123),
                ("over", 45),
            ]),
            layer(&[("cache/", 0), ("cache/pkgs", 200), ("cache/index", 7)]),
            layer(&[(".wh.deleted", 0), ("over", 46)]),
            layer(&[(".wh.cache", 0)]),
        ]);
        assert_eq!(
            wasted(&analysis),
            [("/cache", 2, 207), ("/deleted", 2, 123), ("/over", 2, 91)]
        );
        assert_eq!(analysis.wasted_bytes, 421);
        // What each layer wrote, replaced or removed of it: the file
        // whiteout removes nothing, the directory's removes its 207 bytes.
        let wasted: Vec<u64> = analysis.layers.iter().map(|l| l.wasted).collect();
        assert_eq!(wasted, [168, 0, 46, 207]);
        let sizes: Vec<u64> = analysis.layers.iter().map(|l| l.size).collect();
        assert_eq!(sizes, [1168, 207, 46, 0]);
        // Smallest per path: sh 1000, cache 0, deleted 0, over 45, pkgs 200,
        // index 7; all: 1000 + 207 + 123 + 91 + 200 + 7.
        assert_eq!(analysis.efficiency, 1252.0 / 1628.0);
    }

    #[test]
    fn an_image_without_waste_scores_one() {
        let analysis = analyse(&[layer(&[("a", 5)]), layer(&[("b", 6)])]);
        assert_eq!((analysis.wasted_bytes, analysis.efficiency), (0, 1.0));
        assert_eq!(analyse(&[]).efficiency, 1.0);
    }

    #[test]
    fn opaque_markers_are_ignored_as_dive_does() {
        let analysis = analyse(&[
            layer(&[("d/", 0), ("d/old", 50)]),
            layer(&[("d/", 0), ("d/.wh..wh..opq", 0), ("d/new", 9)]),
        ]);
        assert_eq!(analysis.wasted_bytes, 0);
    }

    #[test]
    fn instructions_skip_empty_layers() {
        let history = [
            History {
                created_by: Some("COPY busybox /bin/busybox".into()),
                empty_layer: false,
            },
            History {
                created_by: Some("ENV A=1".into()),
                empty_layer: true,
            },
            History {
                created_by: Some("RUN make".into()),
                empty_layer: false,
            },
        ];
        assert_eq!(
            layer_instructions(&history, 3),
            [
                Some("COPY busybox /bin/busybox".to_owned()),
                Some("RUN make".to_owned()),
                None
            ]
        );
    }

    #[test]
    fn bounds_and_bad_paths() {
        let mut analyzer = Analyzer::new(Limits {
            max_entries: 3,
            max_path: 10,
        });
        let err = analyzer
            .add_layer(&layer(&[("a/b/c/d", 1)])[..])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the image's layers hold more than 3 paths in all; refusing to analyse it"
        );
        let mut analyzer = Analyzer::new(Limits {
            max_entries: 100,
            max_path: 10,
        });
        let err = analyzer
            .add_layer(&layer(&[("abcdefghijk", 1)])[..])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer 0 holds a path of 11 bytes, over the 10 allowed; refusing it"
        );
        assert_eq!(clean("./a//b/"), Ok(Some("/a/b".to_owned())));
        assert_eq!(clean("./"), Ok(None));
        assert_eq!(clean("a/../../etc"), Err(()));
        let err = Analyzer::new(Limits::default())
            .add_layer(&b"not a tar, but long enough to be read as a header block"[..])
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("layer 0 isn't a readable tar stream"),
            "{err}"
        );
    }
}
