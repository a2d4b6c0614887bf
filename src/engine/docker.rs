//! The Docker Engine through bollard: build, export, remove.

use std::io::{self, BufWriter, Read, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::RemoveImageOptions;
use futures_util::StreamExt as _;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::engine::bridge::{BodyWriter, CHUNK, written_body};
use crate::engine::build::{
    BuildSpec, Builder, Built, buildkit_log, buildkit_options, legacy_log, legacy_options,
    solve_log, solve_of,
};
use crate::engine::buildkit::{
    BuildKitEngine, BuildKitError, BuildRequest, ContextBody, EngineAddress,
};
use crate::engine::client::{EngineError, connect};
use crate::engine::context::{ContextPlan, IdentityTask, Stats};
use crate::engine::local::local_dirs;
use crate::engine::own::{OwnImage, own_image};
use crate::engine::run::Runner;
use crate::engine::store::Capabilities;
use crate::registry::sha256_digest;

pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects through DOCKER_HOST (or the default socket) and settles on an
    /// API version both sides speak: Debian's engine stops at 1.41, hosted
    /// runners are far newer.
    pub async fn connect() -> Result<Self, EngineError> {
        Ok(Engine {
            docker: connect().await?,
        })
    }

    /// What this engine offers, from its `/info`.
    pub async fn capabilities(&self) -> Result<Capabilities, EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|source| EngineError::Unreachable {
                host: crate::engine::buildkit::docker_host(),
                source,
            })?;
        Ok(Capabilities::of(&info))
    }

    /// The image this binary runs from, when it runs in a container of this
    /// engine (a container action); `None` when that isn't certain.
    pub async fn own_image(&self) -> Option<OwnImage> {
        own_image(&self.docker).await
    }

    /// Containers on this same connection (the client is a shared handle).
    pub fn runner(&self) -> Runner {
        Runner::new(self.docker.clone())
    }

    /// Builds; every log line goes to `on_line`.
    pub async fn build(
        &self,
        spec: BuildSpec<'_>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Built, EngineError> {
        let context_dir = spec.context.to_owned();
        let dockerfile = spec.dockerfile.to_owned();
        let plan = blocking(move || ContextPlan::new(&context_dir, Some(&dockerfile))).await?;
        let tag = spec.tag.to_owned();
        let built = match spec.builder {
            Builder::BuildKit => self.buildkit(&spec, plan, on_line).await?,
            Builder::Legacy => {
                let options = legacy_options(&spec, plan.dockerfile().to_owned());
                let (tar, stats) = blocking(move || plan.write(Vec::new())).await?;
                let credentials = (!spec.credentials.is_empty()).then(|| spec.credentials.clone());
                let body = Some(bollard::body_full(tar.into()));
                let stream = self.docker.build_image(options, credentials, body);
                Built {
                    context: stats.digest,
                    ..legacy_log(stream, &tag, on_line).await?
                }
            }
        };
        Ok(built)
    }

    /// A BuildKit build whose context is tarred while it is sent. When the
    /// context could not be read, that is the error, not the aborted
    /// request it caused.
    async fn buildkit(
        &self,
        spec: &BuildSpec<'_>,
        plan: ContextPlan,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Built, EngineError> {
        let address = EngineAddress::from_env().map_err(EngineError::BuildKit)?;
        let engine = BuildKitEngine::new(address, self.docker.client_version().to_string());
        let options = buildkit_options(spec, plan.dockerfile().to_owned());
        let (context, writer) = stream_context(plan);
        let request = BuildRequest {
            options,
            context,
            credentials: spec.credentials.clone(),
            secrets: spec.secrets.clone(),
            push_to: spec.push_to.clone(),
        };
        let pushes = spec.push_to.is_some();
        let built = buildkit_log(Box::pin(engine.build(request)), spec.tag, pushes, on_line).await;
        match (built, writer.await) {
            (Ok(built), Ok(Ok(stats))) => Ok(Built {
                context: stats.digest,
                ..built
            }),
            // A file that couldn't be read is the cause; a request that
            // ended before the context was sent is only its consequence.
            (_, Ok(Err(unreadable))) if !request_ended(&unreadable) => {
                Err(EngineError::Context(unreadable))
            }
            (Err(failed), _) => Err(failed),
            (Ok(_), Ok(Err(unsent))) => Err(EngineError::Context(unsent)),
            (Ok(_), Err(panicked)) => Err(EngineError::Context(anyhow::anyhow!(panicked))),
        }
    }

    /// Builds `spec` in one solve of BuildKit's control API, every
    /// platform of `spec.platform` (comma-separated) at once, and lets
    /// BuildKit push the result to `spec.push_to` by digest. The context
    /// goes over the session's file sync, each file at most once, while
    /// its identity is taken beside. `no_control_api` tells an engine
    /// without that API, where nothing ran.
    pub async fn solve(
        &self,
        spec: BuildSpec<'_>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Built, EngineError> {
        let Some(repository) = spec.push_to.clone() else {
            return Err(EngineError::BuildKit(BuildKitError::InvalidRequest(
                "a solve through the control API pushes; name the repository".into(),
            )));
        };
        let context_dir = spec.context.to_owned();
        let dockerfile = spec.dockerfile.to_owned();
        let plan =
            Arc::new(blocking(move || ContextPlan::new(&context_dir, Some(&dockerfile))).await?);
        let listed = plan.clone();
        let dirs = blocking(move || local_dirs(&listed)).await?;
        let hashed = plan.clone();
        // Dropped with the solve's failure or cancellation, it stops.
        let identity = IdentityTask::spawn(move |stop| hashed.identity_unless(stop));
        let address = EngineAddress::from_env().map_err(EngineError::BuildKit)?;
        let engine = BuildKitEngine::new(address, self.docker.client_version().to_string());
        // The directories by their paths (hashed: the engine's logs show
        // the key), the Dockerfile's too: its directory is ours, one file.
        let mut paths = plan.root().as_os_str().as_encoded_bytes().to_vec();
        paths.push(0);
        paths.extend(plan.dockerfile_source().as_os_str().as_encoded_bytes());
        let shared_key = sha256_digest(&paths);
        let solve = solve_of(&spec, &repository, (dirs, shared_key));
        let built = solve_log(Box::pin(engine.solve(solve)), spec.tag, on_line).await?;
        let context = identity.wait().await.map_err(EngineError::Context)?;
        Ok(Built { context, ..built })
    }

    /// The image's layers as diff IDs (`sha256:` of each uncompressed
    /// layer), base first.
    pub async fn diff_ids(&self, image: &str) -> Result<Vec<String>, EngineError> {
        let inspected = self.inspect(image).await?;
        Ok(inspected
            .root_fs
            .and_then(|root| root.layers)
            .unwrap_or_default())
    }

    async fn inspect(&self, image: &str) -> Result<bollard::models::ImageInspect, EngineError> {
        self.docker
            .inspect_image(image)
            .await
            .map_err(|source| EngineError::Api {
                action: "inspect",
                image: image.to_owned(),
                source,
            })
    }

    /// Streams `docker save` of one image to a file; returns its size.
    pub async fn save(&self, image: &str, to: &Path) -> Result<u64, EngineError> {
        let path = to.to_owned();
        let written = self
            .save_streamed(image, move |export| {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                let size = io::copy(export, &mut file)?;
                file.flush()?;
                Ok(size)
            })
            .await?;
        written.map_err(|source| EngineError::Write {
            path: to.to_owned(),
            source,
        })
    }

    /// Hands the export of `image` (`docker save`) to `consume` as it
    /// arrives, `consume` running on a blocking thread. When the engine
    /// fails midway, its error is returned rather than what the cut-off
    /// stream made `consume` say.
    pub async fn save_streamed<T: Send + 'static>(
        &self,
        image: &str,
        consume: impl FnOnce(&mut dyn Read) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        // The engine's failure is kept: it, not what the cut-off stream
        // made `consume` say, is the error.
        let failure = Arc::new(Mutex::new(None));
        let noted = failure.clone();
        let name = image.to_owned();
        let chunks = self.docker.export_image(image).map(move |chunk| {
            chunk.map_err(|source| {
                if let Ok(mut failure) = noted.lock() {
                    failure.get_or_insert(EngineError::Api {
                        action: "export",
                        image: name.clone(),
                        source,
                    });
                }
                io::Error::other("the engine's export stopped")
            })
        });
        let mut export = SyncIoBridge::new(StreamReader::new(Box::pin(chunks)));
        let consumed = tokio::task::spawn_blocking(move || consume(&mut export))
            .await
            .map_err(|e| EngineError::Context(anyhow::anyhow!(e)))?;
        match failure.lock().ok().and_then(|mut failure| failure.take()) {
            Some(failure) => Err(failure),
            None => Ok(consumed),
        }
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Context(anyhow::anyhow!(e)))?
        .map_err(EngineError::Context)
}

/// The context as a request body, tarred on a blocking thread meanwhile;
/// the handle says whether every file could be read.
fn stream_context(
    plan: ContextPlan,
) -> (ContextBody, tokio::task::JoinHandle<anyhow::Result<Stats>>) {
    let write = move |out: BodyWriter| {
        let (mut out, stats) = plan.write(BufWriter::with_capacity(CHUNK, out))?;
        out.flush()?;
        Ok(stats)
    };
    let abort = |e: &anyhow::Error| io::Error::other(format!("{e:#}"));
    let (body, writer) = written_body(write, abort);
    (ContextBody::stream(body), writer)
}

/// Whether the context writer stopped because the request was gone.
fn request_ended(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_request_counts_as_the_request_ending() {
        use anyhow::Context as _;
        let gone: anyhow::Result<()> = Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the build request ended",
        ))
        .context("adding app.bin to the build context");
        assert!(request_ended(&gone.unwrap_err()));
        let unreadable: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
                .context("reading secret.txt");
        assert!(!request_ended(&unreadable.unwrap_err()));
    }
}
