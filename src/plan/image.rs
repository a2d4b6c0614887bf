//! An image directory of the monorepo and what its Dockerfile builds on.

use std::collections::BTreeMap;

use crate::plan::dockerfile;
use crate::platform;
use crate::reference::{Reference, ReferenceError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Repository-relative directory, `/`-separated: `ops/docker/helm-deploy`.
    pub path: String,
    /// The directory relative to the context root: `helm-deploy`, or
    /// `team/api` when `max-depth` allows nesting.
    pub name: String,
    pub basename: String,
    pub dockerfile: String,
    /// The name it is pushed as.
    pub reference: Reference,
    /// The images its stages pull (`FROM`), normalised; `scratch`, stage
    /// names and references that don't parse (an unresolved `$ARG`) are left
    /// out because they can't name an image of this repository.
    pub bases: Vec<Reference>,
}

/// Where images are pushed: `<registry>/<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub registry: String,
    pub namespace: String,
}

impl Image {
    /// `build_args` resolve `ARG`s in `FROM` lines, as the build would.
    pub fn new(
        context_root: &str,
        name: &str,
        dockerfile_text: &str,
        destination: &Destination,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Self, ReferenceError> {
        let path = format!("{}/{name}", context_root.trim_end_matches('/'));
        let full = format!(
            "{}/{}/{name}",
            destination.registry.trim_end_matches('/'),
            destination.namespace.trim_matches('/')
        );
        let reference = Reference::parse(&full)?;
        // Each platform's `FROM` names the same repository: any one will do.
        let stages = dockerfile::stages(dockerfile_text, build_args, &platform::host());
        let bases = dockerfile::external_bases(&stages)
            .into_iter()
            .filter_map(|stage| Reference::parse(&stage.base).ok())
            .collect();
        Ok(Image {
            basename: name.rsplit('/').next().unwrap_or(name).to_owned(),
            dockerfile: format!("{path}/Dockerfile"),
            name: name.to_owned(),
            path,
            reference,
            bases,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Whether one of `image`'s `FROM` lines names `base`, by pushed name.
    fn builds_on(image: &Image, base: &Image) -> bool {
        image
            .bases
            .iter()
            .any(|b| b.name() == base.reference.name())
    }

    fn hub() -> Destination {
        Destination {
            registry: "docker.io".into(),
            namespace: "webgrip".into(),
        }
    }

    #[test]
    fn pushed_name_and_paths() {
        let image = Image::new(
            "ops/docker",
            "helm-deploy",
            "FROM scratch\n",
            &hub(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(image.path, "ops/docker/helm-deploy");
        assert_eq!(image.dockerfile, "ops/docker/helm-deploy/Dockerfile");
        assert_eq!(image.basename, "helm-deploy");
        assert_eq!(image.reference.to_string(), "docker.io/webgrip/helm-deploy");
        assert!(image.bases.is_empty());
    }

    #[test]
    fn builds_on_matches_the_normalised_pushed_name() {
        let base = Image::new(
            "ops/docker",
            "base",
            "FROM scratch\n",
            &hub(),
            &BTreeMap::new(),
        )
        .unwrap();
        for from in [
            "FROM webgrip/base:1.0\n",
            "FROM docker.io/webgrip/base\n",
            "FROM index.docker.io/WebGrip/base@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
            "ARG BASE=webgrip/base\nFROM ${BASE} AS build\nFROM scratch\nCOPY --from=build / /\n",
            // BuildKit defines the platform arguments without an `ARG`.
            "ARG REGISTRY=docker.io/webgrip\nFROM ${REGISTRY}/base:${TARGETARCH}\n",
        ] {
            let app = Image::new("ops/docker", "app", from, &hub(), &BTreeMap::new()).unwrap();
            assert!(builds_on(&app, &base), "{from}");
        }
        let other = Image::new(
            "ops/docker",
            "app",
            "FROM otherorg/base\n",
            &hub(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(!builds_on(&other, &base));
    }

    #[test]
    fn local_registry_names() {
        let local = Destination {
            registry: "127.0.0.1:5000".into(),
            namespace: "demo".into(),
        };
        let base = Image::new(
            "ops/docker",
            "base",
            "FROM scratch\n",
            &local,
            &BTreeMap::new(),
        )
        .unwrap();
        let app = Image::new(
            "ops/docker",
            "app",
            "ARG REGISTRY=127.0.0.1:9999\nFROM ${REGISTRY}/demo/base:latest\n",
            &local,
            &BTreeMap::from([("REGISTRY".to_owned(), "127.0.0.1:5000".to_owned())]),
        )
        .unwrap();
        assert!(builds_on(&app, &base));
        assert_eq!(base.reference.to_string(), "127.0.0.1:5000/demo/base");
    }
}
