//! The scan gate, for `publish` (between build and push) and the standalone
//! `scan` command: scan → policy → annotations, summary, SARIF, outputs.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::actions::boundary::Access;
use crate::actions::context::Platform;
use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::cli::{CheckRunArg, ScanArgs, ScanCommandArgs, ScannerArg};
use crate::commands::Session;
use crate::plan::dockerfile;
use crate::platform;
use crate::report::check_run::{self, CheckRun, CheckRunResult, Conclusion};
use crate::report::scan::{Scanned, annotations, platform_rows, summary};
use crate::scan::policy::{Outcome, Policy, Verdict, evaluate};
use crate::scan::{Counts, Finding, IgnoreFile, Scanner, detect_and_parse, ignore, runner, sarif};

/// What the scanner is given.
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
        archives: &'a [(String, std::path::PathBuf)],
        every_package: bool,
    },
}

/// Where the findings are annotated: the image's Dockerfile, by its
/// repository-relative path, at the final `FROM` line.
pub struct Location {
    pub dockerfile: String,
    pub line: u32,
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

/// `None` when `scanner: none`. `token` and `head_sha` are for the check
/// run (`check-run`): the API token and the commit being published.
pub async fn gate(
    session: &Session,
    args: &ScanArgs,
    image: &str,
    subject: Subject<'_>,
    location: Option<&Location>,
    token: Option<&str>,
    head_sha: Option<&str>,
) -> anyhow::Result<Option<Gate>> {
    let policy = Policy {
        fail_on: args.fail_on.0,
        warn_on: args.warn_on.0,
        ignore_unfixed: args.ignore_unfixed,
    };
    let ignore = load_ignore(session, args.ignore_file.as_deref())?;
    let mut rows: Vec<(String, Vec<Finding>)> = Vec::new();
    let (scanner, findings, report) = match subject {
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
            let Some(scanner) = scanner_of(args) else {
                return Ok(None);
            };
            let report = scan_one(session, args, scanner, image, path, every_package).await?;
            (scanner, runner::parse(scanner, &report)?, Some(report))
        }
        Subject::Platforms {
            archives,
            every_package,
        } => {
            let Some(scanner) = scanner_of(args) else {
                return Ok(None);
            };
            let mut first = None;
            for (platform, path) in archives {
                let label = format!("{image} ({platform})");
                let report = scan_one(session, args, scanner, &label, path, every_package).await?;
                rows.push((platform.clone(), runner::parse(scanner, &report)?));
                first.get_or_insert(report);
            }
            let union = union(rows.iter().flat_map(|(_, f)| f.iter().cloned()));
            (scanner, union, first)
        }
    };
    let now = crate::time::now();
    let verdict = evaluate(findings, &policy, ignore.as_ref(), now);
    let scanned = Scanned {
        image,
        scanner,
        verdict: &verdict,
        policy: &policy,
    };
    if let Some(at) = location {
        for annotation in annotations(&scanned, &at.dockerfile, at.line) {
            session.workflow.annotate(&annotation);
        }
    }
    let mut markdown = summary(&scanned);
    if !rows.is_empty() {
        let counted: Vec<(String, Counts)> = rows
            .into_iter()
            .map(|(platform, found)| {
                let counts = evaluate(found, &policy, ignore.as_ref(), now).counts;
                (platform, counts)
            })
            .collect();
        markdown.push_str(&platform_rows(&counted));
    }
    publish_check_run(
        session,
        args.check_run,
        &scanned,
        location,
        &markdown,
        token,
        head_sha,
    )
    .await?;
    if let Some(path) = &args.sarif {
        let (artifact, line) =
            location.map_or(("Dockerfile", 1), |l| (l.dockerfile.as_str(), l.line));
        let document = sarif::render(&verdict, scanner.as_str(), artifact, line as usize);
        let target = session.input_path("sarif", path, Access::Exchange)?;
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

fn scanner_of(args: &ScanArgs) -> Option<Scanner> {
    match args.scanner {
        ScannerArg::None => None,
        ScannerArg::Trivy => Some(Scanner::Trivy),
        ScannerArg::Grype => Some(Scanner::Grype),
    }
}

/// One archive through the scanner, its log in a group; the raw report.
async fn scan_one(
    session: &Session,
    args: &ScanArgs,
    scanner: Scanner,
    image: &str,
    path: &Path,
    every_package: bool,
) -> anyhow::Result<Vec<u8>> {
    let _group = session
        .workflow
        .group(&format!("scan {image} with {scanner}"));
    runner::scan_archive(scanner, path, every_package, args.scanner_image.as_deref()).await
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
    session: &Session,
    mode: CheckRunArg,
    scanned: &Scanned<'_>,
    location: Option<&Location>,
    markdown: &str,
    token: Option<&str>,
    head_sha: Option<&str>,
) -> anyhow::Result<()> {
    let required = match mode {
        CheckRunArg::False => return Ok(()),
        CheckRunArg::True => true,
        CheckRunArg::Auto => false,
    };
    if !required && session.ctx.platform != Platform::GitHub {
        return Ok(());
    }
    let repository = session.ctx.repository.as_deref();
    let (Some(token), Some(repository), Some(head_sha)) = (token, repository, head_sha) else {
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
        annotations: location.map_or_else(Vec::new, |at| {
            check_run::check_annotations(scanned.verdict, scanned.policy, &at.dockerfile, at.line)
        }),
    };
    match check_run::publish_check_run(&session.ctx.api_url, token, &run).await {
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
            session.workflow.notice(&format!(
                "check-run annotations need `permissions: checks: write` (a pull request from a fork gets a read-only token); the check run `{name}` was skipped ({reason}). The findings are in this step's annotations and the job summary."
            ));
            Ok(())
        }
        Err(err) if required => {
            Err(err.context(format!("`check-run: true`: the check run `{name}` failed")))
        }
        Err(err) => {
            session.workflow.warning(&format!(
                "the check run `{name}` was skipped: {err:#}. The findings are in this step's annotations and the job summary."
            ));
            Ok(())
        }
    }
}

pub fn load_ignore(session: &Session, path: Option<&str>) -> anyhow::Result<Option<IgnoreFile>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let full = session.input_path("ignore-file", path, Access::Checkout)?;
    let text = crate::limits::read_input_text(
        "ignore-file",
        &full,
        crate::limits::IGNORE_LIST,
        "give the path of a `.trivyignore` in the repository",
    )?;
    Ok(Some(
        ignore::parse(&text).with_context(|| format!("`ignore-file` {path}"))?,
    ))
}

/// The final `FROM` line of an image directory's Dockerfile (`None` when
/// it can't be read, or lies outside the workspace).
pub fn location(session: &Session, dockerfile_rel: &str) -> Option<Location> {
    let path = session
        .input_path("path", dockerfile_rel, Access::Checkout)
        .ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let stages = dockerfile::stages(&text, &Default::default(), &platform::host());
    let line = dockerfile::final_stage(&stages)?.line;
    Some(Location {
        dockerfile: dockerfile_rel.to_owned(),
        line: u32::try_from(line).unwrap_or(1),
    })
}

/// `scan`: an archive or a report, graded with the same policy as `publish`.
pub async fn run(args: &ScanCommandArgs, session: &Session) -> anyhow::Result<()> {
    let work = session.work_dir()?;
    // Relative paths are the workspace's; an absolute one must lie in it.
    let (path, is_report) = match (&args.archive, &args.report, &args.image) {
        (Some(archive), None, _) => (
            session.input_path("archive", archive, Access::Exchange)?,
            false,
        ),
        (None, Some(report), _) => (
            session.input_path("report", report, Access::Exchange)?,
            true,
        ),
        (None, None, Some(image)) => (export(image, work.path()).await?, false),
        _ => bail!(
            "`scan` needs `image` (a reference), `archive` (a docker save tarball) or `report` (a Trivy or Grype JSON report)"
        ),
    };
    let subject = if is_report {
        Subject::Report(&path)
    } else {
        Subject::Archive {
            path: &path,
            every_package: false,
        }
    };
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| path.display().to_string());
    let location = match args.path.as_deref() {
        Some(path) => {
            // Refused outside the workspace, not silently left out.
            session.input_path("path", path, Access::Checkout)?;
            location(
                session,
                &format!("{}/Dockerfile", path.trim_end_matches('/')),
            )
        }
        None => None,
    };
    let token = args
        .github_token
        .as_deref()
        .or(session.env_token.as_deref());
    let head_sha = head_sha(args, session);
    let Some(gate) = gate(
        session,
        &args.scan,
        &image,
        subject,
        location.as_ref(),
        token,
        head_sha.as_deref(),
    )
    .await?
    else {
        bail!(
            "`scanner: none` leaves `scan` nothing to do; pick `trivy` or `grype`, or pass `report`"
        );
    };
    let mut outputs = Outputs::new();
    gate.set_outputs(&mut outputs);
    session.finish(&outputs, &gate.summary)?;
    if gate.blocks() {
        bail!("{image}: the scan found what `fail-on` blocks; see the job summary");
    }
    Ok(())
}

/// The commit a check run is for: `sha`, the pull request's head (never
/// the merge commit GITHUB_SHA names), else GITHUB_SHA. An unreadable
/// event only loses the pull-request head, and only when a check run is
/// wanted is the event read at all.
fn head_sha(args: &ScanCommandArgs, session: &Session) -> Option<String> {
    if let Some(sha) = &args.sha {
        return Some(sha.clone());
    }
    if args.scan.check_run == CheckRunArg::False {
        return None;
    }
    match session.event() {
        Ok(Some(Event::PullRequest(pr))) => return Some(pr.head_sha),
        Ok(_) => {}
        Err(err) => tracing::warn!("couldn't read the event for the pull request head: {err:#}"),
    }
    session.ctx.sha.clone()
}

/// The image as an archive in `work`: pulled onto the engine first when it
/// isn't there, then exported.
async fn export(image: &str, work: &Path) -> anyhow::Result<std::path::PathBuf> {
    let engine = crate::engine::docker::Engine::connect().await?;
    engine.runner().ensure_image(image).await?;
    let archive = work.join("image.tar");
    engine.save(image, &archive).await?;
    Ok(archive)
}
