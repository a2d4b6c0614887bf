//! Turns the engine's `docker save` export of one image into an OCI image —
//! config blob, gzip layer blobs, manifest — that we upload ourselves, so the
//! digests in the registry are the ones computed here.
//!
//! Two layouts reach us: the legacy one (dockerd ≤ 24: `<hex>.json` config,
//! `<hex>/layer.tar` uncompressed layers) and the OCI one (dockerd 25+:
//! `blobs/sha256/<hex>`, layers possibly already gzipped). Both carry a
//! `manifest.json` naming the config and layers by member path, which is all
//! we rely on.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::write::MultiGzDecoder;
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::registry::sha256_digest;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

const SAVE_MANIFEST: &str = "manifest.json";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Symlink chains longer than this are treated as absent members (a loop).
const MAX_LINK_HOPS: usize = 16;

/// One content-addressed blob ready for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// File holding exactly the bytes that hash to `digest`.
    pub path: PathBuf,
}

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
    /// Sum of the uncompressed layer tar sizes.
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

/// Field order here is the serialised order: the manifest bytes must be
/// stable for the digest to be.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

fn descriptor(blob: &Blob) -> Descriptor<'_> {
    Descriptor {
        media_type: &blob.media_type,
        digest: &blob.digest,
        size: blob.size,
    }
}

/// What pass one learns: the image's member paths resolved to real files.
struct Index {
    config: String,
    layers: Vec<String>,
}

/// Converts the `docker save` tarball `saved` (one image) into an OCI image
/// whose blobs are written to `work_dir`.
///
/// A tar can only be read forward and `manifest.json` usually comes last, so
/// this reads the tarball twice: once seeking over data to find the manifest
/// and the member names, once streaming the members the manifest needs.
pub fn oci_image(saved: &Path, work_dir: &Path) -> Result<OciImage, ExportError> {
    let index = index(saved)?;

    let mut config_bytes = None;
    let mut layer_blobs: HashMap<String, (Blob, u64)> = HashMap::new();
    let mut archive = tar::Archive::new(open(saved)?);
    let entries = archive
        .entries()
        .map_err(|e| read_err(saved, "the tar headers", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_err(saved, "the tar headers", e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = member_name(saved, &entry)?;
        if member == index.config && config_bytes.is_none() {
            // Configs are a few KiB; kept byte for byte since their hash is the image ID.
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| read_err(saved, &member, e))?;
            config_bytes = Some(bytes);
        } else if index.layers.contains(&member) && !layer_blobs.contains_key(&member) {
            let sequence = layer_blobs.len();
            let blob = write_layer(&mut entry, saved, &member, work_dir, sequence)?;
            layer_blobs.insert(member, blob);
        }
    }

    // Pass one saw every member, so these lookups only fail if the tarball
    // changed between the passes.
    let missing = |what, member: &str| ExportError::Missing {
        saved: saved.to_owned(),
        what,
        member: member.to_owned(),
    };
    let config_bytes = config_bytes.ok_or_else(|| missing("config", &index.config))?;
    let image_id = sha256_digest(&config_bytes);
    let config_path = work_dir.join(format!("{}.json", hex_of(&image_id)));
    fs::write(&config_path, &config_bytes).map_err(|e| write_err(saved, &config_path, e))?;
    let config = Blob {
        digest: image_id.clone(),
        size: config_bytes.len() as u64,
        media_type: CONFIG_MEDIA_TYPE.to_owned(),
        path: config_path,
    };

    let mut layers = Vec::with_capacity(index.layers.len());
    let mut uncompressed_size = 0;
    for member in &index.layers {
        let (blob, uncompressed) = layer_blobs
            .get(member)
            .ok_or_else(|| missing("layer", member))?;
        uncompressed_size += uncompressed;
        layers.push(blob.clone());
    }

    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: descriptor(&config),
        layers: layers.iter().map(descriptor).collect(),
    })
    .expect("a manifest of strings and numbers always serialises");
    let manifest_digest = sha256_digest(&manifest);

    Ok(OciImage {
        config,
        layers,
        manifest,
        manifest_digest,
        image_id,
        uncompressed_size,
    })
}

/// Pass one: reads `manifest.json`, and checks that the config and every
/// layer it names exist, following the symlinks engines use to share one
/// layer tar between identical layers.
fn index(saved: &Path) -> Result<Index, ExportError> {
    let mut manifest = None;
    let mut files = HashSet::new();
    let mut links = HashMap::new();
    let mut archive = tar::Archive::new(open(saved)?);
    // Seeking skips layer data instead of reading it.
    let entries = archive
        .entries_with_seek()
        .map_err(|e| read_err(saved, "the tar headers", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_err(saved, "the tar headers", e))?;
        let member = member_name(saved, &entry)?;
        let kind = entry.header().entry_type();
        if kind.is_file() {
            if member == SAVE_MANIFEST {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| read_err(saved, SAVE_MANIFEST, e))?;
                manifest = Some(bytes);
            }
            files.insert(member);
        } else if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name().map_err(|e| read_err(saved, &member, e))? else {
                continue;
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
        }
    }

    let manifest = manifest.ok_or_else(|| ExportError::NoManifest {
        saved: saved.to_owned(),
    })?;
    let mut images: Vec<SavedImage> =
        serde_json::from_slice(&manifest).map_err(|source| ExportError::Json {
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
            if files.contains(&member) {
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
    Ok(Index {
        config: resolve("config", &image.config)?,
        layers: image
            .layers
            .unwrap_or_default()
            .iter()
            .map(|layer| resolve("layer", layer))
            .collect::<Result<_, _>>()?,
    })
}

/// Streams one layer into `work_dir` as a gzip blob, hashing the bytes as
/// they are written so the layer is read once and never held whole. Returns
/// the blob and the layer's uncompressed size.
fn write_layer(
    layer: &mut impl Read,
    saved: &Path,
    member: &str,
    work_dir: &Path,
    sequence: usize,
) -> Result<(Blob, u64), ExportError> {
    let partial = work_dir.join(format!("layer-{sequence}.partial"));
    let read_failed = |e| read_err(saved, member, e);
    let write_failed = |e| write_err(saved, &partial, e);
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

    let file = File::create(&partial).map_err(write_failed)?;
    let mut out = Hashing {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
        size: 0,
    };
    let uncompressed = if buf[..head].starts_with(&GZIP_MAGIC) {
        // Keep the engine's compressed bytes (recompressing would only change
        // the digest), but gunzip alongside to check them and learn the size.
        let mut gunzip = MultiGzDecoder::new(Count(0));
        let corrupt = |e: io::Error| bad_layer(format!("is not a valid gzip stream: {e}"));
        pump(layer, &mut buf, head, read_failed, |chunk| {
            out.write_all(chunk).map_err(write_failed)?;
            gunzip.write_all(chunk).map_err(corrupt)
        })?;
        gunzip.finish().map_err(corrupt)?.0
    } else {
        // No file name and mtime 0, so the same layer always gives the same digest.
        let mut gzip = GzBuilder::new()
            .mtime(0)
            .write(&mut out, Compression::default());
        let size = pump(layer, &mut buf, head, read_failed, |chunk| {
            gzip.write_all(chunk).map_err(write_failed)
        })?;
        gzip.finish().map_err(write_failed)?;
        size
    };
    out.inner.flush().map_err(write_failed)?;
    let Hashing {
        inner,
        hasher,
        size,
    } = out;
    drop(inner);

    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    let path = work_dir.join(format!("{}.tar.gz", hex_of(&digest)));
    fs::rename(&partial, &path).map_err(|e| write_err(saved, &path, e))?;
    let blob = Blob {
        digest,
        size,
        media_type: LAYER_MEDIA_TYPE.to_owned(),
        path,
    };
    Ok((blob, uncompressed))
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

/// Passes writes through while hashing and counting exactly what was written.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The hex part of a `sha256:<hex>` digest, used for file names.
fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder as GunzipReader;
    use serde_json::Value;

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

        let image = oci_image(&saved, work.path()).unwrap();

        assert_eq!(fs::read(&image.config.path).unwrap(), CONFIG);
        assert_eq!(image.image_id, sha256_digest(CONFIG));
        assert_eq!(image.config.digest, image.image_id);
        assert_eq!(image.config.size, CONFIG.len() as u64);
        assert_eq!(image.config.media_type, CONFIG_MEDIA_TYPE);

        assert_eq!(image.layers.len(), 2);
        for (blob, input) in image.layers.iter().zip([&base, &app]) {
            let written = fs::read(&blob.path).unwrap();
            assert!(blob.path.starts_with(work.path()));
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

        let image = oci_image(&saved, work.path()).unwrap();

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
            assert_eq!(json["digest"], blob.digest);
            assert_eq!(json["size"], blob.size);
        }
    }

    #[test]
    fn same_export_gives_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let (saved, _, _) = legacy(dir.path());
        let first = oci_image(&saved, tempfile::tempdir().unwrap().path()).unwrap();
        let second = oci_image(&saved, tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(first.manifest, second.manifest);
        let digests = |image: &OciImage| -> Vec<String> {
            image.layers.iter().map(|b| b.digest.clone()).collect()
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
        let config = format!("blobs/sha256/{}", hex_of(&sha256_digest(CONFIG)));
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

        let image = oci_image(&saved, work.path()).unwrap();

        assert_eq!(image.image_id, sha256_digest(CONFIG));
        assert_eq!(gunzip(&fs::read(&image.layers[0].path).unwrap()), plain);
        assert_eq!(fs::read(&image.layers[1].path).unwrap(), gzipped);
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

        let image = oci_image(&saved, work.path()).unwrap();

        assert_eq!(image.layers.len(), 2);
        assert_eq!(image.layers[0], image.layers[1]);
        assert_eq!(gunzip(&fs::read(&image.layers[0].path).unwrap()), layer);
    }

    fn error_for(members: &[Member<'_>]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let saved = save_tar(dir.path(), members);
        let message = oci_image(&saved, work.path()).unwrap_err().to_string();
        assert!(message.contains("is malformed"), "{message}");
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
}
