//! The two builders behind the engine's `/build`: their request options and
//! how each one's answer stream becomes a log, an image ID or an error.

use std::collections::HashMap;
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use futures_util::{Stream, StreamExt as _};

use crate::engine::buildkit::{BuildKitError, BuildSecrets};
use crate::engine::client::EngineError;
use crate::engine::progress::Progress;

/// Build output lines kept for the error message of a failed legacy build.
const LOG_TAIL: usize = 20;

/// Asks the build to write BuildKit's cache record into the image config.
const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// The networks BuildKit's `RUN` accepts through the engine's API.
pub const BUILDKIT_NETWORKS: [&str; 3] = ["default", "host", "none"];

pub struct BuildSpec<'a> {
    pub context: &'a Path,
    pub dockerfile: &'a Path,
    /// The local name the built image gets.
    pub tag: &'a str,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<String>,
    pub network: Option<String>,
    /// Registry logins for `FROM` images, keyed by registry.
    pub credentials: HashMap<String, DockerCredentials>,
    pub builder: Builder,
    /// Values for `RUN --mount=type=secret` (BuildKit only).
    pub secrets: BuildSecrets,
    /// Images whose inline cache BuildKit may reuse (`cache-from`).
    pub cache_from: Vec<String>,
    /// Write BuildKit's cache record into the image's config, so a later
    /// build on a fresh engine can reuse its layers.
    pub inline_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    BuildKit,
    Legacy,
}

/// How much of a build came from the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Built {
    /// Steps answered from the cache (BuildKit only).
    pub cached: usize,
    /// Steps that ran (BuildKit only).
    pub executed: usize,
    /// `sha256:` of the context tar sent: names the build's input files.
    pub context: String,
}

pub fn buildkit_options(spec: &BuildSpec<'_>, dockerfile: String) -> BuildImageOptions {
    let mut build_args = spec.build_args.clone();
    if spec.inline_cache {
        build_args.insert(INLINE_CACHE_ARG.to_owned(), "1".to_owned());
    }
    BuildImageOptions {
        version: BuilderVersion::BuilderBuildKit,
        cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
        buildargs: Some(build_args),
        ..common_options(spec, dockerfile)
    }
}

pub fn legacy_options(spec: &BuildSpec<'_>, dockerfile: String) -> BuildImageOptions {
    BuildImageOptions {
        version: BuilderVersion::BuilderV1,
        rm: true,
        forcerm: true,
        buildargs: Some(spec.build_args.clone()),
        ..common_options(spec, dockerfile)
    }
}

fn common_options(spec: &BuildSpec<'_>, dockerfile: String) -> BuildImageOptions {
    BuildImageOptions {
        dockerfile,
        t: Some(spec.tag.to_owned()),
        labels: Some(spec.labels.clone()),
        target: spec.target.clone().unwrap_or_default(),
        platform: spec.platform.clone().unwrap_or_default(),
        networkmode: spec.network.clone(),
        ..Default::default()
    }
}

/// Reads a BuildKit build: progress as grouped step lines, the steps
/// cached and run, and on failure the step that failed.
pub async fn buildkit_log(
    mut stream: impl Stream<Item = Result<BuildInfo, BuildKitError>> + Unpin,
    image: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Built, EngineError> {
    let mut progress = Progress::default();
    while let Some(item) = stream.next().await {
        // The stream turns the engine's `errorDetail` into `Build`.
        let info = match item {
            Ok(info) => info,
            Err(BuildKitError::Build { message }) => {
                let failed = progress.failed();
                return Err(EngineError::BuildFailed {
                    image: image.to_owned(),
                    step: failed.map(|f| f.name.clone()),
                    message,
                    tail: failed.map(|f| f.tail.join("\n")).unwrap_or_default(),
                });
            }
            Err(other) => return Err(EngineError::BuildKit(other)),
        };
        if let Some(BuildInfoAux::BuildKit(status)) = &info.aux {
            for line in progress.update(status) {
                on_line(&line);
            }
        }
        if let Some(text) = info.stream.as_deref() {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .for_each(&mut *on_line);
        }
    }
    let (cached, executed) = progress.counts();
    Ok(Built {
        cached,
        executed,
        ..Built::default()
    })
}

/// Reads a legacy build: its text lines as they come, the last few kept for
/// the error.
pub async fn legacy_log(
    mut stream: impl Stream<Item = Result<BuildInfo, bollard::errors::Error>> + Unpin,
    image: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Built, EngineError> {
    let mut tail: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let failure = match item {
            Ok(info) => {
                if let Some(line) = info.stream.as_deref().or(info.status.as_deref()) {
                    for line in line.lines().filter(|l| !l.trim().is_empty()) {
                        on_line(line);
                        tail.push(line.to_owned());
                    }
                    if tail.len() > LOG_TAIL {
                        tail.drain(..tail.len() - LOG_TAIL);
                    }
                }
                info.error_detail.and_then(|d| d.message)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => Some(error),
            Err(source) => return Err(api_error(image, source)),
        };
        if let Some(message) = failure {
            return Err(EngineError::BuildFailed {
                image: image.to_owned(),
                step: None,
                message,
                tail: tail.join("\n"),
            });
        }
    }
    Ok(Built::default())
}

/// Whether a BuildKit build failed because the engine would not hold a
/// BuildKit session (an engine without BuildKit such as Podman's, or a
/// DOCKER_HOST the session can't cross): the one failure where building
/// again with the legacy builder can help.
pub fn refused_session(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::BuildKit(
            BuildKitError::SessionRefused { .. } | BuildKitError::UnsupportedHost { .. }
        )
    )
}

fn api_error(image: &str, source: bollard::errors::Error) -> EngineError {
    EngineError::Api {
        action: "build",
        image: image.to_owned(),
        source,
    }
}
