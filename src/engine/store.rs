//! What differs between the engines users run, decided here once, from
//! the engine's `/info`: which image store it has, and so what its
//! BuildKit can do with a build's result.

use bollard::models::SystemInfo;

/// The `driver-type` `/info` reports for the containerd image store
/// (Docker 24+ with the `containerd-snapshotter` feature, the default of
/// fresh installs since 29).
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// Where the engine keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The graph drivers (`overlay2`): images as uncompressed layers;
    /// BuildKit's only exporter into it is the engine's own.
    Classic,
    /// containerd's content store: layers kept compressed with their final
    /// digests; BuildKit has its full set of exporters, `image` included.
    Containerd,
}

/// What the engine offers that a publish can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub store: ImageStore,
}

impl Capabilities {
    pub(super) fn of(info: &SystemInfo) -> Self {
        let containerd = info.driver_status.iter().flatten().any(|pair| {
            matches!(pair.as_slice(), [key, value] if key == "driver-type" && value == CONTAINERD_SNAPSHOTTER)
        });
        Capabilities {
            store: if containerd {
                ImageStore::Containerd
            } else {
                ImageStore::Classic
            },
        }
    }

    /// Whether BuildKit can push a build's result itself, by digest, from
    /// its own store (`/build`'s `outputs` with the `image` exporter): no
    /// `docker save`, no second compression. Only the containerd store's
    /// BuildKit has that exporter; the classic store's answers `exporter
    /// "image" could not be found`.
    pub fn buildkit_pushes(self) -> bool {
        self.store == ImageStore::Containerd
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(status: &[[&str; 2]]) -> SystemInfo {
        SystemInfo {
            driver_status: Some(
                status
                    .iter()
                    .map(|pair| pair.iter().map(|s| (*s).to_owned()).collect())
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn the_containerd_snapshotter_is_the_containerd_store() {
        let docker_28 = info(&[["driver-type", "io.containerd.snapshotter.v1"]]);
        assert_eq!(Capabilities::of(&docker_28).store, ImageStore::Containerd);
        assert!(Capabilities::of(&docker_28).buildkit_pushes());
    }

    #[test]
    fn graph_drivers_and_silence_are_the_classic_store() {
        let overlay2 = info(&[["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]);
        for info in [overlay2, SystemInfo::default()] {
            assert_eq!(Capabilities::of(&info).store, ImageStore::Classic);
            assert!(!Capabilities::of(&info).buildkit_pushes());
        }
    }
}
