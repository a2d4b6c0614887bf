//! The bases stage: the images of this repository that the Dockerfile
//! builds `FROM` and the matrix entry names in `depends-on` are waited for
//! (their image of this commit, the SHA tag, in the registry), then built
//! FROM exactly that digest: those `FROM` lines are rewritten to
//! `name@digest` in a copy of the Dockerfile in the work directory, which
//! is what the engine builds. A `FROM` pinned to a version or a digest is
//! left as written.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::actions::context::Forge;
use crate::bases::jobs::{Job, Outcome, RunJobs, Unlisted, base_dirs, job_of};
use crate::bases::policy::{self, JOBS_EVERY, PROGRESS_EVERY, due, pause};
use crate::cli::PublishArgs;
use crate::commands::Session;
use crate::plan::dockerfile;
use crate::plan::select::follows;
use crate::platform;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::report::publish::Published;
use crate::units::duration;

use super::Target;
use super::latest::github_token;
use super::plan::Bases;

/// The copy of the Dockerfile with the bases' digests, in the work directory.
const PINNED: &str = "Dockerfile.pinned";

/// A base to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Base {
    /// As `depends-on` names it.
    pub(super) name: String,
    /// The image as the Dockerfile names it (registry and repository).
    pub(super) image: Reference,
    /// The 1-based lines of the `FROM`s that follow it.
    pub(super) lines: Vec<usize>,
    /// The matrix `path` its job's name may hold.
    pub(super) dirs: Vec<String>,
}

/// `depends-on`, checked against the Dockerfile before anything is built:
/// each name must be an image of this namespace its `FROM` lines name. A
/// base every `FROM` pins is built FROM the pin, with a warning.
pub(super) fn bases(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
) -> anyhow::Result<Vec<Base>> {
    let names = policy::depends_on(&args.depends_on).map_err(anyhow::Error::msg)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let namespace = session.namespace(args.location.namespace.as_deref())?;
    let froms = target.froms();
    let mut bases = Vec::new();
    for name in names {
        let wanted = Reference::parse(&format!("{}/{namespace}/{name}", args.location.registry))
            .with_context(|| format!("`depends-on`: {name:?} is not an image name"))?;
        let naming: Vec<&(usize, Reference)> = froms
            .iter()
            .filter(|(_, from)| from.name() == wanted.name())
            .collect();
        let Some((_, image)) = naming.first() else {
            bail!(
                "`depends-on`: {name:?} is not an image {} builds FROM: no FROM line names {} (they name: {}); pass the matrix entry's `depends-on` as it is",
                target.dockerfile_rel,
                wanted.familiar(),
                froms
                    .iter()
                    .map(|(_, from)| from.familiar())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let lines: Vec<usize> = naming
            .iter()
            .filter(|(_, from)| follows(from, Some(&target.image.sha)))
            .map(|(line, _)| *line)
            .collect();
        if lines.is_empty() {
            session.workflow.warning(&format!(
                "`depends-on` names {name:?}, but {} pins it to a version or digest: built FROM the pin, not waited for",
                target.dockerfile_rel
            ));
            continue;
        }
        bases.push(Base {
            dirs: base_dirs(&args.location.path, &name),
            image: image.clone(),
            name,
            lines,
        });
    }
    Ok(bases)
}

impl Target {
    /// The Dockerfile's stages, `ARG`s resolved as the build resolves them.
    pub(super) fn stages(&self) -> Vec<dockerfile::Stage> {
        let build_args = self
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let target = self
            .platforms
            .first()
            .cloned()
            .unwrap_or_else(platform::host);
        dockerfile::stages(&self.dockerfile_text, &build_args, &target)
    }

    /// The images the Dockerfile's stages are built `FROM`, with the line
    /// of each `FROM` (`ARG`s resolved as the build resolves them).
    pub(super) fn froms(&self) -> Vec<(usize, Reference)> {
        let stages = self.stages();
        dockerfile::external_bases(&stages)
            .into_iter()
            .filter_map(|stage| Reference::parse(&stage.base).ok().map(|r| (stage.line, r)))
            .collect()
    }
}

/// Waits for every base, then points the build at a copy of the
/// Dockerfile whose `FROM`s name the digests found.
pub(super) async fn pin_bases(
    args: &PublishArgs,
    session: &Session,
    target: &mut Target,
    bases: &Bases,
    work: &Path,
    report: &mut Published,
) -> anyhow::Result<()> {
    let bases = match bases {
        Bases::None => return Ok(()),
        Bases::AsWritten => {
            report.notes.push(
                "`push: false`: `depends-on` is not waited for; built FROM the bases as the Dockerfile names them".into(),
            );
            return Ok(());
        }
        Bases::Wait(bases) => bases,
    };
    let digests = wait(args, session, target, bases).await?;
    let mut pins = BTreeMap::new();
    for (base, digest) in bases.iter().zip(digests) {
        let pinned = format!("{}@{digest}", base.image.name());
        for line in &base.lines {
            pins.insert(*line, pinned.clone());
        }
        report.notes.push(format!(
            "built FROM `{pinned}`, the image of `{}` for this commit",
            base.name
        ));
    }
    let text = dockerfile::pin(&target.dockerfile_text, &pins);
    let path = work.join(PINNED);
    std::fs::write(&path, &text).with_context(|| format!("couldn't write {}", path.display()))?;
    target.dockerfile = path;
    target.dockerfile_text = text;
    Ok(())
}

/// Looks for each base's SHA tag, pausing longer each time, until all are
/// there (their digests, in order), a base's job has ended without one, or
/// `wait-timeout` has passed.
async fn wait(
    args: &PublishArgs,
    session: &Session,
    target: &Target,
    bases: &[Base],
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let timeout = args.wait_timeout;
    let mut waiting = Waiting::new(target, bases, run_jobs(args, session))?;
    let (mut asked, mut logged) = (None, Some(Duration::ZERO));
    tracing::info!(
        "waiting up to {} for this commit's {}",
        duration(timeout),
        waiting.missing()
    );
    loop {
        waiting.look().await?;
        let now = started.elapsed();
        if !waiting.done() && due(asked, now, JOBS_EVERY) {
            asked = Some(now);
            waiting.ask_jobs().await;
        }
        // After the listing, which may take a while.
        let elapsed = started.elapsed();
        waiting.judge_jobs(elapsed)?;
        if waiting.done() {
            tracing::info!("every base is in the registry after {}", duration(elapsed));
            break;
        }
        if elapsed >= timeout {
            bail!(
                "`depends-on`: waited {} (`wait-timeout`), and this commit's {} never arrived in the registry ({}); check that job, or raise `wait-timeout`",
                duration(timeout),
                waiting.missing(),
                waiting.job_states()
            );
        }
        if due(logged, elapsed, PROGRESS_EVERY) {
            logged = Some(elapsed);
            tracing::info!(
                "still waiting after {} for {} ({})",
                duration(elapsed),
                waiting.missing(),
                waiting.job_states()
            );
        }
        tokio::time::sleep(pause(elapsed, timeout)).await;
    }
    Ok(waiting.digests.into_iter().flatten().collect())
}

/// What a wait knows so far.
struct Waiting<'a> {
    target: &'a Target,
    bases: &'a [Base],
    /// Clients for bases on another registry than the target's.
    others: Vec<Option<Registry>>,
    /// The run's jobs API, or why it can't be asked.
    api: Result<RunJobs, String>,
    /// The jobs of its last answer, or why the last try got none.
    jobs: Result<Vec<Job>, String>,
    digests: Vec<Option<String>>,
    /// When each base's job was first seen succeeded without its image.
    succeeded: Vec<Option<Duration>>,
}

impl<'a> Waiting<'a> {
    fn new(
        target: &'a Target,
        bases: &'a [Base],
        api: Result<RunJobs, String>,
    ) -> anyhow::Result<Self> {
        let others = bases
            .iter()
            .map(|base| {
                (base.image.registry() != target.image.reference.registry())
                    .then(|| {
                        Registry::new(base.image.registry(), None)
                            .and_then(|r| r.with_timeout(target.image.registry.timeout()))
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Err(why) = &api {
            tracing::info!("the jobs API can't be asked ({why}): the registry alone decides");
        }
        Ok(Waiting {
            target,
            bases,
            others,
            api,
            jobs: Ok(Vec::new()),
            digests: vec![None; bases.len()],
            succeeded: vec![None; bases.len()],
        })
    }

    fn done(&self) -> bool {
        self.digests.iter().all(Option::is_some)
    }

    fn pending(&self) -> Vec<usize> {
        (0..self.bases.len())
            .filter(|&i| self.digests[i].is_none())
            .collect()
    }

    /// Each missing base's SHA tag, once.
    async fn look(&mut self) -> anyhow::Result<()> {
        for i in self.pending() {
            self.digests[i] = self.digest(i).await?;
        }
        Ok(())
    }

    async fn digest(&self, i: usize) -> anyhow::Result<Option<String>> {
        let registry = self.others[i]
            .as_ref()
            .unwrap_or(&self.target.image.registry);
        // A HEAD per look: the engine checks the bytes when it pulls by digest.
        Ok(registry
            .manifest_digest(self.bases[i].image.repository(), &self.target.image.sha)
            .await?)
    }

    /// Lists the run's jobs. An API that refuses is not asked again; one
    /// that timed out or failed on its side is, a minute later.
    async fn ask_jobs(&mut self) {
        let Ok(api) = &self.api else {
            return;
        };
        self.jobs = match api.list().await {
            Ok(jobs) => Ok(jobs),
            Err(Unlisted { why, lasting: true }) => {
                tracing::info!(
                    "the jobs API couldn't be asked ({why}): the registry alone decides"
                );
                self.api = Err(why);
                Ok(Vec::new())
            }
            Err(Unlisted { why, .. }) => {
                tracing::info!(
                    "the jobs API couldn't be asked this time ({why}): asking again in {}, the registry meanwhile",
                    duration(JOBS_EVERY)
                );
                Err(why)
            }
        };
    }

    /// Stops the wait when a missing base's job has ended without its
    /// image. One that succeeded gets a listing more (a `merge` job may
    /// push the SHA tag after the per-platform jobs that built the image);
    /// still missing a minute later, it won't come.
    fn judge_jobs(&mut self, elapsed: Duration) -> anyhow::Result<()> {
        let jobs = self.jobs.as_deref().unwrap_or_default();
        for i in self.pending() {
            let base = &self.bases[i];
            let Some(job) = job_of(jobs, &base.dirs) else {
                continue;
            };
            match (job.outcome(), self.succeeded[i]) {
                (Outcome::Running, _) => {}
                (Outcome::Ended(conclusion), _) => bail!(
                    "`depends-on`: the job of `{0}` ({1:?}) ended `{conclusion}`, so its image of this commit ({2}) won't come; {3} is not built FROM an older `{0}`: fix `{0}` and re-run the failed jobs",
                    base.name,
                    job.name,
                    self.sha_tag(i),
                    self.target.image.reference.familiar(),
                ),
                (Outcome::Succeeded, None) => {
                    self.succeeded[i] = Some(elapsed);
                    tracing::info!(
                        "the job of `{}` ({:?}) succeeded, but {} isn't in the registry yet (a `merge` job may still push it): waiting another {}",
                        base.name,
                        job.name,
                        self.sha_tag(i),
                        duration(JOBS_EVERY)
                    );
                }
                (Outcome::Succeeded, Some(seen)) if elapsed.saturating_sub(seen) >= JOBS_EVERY => {
                    bail!(
                        "`depends-on`: {}; {} is not built FROM an older `{}`",
                        self.succeeded_without(i, &job.name),
                        self.target.image.reference.familiar(),
                        base.name
                    )
                }
                (Outcome::Succeeded, Some(_)) => {}
            }
        }
        Ok(())
    }

    /// A base whose job succeeded and whose SHA tag never came.
    fn succeeded_without(&self, i: usize, job: &str) -> String {
        let base = &self.bases[i];
        format!(
            "the job of `{}` ({job:?}) succeeded without pushing {}: publish it with `push: true` to {}, or have its `merge` job push that tag",
            base.name,
            self.sha_tag(i),
            base.image.registry()
        )
    }

    /// A base's image of this commit, as the log names it.
    fn sha_tag(&self, i: usize) -> String {
        format!(
            "{}:{}",
            self.bases[i].image.familiar(),
            self.target.image.sha
        )
    }

    /// The missing bases, as the log names them.
    fn missing(&self) -> String {
        self.pending()
            .into_iter()
            .map(|i| format!("`{}` ({})", self.bases[i].name, self.sha_tag(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What the jobs API said of each missing base.
    fn job_states(&self) -> String {
        if let Err(why) = &self.api {
            return format!("the jobs API couldn't be asked: {why}; the registry alone decides");
        }
        let jobs = match &self.jobs {
            Ok(jobs) => jobs,
            Err(why) => return format!("the jobs API couldn't be asked last time: {why}"),
        };
        self.pending()
            .into_iter()
            .map(|i| {
                let base = &self.bases[i];
                match job_of(jobs, &base.dirs).map(|job| (job, job.outcome())) {
                    Some((job, Outcome::Succeeded)) => self.succeeded_without(i, &job.name),
                    Some((job, _)) => format!("the job of `{}` is {}", base.name, job.status),
                    None => format!(
                        "no job of this run has `{}` in its name",
                        base.dirs.join("` or `")
                    ),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The jobs API of this run, or why it can't be asked: then the registry
/// alone decides.
fn run_jobs(args: &PublishArgs, session: &Session) -> Result<RunJobs, String> {
    let ctx = &session.ctx;
    if ctx.forge != Forge::GitHub {
        return Err(format!("{} has no jobs API for this", ctx.forge));
    }
    RunJobs::new(
        &ctx.api_url,
        github_token(&args.tagging, session),
        ctx.repository.as_deref(),
        ctx.run_id.as_deref(),
    )
}
