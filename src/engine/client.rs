//! The connection to the Docker Engine and what can go wrong on it: the
//! leaf that the builder (`docker`), the build logs (`build`) and the
//! containers (`run`) all stand on.

use std::path::PathBuf;

use bollard::Docker;

use crate::engine::buildkit::{BuildKitError, docker_host};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "couldn't reach the Docker Engine at {host}: {source}; start dockerd (scripts/services start) or point DOCKER_HOST at its socket"
    )]
    Unreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the build of {image} failed{}: {message}\n{tail}", step.as_deref().map(|s| format!(" at `{s}`")).unwrap_or_default())]
    BuildFailed {
        image: String,
        /// The step that failed, as BuildKit names it (`[2/4] RUN make`).
        step: Option<String>,
        message: String,
        tail: String,
    },
    #[error(transparent)]
    BuildKit(BuildKitError),
    #[error("couldn't read the build context: {0:#}")]
    Context(anyhow::Error),
    #[error("the Docker Engine failed to {action} {image}: {source}")]
    Api {
        action: &'static str,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("couldn't write the image export to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Connects through DOCKER_HOST (or the default socket) and settles on an
/// API version both sides speak: Debian's engine stops at 1.41, hosted
/// runners are far newer.
pub(super) async fn connect() -> Result<Docker, EngineError> {
    let host = docker_host();
    let unreachable = |source| EngineError::Unreachable {
        host: host.clone(),
        source,
    };
    let docker = Docker::connect_with_defaults()
        .map_err(unreachable)?
        .negotiate_version()
        .await
        .map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}
