//! One file per command: orchestration only.

pub mod backup;
pub mod cleanup;
pub mod mirror;
pub mod monitor;
pub mod plan;
pub mod publish;
pub mod restore;
pub mod scan;
pub mod usage;
pub mod verify;

use anyhow::{Context as _, bail};

use std::path::PathBuf;

use crate::actions::boundary::{Access, Boundary, PathError};
use crate::actions::event::Event;

use crate::actions::context::Context;
use crate::actions::outputs::Outputs;
use crate::actions::summary;
use crate::actions::workflow::{Workflow, log_json, log_line};
use crate::cli::{Command, PackagesMode, RepositoryArgs};
use crate::inventory::Inventory;
use crate::packages::{self, PackagesApi};
use crate::plan::discover::discover;
use crate::plan::git::GitSource;
use crate::repositories::Store;

/// What every command gets: the run's context and the workflow-command sink.
pub struct Session {
    pub ctx: Context,
    pub workflow: Workflow,
    /// `GITHUB_TOKEN` from the environment (Forgejo sets it; GitHub doesn't).
    pub env_token: Option<String>,
}

impl Session {
    /// The event payload, when a runner named one.
    pub fn event(&self) -> anyhow::Result<Option<Event>> {
        let Some(name) = &self.ctx.event_name else {
            return Ok(None);
        };
        let Some(path) = &self.ctx.event_path else {
            bail!(
                "GITHUB_EVENT_NAME is `{name}` but GITHUB_EVENT_PATH is not set; run inside a workflow, or unset GITHUB_EVENT_NAME and pass `base`/`head`"
            );
        };
        Ok(Some(Event::load(name, path)?))
    }

    /// The commit a tag names in the checked-out clone, when the workspace
    /// is a clone that has the tag.
    pub async fn tag_commit(&self, tag: &str) -> anyhow::Result<Option<String>> {
        match GitSource::open(&self.ctx.workspace).await? {
            Some(git) => git.tag_commit(tag).await,
            None => Ok(None),
        }
    }

    /// The workspace boundary every path input is resolved inside.
    pub fn boundary(&self) -> Result<Boundary, PathError> {
        self.ctx.boundary()
    }

    /// The path input `input` (as the workflow spells it) resolved inside
    /// the boundary: the workspace, or RUNNER_TEMP too for a file written.
    pub fn input_path(&self, input: &str, given: &str, access: Access) -> anyhow::Result<PathBuf> {
        Ok(self.boundary()?.resolve(input, given, access)?)
    }

    /// A fresh work directory under RUNNER_TEMP (the runner empties it
    /// after the job), removed when dropped.
    pub fn work_dir(&self) -> anyhow::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("registry-action-")
            .tempdir_in(
                self.ctx
                    .runner_temp
                    .clone()
                    .unwrap_or_else(std::env::temp_dir),
            )
            .context("couldn't make a work directory under RUNNER_TEMP")
    }

    /// The image namespace: the input (checked as given, see `cli`), else
    /// the repository owner lower-cased — from GITHUB_REPOSITORY_OWNER,
    /// GITHUB_REPOSITORY, or the event's repository (Forgejo leaves the
    /// first empty on dispatch).
    pub fn namespace(&self, given: Option<&str>) -> anyhow::Result<String> {
        if let Some(given) = given {
            return Ok(given.to_owned());
        }
        let owner = self
            .ctx
            .repository_owner
            .clone()
            .or_else(|| {
                self.ctx
                    .event_path
                    .as_deref()
                    .and_then(crate::actions::event::repository_owner)
            })
            .context(
                "no namespace for the image names: set the `namespace` input (GITHUB_REPOSITORY_OWNER, GITHUB_REPOSITORY and the event's repository name no owner)",
            )?;
        let namespace = owner.to_ascii_lowercase();
        crate::names::check_repository(&namespace).with_context(|| {
            format!(
                "the repository owner {owner:?} makes no image namespace; set the `namespace` input"
            )
        })?;
        Ok(namespace)
    }

    /// Hands results to the runner — the output file and the step summary —
    /// or, on a laptop, prints outputs as one JSON object on stdout and the
    /// summary on stderr. Called once, at the end of a successful run, so a
    /// failed run writes no outputs.
    pub fn finish(&self, outputs: &Outputs, summary_md: &str) -> anyhow::Result<()> {
        match &self.ctx.output_file {
            Some(path) => outputs.write_to_file(path).with_context(|| {
                format!("couldn't write the step outputs to {}", path.display())
            })?,
            None => println!("{}", log_json(&outputs.to_json())),
        }
        match &self.ctx.summary_file {
            Some(path) => summary::append(path, summary_md)
                .with_context(|| format!("couldn't write the job summary to {}", path.display()))?,
            None => {
                for line in summary_md.lines() {
                    eprintln!("{}", log_line(line));
                }
            }
        }
        Ok(())
    }
}

pub async fn run(command: Command, session: &Session) -> anyhow::Result<()> {
    match command {
        Command::Plan(args) => plan::run(&args, session).await,
        Command::Publish(args) => publish::run(&args, session).await,
        // `merge` is `publish`'s last stages over several platforms' images.
        Command::Merge(args) => publish::merge::run(&args, session).await,
        Command::Scan(args) => scan::run(&args, session).await,
        Command::Cleanup(args) => cleanup::run(&args, session).await,
        Command::Usage(args) => usage::run(&args, session).await,
        Command::Mirror(args) => mirror::run(&args, session).await,
        Command::Backup(args) => backup::run(&args, session).await,
        Command::Restore(args) => restore::run(&args, session).await,
        Command::Verify(args) => verify::run(&args, session).await,
        Command::Monitor(args) => monitor::run(&args, session).await,
    }
}

/// The repositories `cleanup`, `usage` and `monitor` work on: `images`,
/// else the image directories under `context-root`.
pub fn repository_names(args: &RepositoryArgs, session: &Session) -> anyhow::Result<Vec<String>> {
    let directories = || -> anyhow::Result<Vec<String>> {
        let found = discover(
            &session.boundary()?,
            &args.dirs.context_root,
            usize::from(args.dirs.max_depth),
        )?;
        Ok(found.into_iter().map(|found| found.name).collect())
    };
    crate::repositories::names(&args.images, directories, || {
        session.namespace(args.namespace.as_deref())
    })
}

/// The store holding those repositories; `deleting` asks for the right to
/// delete.
pub async fn open_store(args: &RepositoryArgs, deleting: bool) -> anyhow::Result<Store> {
    Store::open(
        &args.registry,
        &args.hub_api,
        args.login.credentials()?,
        args.timeout.request_timeout,
        deleting,
    )
    .await
}

/// GitHub's container registry, which has no manifest `DELETE`.
const GHCR: &str = "ghcr.io";

/// Why a command asks for GitHub's Packages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackagesUse {
    /// `cleanup`: planning needs every version; without `dry-run` it deletes.
    Cleanup { deleting: bool },
    /// `usage`, `monitor`: untagged versions are counted where a token
    /// allows; without one, the registry API alone is read, as elsewhere.
    Count,
}

/// GitHub's Packages API, where `packages-api` (and `registry`) call for
/// it; input errors before any request.
pub fn packages_api(
    args: &RepositoryArgs,
    usage: PackagesUse,
    session: &Session,
) -> anyhow::Result<Option<PackagesApi>> {
    let registry = args.registry.as_str();
    let deleting = usage == PackagesUse::Cleanup { deleting: true };
    if !uses_packages_api(args.packages_api, registry, deleting)? {
        return Ok(None);
    }
    if usage == PackagesUse::Count && args.login.password.is_none() {
        return Ok(None);
    }
    let token = args.login.password.as_deref().with_context(|| {
        format!("`password`: GitHub's Packages API (`packages-api`, on {registry}) needs a token; set `username: ${{{{ github.actor }}}}` and `password: ${{{{ secrets.GITHUB_TOKEN }}}}`, with `permissions: packages: write` (`packages: read` to read only)")
    })?;
    let url = args
        .github_api_url
        .as_deref()
        .unwrap_or(&session.ctx.api_url);
    Ok(Some(PackagesApi::new(
        url,
        token,
        args.timeout.request_timeout,
    )?))
}

/// Whether `mode` on `registry` goes through the Packages API.
fn uses_packages_api(mode: PackagesMode, registry: &str, deleting: bool) -> anyhow::Result<bool> {
    match mode {
        PackagesMode::Auto => Ok(registry == GHCR),
        PackagesMode::Github if crate::reference::is_docker_hub(registry) => bail!(
            "`packages-api`: `github` is for GitHub's container registries, and `registry` is Docker Hub, read through its own API (`hub-api`); leave `packages-api` at `auto`"
        ),
        PackagesMode::Github => Ok(true),
        PackagesMode::Oci if registry == GHCR && deleting => bail!(
            "`packages-api`: `oci` deletes through the registry API, and ghcr.io has no manifest DELETE; leave `packages-api` at `auto` to delete through GitHub's Packages API"
        ),
        PackagesMode::Oci => Ok(false),
    }
}

/// Whether an inventory looks for signatures whose image is gone: a `HEAD`
/// per unreached subject, up to a thousand. `cleanup` and `usage` report
/// them; `monitor` has no use for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanCheck {
    Find,
    Skip,
}

/// What `repository` holds: through the Packages API where there is one
/// (untagged versions listed too), else through the store.
pub async fn inventory(
    store: &Store,
    api: Option<&PackagesApi>,
    repository: &str,
    concurrency: usize,
    orphans: OrphanCheck,
) -> anyhow::Result<Inventory> {
    match (api, store) {
        (Some(api), Store::Oci(registry)) => {
            Ok(packages::read(api, registry, repository, concurrency)
                .await?
                .map(|package| package.inventory)
                .unwrap_or_default())
        }
        // Signatures whose image is gone found too.
        (None, Store::Oci(registry)) if orphans == OrphanCheck::Find => {
            let mut inventory = store.inventory(repository, concurrency).await?;
            inventory
                .find_gone(registry, repository, concurrency)
                .await?;
            Ok(inventory)
        }
        _ => store.inventory(repository, concurrency).await,
    }
}

/// `previous-report`: a report an earlier run wrote — `usage`'s, or
/// `monitor`'s, which is one with more fields.
pub fn previous_report<T: serde::de::DeserializeOwned>(
    session: &Session,
    given: Option<&str>,
) -> anyhow::Result<Option<T>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let path = session.input_path("previous-report", given, Access::Exchange)?;
    let bytes = crate::limits::read_input(
        "previous-report",
        &path,
        crate::limits::EARLIER_REPORT,
        "pass the JSON file an earlier `usage` or `monitor` run wrote with `report-file`",
    )?;
    let report = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "`previous-report`: {} is not a `usage` or `monitor` report; pass the JSON file an earlier run wrote with `report-file`",
            path.display()
        )
    })?;
    Ok(Some(report))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn which_registries_go_through_the_packages_api() {
        use PackagesMode::{Auto, Github, Oci};
        assert!(uses_packages_api(Auto, "ghcr.io", true).unwrap());
        assert!(!uses_packages_api(Auto, "registry.example:5000", true).unwrap());
        assert!(uses_packages_api(Github, "containers.github.example", true).unwrap());
        assert!(!uses_packages_api(Oci, "ghcr.io", false).unwrap());
        assert!(!uses_packages_api(Oci, "registry.example", true).unwrap());
        let hub = uses_packages_api(Github, "docker.io", false)
            .unwrap_err()
            .to_string();
        assert!(
            hub.starts_with("`packages-api`: ") && hub.contains("`hub-api`"),
            "{hub}"
        );
        let oci = uses_packages_api(Oci, "ghcr.io", true)
            .unwrap_err()
            .to_string();
        assert!(
            oci.contains("no manifest DELETE") && oci.contains("`auto`"),
            "{oci}"
        );
    }
}
