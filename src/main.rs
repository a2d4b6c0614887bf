use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser as _;
use registry_action::actions::context::Context;
use registry_action::actions::workflow::{Annotation, Level, Workflow, log_line};
use registry_action::cli::{self, Cli};
use registry_action::commands::{self, Session};

fn main() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let ctx = Context::from_process_env();
    init_tracing(ctx.debug);
    // Off a runner, stdout carries only the JSON outputs.
    let workflow = if ctx.in_actions() {
        Workflow::stdout(true)
    } else {
        Workflow::new(false, Box::new(std::io::stderr()))
    };
    let cli = match Cli::try_parse_from(cli::with_inputs(std::env::args_os().collect(), &env)) {
        Ok(cli) => cli,
        Err(err) => {
            if let Some(message) = cli::input_error(&err).filter(|_| ctx.in_actions()) {
                workflow.annotate(
                    &Annotation::new(Level::Error, message)
                        .with_title("registry-action: invalid input"),
                );
                return ExitCode::FAILURE;
            }
            if !err.use_stderr() {
                // Help and version: our own text, on stdout.
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            // The error quotes the value given, which may be anything.
            for line in err.render().to_string().lines() {
                eprintln!("{}", log_line(line));
            }
            return ExitCode::FAILURE;
        }
    };
    let env_token = ["GITHUB_TOKEN", "FORGEJO_TOKEN"]
        .iter()
        .find_map(|name| env.get(*name).filter(|v| !v.trim().is_empty()).cloned());
    let session = Session {
        ctx,
        workflow,
        env_token,
    };
    mask_secrets(&cli, &session);
    let name = cli.command.name();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&session, name, &anyhow::Error::new(err)),
    };
    let result = runtime.block_on(async {
        // Installed before the command starts, so a cancel that lands at
        // once is still caught.
        let mut shutdown = Shutdown::install();
        tokio::select! {
            signal = shutdown.recv() => Err(anyhow::anyhow!("cancelled by {signal}; nothing more was done")),
            result = commands::run(cli.command, &session) => result,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&session, name, &err),
    }
}

/// Secrets are masked before anything else can print them.
fn mask_secrets(cli: &Cli, session: &Session) {
    let given = cli.command.secrets();
    for secret in given.into_iter().chain(session.env_token.as_deref()) {
        session.workflow.add_mask(secret);
    }
}

fn fail(session: &Session, command: &str, err: &anyhow::Error) -> ExitCode {
    if session.workflow.in_actions() {
        session.workflow.annotate(
            &Annotation::new(Level::Error, format!("{err:#}"))
                .with_title(format!("registry-action {command}")),
        );
    } else {
        eprintln!("{}", log_line(&format!("error: {err:#}")));
    }
    ExitCode::FAILURE
}

fn init_tracing(debug: bool) {
    let default = if debug {
        "registry_action=debug"
    } else {
        "registry_action=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(registry_action::actions::log::format())
        .init();
}

/// PID 1 in a container gets no default signal handlers, so SIGINT and
/// SIGTERM (the runner's cancel) are caught here and end the run cleanly.
struct Shutdown {
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::interrupt())
            .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
            .ok();
        Shutdown { signals }
    }

    async fn recv(&mut self) -> &'static str {
        let Some((int, term)) = &mut self.signals else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
}
