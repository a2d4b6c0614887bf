//! `monitor`: for a scheduled run, every image checked as its users meet
//! it — login, pull, storage, a rescan of what is published — then judged
//! into alerts, reported, and the run failed on a critical one.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::actions::boundary;
use crate::actions::outputs::Outputs;
use crate::cli::MonitorArgs;
use crate::commands::{
    OrphanCheck, PackagesUse, Session, inventory, open_store, packages_api, previous_report,
    repository_names,
};
use crate::gate::load_ignore;
use crate::monitor::harbor::Harbor;
use crate::monitor::pull::{self, BlobCache, Parts};
use crate::monitor::pulls::Pulls;
use crate::monitor::trend::{self, Point};
use crate::monitor::{
    self, Access, Image, Level, Limits, Pull, Report, Scan, Storage, Totals, Verdict, archive,
};
use crate::packages::PackagesApi;
use crate::reference::is_docker_hub;
use crate::registry::mount::Upload;
use crate::registry::{Registry, RegistryError};
use crate::report::monitor::summary;
use crate::repositories::Store;
use crate::scan::policy::{Policy, evaluate};
use crate::scan::{IgnoreFile, Scanner, Severity, runner};
use crate::usage;

pub async fn run(args: &MonitorArgs, session: &Session) -> anyhow::Result<()> {
    let previous: Option<Report> = previous_report(session, args.previous_report.as_deref())?;
    // Resolved before the work, so a path outside fails at once.
    let report_file = report_path(args, session)?;
    let names = repository_names(&args.repositories, session)?;
    let checker = Checker::new(args, session).await?;
    let mut images = Vec::new();
    for repository in &names {
        images.push(checker.check(repository).await);
    }
    let report = judged(args, images, previous.as_ref());
    write_json(&report_file, &report)?;
    announce(session, &report);
    let mut outputs = Outputs::new();
    outputs.set("status", report.status.as_str());
    outputs.set_json("alerts", &report.alerts)?;
    outputs.set("report-file", report_file.display().to_string());
    session.finish(&outputs, &summary(&report))?;
    if report.status == Level::Critical {
        let count = report
            .alerts
            .iter()
            .filter(|a| a.level == Level::Critical)
            .count();
        bail!("monitor raised {count} critical alert(s); see the job summary");
    }
    Ok(())
}

/// What every image is checked with.
struct Checker<'a> {
    args: &'a MonitorArgs,
    registry: Registry,
    /// Docker Hub's API needs a login of its own, which can be refused:
    /// then every image's storage says why, and the other checks still run.
    store: Result<Store, String>,
    /// GitHub's Packages API (GHCR): untagged versions counted too.
    packages: Option<PackagesApi>,
    /// Harbor's API (`harbor-api`): the pull counts.
    harbor: Option<Harbor>,
    cache: BlobCache,
    /// Holds the cache and the scan archives; removed at the end.
    work: tempfile::TempDir,
    ignore: Option<IgnoreFile>,
}

impl<'a> Checker<'a> {
    async fn new(args: &'a MonitorArgs, session: &Session) -> anyhow::Result<Self> {
        let repos = &args.repositories;
        let credentials = repos.login.credentials()?;
        let harbor = args
            .harbor_api
            .as_deref()
            .filter(|api| !api.trim().is_empty())
            .map(|api| Harbor::new(api, credentials.clone(), repos.timeout.request_timeout))
            .transpose()?;
        let registry = Registry::new(&repos.registry, credentials)?
            .with_timeout(repos.timeout.request_timeout)?;
        let work = session.work_dir()?;
        let cache = BlobCache::create(&work.path().join("blobs"))
            .context("couldn't make the blob cache under RUNNER_TEMP")?;
        Ok(Checker {
            args,
            registry,
            store: open_store(repos, false)
                .await
                .map_err(|err| format!("{err:#}")),
            packages: packages_api(repos, PackagesUse::Count, session)?,
            harbor,
            cache,
            work,
            ignore: load_ignore(&session.ctx, args.ignore_file.as_deref())?,
        })
    }

    /// Login, push right, pull, storage and rescan of one image. A refused
    /// login or a registry that doesn't answer ends the image's checks:
    /// the one alert says why.
    async fn check(&self, repository: &str) -> Image {
        tracing::info!("checking {repository}");
        let mut image = Image {
            repository: repository.to_owned(),
            pull_access: Access::Granted,
            push_access: None,
            pull: Pull::Skipped,
            storage: Storage::Skipped,
            scan: Scan::Skipped,
            // From the store's API, which answers even when the registry
            // doesn't.
            pulls: self.pulls(repository).await,
        };
        let answered = self.registry.check_access(repository).await;
        image.pull_access = access(&answered);
        if self.args.check_push {
            image.push_access = Some(access(&self.push_access(repository).await));
        }
        match (&image.pull_access, answered) {
            (Access::Refused(_), _) => return image,
            (Access::Unreachable, Err(err)) => {
                image.pull = Pull::Failed(err.to_string());
                return image;
            }
            _ => {}
        }
        let parts = match self.pull(repository).await {
            Ok(Some((pulled, parts))) => {
                image.pull = Pull::Done(pulled);
                Some(parts)
            }
            Ok(None) => {
                image.pull = Pull::Missing;
                None
            }
            Err(err) => {
                image.pull = Pull::Failed(err.to_string());
                None
            }
        };
        image.storage = self.storage(repository).await;
        if let Some(parts) = parts {
            image.scan = self.rescan(repository, &parts).await;
        }
        image
    }

    /// An upload opened: the registry's own answer to whether these
    /// credentials may push. It is cancelled where the registry lets them;
    /// distribution wants the `delete` right for that, which a push token
    /// may lack, and then its upload purge drops the empty session. Either
    /// way no blob is written.
    async fn push_access(&self, repository: &str) -> Result<(), RegistryError> {
        if let Upload::Session(session) = self.registry.start_upload(repository, "", None).await? {
            if let Err(err) = self.registry.cancel_upload(repository, &session).await {
                tracing::debug!("the push check's upload to {repository} stays open: {err}");
            }
        }
        Ok(())
    }

    async fn pull(
        &self,
        repository: &str,
    ) -> Result<Option<(monitor::Pulled, Parts)>, RegistryError> {
        let concurrency = usize::from(self.args.repositories.concurrency);
        pull::pull(
            &self.registry,
            &self.cache,
            repository,
            &self.args.tag,
            concurrency,
        )
        .await
    }

    async fn storage(&self, repository: &str) -> Storage {
        let store = match &self.store {
            Ok(store) => store,
            Err(why) => return Storage::Failed(why.clone()),
        };
        let concurrency = usize::from(self.args.repositories.concurrency);
        match inventory(
            store,
            self.packages.as_ref(),
            repository,
            concurrency,
            OrphanCheck::Skip,
        )
        .await
        {
            Ok(inventory) => Storage::Measured(usage::measure(repository, &inventory)),
            Err(err) => Storage::Failed(format!("{err:#}")),
        }
    }

    async fn pulls(&self, repository: &str) -> Pulls {
        if let Some(harbor) = &self.harbor {
            return match harbor.pull_count(repository).await {
                Ok(count) => Pulls::Counted {
                    count,
                    before: None,
                },
                Err(err) => Pulls::Failed(format!("{err:#}")),
            };
        }
        let store = match &self.store {
            Ok(store) => store,
            Err(why) if is_docker_hub(&self.args.repositories.registry) => {
                return Pulls::Failed(why.clone());
            }
            Err(_) => return Pulls::NotTold,
        };
        match store.pull_count(repository).await {
            Ok(Some(count)) => Pulls::Counted {
                count,
                before: None,
            },
            Ok(None) => Pulls::NotTold,
            Err(err) => Pulls::Failed(format!("{err:#}")),
        }
    }

    /// The pulled image scanned again with today's advisories.
    async fn rescan(&self, repository: &str, parts: &Parts) -> Scan {
        let Some(scanner) = self.args.scanner.scanner() else {
            return Scan::Skipped;
        };
        match self.scan(scanner, repository, parts).await {
            Ok(scan) => scan,
            Err(err) => Scan::Failed(format!("{err:#}")),
        }
    }

    async fn scan(
        &self,
        scanner: Scanner,
        repository: &str,
        parts: &Parts,
    ) -> anyhow::Result<Scan> {
        let path = self.work.path().join("image.tar");
        archive::write(&self.cache, parts, repository, &self.args.tag, &path)?;
        let report =
            runner::scan_archive(scanner, &path, false, self.args.scanner_image.as_deref()).await;
        let _ = std::fs::remove_file(&path);
        let findings = runner::parse(scanner, &report?)?;
        let policy = Policy {
            ignore_unfixed: self.args.ignore_unfixed,
            ..Policy::default()
        };
        let verdict = evaluate(findings, &policy, self.ignore.as_ref(), crate::time::now());
        let ids = |severity: Severity| {
            let mut ids: Vec<String> = verdict
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .map(|f| f.id.clone())
                .collect();
            ids.dedup();
            ids
        };
        Ok(Scan::Done {
            critical: ids(Severity::Critical),
            high: ids(Severity::High),
        })
    }
}

/// How the registry answered the credentials.
fn access(answer: &Result<(), RegistryError>) -> Access {
    match answer {
        Ok(()) => Access::Granted,
        Err(RegistryError::Unauthorized { .. }) => Access::Refused("401 unauthorized".into()),
        Err(RegistryError::Denied {
            status, message, ..
        }) => Access::Refused(format!("{status} denied{message}")),
        Err(_) => Access::Unreachable,
    }
}

/// The run's report: today's storage against the previous report, the
/// trend, and the verdict on everything measured.
fn judged(args: &MonitorArgs, mut images: Vec<Image>, previous: Option<&Report>) -> Report {
    if let Some(previous) = previous {
        for image in &mut images {
            with_earlier_pulls(image, previous);
        }
    }
    let measured = images
        .iter()
        .filter_map(|i| match &i.storage {
            Storage::Measured(repo) => Some(repo.clone()),
            _ => None,
        })
        .collect();
    let usage = usage::report_at(
        jiff::Timestamp::now(),
        &args.repositories.registry,
        measured,
        previous.map(|p| &p.usage),
    );
    let totals = Totals {
        bytes: usage.total_bytes,
        before: previous.and_then(|p| {
            let days = trend::days_between(&p.usage.generated, &usage.generated)?;
            Some((p.usage.total_bytes, days))
        }),
    };
    let Verdict {
        rows,
        alerts,
        status,
        pass_rate,
    } = monitor::judge(&images, &totals, &limits(args));
    let rates: Vec<f64> = rows.iter().filter_map(|r| r.pulls_per_day).collect();
    let now = Point {
        generated: usage.generated.clone(),
        total_bytes: usage.total_bytes,
        pulls_per_day: (!rates.is_empty()).then(|| rates.iter().sum()),
    };
    let history = trend::extend(
        previous.map(|p| {
            let last = Point {
                generated: p.usage.generated.clone(),
                total_bytes: p.usage.total_bytes,
                pulls_per_day: None,
            };
            (p.history.as_slice(), last)
        }),
        now,
    );
    Report {
        usage,
        history,
        status,
        pass_rate,
        images: rows,
        alerts,
    }
}

/// The previous report's pull total and rates for this image, which the
/// rate since then and its usual range come from.
fn with_earlier_pulls(image: &mut Image, previous: &Report) {
    let Pulls::Counted { before, .. } = &mut image.pulls else {
        return;
    };
    *before = previous
        .images
        .iter()
        .find(|row| row.repository == image.repository)
        .and_then(|row| Some((row.pulls?, row.pull_rates.clone())));
}

fn limits(args: &MonitorArgs) -> Limits {
    Limits {
        registry: args.repositories.registry.clone(),
        tag: args.tag.clone(),
        credentials: args.repositories.login.username.is_some(),
        max_pull_time: args.max_pull_time,
        max_growth: args.max_growth,
        max_storage: args.max_storage,
        keep: args.keep,
        min_pass_rate: args.min_pass_rate,
    }
}

/// `report-file`, else `monitor-report.json` under RUNNER_TEMP (or the
/// system's temp folder off a runner).
fn report_path(args: &MonitorArgs, session: &Session) -> anyhow::Result<PathBuf> {
    Ok(match &args.report_file {
        Some(path) => session.input_path("report-file", path, boundary::Access::Exchange)?,
        None => session
            .ctx
            .runner_temp
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("monitor-report.json"),
    })
}

fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| {
        format!(
            "`report-file`: couldn't write the report to {}; give a writable path in the workspace",
            path.display()
        )
    })
}

/// Each alert as an annotation: critical ones as errors, warnings as
/// warnings, so the run's page shows them without opening the summary.
fn announce(session: &Session, report: &Report) {
    for alert in &report.alerts {
        let text = format!(
            "{} · {}: {}",
            alert.check.as_str(),
            alert.subject,
            alert.message
        );
        match alert.level {
            Level::Critical => session.workflow.error(&text),
            Level::Warning => session.workflow.warning(&text),
            Level::Ok => {}
        }
    }
}
