//! The scan gate, for `publish` (between build and push) and the `scan`
//! command: scan → policy → annotations, summary, check run, SARIF.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::actions::boundary::Access;
use crate::actions::context::{Context, Forge};
use crate::actions::outputs::Outputs;
use crate::actions::workflow::Workflow;
use crate::plan::dockerfile;
use crate::platform;
use crate::report::check_run::{self, CheckRun, CheckRunResult, Conclusion};
use crate::report::scan::{Scanned, annotations, platform_rows, summary};

use crate::scan::policy::{Outcome, Policy, Verdict, evaluate};
use crate::scan::{Counts, Finding, IgnoreFile, Scanner, detect_and_parse, ignore, runner, sarif};

/// The gate's inputs, as the workflow gives them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` for `scanner: none`: an archive is not scanned.
    pub scanner: Option<Scanner>,
    pub scanner_image: Option<String>,
    pub policy: Policy,
    /// `ignore-file`, as given: read from the checkout.
    pub ignore_file: Option<String>,
    /// `sarif`, as given: written in the workspace or RUNNER_TEMP.
    pub sarif: Option<String>,
    pub check_run: CheckRunMode,
}

/// `check-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckRunMode {
    /// On GitHub with a token, a repository and a commit; otherwise a note.
    Auto,
    /// A check run that can't be made fails the step.
    Required,
    Off,
}

/// What the scanner is given.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// A `docker save` archive, scanned now; with `every_package`, the
    /// report lists every package, not only vulnerable ones (an SBOM is
    /// converted from it).
    Archive { path: &'a Path, every_package: bool },
    /// A report made elsewhere, graded only.
    Report(&'a Path),
    /// One archive per platform of a multi-platform image, each scanned;
    /// the union of their findings is graded, and the summary has a row
    /// per platform.
    Platforms {
        archives: &'a [(String, PathBuf)],
        every_package: bool,
    },
}

/// Where the findings are annotated: the image's Dockerfile, by its
/// repository-relative path, at the final `FROM` line.
pub struct Location {
    pub dockerfile: String,
    pub line: u32,
}

/// One image through the gate.
pub struct Request<'a> {
    /// The image's name, as the summary and the check run show it.
    pub image: &'a str,
    pub subject: Subject<'a>,
    pub location: Option<&'a Location>,
    /// For the check run: the API token and the commit.
    pub token: Option<&'a str>,
    pub head_sha: Option<&'a str>,
}

pub struct Gate {
    pub verdict: Verdict,
    pub summary: String,
    /// The scanner's JSON report, when the scan ran here: `publish`
    /// converts it to the SBOM.
    pub report: Option<Vec<u8>>,
}

impl Gate {
    pub fn blocks(&self) -> bool {
        self.verdict.result == Outcome::Fail
    }

    pub fn set_outputs(&self, outputs: &mut Outputs) {
        let c = &self.verdict.counts;
        outputs.set("scan-result", self.verdict.result.to_string());
        for (name, n) in [
            ("critical", c.critical),
            ("high", c.high),
            ("medium", c.medium),
            ("low", c.low),
            ("unknown", c.unknown),
        ] {
            outputs.set(name, n.to_string());
        }
    }
}

/// Scans (or reads) the subject and grades it; annotations on `workflow`,
/// the check run, the SARIF file. `None` when an archive has no scanner.
pub async fn gate(
    ctx: &Context,
    workflow: &Workflow,
    settings: &Settings,
    request: Request<'_>,
) -> anyhow::Result<Option<Gate>> {
    let (image, location) = (request.image, request.location);
    let policy = &settings.policy;
    let ignore = load_ignore(ctx, settings.ignore_file.as_deref())?;
    let mut rows: Vec<(String, Vec<Finding>)> = Vec::new();
    let (scanner, findings, report) = match request.subject {
        Subject::Report(path) => {
            let bytes = crate::limits::read_input(
                "report",
                path,
                crate::limits::SCAN_REPORT,
                "pass the JSON report Trivy or Grype wrote",
            )?;
            let (scanner, findings) = detect_and_parse(&bytes)
                .with_context(|| format!("`report`: {}", path.display()))?;
            (scanner, findings, None)
        }
        Subject::Archive {
            path,
            every_package,
        } => {
            let Some(scanner) = settings.scanner else {
                return Ok(None);
            };
            let report = scan_one(workflow, settings, scanner, image, path, every_package).await?;
            (scanner, runner::parse(scanner, &report)?, Some(report))
        }
        Subject::Platforms {
            archives,
            every_package,
        } => {
            let Some(scanner) = settings.scanner else {
                return Ok(None);
            };
            let mut first = None;
            for (platform, path) in archives {
                let label = format!("{image} ({platform})");
                let report =
                    scan_one(workflow, settings, scanner, &label, path, every_package).await?;
                rows.push((platform.clone(), runner::parse(scanner, &report)?));
                first.get_or_insert(report);
            }
            let union = union(rows.iter().flat_map(|(_, f)| f.iter().cloned()));
            (scanner, union, first)
        }
    };
    let now = crate::time::now();
    let verdict = evaluate(findings, policy, ignore.as_ref(), now);
    let scanned = Scanned {
        image,
        scanner,
        verdict: &verdict,
        policy,
    };
    if let Some(at) = location {
        for annotation in annotations(&scanned, &at.dockerfile, at.line) {
            workflow.annotate(&annotation);
        }
    }
    let mut markdown = summary(&scanned);
    if !rows.is_empty() {
        let counted: Vec<(String, Counts)> = rows
            .into_iter()
            .map(|(platform, found)| {
                let counts = evaluate(found, policy, ignore.as_ref(), now).counts;
                (platform, counts)
            })
            .collect();
        markdown.push_str(&platform_rows(&counted));
    }
    publish_check_run(
        ctx,
        workflow,
        settings.check_run,
        &scanned,
        &markdown,
        &request,
    )
    .await?;
    if let Some(path) = &settings.sarif {
        let (artifact, line) =
            location.map_or(("Dockerfile", 1), |l| (l.dockerfile.as_str(), l.line));
        let document = sarif::render(&verdict, scanner.as_str(), artifact, line as usize);
        let target = ctx.boundary()?.resolve("sarif", path, Access::Exchange)?;
        std::fs::write(&target, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("`sarif`: couldn't write {}", target.display()))?;
    }
    tracing::info!(
        "{scanner} scan of {image}: {} ({} critical, {} high)",
        verdict.result,
        verdict.counts.critical,
        verdict.counts.high
    );
    Ok(Some(Gate {
        summary: markdown,
        verdict,
        report,
    }))
}

/// One archive through the scanner, its log in a group; the raw report.
async fn scan_one(
    workflow: &Workflow,
    settings: &Settings,
    scanner: Scanner,
    image: &str,
    path: &Path,
    every_package: bool,
) -> anyhow::Result<Vec<u8>> {
    let _group = workflow.group(&format!("scan {image} with {scanner}"));
    runner::scan_archive(
        scanner,
        path,
        every_package,
        settings.scanner_image.as_deref(),
    )
    .await
}

/// Findings of several platforms, each vulnerability of a package version
/// once: the platforms of one image mostly share their packages.
fn union(findings: impl Iterator<Item = Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    findings
        .filter(|f| seen.insert((f.id.clone(), f.package.clone(), f.installed.clone())))
        .collect()
}

/// The verdict as a GitHub check run, after the workflow-command
/// annotations: `auto` tries on GitHub when it has a token, a repository
/// and a commit, and only notes or warns when it can't; `true` fails.
async fn publish_check_run(
    ctx: &Context,
    workflow: &Workflow,
    mode: CheckRunMode,
    scanned: &Scanned<'_>,
    markdown: &str,
    request: &Request<'_>,
) -> anyhow::Result<()> {
    let required = match mode {
        CheckRunMode::Off => return Ok(()),
        CheckRunMode::Required => true,
        CheckRunMode::Auto => false,
    };
    if !required && ctx.forge != Forge::GitHub {
        return Ok(());
    }
    let repository = ctx.repository.as_deref();
    let (Some(token), Some(repository), Some(head_sha)) =
        (request.token, repository, request.head_sha)
    else {
        if required {
            bail!(
                "`check-run: true` needs a token (`github-token` or GITHUB_TOKEN), the repository (GITHUB_REPOSITORY) and a commit (`sha` or GITHUB_SHA)"
            );
        }
        return Ok(());
    };
    let name = check_run::name(scanned.image);
    let title = check_run::title(&scanned.scanner.to_string(), scanned.verdict);
    let run = CheckRun {
        repository,
        head_sha,
        name: &name,
        conclusion: Conclusion::from_outcome(scanned.verdict.result),
        title: &title,
        summary: markdown,
        annotations: request.location.map_or_else(Vec::new, |at| {
            check_run::check_annotations(scanned.verdict, scanned.policy, &at.dockerfile, at.line)
        }),
    };
    match check_run::publish_check_run(&ctx.api_url, token, &run).await {
        Ok(CheckRunResult::Created {
            html_url,
            annotated,
            omitted,
            requests,
            ..
        }) => {
            tracing::info!(
                "check run `{name}`: {annotated} annotations ({omitted} left out) in {requests} requests{}",
                html_url.map(|u| format!(", {u}")).unwrap_or_default()
            );
            Ok(())
        }
        Ok(CheckRunResult::Unavailable(reason)) if required => bail!(
            "`check-run: true` but GitHub refused the check run: {reason}; grant the job `permissions: checks: write` (a pull request from a fork only ever gets a read-only token), or set `check-run: auto`"
        ),
        Ok(CheckRunResult::Unavailable(reason)) => {
            workflow.notice(&format!(
                "check-run annotations need `permissions: checks: write` (a pull request from a fork gets a read-only token); the check run `{name}` was skipped ({reason}). The findings are in this step's annotations and the job summary."
            ));
            Ok(())
        }
        Err(err) if required => {
            Err(err.context(format!("`check-run: true`: the check run `{name}` failed")))
        }
        Err(err) => {
            workflow.warning(&format!(
                "the check run `{name}` was skipped: {err:#}. The findings are in this step's annotations and the job summary."
            ));
            Ok(())
        }
    }
}

/// `ignore-file`, read from the checkout and parsed; `None` when not given.
pub fn load_ignore(ctx: &Context, given: Option<&str>) -> anyhow::Result<Option<IgnoreFile>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let full = ctx
        .boundary()?
        .resolve("ignore-file", given, Access::Checkout)?;
    let text = crate::limits::read_input_text(
        "ignore-file",
        &full,
        crate::limits::IGNORE_LIST,
        "give the path of a `.trivyignore` in the repository",
    )?;
    Ok(Some(
        ignore::parse(&text).with_context(|| format!("`ignore-file` {given}"))?,
    ))
}

/// The final `FROM` line of an image directory's Dockerfile (`None` when
/// it can't be read, or lies outside the workspace).
pub fn location(ctx: &Context, dockerfile_rel: &str) -> Option<Location> {
    let path = ctx
        .boundary()
        .ok()?
        .resolve("path", dockerfile_rel, Access::Checkout)
        .ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let stages = dockerfile::stages(&text, &Default::default(), &platform::host());
    let line = dockerfile::final_stage(&stages)?.line;
    Some(Location {
        dockerfile: dockerfile_rel.to_owned(),
        line: u32::try_from(line).unwrap_or(1),
    })
}
