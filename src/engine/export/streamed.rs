//! One pass over the engine's export while it arrives: layers are
//! compressed as the engine sends them, the tarball is kept on disk only
//! when something (the scanner) reads it, and each blob is announced the
//! moment it is complete, so its upload can start while later layers are
//! still on their way.
//!
//! Only for builds of which no layer is reused: telling a reused layer apart
//! needs its diff ID before its bytes, and the legacy layout names layer
//! directories by v1 ID, so only the two-pass [`super::oci_image`] can skip
//! them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::{
    BlobEvent, Converter, ExportError, LayerTap, Links, OciImage, SAVE_MANIFEST, SavedImageFiles,
    assemble, cores, member_name, members, note_link, read_err, write_err,
};

/// Members no bigger than this that aren't legacy `layer.tar`s are read
/// into memory: configs and `manifest.json` are a few KiB. In the OCI
/// layout, a blob bigger than this can only be a layer.
const SMALL: u64 = 4 << 20;

/// Converts the engine's export, read from `export` as it arrives, into an
/// OCI image whose blobs are written to `work_dir`; `sealed` hears of each
/// layer blob when its file is begun and once it is complete. With `keep`, the export is also written
/// to `saved` byte for byte (`saved` names the export in errors either way).
pub fn oci_image_streamed(
    export: impl Read,
    saved: &Path,
    keep: bool,
    work_dir: &Path,
    sealed: impl FnMut(BlobEvent),
) -> Result<OciImage, ExportError> {
    oci_image_streamed_tapped(export, saved, keep, work_dir, sealed, None)
}

/// [`oci_image_streamed`], every layer shown to `tap` as it passes.
pub fn oci_image_streamed_tapped(
    export: impl Read,
    saved: &Path,
    keep: bool,
    work_dir: &Path,
    sealed: impl FnMut(BlobEvent),
    tap: Option<&mut (dyn LayerTap + 'static)>,
) -> Result<OciImage, ExportError> {
    let copy = keep
        .then(|| File::create(saved).map(BufWriter::new))
        .transpose()
        .map_err(|e| write_err(saved, saved, e))?;
    let mut tee = Tee {
        inner: export,
        copy,
        failed: None,
    };
    let image = convert(&mut tee, saved, work_dir, sealed, tap).and_then(|image| {
        tee.finish()
            .map_err(|e| read_err(saved, "the end of the tarball", e))?;
        Ok(image)
    });
    match tee.failed.take() {
        Some(e) => Err(write_err(saved, saved, e)),
        None => image,
    }
}

fn convert(
    export: &mut impl Read,
    saved: &Path,
    work_dir: &Path,
    sealed: impl FnMut(BlobEvent),
    tap: Option<&mut (dyn LayerTap + 'static)>,
) -> Result<OciImage, ExportError> {
    std::thread::scope(|scope| {
        let mut converter = Converter::new(scope, saved, work_dir, cores(), sealed);
        converter.tap = tap;
        let mut small = HashMap::new();
        let mut links = Links::new();
        let mut archive = tar::Archive::new(export);
        let entries = archive
            .entries()
            .map_err(|e| read_err(saved, "the tar headers", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_err(saved, "the tar headers", e))?;
            let member = member_name(saved, &entry)?;
            if !entry.header().entry_type().is_file() {
                note_link(saved, &entry, member, &mut links)?;
            } else if is_layer(&member, entry.size()) {
                converter.layer(&mut entry, member)?;
            } else if entry.size() <= SMALL {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| read_err(saved, &member, e))?;
                small.insert(member, bytes);
            }
        }

        let manifest = small
            .get(SAVE_MANIFEST)
            .ok_or_else(|| ExportError::NoManifest {
                saved: saved.to_owned(),
            })?;
        let (config, layers) = members(
            saved,
            manifest,
            |m| small.contains_key(m) || converter.has(m),
            &links,
        )?;
        // Small OCI-layout blobs are only known to be layers now.
        for member in &layers {
            if let Some(bytes) = small.get(member).filter(|_| !converter.has(member)) {
                converter.layer(&mut bytes.as_slice(), member.clone())?;
            }
        }
        let config = small.remove(&config).ok_or_else(|| ExportError::Missing {
            saved: saved.to_owned(),
            what: "config",
            member: config,
        })?;
        if let Some(tap) = converter.tap.as_deref_mut() {
            tap.order(&layers);
        }
        let converted = converter.finish()?;
        let reused = vec![None; layers.len()];
        assemble(
            saved,
            work_dir,
            &SavedImageFiles { config, layers },
            reused,
            converted,
        )
    })
}

/// A layer member: legacy `<id>/layer.tar`, or an OCI-layout blob too big to
/// be anything else.
fn is_layer(member: &str, size: u64) -> bool {
    member.ends_with("/layer.tar") || (member.starts_with("blobs/") && size > SMALL)
}

/// Reads through to `inner`, writing what it reads to `copy`; a failed
/// write is kept apart so it is reported as a write, not a read.
struct Tee<R> {
    inner: R,
    copy: Option<BufWriter<File>>,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(copy) = &mut self.copy {
            if let Err(e) = copy.write_all(&buf[..n]) {
                self.failed = Some(e);
                return Err(io::Error::other("couldn't keep a copy of the export"));
            }
        }
        Ok(n)
    }
}

impl<R: Read> Tee<R> {
    /// Reads what the tar reader left (end-of-archive padding), so the copy
    /// is the whole export, and flushes the copy.
    fn finish(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink())?;
        if let Some(copy) = &mut self.copy {
            if let Err(e) = copy.flush() {
                self.failed = Some(e);
            }
        }
        Ok(())
    }
}
