//! Turns the engine's `docker save` export of one image into an OCI image —
//! config blob, gzip layer blobs, manifest — that we upload ourselves, so the
//! digests in the registry are the ones computed here.
//!
//! Two layouts reach us: the legacy one (dockerd ≤ 24: `<hex>.json` config,
//! `<hex>/layer.tar` uncompressed layers) and the OCI one (dockerd 25+:
//! `blobs/sha256/<hex>`, layers possibly already gzipped). Both carry a
//! `manifest.json` naming the config and layers by member path, which is all
//! we rely on.
//!
//! # Layers the registry already holds
//!
//! Compressing layers is most of what a publish costs, and when an image's
//! directory did not change, every layer is one that was pushed before. So
//! [`oci_image`] takes [`KnownLayers`]: diff ID (`sha256:` of the
//! uncompressed layer tar) → a gzip blob a registry repository already
//! holds, usually learnt by [`known_layers`] from the manifest and config
//! of the image last pushed (say the repository's `latest`, for the same
//! platform). The i-th layer of `manifest.json` has the diff ID
//! `rootfs.diff_ids[i]` of the config, in both layouts: `docker save`
//! writes them in that order and `docker load` checks it. A layer whose
//! diff ID is in the map is neither read, compressed nor written: its
//! [`Blob`] is [`Source::Registry`], with the known digest, size and media
//! type, and the manifest lists that blob. When the config doesn't name
//! exactly one diff ID per layer, nothing is reused. Pass an empty map to
//! convert every layer.
//!
//! A `Source::Registry` blob has no bytes here: the caller mounts it from
//! its repository when that is another one, and if the registry no longer
//! has it, converts again without that diff ID in the map.
//!
//! New layers are compressed on every core by [`super::gzip`], into bytes
//! that don't depend on the number of cores.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use flate2::write::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::gzip::{Failed, Gzip};

mod streamed;
use super::hashing::Hashing;
use crate::oci::{
    CONFIG_MEDIA_TYPE, DOCKER_LAYER_MEDIA_TYPE, Descriptor, Digest, LAYER_MEDIA_TYPE, Listed,
    MANIFEST_MEDIA_TYPE,
};
use crate::registry::sha256_digest;
pub use streamed::{oci_image_streamed, oci_image_streamed_tapped};

const SAVE_MANIFEST: &str = "manifest.json";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Symlink chains longer than this are treated as absent members (a loop).
const MAX_LINK_HOPS: usize = 16;

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file in the work directory holding exactly the bytes that hash to
    /// the blob's digest.
    File(PathBuf),
    /// Nowhere here: a registry holds it in `repository` (from
    /// [`KnownLayer::repository`]), to be mounted from there if the image
    /// goes to another repository.
    Registry { repository: String },
    /// A file here, already sent to the target repository as it was made
    /// (publish uploads layers early): nothing left to send.
    Sent(PathBuf),
}

/// Sees each layer of the export as it passes, so another reader (the
/// layer analysis) needn't read the image again: a layer's bytes as the
/// export stores them (plain tar or gzip), each member once, in the
/// export's order; then the members in the image's order, lowest first.
pub trait LayerTap: Send {
    fn begin(&mut self, member: &str);
    fn bytes(&mut self, chunk: &[u8]);
    fn end(&mut self);
    fn order(&mut self, members: &[String]);
}

/// What a streamed conversion tells of each layer blob as it goes, so an
/// upload can follow the blob's file while it is still being written.
#[derive(Debug, Clone, Copy)]
pub enum BlobEvent<'a> {
    /// The blob's file is created at `partial` and grows from here.
    Begun { partial: &'a Path },
    /// The blob at `partial` is complete: `blob` names its digest and size
    /// (its file is renamed to the digest, the one `partial` still opened
    /// reads the same bytes).
    Sealed { partial: &'a Path, blob: &'a Blob },
}

/// One content-addressed blob ready for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub source: Source,
}

/// A layer blob a registry holds; see [`KnownLayers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLayer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// The repository holding the blob: where to mount it from.
    pub repository: String,
}

/// Diff ID (`sha256:<hex>` of the uncompressed layer tar, as in an image
/// config's `rootfs.diff_ids`) → the layer's blob in a registry.
pub type KnownLayers = HashMap<String, KnownLayer>;

#[derive(Debug, Clone)]
pub struct OciImage {
    pub config: Blob,
    /// In manifest order (base layer first).
    pub layers: Vec<Blob>,
    /// The OCI image manifest, compact JSON; upload it last.
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    /// `sha256:<hex>` of the config bytes: the image ID the engine reports.
    pub image_id: String,
    /// Sum of the uncompressed sizes of the layers read here (reused ones
    /// are not read).
    pub uncompressed_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the engine's image export {saved} is malformed: it has no {SAVE_MANIFEST}")]
    NoManifest { saved: PathBuf },
    #[error(
        "the engine's image export {saved} is malformed: {SAVE_MANIFEST} describes {count} images, expected exactly one"
    )]
    ImageCount { saved: PathBuf, count: usize },
    #[error(
        "the engine's image export {saved} is malformed: {SAVE_MANIFEST} lists {what} {member}, which the tarball does not contain"
    )]
    Missing {
        saved: PathBuf,
        what: &'static str,
        member: String,
    },
    #[error("the engine's image export {saved} is malformed: {member} is not valid JSON: {source}")]
    Json {
        saved: PathBuf,
        member: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the engine's image export {saved} is malformed: reading {member} failed: {source}")]
    Read {
        saved: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("the engine's image export {saved} is malformed: layer {member} {problem}")]
    Layer {
        saved: PathBuf,
        member: String,
        problem: String,
    },
    #[error("couldn't write {path} while converting the engine's image export {saved}: {source}")]
    Write {
        saved: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One image entry of the export's `manifest.json`; other fields are ignored.
#[derive(Deserialize)]
struct SavedImage {
    #[serde(rename = "Config")]
    config: String,
    /// Go writes `null` for an image without layers.
    #[serde(rename = "Layers")]
    layers: Option<Vec<String>>,
}

/// The part of an image config that names its layers.
#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    /// Docker omits it for an image without layers.
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// Field order here is the serialised order: the manifest bytes must be
/// stable for the digest to be.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// The OCI image manifest of these blobs: compact JSON in a stable field
/// order, so the same blobs always give the same digest.
pub fn image_manifest(
    config: &Blob,
    layers: &[Blob],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: config.descriptor(),
        layers: layers.iter().map(Blob::descriptor).collect(),
        annotations,
    })
    .expect("a manifest of strings and numbers always serialises")
}

impl OciImage {
    /// The same image with `annotations` on its manifest.
    pub fn annotated(mut self, annotations: &BTreeMap<String, String>) -> Self {
        self.manifest = image_manifest(&self.config, &self.layers, annotations);
        self.manifest_digest = sha256_digest(&self.manifest);
        self
    }
}

/// A pushed manifest's layers in order, as blobs held in `repository`;
/// `None` when it is not an image manifest.
pub fn pushed_layers(manifest: &[u8], repository: &str) -> Option<Vec<Blob>> {
    #[derive(Deserialize)]
    struct Layers {
        layers: Vec<Descriptor>,
    }
    let parsed: Layers = serde_json::from_slice(manifest).ok()?;
    Some(
        parsed
            .layers
            .into_iter()
            .map(|layer| Blob {
                digest: layer.digest,
                size: layer.size,
                media_type: layer.media_type,
                source: Source::Registry {
                    repository: repository.to_owned(),
                },
            })
            .collect(),
    )
}

/// One annotation of a manifest.
pub fn manifest_annotation(manifest: &[u8], key: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    serde_json::from_slice::<Annotated>(manifest)
        .ok()?
        .annotations
        .remove(key)
}

/// An image config with `labels` set, every other field kept.
pub fn relabelled_config(
    config: &[u8],
    labels: &HashMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(config)?;
    if !value.is_object() || !(value["config"].is_object() || value["config"].is_null()) {
        return Err(serde::de::Error::custom("an image config is a JSON object"));
    }
    let section = &mut value["config"];
    if !section["Labels"].is_object() {
        section["Labels"] = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(existing) = section["Labels"].as_object_mut() {
        for (key, label) in labels {
            existing.insert(key.clone(), serde_json::Value::String(label.clone()));
        }
    }
    serde_json::to_vec(&value)
}

impl Blob {
    /// How a manifest lists the blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest.clone(), self.size)
    }
}

/// What pass one learns: the config, and the layers' member paths resolved
/// to real files.
struct SavedImageFiles {
    config: Vec<u8>,
    layers: Vec<String>,
}

/// Learns which layers a registry holds in `repository` from the manifest
/// and config bytes of an image pushed there: the manifest's `layers`
/// zipped with the config's `rootfs.diff_ids`, which list the same layers
/// in the same order.
///
/// Whatever doesn't fit gives nothing rather than a guess: bytes that are
/// not an image manifest and its config (an index, a signature), lists of
/// different lengths, malformed digests, layers stored elsewhere (`urls`).
/// Only gzip layers are learnt, since gzip is all this crate pushes: a zstd
/// or uncompressed layer is left out and so compressed anew. Docker's gzip
/// media type is recorded as the OCI one, the same bytes under the name an
/// OCI manifest uses.
pub fn known_layers(repository: &str, manifest: &[u8], config: &[u8]) -> KnownLayers {
    #[derive(Deserialize)]
    struct PushedManifest {
        /// In place, those that are not descriptors too: the i-th layer
        /// goes with the i-th diff ID.
        layers: Vec<Listed>,
    }

    let (Ok(manifest), Some(diff_ids)) = (
        serde_json::from_slice::<PushedManifest>(manifest),
        diff_ids(config),
    ) else {
        return KnownLayers::new();
    };
    if diff_ids.len() != manifest.layers.len() {
        return KnownLayers::new();
    }
    diff_ids
        .into_iter()
        .zip(manifest.layers.into_iter().map(Listed::valid))
        .filter_map(|(diff_id, layer)| Some((Digest::parse(&diff_id).ok()?, layer?)))
        .filter(|(_, layer)| {
            [LAYER_MEDIA_TYPE, DOCKER_LAYER_MEDIA_TYPE].contains(&layer.media_type.as_str())
                && layer.urls.is_none()
        })
        .map(|(diff_id, layer)| {
            let known = KnownLayer {
                digest: layer.digest,
                size: layer.size,
                media_type: LAYER_MEDIA_TYPE.to_owned(),
                repository: repository.to_owned(),
            };
            (diff_id.into(), known)
        })
        .collect()
}

/// The config's `rootfs.diff_ids`; `None` if it has none or isn't an image
/// config.
fn diff_ids(config: &[u8]) -> Option<Vec<String>> {
    let config: ImageConfig = serde_json::from_slice(config).ok()?;
    Some(config.rootfs.diff_ids.unwrap_or_default())
}

/// Converts the `docker save` tarball `saved` (one image) into an OCI image
/// whose blobs are written to `work_dir`, except the layers in `known`,
/// which are reused (see the module doc).
///
/// A tar can only be read forward and `manifest.json` usually comes last, so
/// this reads the tarball twice: once seeking over data to find the manifest,
/// the config and the member names, once streaming the layers to convert.
pub fn oci_image(
    saved: &Path,
    work_dir: &Path,
    known: &KnownLayers,
) -> Result<OciImage, ExportError> {
    oci_image_tapped(saved, work_dir, known, None)
}

/// [`oci_image`], every layer shown to `tap` as it is read, the reused
/// ones too (read for it, not converted).
pub fn oci_image_tapped(
    saved: &Path,
    work_dir: &Path,
    known: &KnownLayers,
    mut tap: Option<&mut (dyn LayerTap + 'static)>,
) -> Result<OciImage, ExportError> {
    let index = index(saved)?;
    let diff_ids = diff_ids(&index.config)
        .filter(|ids| ids.len() == index.layers.len())
        .unwrap_or_default();
    let reused: Vec<Option<Blob>> = (0..index.layers.len())
        .map(|i| {
            let known = known.get(diff_ids.get(i)?)?;
            Some(Blob {
                digest: known.digest.clone(),
                size: known.size,
                media_type: known.media_type.clone(),
                source: Source::Registry {
                    repository: known.repository.clone(),
                },
            })
        })
        .collect();
    let wanted: HashSet<&str> = index
        .layers
        .iter()
        .zip(&reused)
        .filter(|(_, reused)| reused.is_none())
        .map(|(member, _)| member.as_str())
        .collect();
    let converted = convert(saved, work_dir, &wanted, cores(), tap.as_deref_mut())?;
    if let Some(tap) = tap {
        tap.order(&index.layers);
    }
    assemble(saved, work_dir, &index, reused, converted)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The OCI image of an export whose layers are converted (or reused, where
/// `reused` says so): the config written as a blob, the manifest made.
fn assemble(
    saved: &Path,
    work_dir: &Path,
    index: &SavedImageFiles,
    reused: Vec<Option<Blob>>,
    converted: Converted,
) -> Result<OciImage, ExportError> {
    // Configs are a few KiB; kept byte for byte since their hash is the image ID.
    let image_id = Digest::of(&index.config);
    let config_path = work_dir.join(format!("{}.json", image_id.hex()));
    fs::write(&config_path, &index.config).map_err(|e| write_err(saved, &config_path, e))?;
    let config = Blob {
        digest: image_id.clone(),
        size: index.config.len() as u64,
        media_type: CONFIG_MEDIA_TYPE.to_owned(),
        source: Source::File(config_path),
    };

    let mut layers = Vec::with_capacity(index.layers.len());
    let mut uncompressed_size = 0;
    for (member, reused) in index.layers.iter().zip(reused) {
        if let Some(blob) = reused {
            layers.push(blob);
            continue;
        }
        // Every layer member was converted, so this only fails if the
        // tarball changed while it was read.
        let (blob, uncompressed) = converted.get(member).ok_or_else(|| ExportError::Missing {
            saved: saved.to_owned(),
            what: "layer",
            member: member.to_owned(),
        })?;
        uncompressed_size += uncompressed;
        layers.push(blob.clone());
    }

    let manifest = image_manifest(&config, &layers, &BTreeMap::new());
    let manifest_digest = sha256_digest(&manifest);

    Ok(OciImage {
        config,
        layers,
        manifest,
        manifest_digest,
        image_id: image_id.into(),
        uncompressed_size,
    })
}

/// Pass one: reads `manifest.json`, checks that the config and every layer
/// it names exist, following the symlinks engines use to share one layer
/// tar between identical layers, and reads the config.
fn index(saved: &Path) -> Result<SavedImageFiles, ExportError> {
    let mut manifest = None;
    // Member → where its data starts in the tarball, and its size.
    let mut files = HashMap::new();
    let mut links = Links::new();
    each_entry(saved, |entry, member| {
        let kind = entry.header().entry_type();
        if kind.is_file() {
            if member == SAVE_MANIFEST {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| read_err(saved, SAVE_MANIFEST, e))?;
                manifest = Some(bytes);
            }
            files.insert(member, (entry.raw_file_position(), entry.size()));
        } else {
            note_link(saved, entry, member, &mut links)?;
        }
        Ok(())
    })?;
    let manifest = manifest.ok_or_else(|| ExportError::NoManifest {
        saved: saved.to_owned(),
    })?;
    let (config, layers) = members(saved, &manifest, |m| files.contains_key(m), &links)?;

    // The config must be known before any layer is met, to tell which are
    // reused, and the tarball may hold it after them: read it where pass
    // one saw it.
    let (start, size) = files[&config];
    let mut bytes = Vec::new();
    let mut file = open(saved)?;
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(size).read_to_end(&mut bytes))
        .map_err(|e| read_err(saved, &config, e))?;
    Ok(SavedImageFiles {
        config: bytes,
        layers,
    })
}

/// Link member → the member it points at (normalised).
type Links = HashMap<String, String>;

/// Records `entry` in `links` when it is a symlink or hard link.
fn note_link<R: Read>(
    saved: &Path,
    entry: &tar::Entry<'_, R>,
    member: String,
    links: &mut Links,
) -> Result<(), ExportError> {
    let kind = entry.header().entry_type();
    if !(kind.is_symlink() || kind.is_hard_link()) {
        return Ok(());
    }
    let Some(target) = entry.link_name().map_err(|e| read_err(saved, &member, e))? else {
        return Ok(());
    };
    // Symlink targets are relative to the link; hard links to the root.
    let target = if kind.is_symlink() {
        Path::new(&member)
            .parent()
            .unwrap_or(Path::new(""))
            .join(target)
    } else {
        target.into_owned()
    };
    links.insert(member, normalise(&target));
    Ok(())
}

/// The config member and the layer members, in order, that the export's
/// `manifest.json` names, each resolved through `links` to a member for
/// which `is_member` holds.
fn members(
    saved: &Path,
    manifest: &[u8],
    is_member: impl Fn(&str) -> bool,
    links: &Links,
) -> Result<(String, Vec<String>), ExportError> {
    let mut images: Vec<SavedImage> =
        serde_json::from_slice(manifest).map_err(|source| ExportError::Json {
            saved: saved.to_owned(),
            member: SAVE_MANIFEST.to_owned(),
            source,
        })?;
    if images.len() != 1 {
        return Err(ExportError::ImageCount {
            saved: saved.to_owned(),
            count: images.len(),
        });
    }
    let image = images.remove(0);

    let resolve = |what: &'static str, listed: &str| {
        let mut member = normalise(Path::new(listed));
        for _ in 0..MAX_LINK_HOPS {
            if is_member(&member) {
                return Ok(member);
            }
            match links.get(&member) {
                Some(target) => member = target.clone(),
                None => break,
            }
        }
        Err(ExportError::Missing {
            saved: saved.to_owned(),
            what,
            member: listed.to_owned(),
        })
    };
    let config = resolve("config", &image.config)?;
    let layers = image
        .layers
        .unwrap_or_default()
        .iter()
        .map(|layer| resolve("layer", layer))
        .collect::<Result<_, _>>()?;
    Ok((config, layers))
}

/// A layer handed to the compressor, stream `i` of it at `records[i]`.
struct Compressing {
    member: String,
    partial: PathBuf,
    uncompressed: u64,
}

/// Layer member → its blob and uncompressed size.
type Converted = HashMap<String, (Blob, u64)>;

/// Pass two: streams the `wanted` layer members out of the tarball into
/// blobs in `work_dir`, each with its uncompressed size; the data of every
/// other member is seeked over, but with a `tap` the other layers are read
/// for it.
fn convert(
    saved: &Path,
    work_dir: &Path,
    wanted: &HashSet<&str>,
    threads: usize,
    tap: Option<&mut (dyn LayerTap + 'static)>,
) -> Result<Converted, ExportError> {
    std::thread::scope(|scope| {
        let mut converter = Converter::new(scope, saved, work_dir, threads, |_| {});
        converter.tap = tap;
        each_entry(saved, |entry, member| {
            if !entry.header().entry_type().is_file() {
                return Ok(());
            }
            if wanted.contains(member.as_str()) {
                converter.layer(entry, member)?;
            } else if is_layer_member(&member) {
                converter.show(entry, member)?;
            }
            Ok(())
        })?;
        converter.finish()
    })
}

/// A member that can hold a layer: a legacy `<id>/layer.tar` or an OCI
/// blob. Only shown to a tap, which keeps those the image's order names.
fn is_layer_member(member: &str) -> bool {
    member.ends_with("/layer.tar") || member.starts_with("blobs/")
}

/// Turns layer members into blob files in `work_dir`, compressing them on
/// every core, and tells `sealed` of each blob when its file is begun and
/// once it is complete, while later layers are still being read.
struct Converter<'scope, 'a, F> {
    saved: &'a Path,
    work_dir: &'a Path,
    gzip: Gzip<'scope, Out>,
    records: Vec<Compressing>,
    converted: Converted,
    /// Members met already: engines may store one tar twice.
    seen: HashSet<String>,
    sealed: F,
    /// Shown every layer as it is read.
    tap: Option<&'a mut (dyn LayerTap + 'static)>,
}

impl<'scope, 'a, F: FnMut(BlobEvent)> Converter<'scope, 'a, F> {
    fn new(
        scope: &'scope std::thread::Scope<'scope, '_>,
        saved: &'a Path,
        work_dir: &'a Path,
        threads: usize,
        sealed: F,
    ) -> Self {
        Converter {
            saved,
            work_dir,
            gzip: Gzip::new(scope, threads),
            records: Vec::new(),
            converted: Converted::new(),
            seen: HashSet::new(),
            sealed,
            tap: None,
        }
    }

    /// Converts the layer `member`, read from `data`, unless met before.
    fn layer(&mut self, data: &mut impl Read, member: String) -> Result<(), ExportError> {
        if !self.seen.insert(member.clone()) {
            return Ok(());
        }
        let layer = Layer {
            saved: self.saved,
            member: &member,
            work_dir: self.work_dir,
            partial: self
                .work_dir
                .join(format!("layer-{}.partial", self.seen.len())),
        };
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.begin(&member);
        }
        let mut data = Tapped {
            inner: data,
            tap: self.tap.as_deref_mut(),
        };
        let sealed = &mut self.sealed;
        let begun = |partial: &Path| sealed(BlobEvent::Begun { partial });
        let written = layer.write(&mut data, &mut self.gzip, &mut self.records, begun);
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.end();
        }
        if let Some(kept) = written? {
            (self.sealed)(BlobEvent::Sealed {
                partial: &layer.partial,
                blob: &kept.0,
            });
            self.converted.insert(member, kept);
        }
        let finished = self.gzip.take_finished();
        self.seal(finished)
    }

    /// Shows the member `member` to the tap, if any, without converting
    /// it: a layer the registry holds already.
    fn show(&mut self, data: &mut impl Read, member: String) -> Result<(), ExportError> {
        let Some(tap) = self.tap.as_deref_mut() else {
            return Ok(());
        };
        if !self.seen.insert(member.clone()) {
            return Ok(());
        }
        tap.begin(&member);
        let mut data = Tapped {
            inner: data,
            tap: Some(&mut *tap),
        };
        let read = io::copy(&mut data, &mut io::sink());
        tap.end();
        read.map(drop).map_err(|e| read_err(self.saved, &member, e))
    }

    /// Whether `member` was met (converting or converted).
    fn has(&self, member: &str) -> bool {
        self.seen.contains(member)
    }

    fn finish(self) -> Result<Converted, ExportError> {
        let Converter {
            saved,
            work_dir,
            gzip,
            records,
            mut converted,
            mut sealed,
            ..
        } = self;
        let finished = gzip
            .finish()
            .map_err(|failed| gzip_err(saved, &records, failed))?;
        seal_all(
            finished,
            saved,
            work_dir,
            &records,
            &mut converted,
            &mut sealed,
        )?;
        Ok(converted)
    }

    fn seal(&mut self, finished: Vec<(usize, Out)>) -> Result<(), ExportError> {
        seal_all(
            finished,
            self.saved,
            self.work_dir,
            &self.records,
            &mut self.converted,
            &mut self.sealed,
        )
    }
}

/// Seals the finished compressor outputs into blobs, records them and
/// tells `sealed`.
fn seal_all(
    finished: Vec<(usize, Out)>,
    saved: &Path,
    work_dir: &Path,
    records: &[Compressing],
    converted: &mut Converted,
    sealed: &mut impl FnMut(BlobEvent),
) -> Result<(), ExportError> {
    for (stream, out) in finished {
        let record = &records[stream];
        let blob = seal(out, saved, &record.partial, work_dir)?;
        sealed(BlobEvent::Sealed {
            partial: &record.partial,
            blob: &blob,
        });
        converted.insert(record.member.clone(), (blob, record.uncompressed));
    }
    Ok(())
}

/// The blob file being written, as the compressor's output.
type Out = Hashing<BufWriter<File>>;

/// One layer member being converted into `partial`.
struct Layer<'a> {
    saved: &'a Path,
    member: &'a str,
    work_dir: &'a Path,
    partial: PathBuf,
}

impl Layer<'_> {
    /// Streams the layer into its blob file, hashing the bytes as they are
    /// written so the layer is read once and never held whole. A layer
    /// already gzipped is kept and returned, with its uncompressed size, at
    /// once; any other is handed to `gzip` and recorded in `records`, to be
    /// sealed once compressed.
    fn write(
        &self,
        layer: &mut impl Read,
        gzip: &mut Gzip<'_, Out>,
        records: &mut Vec<Compressing>,
        begun: impl FnOnce(&Path),
    ) -> Result<Option<(Blob, u64)>, ExportError> {
        let (saved, member) = (self.saved, self.member);
        let read_failed = |e| read_err(saved, member, e);
        let write_failed = |e| write_err(saved, &self.partial, e);
        let bad_layer = |problem: String| ExportError::Layer {
            saved: saved.to_owned(),
            member: member.to_owned(),
            problem,
        };

        let mut buf = vec![0; 128 * 1024];
        // Sniff the first bytes: engines 25+ may store layers already compressed.
        let mut head = 0;
        while head < ZSTD_MAGIC.len() {
            match read_some(layer, &mut buf[head..ZSTD_MAGIC.len()]).map_err(read_failed)? {
                0 => break,
                n => head += n,
            }
        }
        if buf[..head].starts_with(&ZSTD_MAGIC) {
            // Pushing it as gzip would publish an unreadable image.
            return Err(bad_layer(
                "is zstd-compressed; only uncompressed or gzip layers can be pushed".to_owned(),
            ));
        }

        let file = File::create(&self.partial).map_err(write_failed)?;
        let mut out = Hashing::new(BufWriter::new(file));
        begun(&self.partial);
        if buf[..head].starts_with(&GZIP_MAGIC) {
            // Keep the engine's compressed bytes (recompressing would only
            // change the digest), but gunzip alongside to check them and
            // learn the size.
            let mut gunzip = MultiGzDecoder::new(Count(0));
            let corrupt = |e: io::Error| bad_layer(format!("is not a valid gzip stream: {e}"));
            pump(layer, &mut buf, head, read_failed, |chunk| {
                out.write_all(chunk).map_err(write_failed)?;
                gunzip.write_all(chunk).map_err(corrupt)
            })?;
            let uncompressed = gunzip.finish().map_err(corrupt)?.0;
            let blob = seal(out, saved, &self.partial, self.work_dir)?;
            return Ok(Some((blob, uncompressed)));
        }

        let stream = gzip
            .begin(out)
            .map_err(|failed| write_err(saved, &self.partial, failed.source))?;
        records.push(Compressing {
            member: member.to_owned(),
            partial: self.partial.clone(),
            uncompressed: 0,
        });
        // A write may flush pieces of earlier layers: a failure names its own.
        let uncompressed = pump(layer, &mut buf, head, read_failed, |chunk| {
            gzip.write(stream, chunk)
                .map_err(|failed| gzip_err(saved, records, failed))
        })?;
        gzip.end(stream)
            .map_err(|failed| gzip_err(saved, records, failed))?;
        records[stream].uncompressed = uncompressed;
        Ok(None)
    }
}

/// Finishes a blob file: flushed, named after its digest.
fn seal(mut out: Out, saved: &Path, partial: &Path, work_dir: &Path) -> Result<Blob, ExportError> {
    out.flush().map_err(|e| write_err(saved, partial, e))?;
    let (inner, digest, size) = out.finish();
    drop(inner);

    let path = work_dir.join(format!("{}.tar.gz", digest.hex()));
    fs::rename(partial, &path).map_err(|e| write_err(saved, &path, e))?;
    Ok(Blob {
        digest,
        size,
        media_type: LAYER_MEDIA_TYPE.to_owned(),
        source: Source::File(path),
    })
}

fn gzip_err(saved: &Path, records: &[Compressing], failed: Failed) -> ExportError {
    write_err(saved, &records[failed.stream].partial, failed.source)
}

/// Feeds `buf[..head]` (already read) and then the rest of `reader` to `sink`
/// chunk by chunk, keeping read and write failures apart for the message.
/// Returns the number of bytes fed.
fn pump(
    reader: &mut impl Read,
    buf: &mut [u8],
    head: usize,
    read_failed: impl Fn(io::Error) -> ExportError,
    mut sink: impl FnMut(&[u8]) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut total = 0;
    let mut chunk = head;
    while chunk > 0 {
        sink(&buf[..chunk])?;
        total += chunk as u64;
        chunk = read_some(reader, buf).map_err(&read_failed)?;
    }
    Ok(total)
}

fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads through to `inner`, showing the tap what it reads.
struct Tapped<'t, R> {
    inner: R,
    tap: Option<&'t mut (dyn LayerTap + 'static)>,
}

impl<R: Read> Read for Tapped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.bytes(&buf[..n]);
        }
        Ok(n)
    }
}

/// A sink that only counts bytes.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Visits every member of the tarball with its normalised name; seeking
/// skips the data of members the visitor does not read.
fn each_entry(
    saved: &Path,
    mut visit: impl FnMut(&mut tar::Entry<'_, File>, String) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut archive = tar::Archive::new(open(saved)?);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| read_err(saved, "the tar headers", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_err(saved, "the tar headers", e))?;
        let member = member_name(saved, &entry)?;
        visit(&mut entry, member)?;
    }
    Ok(())
}

fn open(saved: &Path) -> Result<File, ExportError> {
    File::open(saved).map_err(|e| read_err(saved, "the tarball itself", e))
}

fn member_name<R: Read>(saved: &Path, entry: &tar::Entry<'_, R>) -> Result<String, ExportError> {
    let path = entry
        .path()
        .map_err(|e| read_err(saved, "a member name", e))?;
    Ok(normalise(&path))
}

/// Member names as compared here: no leading `./`, `..` resolved, so
/// `./manifest.json` matches and symlink targets like `../<hex>/layer.tar`
/// land on the member they point at.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts.join("/")
}

fn read_err(saved: &Path, member: &str, source: io::Error) -> ExportError {
    ExportError::Read {
        saved: saved.to_owned(),
        member: member.to_owned(),
        source,
    }
}

fn write_err(saved: &Path, path: &Path, source: io::Error) -> ExportError {
    ExportError::Write {
        saved: saved.to_owned(),
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder as GunzipReader;
    use flate2::{Compression, GzBuilder};
    use serde_json::Value;

    fn file(blob: &Blob) -> &Path {
        match &blob.source {
            Source::File(path) | Source::Sent(path) => path,
            Source::Registry { .. } => panic!("{} has no file", blob.digest),
        }
    }

    /// Converts an export of which nothing is reused both ways, two passes
    /// over the file and one over a stream of it (keeping a copy), checks
    /// they agree to the byte, and returns the two-pass image.
    fn fresh(saved: &Path, work: &Path) -> OciImage {
        let image = oci_image(saved, work, &KnownLayers::new()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let copy = other.path().join("copy.tar");
        let mut announced = Vec::new();
        let mut begun = Vec::new();
        let streamed = oci_image_streamed(
            open(saved).unwrap(),
            &copy,
            true,
            other.path(),
            |event| match event {
                BlobEvent::Begun { partial } => {
                    assert!(partial.is_file(), "begun before its file exists");
                    begun.push(partial.to_owned());
                }
                BlobEvent::Sealed { partial, blob } => {
                    assert!(begun.iter().any(|b| b == partial), "sealed, never begun");
                    announced.push(blob.clone());
                }
            },
        )
        .unwrap();
        assert_eq!(begun.len(), announced.len());
        assert_eq!(fs::read(&copy).unwrap(), fs::read(saved).unwrap());
        assert_eq!(streamed.manifest, image.manifest);
        assert_eq!(streamed.uncompressed_size, image.uncompressed_size);
        for (one, two) in streamed.layers.iter().zip(&image.layers) {
            assert_eq!(fs::read(file(one)).unwrap(), fs::read(file(two)).unwrap());
        }
        // Each distinct layer announced once, before the image was returned.
        let mut distinct: Vec<&Blob> = streamed.layers.iter().collect();
        distinct.sort_by(|a, b| a.digest.cmp(&b.digest));
        distinct.dedup();
        announced.sort_by(|a, b| a.digest.cmp(&b.digest));
        assert_eq!(announced.iter().collect::<Vec<_>>(), distinct);
        image
    }

    const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["A=1"]}}"#;

    /// An uncompressed layer tar holding `files`.
    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    enum Member<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
    }

    /// Writes a `docker save`-style tarball with `members` in the given order.
    fn save_tar(dir: &Path, members: &[Member<'_>]) -> PathBuf {
        let path = dir.join("image.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        for member in members {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o644);
            match member {
                Member::File(name, data) => {
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, name, *data).unwrap();
                }
                Member::Symlink(name, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, name, target).unwrap();
                }
            }
        }
        builder.into_inner().unwrap().flush().unwrap();
        path
    }

    fn save_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            {"Config": config, "RepoTags": ["app:latest"], "Layers": layers}
        ]))
        .unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GunzipReader::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    /// A legacy (dockerd 20.10) export whose layers are stored in the
    /// opposite order to the manifest's, with manifest.json last.
    fn legacy(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
        let base = layer_tar(&[("etc/os-release", b"ID=test\n"), ("bin/sh", b"#!fake")]);
        let app = layer_tar(&[("app/main", b"binary"), ("app/config.toml", b"x = 1\n")]);
        let manifest = save_manifest("c0ffee.json", &["aaaa/layer.tar", "bbbb/layer.tar"]);
        let saved = save_tar(
            dir,
            &[
                Member::File("bbbb/layer.tar", &app),
                Member::File("aaaa/layer.tar", &base),
                Member::File("c0ffee.json", CONFIG),
                Member::File("manifest.json", &manifest),
            ],
        );
        (saved, base, app)
    }

    #[test]
    fn legacy_export_keeps_config_and_gzips_layers_in_manifest_order() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (saved, base, app) = legacy(dir.path());

        let image = fresh(&saved, work.path());

        assert_eq!(fs::read(file(&image.config)).unwrap(), CONFIG);
        assert_eq!(image.image_id, sha256_digest(CONFIG));
        assert_eq!(image.config.digest, image.image_id);
        assert_eq!(image.config.size, CONFIG.len() as u64);
        assert_eq!(image.config.media_type, CONFIG_MEDIA_TYPE);

        assert_eq!(image.layers.len(), 2);
        for (blob, input) in image.layers.iter().zip([&base, &app]) {
            let written = fs::read(file(blob)).unwrap();
            assert!(file(blob).starts_with(work.path()));
            assert_eq!(blob.digest, sha256_digest(&written));
            assert_eq!(blob.size, written.len() as u64);
            assert_eq!(blob.media_type, LAYER_MEDIA_TYPE);
            assert_eq!(&gunzip(&written), input);
        }
        assert_eq!(image.uncompressed_size, (base.len() + app.len()) as u64);
        // Only the blobs are left behind, no partial files.
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 3);
    }

    #[test]
    fn manifest_is_compact_oci_json_with_stable_field_order() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (saved, _, _) = legacy(dir.path());

        let image = fresh(&saved, work.path());

        assert_eq!(image.manifest_digest, sha256_digest(&image.manifest));
        let text = std::str::from_utf8(&image.manifest).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"#));
        assert!(!text.contains(' ') && !text.contains('\n'));

        let manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["config"]["digest"], image.image_id);
        assert_eq!(manifest["config"]["size"], CONFIG.len());
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for (json, blob) in layers.iter().zip(&image.layers) {
            assert_eq!(json["mediaType"], LAYER_MEDIA_TYPE);
            assert_eq!(json["digest"], blob.digest.as_str());
            assert_eq!(json["size"], blob.size);
        }
    }

    #[test]
    fn an_annotated_image_reads_back_its_annotation_and_layers() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (saved, _, _) = legacy(dir.path());
        let plain = fresh(&saved, work.path());
        assert_eq!(manifest_annotation(&plain.manifest, "k"), None);
        let annotations = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        let image = plain.clone().annotated(&annotations);
        assert_ne!(image.manifest_digest, plain.manifest_digest);
        assert_eq!(image.manifest_digest, sha256_digest(&image.manifest));
        assert!(
            std::str::from_utf8(&image.manifest)
                .unwrap()
                .ends_with(r#""annotations":{"k":"v"}}"#)
        );
        assert_eq!(
            manifest_annotation(&image.manifest, "k").as_deref(),
            Some("v")
        );
        let layers = pushed_layers(&image.manifest, "team/app").unwrap();
        assert_eq!(layers.len(), 2);
        for (read, written) in layers.iter().zip(&image.layers) {
            assert_eq!((&read.digest, read.size), (&written.digest, written.size));
            assert_eq!(
                read.source,
                Source::Registry {
                    repository: "team/app".into()
                }
            );
        }
        assert_eq!(pushed_layers(b"{}", "team/app"), None);
    }

    #[test]
    fn relabelling_sets_labels_and_keeps_the_rest() {
        let config = br#"{"architecture":"amd64","config":{"Env":["A=1"],"Labels":{"keep":"me","rev":"old"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let labels = HashMap::from([("rev".to_owned(), "new".to_owned())]);
        let out: Value =
            serde_json::from_slice(&relabelled_config(config, &labels).unwrap()).unwrap();
        assert_eq!(
            out["config"]["Labels"],
            serde_json::json!({"keep": "me", "rev": "new"})
        );
        assert_eq!(out["config"]["Env"], serde_json::json!(["A=1"]));
        assert_eq!(out["architecture"], "amd64");
        let bare: Value =
            serde_json::from_slice(&relabelled_config(br#"{"rootfs":{}}"#, &labels).unwrap())
                .unwrap();
        assert_eq!(bare["config"]["Labels"]["rev"], "new");
        assert!(relabelled_config(b"[1]", &labels).is_err());
        assert!(relabelled_config(b"{\"config\":3}", &labels).is_err());
    }

    #[test]
    fn same_export_gives_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let (saved, _, _) = legacy(dir.path());
        let first = oci_image(
            &saved,
            tempfile::tempdir().unwrap().path(),
            &KnownLayers::new(),
        )
        .unwrap();
        let second = oci_image(
            &saved,
            tempfile::tempdir().unwrap().path(),
            &KnownLayers::new(),
        )
        .unwrap();
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(first.manifest, second.manifest);
        let digests = |image: &OciImage| -> Vec<String> {
            image.layers.iter().map(|b| b.digest.to_string()).collect()
        };
        assert_eq!(digests(&first), digests(&second));
    }

    #[test]
    fn oci_layout_keeps_gzipped_layers_and_compresses_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let plain = layer_tar(&[("etc/hostname", b"box\n")]);
        let inner = layer_tar(&[("srv/index.html", b"<h1>hi</h1>")]);
        // Best compression and a file name: recompressing would change these bytes.
        let mut gz = GzBuilder::new()
            .filename("layer.tar")
            .write(Vec::new(), Compression::best());
        gz.write_all(&inner).unwrap();
        let gzipped = gz.finish().unwrap();
        let config = format!("blobs/sha256/{}", Digest::of(CONFIG).hex());
        let manifest = save_manifest(&config, &["blobs/sha256/1111", "blobs/sha256/2222"]);
        let saved = save_tar(
            dir.path(),
            &[
                Member::File("blobs/sha256/2222", &gzipped),
                Member::File(&config, CONFIG),
                Member::File("blobs/sha256/1111", &plain),
                Member::File("index.json", b"{}"),
                Member::File("manifest.json", &manifest),
                Member::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ],
        );

        let image = fresh(&saved, work.path());

        assert_eq!(image.image_id, sha256_digest(CONFIG));
        assert_eq!(gunzip(&fs::read(file(&image.layers[0])).unwrap()), plain);
        assert_eq!(fs::read(file(&image.layers[1])).unwrap(), gzipped);
        assert_eq!(image.layers[1].digest, sha256_digest(&gzipped));
        assert_eq!(image.layers[1].size, gzipped.len() as u64);
        assert_eq!(image.uncompressed_size, (plain.len() + inner.len()) as u64);
    }

    #[test]
    fn shared_layer_symlink_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let layer = layer_tar(&[("empty", b"")]);
        let manifest = save_manifest("c0ffee.json", &["aaaa/layer.tar", "bbbb/layer.tar"]);
        // The link comes first: the target isn't known when it is met.
        let saved = save_tar(
            dir.path(),
            &[
                Member::Symlink("bbbb/layer.tar", "../aaaa/layer.tar"),
                Member::File("aaaa/layer.tar", &layer),
                Member::File("c0ffee.json", CONFIG),
                Member::File("manifest.json", &manifest),
            ],
        );

        let image = fresh(&saved, work.path());

        assert_eq!(image.layers.len(), 2);
        assert_eq!(image.layers[0], image.layers[1]);
        assert_eq!(gunzip(&fs::read(file(&image.layers[0])).unwrap()), layer);
    }

    fn error_for(members: &[Member<'_>]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let saved = save_tar(dir.path(), members);
        let message = oci_image(&saved, work.path(), &KnownLayers::new())
            .unwrap_err()
            .to_string();
        assert!(message.contains("is malformed"), "{message}");
        let streamed =
            oci_image_streamed(open(&saved).unwrap(), &saved, false, work.path(), |_| {})
                .unwrap_err()
                .to_string();
        assert_eq!(streamed, message);
        message
    }

    #[test]
    fn missing_manifest_is_reported() {
        let message = error_for(&[Member::File("c0ffee.json", CONFIG)]);
        assert!(message.contains("has no manifest.json"), "{message}");
    }

    #[test]
    fn image_count_other_than_one_is_reported() {
        let two = br#"[{"Config":"a.json","Layers":[]},{"Config":"b.json","Layers":[]}]"#;
        let message = error_for(&[Member::File("manifest.json", two)]);
        assert!(message.contains("describes 2 images"), "{message}");
        let message = error_for(&[Member::File("manifest.json", b"[]")]);
        assert!(message.contains("describes 0 images"), "{message}");
    }

    #[test]
    fn absent_layer_and_config_are_named() {
        let manifest = save_manifest("c0ffee.json", &["aaaa/layer.tar"]);
        let message = error_for(&[
            Member::File("c0ffee.json", CONFIG),
            Member::File("manifest.json", &manifest),
        ]);
        assert!(message.contains("layer aaaa/layer.tar"), "{message}");

        let layer = layer_tar(&[("f", b"x")]);
        let message = error_for(&[
            Member::File("aaaa/layer.tar", &layer),
            Member::File("manifest.json", &manifest),
        ]);
        assert!(message.contains("config c0ffee.json"), "{message}");
    }

    #[test]
    fn bad_json_names_the_member() {
        let message = error_for(&[Member::File("manifest.json", b"{not json")]);
        assert!(
            message.contains("manifest.json is not valid JSON"),
            "{message}"
        );
    }

    #[test]
    fn zstd_and_corrupt_gzip_layers_are_refused() {
        let manifest = save_manifest("c0ffee.json", &["blobs/sha256/1111"]);
        for (layer, problem) in [
            (&[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..], "zstd"),
            (&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1, 2][..], "gzip"),
        ] {
            let message = error_for(&[
                Member::File("blobs/sha256/1111", layer),
                Member::File("c0ffee.json", CONFIG),
                Member::File("manifest.json", &manifest),
            ]);
            assert!(message.contains("layer blobs/sha256/1111"), "{message}");
            assert!(message.contains(problem), "{message}");
        }
    }

    /// An image config whose diff IDs are those of `layers` (uncompressed).
    fn config_for(layers: &[&[u8]]) -> Vec<u8> {
        let diff_ids: Vec<String> = layers.iter().map(|layer| sha256_digest(layer)).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    fn known(hex_digit: char, repository: &str) -> KnownLayer {
        KnownLayer {
            digest: Digest::parse(&format!("sha256:{}", hex_digit.to_string().repeat(64))).unwrap(),
            size: 1234,
            media_type: LAYER_MEDIA_TYPE.to_owned(),
            repository: repository.to_owned(),
        }
    }

    fn reused(known: &KnownLayer) -> Blob {
        Blob {
            digest: known.digest.clone(),
            size: known.size,
            media_type: known.media_type.clone(),
            source: Source::Registry {
                repository: known.repository.clone(),
            },
        }
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// A legacy-layout export of two layers, base then app, stored in the
    /// tarball in the other order; with the two layer tars.
    fn base_and_app_saved(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
        let base = layer_tar(&[("etc/os-release", b"ID=test\n")]);
        let app = layer_tar(&[("app/main", b"binary")]);
        let config = config_for(&[&base, &app]);
        let manifest = save_manifest("c0ffee.json", &["aaaa/layer.tar", "bbbb/layer.tar"]);
        let saved = save_tar(
            dir,
            &[
                Member::File("bbbb/layer.tar", &app),
                Member::File("aaaa/layer.tar", &base),
                Member::File("c0ffee.json", &config),
                Member::File("manifest.json", &manifest),
            ],
        );
        (saved, base, app)
    }

    #[test]
    fn known_layers_are_reused_and_the_others_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (saved, base, app) = base_and_app_saved(dir.path());
        let base_blob = known('a', "team/base");
        let known = KnownLayers::from([(sha256_digest(&base), base_blob.clone())]);

        let image = oci_image(&saved, work.path(), &known).unwrap();

        assert_eq!(image.layers[0], reused(&base_blob));
        assert_eq!(gunzip(&fs::read(file(&image.layers[1])).unwrap()), app);
        let mut written = vec![
            file(&image.config).to_owned(),
            file(&image.layers[1]).to_owned(),
        ];
        written.sort();
        assert_eq!(files_in(work.path()), written);
        let manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], base_blob.digest.as_str());
        assert_eq!(manifest["layers"][0]["size"], base_blob.size);
        assert_eq!(
            manifest["layers"][1]["digest"],
            image.layers[1].digest.as_str()
        );
        assert_eq!(image.uncompressed_size, app.len() as u64);
    }

    /// What a tap saw: each member's bytes, and the order.
    #[derive(Default)]
    struct Seen {
        members: Vec<(String, Vec<u8>)>,
        order: Vec<String>,
    }

    impl LayerTap for Seen {
        fn begin(&mut self, member: &str) {
            self.members.push((member.to_owned(), Vec::new()));
        }
        fn bytes(&mut self, chunk: &[u8]) {
            self.members.last_mut().unwrap().1.extend_from_slice(chunk);
        }
        fn end(&mut self) {}
        fn order(&mut self, members: &[String]) {
            self.order = members.to_vec();
        }
    }

    #[test]
    fn a_tap_sees_every_layer_once_reused_ones_too_and_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (saved, base, app) = base_and_app_saved(dir.path());
        let known = KnownLayers::from([(sha256_digest(&base), known('a', "team/base"))]);
        let expected = vec![
            ("bbbb/layer.tar".to_owned(), app.clone()),
            ("aaaa/layer.tar".to_owned(), base.clone()),
        ];
        let order = vec!["aaaa/layer.tar".to_owned(), "bbbb/layer.tar".to_owned()];

        let mut seen = Seen::default();
        oci_image_tapped(&saved, work.path(), &known, Some(&mut seen)).unwrap();
        assert_eq!((&seen.members, &seen.order), (&expected, &order));

        let mut seen = Seen::default();
        let other = tempfile::tempdir().unwrap();
        oci_image_streamed_tapped(
            open(&saved).unwrap(),
            &saved,
            false,
            other.path(),
            |_| {},
            Some(&mut seen),
        )
        .unwrap();
        assert_eq!((&seen.members, &seen.order), (&expected, &order));
    }

    /// An OCI-layout export (dockerd 25+) whose second layer is stored
    /// gzipped, and a third zstd-compressed one: refused when read.
    fn oci_layout(dir: &Path) -> (PathBuf, [Vec<u8>; 3], Vec<u8>) {
        let plain = layer_tar(&[("etc/hostname", b"box\n")]);
        let inner = layer_tar(&[("srv/index.html", b"<h1>hi</h1>")]);
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::best());
        gz.write_all(&inner).unwrap();
        let gzipped = gz.finish().unwrap();
        let zstd_inner = layer_tar(&[("opt/big", b"zstd")]);
        let zstd = [&ZSTD_MAGIC[..], b"frame"].concat();
        let config = config_for(&[&plain, &inner, &zstd_inner]);
        let config_member = format!("blobs/sha256/{}", Digest::of(&config).hex());
        let layers =
            [&plain, &gzipped, &zstd].map(|l| format!("blobs/sha256/{}", Digest::of(l).hex()));
        let manifest = save_manifest(&config_member, &[&layers[0], &layers[1], &layers[2]]);
        let saved = save_tar(
            dir,
            &[
                Member::File(&layers[2], &zstd),
                Member::File(&layers[1], &gzipped),
                Member::File(&config_member, &config),
                Member::File(&layers[0], &plain),
                Member::File("manifest.json", &manifest),
            ],
        );
        (saved, [plain, inner, zstd_inner], gzipped)
    }

    #[test]
    fn oci_layout_layers_are_reused_by_the_diff_id_of_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let (saved, [plain, inner, zstd_inner], gzipped) = oci_layout(dir.path());
        let [a, b, c] = [known('a', "app"), known('b', "app"), known('c', "app")];

        // All known, the common case: only the config is written, and the
        // zstd layer is not even read (it would be refused).
        let work = tempfile::tempdir().unwrap();
        let all = KnownLayers::from([
            (sha256_digest(&plain), a.clone()),
            (sha256_digest(&inner), b.clone()),
            (sha256_digest(&zstd_inner), c.clone()),
        ]);
        let image = oci_image(&saved, work.path(), &all).unwrap();
        assert_eq!(image.layers, [&a, &b, &c].map(reused));
        assert_eq!(files_in(work.path()), [file(&image.config).to_owned()]);
        assert_eq!(image.uncompressed_size, 0);

        // The gzipped layer unknown: kept as the engine compressed it.
        let work = tempfile::tempdir().unwrap();
        let some = KnownLayers::from([
            (sha256_digest(&plain), a.clone()),
            (sha256_digest(&zstd_inner), c.clone()),
        ]);
        let image = oci_image(&saved, work.path(), &some).unwrap();
        assert_eq!(image.layers[0], reused(&a));
        assert_eq!(fs::read(file(&image.layers[1])).unwrap(), gzipped);
        assert_eq!(image.layers[1].digest, sha256_digest(&gzipped));
        assert_eq!(image.layers[2], reused(&c));
        assert_eq!(image.uncompressed_size, inner.len() as u64);
    }

    #[test]
    fn nothing_is_reused_unless_the_config_names_every_layer() {
        let base = layer_tar(&[("etc/os-release", b"ID=test\n")]);
        let app = layer_tar(&[("app/main", b"binary")]);
        let known = KnownLayers::from([
            (sha256_digest(&base), known('a', "app")),
            (sha256_digest(&app), known('b', "app")),
        ]);
        let manifest = save_manifest("c0ffee.json", &["aaaa/layer.tar", "bbbb/layer.tar"]);
        // One diff ID short; none at all; not an image config.
        for config in [config_for(&[&base]), CONFIG.to_vec(), b"[]".to_vec()] {
            let dir = tempfile::tempdir().unwrap();
            let work = tempfile::tempdir().unwrap();
            let saved = save_tar(
                dir.path(),
                &[
                    Member::File("aaaa/layer.tar", &base),
                    Member::File("bbbb/layer.tar", &app),
                    Member::File("c0ffee.json", &config),
                    Member::File("manifest.json", &manifest),
                ],
            );
            let image = oci_image(&saved, work.path(), &known).unwrap();
            for (blob, layer) in image.layers.iter().zip([&base, &app]) {
                assert_eq!(&gunzip(&fs::read(file(blob)).unwrap()), layer);
            }
        }
    }

    fn pushed_manifest(layers: &[(&str, &str)]) -> Vec<u8> {
        let layers: Vec<Value> = layers
            .iter()
            .map(|(media_type, digest)| serde_json::json!({"mediaType": media_type, "digest": digest, "size": 42}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": format!("sha256:{}", "c".repeat(64)), "size": 7},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn known_layers_zips_diff_ids_with_gzip_layers() {
        let diff_ids = ["1", "2", "3", "4"].map(|d| format!("sha256:{}", d.repeat(64)));
        let digests = ["a", "b", "c", "d"].map(|d| format!("sha256:{}", d.repeat(64)));
        let manifest = pushed_manifest(&[
            (LAYER_MEDIA_TYPE, &digests[0]),
            (DOCKER_LAYER_MEDIA_TYPE, &digests[1]),
            ("application/vnd.oci.image.layer.v1.tar+zstd", &digests[2]),
            ("application/vnd.oci.image.layer.v1.tar", &digests[3]),
        ]);
        let config = serde_json::to_vec(
            &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}}),
        )
        .unwrap();

        let known = known_layers("team/app", &manifest, &config);

        let expected = |digest: &str| KnownLayer {
            digest: Digest::parse(digest).unwrap(),
            size: 42,
            media_type: LAYER_MEDIA_TYPE.to_owned(),
            repository: "team/app".to_owned(),
        };
        assert_eq!(
            known,
            KnownLayers::from([
                (diff_ids[0].clone(), expected(&digests[0])),
                (diff_ids[1].clone(), expected(&digests[1])),
            ])
        );
    }

    #[test]
    fn known_layers_learns_nothing_from_what_does_not_fit() {
        let ids = |n: usize| -> Vec<u8> {
            let diff_ids: Vec<String> = (0..n)
                .map(|i| format!("sha256:{}", i.to_string().repeat(64)))
                .collect();
            serde_json::to_vec(&serde_json::json!({"rootfs": {"diff_ids": diff_ids}})).unwrap()
        };
        let good = format!("sha256:{}", "a".repeat(64));
        let two = pushed_manifest(&[(LAYER_MEDIA_TYPE, &good), (LAYER_MEDIA_TYPE, &good)]);
        let index =
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": []})).unwrap();
        for (manifest, config) in [
            // More diff IDs than layers, and fewer.
            (&two, ids(3)),
            (&two, ids(1)),
            // An index, a config that isn't an image's, bytes that aren't JSON.
            (&index, ids(0)),
            (&two, br#"{"config":{}}"#.to_vec()),
            (&two, b"\x1f\x8b".to_vec()),
        ] {
            assert_eq!(known_layers("app", manifest, &config), KnownLayers::new());
        }

        // A malformed digest or diff ID, or a layer stored elsewhere, is
        // left out alone.
        let mut foreign: Value =
            serde_json::from_slice(&pushed_manifest(&[(LAYER_MEDIA_TYPE, &good)])).unwrap();
        foreign["layers"][0]["urls"] = serde_json::json!(["https://example.com/layer"]);
        let foreign = serde_json::to_vec(&foreign).unwrap();
        let short = pushed_manifest(&[(LAYER_MEDIA_TYPE, "sha256:abc"), (LAYER_MEDIA_TYPE, &good)]);
        assert_eq!(known_layers("app", &foreign, &ids(1)), KnownLayers::new());
        assert_eq!(known_layers("app", &short, &ids(2)).len(), 1);
        let bad_id =
            serde_json::to_vec(&serde_json::json!({"rootfs": {"diff_ids": ["sha256:XYZ"]}}))
                .unwrap();
        let one = pushed_manifest(&[(LAYER_MEDIA_TYPE, &good)]);
        assert_eq!(known_layers("app", &one, &bad_id), KnownLayers::new());
    }
}
