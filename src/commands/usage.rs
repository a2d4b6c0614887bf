//! `usage`: read each repository, measure it, compare with an earlier report.

use anyhow::Context as _;

use crate::actions::boundary::Access;
use crate::actions::outputs::Outputs;
use crate::cli::UsageArgs;
use crate::commands::Session;
use crate::commands::repositories::{self, Store};
use crate::report::usage::summary;
use crate::usage::{self, Report, Repository};

pub async fn run(args: &UsageArgs, session: &Session) -> anyhow::Result<()> {
    let previous = match &args.previous_report {
        Some(path) => Some(read_report::<Report>(&session.input_path(
            "previous-report",
            path,
            Access::Exchange,
        )?)?),
        None => None,
    };
    // Resolved before the work, so a path outside fails at once.
    let report_file = match &args.report_file {
        Some(path) => Some(session.input_path("report-file", path, Access::Exchange)?),
        None => None,
    };
    let repositories = repositories::names(&args.repositories, session)?;
    let concurrency = usize::from(args.repositories.concurrency);
    let store = Store::open(&args.repositories, false).await?;
    let mut measured = Vec::new();
    for repository in repositories {
        let inventory = store.inventory(&repository, concurrency).await?;
        measured.push(usage::measure(&repository, &inventory));
    }
    let report = today(&args.repositories.registry, measured, previous.as_ref());
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

/// The report of what was measured now, with growth since `previous`.
pub fn today(registry: &str, measured: Vec<Repository>, previous: Option<&Report>) -> Report {
    let now = jiff::Timestamp::now();
    let report = Report {
        registry: registry.to_owned(),
        generated: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        total_bytes: measured.iter().map(|r| r.bytes).sum(),
        repositories: measured,
    };
    match previous {
        Some(previous) => usage::compare(report, previous),
        None => report,
    }
}

/// A report an earlier run wrote: `usage`'s, or `monitor`'s, which is one
/// with more fields.
pub fn read_report<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let bytes = crate::limits::read_input(
        "previous-report",
        path,
        crate::limits::EARLIER_REPORT,
        "pass the JSON file an earlier `usage` or `monitor` run wrote with `report-file`",
    )?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "`previous-report`: {} is not a `usage` or `monitor` report; pass the JSON file an earlier run wrote with `report-file`",
            path.display()
        )
    })
}
