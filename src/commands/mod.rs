//! One file per command: orchestration only.

pub mod plan;
pub mod publish;
pub mod scan;

use anyhow::{Context as _, bail};

use crate::actions::event::Event;

use crate::actions::context::Context;
use crate::actions::outputs::Outputs;
use crate::actions::summary;
use crate::actions::workflow::Workflow;
use crate::cli::Command;

/// What every command gets: the run's context and the workflow-command sink.
pub struct Session {
    pub ctx: Context,
    pub workflow: Workflow,
    /// `GITHUB_TOKEN` from the environment (Forgejo sets it; GitHub doesn't).
    pub env_token: Option<String>,
}

impl Session {
    /// Hands results to the runner — the output file and the step summary —
    /// or, on a laptop, prints outputs as one JSON object on stdout and the
    /// summary on stderr. Called once, at the end of a successful run, so a
    /// failed run writes no outputs.
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

    /// The image namespace: the input, else the repository owner lower-cased.
    pub fn namespace(&self, given: Option<&str>) -> anyhow::Result<String> {
        given
            .map(str::to_owned)
            .or_else(|| self.ctx.repository_owner.as_ref().map(|o| o.to_lowercase()))
            .context(
                "no namespace for the image names: set `namespace` (or GITHUB_REPOSITORY_OWNER)",
            )
    }

    pub fn finish(&self, outputs: &Outputs, summary_md: &str) -> anyhow::Result<()> {
        match &self.ctx.output_file {
            Some(path) => outputs.write_to_file(path).with_context(|| {
                format!("couldn't write the step outputs to {}", path.display())
            })?,
            None => println!("{}", outputs.to_json()),
        }
        match &self.ctx.summary_file {
            Some(path) => summary::append(path, summary_md)
                .with_context(|| format!("couldn't write the job summary to {}", path.display()))?,
            None => eprintln!("{summary_md}"),
        }
        Ok(())
    }
}

pub async fn run(command: Command, session: &Session) -> anyhow::Result<()> {
    match command {
        Command::Plan(args) => plan::run(&args, session).await,
        Command::Publish(args) => publish::run(&args, session).await,
        Command::Scan(args) => scan::run(&args, session).await,
    }
}
