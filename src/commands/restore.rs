//! `restore`: push the tags of an OCI image layout (a directory, or a `.tar`)
//! to a repository, digests unchanged.

use crate::actions::boundary::Access;
use crate::cli::RestoreArgs;
use crate::commands::Session;
use crate::layout::{self, Layout};
use crate::mirror::Store;
use crate::mirror::endpoints::{copy_wanted, open_to, wanted};
use crate::mirror::summary::{outputs, summary};

pub async fn run(args: &RestoreArgs, session: &Session) -> anyhow::Result<()> {
    let archive = session.input_path("archive", &args.archive, Access::Exchange)?;
    let (registry, reference) = open_to(
        &args.to.to,
        args.to.login.credentials()?,
        args.copy.timeout.request_timeout,
    )?;
    let unpacked = if layout::is_tar(&archive) {
        let dir = session.work_dir()?;
        layout::unpack(&archive, dir.path())?;
        Some(dir)
    } else {
        None
    };
    let read = Layout::open(unpacked.as_ref().map_or(archive.as_path(), |d| d.path()))?;
    let to = Store::Registry {
        registry: &registry,
        repository: reference.repository(),
    };
    let tags = wanted(&args.copy.tags, None)?;
    let report = copy_wanted(&Store::Layout(&read), &to, &tags, &args.copy.options()).await?;
    session.finish(
        &outputs(&report)?,
        &summary(
            "restore",
            &archive.display().to_string(),
            &to.describe(),
            &report,
        ),
    )
}
