//! `usage`: read each repository, measure it, compare with an earlier report.

use anyhow::Context as _;

use crate::actions::boundary::Access;
use crate::actions::outputs::Outputs;
use crate::cli::UsageArgs;
use crate::commands::{
    OrphanCheck, PackagesUse, Session, inventory, open_store, packages_api, previous_report,
    repository_names,
};
use std::collections::BTreeSet;

use crate::inventory::{Inventory, api_referrers};
use crate::registry::Registry;
use crate::report::usage::summary;
use crate::repositories::Store;
use crate::supply::cosign::attached_to;
use crate::usage::{self, Report};

pub async fn run(args: &UsageArgs, session: &Session) -> anyhow::Result<()> {
    let previous: Option<Report> = previous_report(session, args.previous_report.as_deref())?;
    // Resolved before the work, so a path outside fails at once.
    let report_file = match &args.report_file {
        Some(path) => Some(session.input_path("report-file", path, Access::Exchange)?),
        None => None,
    };
    let repositories = repository_names(&args.repositories, session)?;
    let concurrency = usize::from(args.repositories.concurrency);
    let api = packages_api(&args.repositories, PackagesUse::Count, session)?;
    let store = open_store(&args.repositories, false).await?;
    let mut measured = Vec::new();
    for repository in repositories {
        let held = inventory(
            &store,
            api.as_ref(),
            &repository,
            concurrency,
            OrphanCheck::Find,
        )
        .await?;
        let mut repo = usage::measure(&repository, &held);
        if let Store::Oci(registry) = &store {
            repo.signatures += referrer_count(registry, &repository, &held, concurrency).await?;
        }
        measured.push(repo);
    }
    let report = usage::report_at(
        jiff::Timestamp::now(),
        &args.repositories.registry,
        measured,
        previous.as_ref(),
    );
    if let Some(path) = &report_file {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text)
            .with_context(|| format!("couldn't write the report to {}", path.display()))?;
    }
    let mut outputs = Outputs::new();
    outputs.set_json("report", &report)?;
    outputs.set("total-bytes", report.total_bytes.to_string());
    session.finish(&outputs, &summary(&report))
}

/// The referrers the registry's referrers API lists for the images (each
/// tagged image and the platform images of an index); none without the API.
async fn referrer_count(
    registry: &Registry,
    repository: &str,
    held: &Inventory,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let images: BTreeSet<String> = held
        .tags
        .iter()
        .filter(|t| attached_to(&t.tag).is_none())
        .flat_map(|t| std::iter::once(&t.digest).chain(&t.children))
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let found = api_referrers(registry, repository, &images, concurrency).await?;
    Ok(found.iter().flatten().map(|(_, r)| r.len()).sum())
}
