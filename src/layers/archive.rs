//! A `docker save` archive fed to the analysis: its `manifest.json` names
//! the config and the layers in order, each a member of the archive (the
//! legacy `<id>/layer.tar` or the OCI `blobs/sha256/<hex>`), plain or
//! gzip. Members are read in place, one at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek as _, SeekFrom};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::{Analysis, Analyzer, Limits};

/// Members an archive may have: layers, configs and their folders.
const MAX_MEMBERS: usize = 100_000;
/// `manifest.json` and the config are small JSON files.
const MAX_JSON: u64 = 8 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Saved {
    config: String,
    layers: Vec<String>,
}

/// Where a member's bytes are in the archive.
#[derive(Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
}

/// The first image of the archive at `path`, analysed.
pub fn analyse_saved(path: &Path, limits: Limits) -> anyhow::Result<Analysis> {
    let shown = path.display();
    let members =
        members(path).with_context(|| format!("{shown} isn't a readable `docker save` archive"))?;
    let manifest: Vec<Saved> =
        serde_json::from_slice(&read_member(path, &members, "manifest.json")?)
            .with_context(|| format!("{shown}: `manifest.json` isn't a `docker save` manifest"))?;
    let Some(image) = manifest.into_iter().next() else {
        bail!("{shown}: `manifest.json` lists no image");
    };
    let history = super::config_history(&read_member(path, &members, &image.config)?)
        .with_context(|| {
            format!(
                "{shown}: the config {:?} isn't an image config",
                image.config
            )
        })?;
    let mut analyzer = Analyzer::new(limits);
    for layer in &image.layers {
        analyzer
            .add_stored(open_member(path, &members, layer)?)
            .with_context(|| format!("{shown}: layer {layer:?}"))?;
    }
    Ok(analyzer.finish(&history))
}

fn members(path: &Path) -> anyhow::Result<HashMap<String, Member>> {
    let mut archive = tar::Archive::new(BufReader::new(File::open(path)?));
    let mut members = HashMap::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if members.len() >= MAX_MEMBERS {
            bail!("more than {MAX_MEMBERS} members");
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        members.insert(
            name.trim_start_matches("./").to_owned(),
            Member {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
        );
    }
    Ok(members)
}

fn open_member(
    path: &Path,
    members: &HashMap<String, Member>,
    name: &str,
) -> anyhow::Result<impl Read> {
    let member = members.get(name).with_context(|| {
        format!(
            "{}: `manifest.json` names {name:?}, which the archive doesn't hold",
            path.display()
        )
    })?;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(member.offset))?;
    Ok(file.take(member.size))
}

fn read_member(
    path: &Path,
    members: &HashMap<String, Member>,
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_member(path, members, name)?
        .take(MAX_JSON + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_JSON {
        bail!(
            "{}: {name:?} is over {MAX_JSON} bytes; it isn't a config or manifest",
            path.display()
        );
    }
    Ok(bytes)
}
