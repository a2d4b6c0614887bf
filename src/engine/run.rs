//! One-shot containers through the engine (bollard): make sure the image is
//! there (pulling it when it is not), copy local files into the container,
//! run a command with a chosen environment, collect stdout and the tail of
//! stderr, and remove the container whatever happened.
//!
//! Files go in through the engine API (a tar stream), not bind mounts: a
//! bind mount names a path on the engine's host, and inside the action's
//! own container (`runs.using: docker`) our paths are not the host's.
//!
//! The scan gate runs a scanner this way when its binary is not on PATH.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, RemoveContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt as _;

use crate::engine::bridge::{BodyWriter, CHUNK, written_body};
use crate::engine::client::{EngineError, connect};

/// Bytes of stderr kept for an error message (the end of it).
const STDERR_KEPT: usize = 64 * 1024;

/// Every container made here carries this label, so a stray one is easy
/// to find (`docker ps -a --filter label=registry-action.run`).
pub const LABEL: &str = "registry-action.run";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "the image {image} is not on the Docker Engine and couldn't be pulled: {reason}; pull or load it onto the engine first (`docker pull {image}`, after `docker login` for a private registry), or name an image the engine has"
    )]
    ImageUnavailable { image: String, reason: String },
    #[error("the Docker Engine failed to {action} a container of {image}: {source}")]
    Api {
        action: &'static str,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("couldn't copy {} into a container of {image}: {reason}", path.display())]
    CopyIn {
        image: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the container of {image} was still running after {} s; it was stopped and removed",
        after.as_secs()
    )]
    TimedOut { image: String, after: Duration },
}

/// A local file or directory copied into the container before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIn {
    /// A path on this machine (or in this container).
    pub source: PathBuf,
    /// The absolute path it gets inside the container.
    pub target: String,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub image: &'a str,
    /// Arguments to the image's entrypoint.
    pub cmd: Vec<String>,
    /// `KEY=VALUE`: the container's whole environment besides the image's own.
    pub env: Vec<String>,
    pub copies: Vec<CopyIn>,
    /// `none` cuts the container off every network; otherwise the engine's default.
    pub network_none: bool,
    /// The container is stopped and removed when it runs longer.
    pub timeout: Duration,
}

/// How the container ended.
#[derive(Debug)]
pub struct Exited {
    pub code: i64,
    pub stdout: Vec<u8>,
    /// The end of stderr (at most 64 KiB).
    pub stderr: Vec<u8>,
}

impl Exited {
    /// The last `lines` non-empty lines of stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let mut tail: Vec<&str> = text
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(lines)
            .collect();
        tail.reverse();
        tail.join("\n")
    }
}

pub struct Runner {
    docker: Docker,
}

impl Runner {
    /// Connects as the engine's builder does.
    pub async fn connect() -> Result<Self, EngineError> {
        Ok(Runner::new(connect().await?))
    }

    pub(crate) fn new(docker: Docker) -> Self {
        Runner { docker }
    }

    /// The image is on the engine, pulled (anonymously) when it was not.
    pub async fn ensure_image(&self, image: &str) -> Result<(), RunError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(source) => {
                return Err(RunError::Api {
                    action: "inspect the image for",
                    image: image.to_owned(),
                    source,
                });
            }
        }
        tracing::info!("pulling {image}");
        let (name, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(name.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let unavailable = |reason: String| RunError::ImageUnavailable {
            image: image.to_owned(),
            reason,
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(item) = pull.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        tracing::debug!("pull {image}: {status}");
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(unavailable(error));
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    return Err(unavailable(message));
                }
                Err(e) => return Err(unavailable(e.to_string())),
            }
        }
        self.docker.inspect_image(image).await.map_err(|e| {
            unavailable(format!(
                "the pull ended but the engine still lacks it ({e})"
            ))
        })?;
        Ok(())
    }

    /// Creates, starts and waits for the container, then removes it, also
    /// when anything failed or the timeout struck.
    pub async fn run(&self, spec: &RunSpec<'_>) -> Result<Exited, RunError> {
        let api = |action| api_error(action, spec.image);
        let body = ContainerCreateBody {
            image: Some(spec.image.to_owned()),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            labels: Some([(LABEL.to_owned(), "true".to_owned())].into()),
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(HostConfig {
                network_mode: spec.network_none.then(|| "none".to_owned()),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "registry-action-run-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let options = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(api("create"))?;
        for warning in &created.warnings {
            tracing::warn!("creating a container of {}: {warning}", spec.image);
        }
        let mut guard = Removal {
            docker: Some(self.docker.clone()),
            id: created.id.clone(),
        };
        let run = async {
            for copy in &spec.copies {
                self.copy_in(&created.id, spec.image, copy).await?;
            }
            self.attach_start_wait(&created.id, spec).await
        };
        let result = match tokio::time::timeout(spec.timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(RunError::TimedOut {
                image: spec.image.to_owned(),
                after: spec.timeout,
            }),
        };
        guard.docker = None;
        remove(&self.docker, &created.id).await;
        result
    }

    /// Streams `copy` into the created container as a tar, written on a
    /// blocking thread while the engine reads it, so an image archive of
    /// any size never sits in memory.
    async fn copy_in(&self, id: &str, image: &str, copy: &CopyIn) -> Result<(), RunError> {
        let failed = |reason: String| RunError::CopyIn {
            image: image.to_owned(),
            path: copy.source.clone(),
            reason,
        };
        let (source, target) = (copy.source.clone(), copy.target.clone());
        let (chunks, writer) = written_body(
            move |sink| tar_into(&source, &target, sink),
            |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string()),
        );
        // Extracted at the root: the engine wants the directory to exist,
        // and the tar's own entries make the target's parents.
        let options = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        let uploaded = self
            .docker
            .upload_to_container(id, Some(options), bollard::body_try_stream(chunks))
            .await;
        let written = writer
            .await
            .map_err(|e| failed(format!("the tar writer stopped ({e})")))?;
        // A write error is the cause of the failed upload it leads to;
        // a write the upload no longer took (it failed) is its consequence.
        written.map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => failed("the engine stopped reading".to_owned()),
            _ => failed(e.to_string()),
        })?;
        uploaded.map_err(|e| failed(format!("the engine refused it ({e})")))
    }

    async fn attach_start_wait(&self, id: &str, spec: &RunSpec<'_>) -> Result<Exited, RunError> {
        let api = |action| api_error(action, spec.image);
        // Attached before the start, so no output is lost, and independent
        // of the engine's log driver.
        let attach = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut output = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(api("attach to"))?
            .output;
        self.docker
            .start_container(id, None)
            .await
            .map_err(api("start"))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(item) = output.next().await {
            match item.map_err(api("read the output of"))? {
                LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                LogOutput::StdErr { message } => {
                    stderr.extend_from_slice(&message);
                    if stderr.len() > STDERR_KEPT {
                        stderr.drain(..stderr.len() - STDERR_KEPT);
                    }
                }
                // A container without a TTY has no console output.
                LogOutput::Console { message } => stdout.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        let code = self.wait(id, spec.image).await?;
        Ok(Exited {
            code,
            stdout,
            stderr,
        })
    }

    /// The exit code; bollard reports a non-zero one as an error item.
    async fn wait(&self, id: &str, image: &str) -> Result<i64, RunError> {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut wait = self.docker.wait_container(id, Some(options));
        let mut code = None;
        while let Some(item) = wait.next().await {
            match item {
                Ok(response) => code = Some(response.status_code),
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, error }) => {
                    if !error.is_empty() {
                        tracing::debug!("the container of {image} exited {c}: {error}");
                    }
                    code = Some(c);
                }
                Err(source) => {
                    return Err(RunError::Api {
                        action: "wait for",
                        image: image.to_owned(),
                        source,
                    });
                }
            }
        }
        code.ok_or_else(|| RunError::Api {
            action: "wait for",
            image: image.to_owned(),
            source: bollard::errors::Error::DockerStreamError {
                error: "the engine ended the wait without an exit code".into(),
            },
        })
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(
            "couldn't remove the container {id}: {e}; remove it with `docker rm -f {id}`"
        );
    }
}

/// Removes the container when the run is dropped half-way (a cancelled
/// job); a run that ends removes it itself and disarms this.
struct Removal {
    docker: Option<Docker>,
    id: String,
}

impl Drop for Removal {
    fn drop(&mut self) {
        let Some(docker) = self.docker.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let id = std::mem::take(&mut self.id);
            handle.spawn(async move { remove(&docker, &id).await });
        }
    }
}

/// A tar holding `source` (a file or a directory tree) as `target`,
/// written to `sink`.
fn tar_into(source: &Path, target: &str, sink: BodyWriter) -> std::io::Result<()> {
    let name = target.trim_start_matches('/');
    let mut tar = tar::Builder::new(BufWriter::with_capacity(CHUNK, sink));
    // The engine refuses GNU sparse entries ("unhandled tar header type
    // 83"), and scanner databases are often sparse files.
    tar.sparse(false);
    if source.is_dir() {
        tar.append_dir_all(name, source)?;
    } else {
        tar.append_path_with_name(source, name)?;
    }
    tar.into_inner()?.flush()
}

/// `name[:tag]` or `name@digest` → the repository and the tag or digest the
/// pull asks for (`latest` when neither is given: an empty tag would pull
/// every tag).
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => (
            &image[..last_slash + colon],
            &image[last_slash + colon + 1..],
        ),
        None => (image, "latest"),
    }
}

/// Maps a bollard error of one step of the run to [`RunError::Api`].
fn api_error(action: &'static str, image: &str) -> impl Fn(bollard::errors::Error) -> RunError {
    let image = image.to_owned();
    move |source| RunError::Api {
        action,
        image: image.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag_or_digest() {
        assert_eq!(
            split_reference("aquasec/trivy:0.59.1"),
            ("aquasec/trivy", "0.59.1")
        );
        assert_eq!(split_reference("alpine"), ("alpine", "latest"));
        assert_eq!(
            split_reference("127.0.0.1:5000/scan/grype"),
            ("127.0.0.1:5000/scan/grype", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/scan/grype:v0.87.0"),
            ("127.0.0.1:5000/scan/grype", "v0.87.0")
        );
        assert_eq!(
            split_reference("aquasec/trivy:0.59.1@sha256:abc"),
            ("aquasec/trivy:0.59.1", "sha256:abc")
        );
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let exited = Exited {
            code: 1,
            stdout: Vec::new(),
            stderr: b"one\ntwo\n\nthree\nfour\n".to_vec(),
        };
        assert_eq!(exited.stderr_tail(2), "three\nfour");
        assert_eq!(exited.stderr_tail(10), "one\ntwo\nthree\nfour");
    }
}
