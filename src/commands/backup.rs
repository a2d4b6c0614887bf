//! `backup`: tags of a repository into an OCI image layout, for an offline
//! restore; a `.tar` is the same layout packed (skopeo's `oci-archive:`).

use std::path::Path;

use anyhow::Context as _;

use crate::actions::boundary::Access;
use crate::cli::BackupArgs;
use crate::commands::Session;
use crate::layout::{self, Layout};
use crate::mirror::Store;
use crate::mirror::endpoints::{copy_wanted, open_from, wanted};
use crate::mirror::summary::{outputs, summary};

pub async fn run(args: &BackupArgs, session: &Session) -> anyhow::Result<()> {
    let (registry, reference) = open_from(
        &args.from.from,
        args.from.login.credentials()?,
        args.copy.timeout.request_timeout,
    )?;
    let archive = session.input_path("archive", &args.archive, Access::Exchange)?;
    let tar = layout::is_tar(&archive);
    // A tar is assembled beside itself (same file system, so the final
    // rename is atomic) and replaces the old one only when complete; a dry
    // run with no layout yet compares against an empty one there.
    let fresh_dry_run = args.copy.dry_run && !archive.exists();
    let staging = if tar || fresh_dry_run {
        let parent = archive.parent().unwrap_or(Path::new("."));
        Some(
            tempfile::Builder::new()
                .prefix(".registry-action-backup-")
                .tempdir_in(parent)
                .with_context(|| {
                    format!("couldn't make a work directory in {}", parent.display())
                })?,
        )
    } else {
        None
    };
    let dir = staging.as_ref().map_or(archive.as_path(), |s| s.path());
    let written = if args.copy.dry_run && staging.is_none() {
        Layout::open(dir)?
    } else {
        Layout::create(dir)?
    };
    let from = Store::Registry {
        registry: &registry,
        repository: reference.repository(),
    };
    let tags = wanted(&args.copy.tags, reference.tag())?;
    let report = copy_wanted(&from, &Store::Layout(&written), &tags, &args.copy.options()).await?;
    if tar && !args.copy.dry_run {
        layout::pack(dir, &archive)?;
    }
    let mut outputs = outputs(&report)?;
    outputs.set("archive", archive.display().to_string());
    session.finish(
        &outputs,
        &summary(
            "backup",
            &from.describe(),
            &archive.display().to_string(),
            &report,
        ),
    )
}
