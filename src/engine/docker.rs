//! The Docker Engine through bollard: build, export, remove.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, RemoveImageOptions};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::engine::context::tar_context;

/// Build output lines kept for the error message of a failed build.
const LOG_TAIL: usize = 20;

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
    #[error("the build of {image} failed: {message}\n{tail}")]
    BuildFailed {
        image: String,
        message: String,
        tail: String,
    },
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

pub struct Engine {
    docker: Docker,
}

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
}

impl Engine {
    /// Connects through DOCKER_HOST (or the default socket) and settles on an
    /// API version both sides speak: Debian's engine stops at 1.41, hosted
    /// runners are far newer.
    pub async fn connect() -> Result<Self, EngineError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
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
        Ok(Engine { docker })
    }

    /// Containers on this same connection (the client is a shared handle).
    pub fn runner(&self) -> crate::engine::run::Runner {
        crate::engine::run::Runner::new(self.docker.clone())
    }

    /// Builds and returns the image ID; every log line goes to `on_line`.
    pub async fn build(
        &self,
        spec: BuildSpec<'_>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<String, EngineError> {
        let context_dir = spec.context.to_owned();
        let dockerfile = spec.dockerfile.to_owned();
        let context =
            tokio::task::spawn_blocking(move || tar_context(&context_dir, Some(&dockerfile)))
                .await
                .map_err(|e| EngineError::Context(anyhow::anyhow!(e)))?
                .map_err(EngineError::Context)?;
        let options = BuildImageOptions {
            dockerfile: context.dockerfile.clone(),
            t: Some(spec.tag.to_owned()),
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args),
            labels: Some(spec.labels),
            target: spec.target.unwrap_or_default(),
            platform: spec.platform.unwrap_or_default(),
            networkmode: spec.network,
            ..Default::default()
        };
        let credentials = (!spec.credentials.is_empty()).then_some(spec.credentials);
        let mut stream = self.docker.build_image(
            options,
            credentials,
            Some(bollard::body_full(context.tar.into())),
        );
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
                Err(source) => {
                    return Err(EngineError::Api {
                        action: "build",
                        image: spec.tag.to_owned(),
                        source,
                    });
                }
            };
            if let Some(message) = failure {
                return Err(EngineError::BuildFailed {
                    image: spec.tag.to_owned(),
                    message,
                    tail: tail.join("\n"),
                });
            }
        }
        let inspected = self
            .docker
            .inspect_image(spec.tag)
            .await
            .map_err(|source| EngineError::Api {
                action: "inspect",
                image: spec.tag.to_owned(),
                source,
            })?;
        Ok(inspected.id.unwrap_or_default())
    }

    /// Streams `docker save` of one image to a file; returns its size.
    pub async fn save(&self, image: &str, to: &Path) -> Result<u64, EngineError> {
        let write = |source| EngineError::Write {
            path: to.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::create(to).await.map_err(write)?;
        let mut stream = self.docker.export_image(image);
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| EngineError::Api {
                action: "export",
                image: image.to_owned(),
                source,
            })?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write)?;
        }
        file.flush().await.map_err(write)?;
        Ok(size)
    }

    /// Drops the local tag; the layers stay for the build cache.
    pub async fn untag(&self, image: &str) {
        let options = RemoveImageOptions {
            noprune: true,
            ..Default::default()
        };
        if let Err(e) = self.docker.remove_image(image, Some(options), None).await {
            tracing::debug!("couldn't remove the local tag {image}: {e}");
        }
    }
}
