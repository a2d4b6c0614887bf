//! `mirror`: copy tags from one repository to another — across registries,
//! or between repositories of one registry (then blobs are mounted).

use anyhow::bail;

use crate::cli::MirrorArgs;
use crate::commands::Session;
use crate::mirror::Store;
use crate::mirror::endpoints::{copy_wanted, open_from, open_to, wanted};
use crate::mirror::summary::{outputs, summary};

pub async fn run(args: &MirrorArgs, session: &Session) -> anyhow::Result<()> {
    let timeout = args.copy.timeout.request_timeout;
    let (source, from) = open_from(&args.from.from, args.from.login.credentials()?, timeout)?;
    let (target, to) = open_to(&args.to.to, args.to.login.credentials()?, timeout)?;
    let tags = wanted(&args.copy.tags, from.tag())?;
    let (from, to) = (
        Store::Registry {
            registry: &source,
            repository: from.repository(),
        },
        Store::Registry {
            registry: &target,
            repository: to.repository(),
        },
    );
    if from.describe() == to.describe() {
        bail!(
            "`from` and `to` both name {}; mirror to another repository or registry",
            from.describe()
        );
    }
    let report = copy_wanted(&from, &to, &tags, &args.copy.options()).await?;
    session.finish(
        &outputs(&report)?,
        &summary("mirror", &from.describe(), &to.describe(), &report),
    )
}
