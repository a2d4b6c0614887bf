//! `scan`: an archive, an image or a report through the scan gate
//! (`gate`), graded with the same policy as `publish`.

use std::path::Path;

use anyhow::bail;

use crate::actions::boundary::Access;
use crate::actions::event::Event;
use crate::actions::outputs::Outputs;
use crate::cli::{CheckRunArg, ScanCommandArgs};
use crate::commands::Session;
use crate::gate::{Request, Subject, gate, location};

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
                &session.ctx,
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
    let request = Request {
        image: &image,
        subject,
        location: location.as_ref(),
        token,
        head_sha: head_sha.as_deref(),
    };
    let Some(gate) = gate(
        &session.ctx,
        &session.workflow,
        &args.scan.settings(),
        request,
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
    let engine = crate::engine::Engine::connect().await?;
    engine.runner().ensure_image(image).await?;
    let archive = work.join("image.tar");
    engine.save(image, &archive).await?;
    Ok(archive)
}
