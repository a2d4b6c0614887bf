//! The image this binary runs from, when a runner started it as a container
//! action with the engine's socket mounted in (GitHub's runner always
//! mounts it; Forgejo's when its `docker_host` says so): what the
//! provenance names as the builder's image. Whatever is not certain is
//! `None`: a provenance records only what is known.
//!
//! The container is found by its full ID, which the engine's bind mount on
//! `/etc/hostname` names (`…/containers/<id>/hostname`), not by the
//! hostname, which a runner may set (and which is only an ID's prefix).

use std::io::Read as _;
use std::time::Duration;

use bollard::Docker;

use crate::reference::{Reference, names_registry};

/// `/proc/self/mountinfo` read at most (a container has a few dozen
/// mounts; a host, a few hundred).
const MOUNTINFO_MAX: u64 = 1 << 20;
/// Both engine requests together; the provenance doesn't wait longer.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The image of the container this binary runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnImage {
    /// The image ID, as the engine names it (the config's digest on the
    /// classic store, the manifest's on the containerd store): known
    /// wherever the container is, also for an image the runner built from
    /// the action's Dockerfile.
    pub id: String,
    /// `registry/repository@sha256:…`, the manifest digest of the image in
    /// the registry repository it was run as (`docker://…`).
    pub pulled: Option<String>,
}

/// The image this binary runs from; `None` outside a container, without
/// the engine's socket, or on any doubt.
pub async fn own_image(docker: &Docker) -> Option<OwnImage> {
    let id = container_id(&read_mountinfo()?)?;
    tokio::time::timeout(INSPECT_TIMEOUT, inspect(docker, &id))
        .await
        .ok()
        .flatten()
}

fn read_mountinfo() -> Option<String> {
    let file = std::fs::File::open("/proc/self/mountinfo").ok()?;
    let mut text = String::new();
    file.take(MOUNTINFO_MAX).read_to_string(&mut text).ok()?;
    Some(text)
}

async fn inspect(docker: &Docker, id: &str) -> Option<OwnImage> {
    let container = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()?;
    // Another engine (DOCKER_HOST elsewhere) has no container of this ID.
    if container.id.as_deref() != Some(id) {
        return None;
    }
    let image_id = container.image.filter(|i| crate::names::is_digest(i))?;
    let run_as = container.config.and_then(|c| c.image).unwrap_or_default();
    let image = docker.inspect_image(&image_id).await.ok()?;
    let pulled = pulled_as(&run_as, &image.repo_digests.unwrap_or_default());
    Some(OwnImage {
        id: image_id,
        pulled,
    })
}

/// The container's full ID: the 64 hex digits in the source of the engine's
/// `/etc/hostname` bind mount (Docker's `…/containers/<id>/hostname`,
/// Podman's `…/overlay-containers/<id>/userdata/hostname`).
pub fn container_id(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point …
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        (fields.next()? == "/etc/hostname").then_some(())?;
        root.split('/')
            .find(|segment| segment.len() == 64 && segment.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    })
}

/// Of the image's repository digests, the one of the registry repository
/// the container was started from (`Config.Image`, `repo:tag` or
/// `repo@…`). An image the runner built and named without a registry has
/// none: the containerd image store gives any named image a repository
/// digest, which names no registry there.
pub fn pulled_as(run_as: &str, repo_digests: &[String]) -> Option<String> {
    if !names_registry(run_as) {
        return None;
    }
    let wanted = Reference::parse(run_as).ok()?.name();
    repo_digests
        .iter()
        .find(|entry| {
            Reference::parse(entry).is_ok_and(|pulled| {
                pulled.tag().is_none() && pulled.digest().is_some() && pulled.name() == wanted
            })
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c9a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    #[test]
    fn the_container_is_the_one_the_hostname_mount_names() {
        let docker = format!(
            "1210 1190 0:120 / / rw,relatime master:600 - overlay overlay rw\n\
             1222 1210 253:1 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw\n\
             1223 1210 253:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(container_id(&docker).as_deref(), Some(ID));
        let podman = format!(
            "700 690 0:44 /containers/storage/overlay-containers/{ID}/userdata/hostname /etc/hostname rw - tmpfs tmpfs rw\n"
        );
        assert_eq!(container_id(&podman).as_deref(), Some(ID));
        // A host, or a hostname mount naming no ID: not a container found.
        let host = "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n";
        assert_eq!(container_id(host), None);
        let short = "1 1 0:1 /x/4f1c9a2b3c4d/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n";
        assert_eq!(container_id(short), None);
        let elsewhere = format!("1 1 0:1 /c/{ID}/hostname /mnt/hostname rw - ext4 x rw\n");
        assert_eq!(container_id(&elsewhere), None);
    }

    #[test]
    fn the_pulled_digest_is_the_one_of_the_repository_run() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let digests = vec![
            format!("mirror.example/ra@{digest}"),
            format!("ghcr.io/webgrip/registry-action@{digest}"),
        ];
        let ghcr = Some(format!("ghcr.io/webgrip/registry-action@{digest}"));
        assert_eq!(
            pulled_as("ghcr.io/webgrip/registry-action:v1", &digests),
            ghcr
        );
        assert_eq!(
            pulled_as(
                &format!("ghcr.io/webgrip/registry-action:v1@{digest}"),
                &digests
            ),
            ghcr
        );
        assert_eq!(
            pulled_as(
                "127.0.0.1:5000/ra",
                &[format!("127.0.0.1:5000/ra@{digest}")]
            ),
            Some(format!("127.0.0.1:5000/ra@{digest}"))
        );
        assert_eq!(
            pulled_as("docker.io/library/ra:1", &[format!("ra@{digest}")]),
            Some(format!("ra@{digest}"))
        );
        // Built on the runner from the action's Dockerfile: no digest, also
        // where the containerd store gives the local name one.
        assert_eq!(pulled_as("4f1c9a:2b3c4d", &[]), None);
        assert_eq!(
            pulled_as("4f1c9a:2b3c4d", &[format!("4f1c9a@{digest}")]),
            None
        );
        assert_eq!(pulled_as("ns/ra:e2e", &[format!("ns/ra@{digest}")]), None);
        assert_eq!(pulled_as("other/ra:1", &digests), None);
        assert_eq!(pulled_as("ra", &["ra@sha256:short".to_owned()]), None);
        assert_eq!(
            pulled_as("ghcr.io/o/ra:1", &["ghcr.io/o/ra@sha256:short".to_owned()]),
            None
        );
    }

    #[test]
    fn names_are_compared_as_references_not_as_text() {
        let digest = format!("sha256:{}", "cd".repeat(32));
        // Docker Hub's other host names are Docker Hub.
        assert_eq!(
            pulled_as(
                "registry-1.docker.io/team/ra:1",
                &[format!("team/ra@{digest}")]
            ),
            Some(format!("team/ra@{digest}"))
        );
        // `library/` is only the namespace of one-part names:
        // `docker.io/library/team/ra` is not `team/ra`.
        assert_eq!(
            pulled_as(
                "docker.io/library/team/ra:1",
                &[format!("team/ra@{digest}")]
            ),
            None
        );
        // A host name in capitals, and `localhost` too.
        assert_eq!(
            pulled_as(
                "Registry.Example:5000/ra",
                &[format!("registry.example:5000/ra@{digest}")]
            ),
            Some(format!("registry.example:5000/ra@{digest}"))
        );
        assert_eq!(
            pulled_as(
                &format!("LocalHost/ra@{digest}"),
                &[format!("localhost/ra@{digest}")]
            ),
            Some(format!("localhost/ra@{digest}"))
        );
    }
}
