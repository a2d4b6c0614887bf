//! OCI image layouts (image-spec `image-layout.md`): a directory holding
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`, or the same packed
//! in a tar — what skopeo reads as `oci:<dir>:<tag>` and
//! `oci-archive:<tar>:<tag>`. Tags are the index entries'
//! `org.opencontainers.image.ref.name` annotations.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::limits;
use crate::names;
use crate::oci::{Descriptor, Digest, INDEX_MEDIA_TYPE, Index, MANIFEST_MEDIA_TYPE};
use crate::registry::stream::{BlobStream, file_chunks, verified};
use crate::registry::{Manifest, sha256_digest};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_VERSION: &str = "1.0.0";
const INDEX_FILE: &str = "index.json";
const BLOBS: &str = "blobs/sha256";
/// `oci-layout` is one small JSON object.
const MARKER_LIMIT: u64 = 4 << 10;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{action} {path} failed: {source}; check the path, its permissions and free space")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not an OCI image layout: {why}; pass a directory or .tar written by `backup` (or by skopeo's oci:/oci-archive:)"
    )]
    Invalid { path: PathBuf, why: String },
}

/// The file at `path`, or `None` when it holds more than `limit` bytes: an
/// archive from outside is read under the limits a registry's answers are.
fn too_large(what: &str, limit: u64) -> String {
    format!(
        "its {what} is larger than {}, the limit for one",
        crate::units::bytes(limit)
    )
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LayoutError {
    let path = path.to_owned();
    move |source| LayoutError::Io {
        action,
        path,
        source,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutVersion {
    image_layout_version: String,
}

/// An image layout directory, read or being written.
pub struct Layout {
    root: PathBuf,
    index: Mutex<Vec<Descriptor>>,
}

impl Layout {
    /// A layout to write into: created when absent, extended when it holds
    /// one already (blobs it has are not fetched again; tags are replaced).
    pub fn create(root: &Path) -> Result<Self, LayoutError> {
        let blobs = root.join(BLOBS);
        fs::create_dir_all(&blobs).map_err(io_error("creating", &blobs))?;
        // A link counts as there (`open` refuses one out of the layout):
        // writing through a dangling one would create its target.
        if root.join(LAYOUT_FILE).symlink_metadata().is_ok() {
            return Self::open(root);
        }
        let marker = root.join(LAYOUT_FILE);
        let text = format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#);
        fs::write(&marker, text).map_err(io_error("writing", &marker))?;
        Ok(Layout {
            root: root.to_owned(),
            index: Mutex::new(Vec::new()),
        })
    }

    /// An existing layout, to read.
    pub fn open(root: &Path) -> Result<Self, LayoutError> {
        let invalid = |why: String| LayoutError::Invalid {
            path: root.to_owned(),
            why,
        };
        let mut layout = Layout {
            root: root.to_owned(),
            index: Mutex::new(Vec::new()),
        };
        let marker = root.join(LAYOUT_FILE);
        layout.stays_inside(&marker)?;
        let text = limits::read_file(&marker, MARKER_LIMIT)
            .map_err(|e| invalid(format!("no readable {LAYOUT_FILE} ({e})")))?
            .ok_or_else(|| invalid(too_large(LAYOUT_FILE, MARKER_LIMIT)))?;
        let version: LayoutVersion = serde_json::from_slice(&text)
            .map_err(|e| invalid(format!("{LAYOUT_FILE} is not JSON ({e})")))?;
        if version.image_layout_version != LAYOUT_VERSION {
            return Err(invalid(format!(
                "layout version {} (only {LAYOUT_VERSION} is known)",
                version.image_layout_version
            )));
        }
        let path = root.join(INDEX_FILE);
        layout.stays_inside(&path)?;
        let index = match limits::read_file(&path, limits::LAYOUT_INDEX) {
            Ok(None) => return Err(invalid(too_large(INDEX_FILE, limits::LAYOUT_INDEX))),
            Ok(Some(bytes)) => {
                serde_json::from_slice::<Index>(&bytes)
                    .map_err(|e| invalid(format!("{INDEX_FILE} is not an image index ({e})")))?
                    .manifests
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error("reading", &path)(e)),
        };
        layout.index = Mutex::new(index);
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entries(&self) -> Vec<Descriptor> {
        self.index.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// The tags (`ref.name` annotations) in index order. A name that is not
    /// a tag is left out, with a warning: it is never pushed.
    pub fn tags(&self) -> Vec<String> {
        let mut listed = names::ListedNames::new(self.root.join(INDEX_FILE).display().to_string());
        self.entries()
            .into_iter()
            .filter_map(|e| e.annotations.get(REF_NAME).cloned())
            .filter(|name| listed.is_tag(name))
            .collect()
    }

    /// The digest a tag names, or `None`.
    pub fn manifest_digest(&self, tag: &str) -> Option<String> {
        self.entries()
            .into_iter()
            .find(|e| e.annotations.get(REF_NAME).is_some_and(|n| n == tag))
            .map(|e| e.digest.into())
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        self.path_of(&self.digest(digest)?)
    }

    fn digest(&self, text: &str) -> Result<Digest, LayoutError> {
        Digest::parse(text).map_err(|e| LayoutError::Invalid {
            path: self.root.clone(),
            why: e.to_string(),
        })
    }

    fn path_of(&self, digest: &Digest) -> Result<PathBuf, LayoutError> {
        let path = self.root.join(BLOBS).join(digest.hex());
        self.stays_inside(&path)?;
        Ok(path)
    }

    /// A blob, or the folder of blobs, that is a link out of the layout
    /// would read or overwrite another file: an archive could carry
    /// `blobs/sha256/<hex> -> /etc/…` and have it pushed.
    fn stays_inside(&self, path: &Path) -> Result<(), LayoutError> {
        let Some(existing) = path.ancestors().find(|p| p.symlink_metadata().is_ok()) else {
            return Ok(());
        };
        let real = fs::canonicalize(existing).map_err(io_error("resolving", existing))?;
        let root = fs::canonicalize(&self.root).map_err(io_error("resolving", &self.root))?;
        if real.starts_with(&root) {
            return Ok(());
        }
        Err(LayoutError::Invalid {
            path: path.to_owned(),
            why: format!(
                "it links out of the layout (to {}); a layout's blobs are files inside it",
                real.display()
            ),
        })
    }

    /// A manifest by tag or digest, verified; its media type is the index
    /// entry's, else the one it declares, else what its shape says.
    pub fn manifest(&self, reference: &str) -> Result<Option<Manifest>, LayoutError> {
        let entry = self.entries().into_iter().find(|e| {
            e.digest == reference || e.annotations.get(REF_NAME).is_some_and(|n| n == reference)
        });
        let digest = match &entry {
            Some(e) => e.digest.to_string(),
            None if reference.starts_with("sha256:") => reference.to_owned(),
            None => return Ok(None),
        };
        let path = self.blob_path(&digest)?;
        let bytes = match limits::read_file(&path, limits::MANIFEST) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(LayoutError::Invalid {
                    why: too_large("manifest", limits::MANIFEST),
                    path,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path)(e)),
        };
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(LayoutError::Invalid {
                path: path.clone(),
                why: format!("its bytes hash to {actual}, not {digest}: the file is corrupt"),
            });
        }
        let media_type = entry
            .map(|e| e.media_type)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| declared_media_type(&bytes));
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// Whether the blob is there whole (a partial file never has its name).
    pub fn has_blob(&self, digest: &str, size: u64) -> Result<bool, LayoutError> {
        let path = self.blob_path(digest)?;
        Ok(fs::metadata(path).is_ok_and(|m| m.len() == size))
    }

    /// A blob read back in chunks, verified against its descriptor as it
    /// is read.
    pub async fn blob_stream(&self, digest: &str, size: u64) -> Result<BlobStream, LayoutError> {
        let path = self.blob_path(digest)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(io_error("opening", &path))?;
        let chunks = file_chunks(file, path.display().to_string());
        Ok(verified(
            chunks,
            digest,
            size,
            &self.root.display().to_string(),
            format!("blob {digest}"),
        ))
    }

    /// Writes a blob from `chunks` under a temporary name, renamed into
    /// place only once the stream ended verified: no partial blob is kept.
    pub async fn write_blob(&self, digest: &str, chunks: BlobStream) -> Result<u64, LayoutError> {
        let path = self.blob_path(digest)?;
        let partial = path.with_extension("partial");
        let written = write_stream(&partial, chunks).await;
        match written {
            Ok(n) => {
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(io_error("renaming into place", &path))?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// Stores a manifest as a blob and, for a tag, names it in the index
    /// (which reaches the disk with [`Layout::save_index`]).
    pub fn put_manifest(&self, reference: &str, manifest: &Manifest) -> Result<(), LayoutError> {
        let digest = self.digest(&manifest.digest)?;
        write_atomically(&self.path_of(&digest)?, &manifest.bytes)?;
        if reference.starts_with("sha256:") {
            return Ok(());
        }
        let entry = Descriptor {
            annotations: BTreeMap::from([(REF_NAME.to_owned(), reference.to_owned())]),
            ..Descriptor::new(&manifest.media_type, digest, manifest.bytes.len() as u64)
        };
        if let Ok(mut index) = self.index.lock() {
            index.retain(|e| e.annotations.get(REF_NAME).is_none_or(|n| n != reference));
            index.push(entry);
        }
        Ok(())
    }

    /// Writes `index.json`: last, so it never names a manifest whose blobs
    /// are not all in place.
    pub fn save_index(&self) -> Result<(), LayoutError> {
        let index = Index::of(self.entries());
        let bytes = serde_json::to_vec(&index).map_err(|e| LayoutError::Invalid {
            path: self.root.clone(),
            why: format!("its index can't be serialised ({e})"),
        })?;
        write_atomically(&self.root.join(INDEX_FILE), &bytes)
    }
}

fn declared_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Shape {
            manifests: Some(_), ..
        }) => INDEX_MEDIA_TYPE.to_owned(),
        _ => MANIFEST_MEDIA_TYPE.to_owned(),
    }
}

async fn write_stream(path: &Path, mut chunks: BlobStream) -> Result<u64, LayoutError> {
    let mut file = tokio::fs::File::from_std(fresh_file(path).map_err(io_error("creating", path))?);
    let mut written = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| LayoutError::Io {
            action: "filling",
            path: path.to_owned(),
            source: io::Error::other(e),
        })?;
        file.write_all(&chunk)
            .await
            .map_err(io_error("writing", path))?;
        written += chunk.len() as u64;
    }
    file.sync_all().await.map_err(io_error("syncing", path))?;
    Ok(written)
}

/// A new file at `path`, never one reached through a link left there: what
/// was at `path` (a leftover partial file, or a link out of the layout) is
/// removed first.
fn fresh_file(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    File::options().write(true).create_new(true).open(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let partial = path.with_extension("partial");
    let mut file = fresh_file(&partial).map_err(io_error("creating", &partial))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("writing", &partial))?;
    fs::rename(&partial, path).map_err(io_error("renaming into place", path))
}

/// Packs the layout in `dir` into the tar `archive` (written under a
/// temporary name, then renamed): `oci-layout`, `index.json`, `blobs/…`.
pub fn pack(dir: &Path, archive: &Path) -> Result<(), LayoutError> {
    let partial = archive.with_extension("tar.partial");
    let file = File::create(&partial).map_err(io_error("creating", &partial))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut blobs: Vec<PathBuf> = fs::read_dir(dir.join(BLOBS))
        .map_err(io_error("listing", &dir.join(BLOBS)))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_none())
        .collect();
    blobs.sort();
    let appended = (|| -> io::Result<()> {
        builder.append_path_with_name(dir.join(LAYOUT_FILE), LAYOUT_FILE)?;
        builder.append_path_with_name(dir.join(INDEX_FILE), INDEX_FILE)?;
        builder.append_dir("blobs", dir.join("blobs"))?;
        builder.append_dir(BLOBS, dir.join(BLOBS))?;
        for blob in &blobs {
            let name = Path::new(BLOBS).join(blob.file_name().unwrap_or_default());
            builder.append_path_with_name(blob, name)?;
        }
        builder.into_inner()?.flush()
    })();
    if let Err(e) = appended {
        let _ = fs::remove_file(&partial);
        return Err(io_error("packing into", &partial)(e));
    }
    fs::rename(&partial, archive).map_err(io_error("renaming into place", archive))
}

/// Unpacks the tar `archive` into `dir` (member paths stay inside it).
pub fn unpack(archive: &Path, dir: &Path) -> Result<(), LayoutError> {
    let file = File::open(archive).map_err(io_error("opening", archive))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    for entry in tar.entries().map_err(io_error("unpacking", archive))? {
        let mut entry = entry.map_err(io_error("unpacking", archive))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            let name = entry.path().map(|p| p.display().to_string());
            return Err(LayoutError::Invalid {
                path: archive.to_owned(),
                why: format!(
                    "it holds {:?}, a {kind:?} entry; an OCI layout holds files and folders only (a link could read or write outside it)",
                    name.unwrap_or_default()
                ),
            });
        }
        entry
            .unpack_in(dir)
            .map_err(io_error("unpacking", archive))?;
    }
    Ok(())
}

/// Whether a path names a tar archive rather than a layout directory.
pub fn is_tar(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tar")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manifest(bytes: &[u8], media_type: &str) -> Manifest {
        Manifest {
            bytes: bytes.to_vec(),
            media_type: media_type.into(),
            digest: sha256_digest(bytes),
        }
    }

    #[test]
    fn an_archive_or_layout_linking_out_is_refused_before_anything_is_read() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        // An archive whose `oci-layout` is a link to an endless file.
        let archive = dir.path().join("evil.tar");
        let mut tar = tar::Builder::new(File::create(&archive).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, LAYOUT_FILE, "/dev/zero")
            .unwrap();
        tar.into_inner().unwrap();
        let unpacked = dir.path().join("unpacked");
        let err = unpack(&archive, &unpacked).unwrap_err().to_string();
        assert!(err.contains("files and folders only"), "{err}");
        assert!(unpacked.join(LAYOUT_FILE).symlink_metadata().is_err());

        // The same in a directory: refused, not read.
        let layout = dir.path().join("layout");
        fs::create_dir(&layout).unwrap();
        symlink("/dev/zero", layout.join(LAYOUT_FILE)).unwrap();
        let err = Layout::open(&layout).err().unwrap().to_string();
        assert!(err.contains("links out of the layout"), "{err}");
        // Nor is a dangling one written through.
        let outside = dir.path().join("created-outside");
        fs::remove_file(layout.join(LAYOUT_FILE)).unwrap();
        symlink(&outside, layout.join(LAYOUT_FILE)).unwrap();
        assert!(Layout::create(&layout).is_err());
        assert!(!outside.exists());
    }

    #[tokio::test]
    async fn a_blob_linked_out_of_the_layout_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("l")).unwrap();
        let secret = b"a file beside the layout".to_vec();
        let digest = sha256_digest(&secret);
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::write(outside.path().join("secret"), &secret).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            layout.root().join(BLOBS).join(hex),
        )
        .unwrap();
        let size = secret.len() as u64;
        for err in [
            layout.has_blob(&digest, size).unwrap_err(),
            layout.blob_stream(&digest, size).await.err().unwrap(),
        ] {
            assert!(err.to_string().contains("links out of the layout"), "{err}");
        }
        // A folder of blobs linked out is refused for writes too.
        let linked = Layout::create(&dir.path().join("linked")).unwrap();
        fs::remove_dir(linked.root().join(BLOBS)).unwrap();
        std::os::unix::fs::symlink(outside.path(), linked.root().join(BLOBS)).unwrap();
        let chunks: BlobStream =
            futures_util::stream::iter([Ok(bytes::Bytes::from(secret))]).boxed();
        let err = linked.write_blob(&digest, chunks).await.unwrap_err();
        assert!(err.to_string().contains("links out of the layout"), "{err}");
        assert!(!outside.path().join(hex).exists());
    }

    #[tokio::test]
    async fn written_layouts_read_back_through_a_tar() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("l")).unwrap();
        let blob = b"layer bytes".to_vec();
        let digest = sha256_digest(&blob);
        let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from(blob.clone()))]);
        let stream = verified(chunks, &digest, 11, "test", "blob".into());
        assert_eq!(layout.write_blob(&digest, stream).await.unwrap(), 11);
        let m = manifest(br#"{"schemaVersion":2,"layers":[]}"#, MANIFEST_MEDIA_TYPE);
        layout.put_manifest("1.0", &m).unwrap();
        layout.put_manifest("1.0", &m).unwrap();
        layout.save_index().unwrap();

        let tar = dir.path().join("l.tar");
        pack(layout.root(), &tar).unwrap();
        let out = dir.path().join("out");
        unpack(&tar, &out).unwrap();
        let read = Layout::open(&out).unwrap();
        assert_eq!(read.tags(), ["1.0"]);
        assert_eq!(read.manifest("1.0").unwrap(), Some(m.clone()));
        assert_eq!(read.manifest(&m.digest).unwrap(), Some(m));
        assert!(read.has_blob(&digest, 11).unwrap());
        let mut back = Vec::new();
        let mut stream = read.blob_stream(&digest, 11).await.unwrap();
        while let Some(chunk) = stream.next().await {
            back.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(back, blob);
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "1.0");
    }

    #[tokio::test]
    async fn a_corrupt_blob_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let digest = sha256_digest(b"expected");
        let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"tampered"))]);
        let stream = verified(chunks, &digest, 8, "src", "blob".into());
        let err = layout.write_blob(&digest, stream).await.unwrap_err();
        assert!(err.to_string().contains(&digest), "{err}");
        assert_eq!(fs::read_dir(dir.path().join(BLOBS)).unwrap().count(), 0);
    }

    #[test]
    fn a_manifest_past_its_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let mut big = br#"{"schemaVersion":2,"layers":[],"x":""#.to_vec();
        big.resize(limits::MANIFEST as usize + 1, b' ');
        let m = manifest(&big, MANIFEST_MEDIA_TYPE);
        layout.put_manifest("big", &m).unwrap();
        layout.save_index().unwrap();
        let err = Layout::open(dir.path())
            .unwrap()
            .manifest("big")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its manifest is larger than 4.0 MiB, the limit for one"),
            "{err}"
        );
    }

    #[test]
    fn names_in_the_index_that_are_not_tags_or_digests_are_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let m = manifest(br#"{"schemaVersion":2,"layers":[]}"#, MANIFEST_MEDIA_TYPE);
        for name in [
            "v1",
            "../../../acme/victim/manifests/latest",
            "x\n::warning::y",
        ] {
            layout.put_manifest(name, &m).unwrap();
        }
        layout.save_index().unwrap();
        let read = Layout::open(dir.path()).unwrap();
        assert_eq!(read.tags(), ["v1"]);
        let upper = m.digest.to_uppercase().replace("SHA256", "sha256");
        let err = read.manifest(&upper).unwrap_err().to_string();
        assert!(
            err.contains("a digest is sha256: followed by 64 lower-case hex digits"),
            "{err}"
        );
        assert!(read.has_blob("sha256:../../../../etc/passwd", 1).is_err());
    }

    #[test]
    fn not_a_layout_says_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("not an OCI image layout") && err.contains("backup"),
            "{err}"
        );
    }
}
