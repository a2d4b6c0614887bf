//! The two builders behind the engine's `/build`: their request options and
//! how each one's answer stream becomes a log, an image ID or an error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use futures_util::{Stream, StreamExt as _};

use crate::engine::buildkit::{BuildKitError, BuildSecrets, LocalDirs, Solve, SolveEvent};
use crate::engine::client::EngineError;
use crate::engine::local::DOCKERFILE_NAME;
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
    /// BuildKit pushes the image to this repository (`registry/path`) by
    /// digest and the engine keeps no copy (`tag` is then unused): only
    /// where [`Capabilities::buildkit_pushes`](crate::engine::Capabilities).
    pub push_to: Option<String>,
    /// A solve also exports BuildKit's whole cache (`mode=max`) to this
    /// image reference and imports it from there.
    pub registry_cache: Option<String>,
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
    /// With `push_to` only: the digest BuildKit says it pushed the image
    /// under (the manifest's, or the index's for several platforms).
    /// Untrusted text, and no proof the registry holds it: read it back.
    pub buildkit_pushed: Option<String>,
}

pub fn buildkit_options(spec: &BuildSpec<'_>, dockerfile: String) -> BuildImageOptions {
    let mut build_args = spec.build_args.clone();
    if spec.inline_cache {
        build_args.insert(INLINE_CACHE_ARG.to_owned(), "1".to_owned());
    }
    let common = common_options(spec, dockerfile);
    BuildImageOptions {
        version: BuilderVersion::BuilderBuildKit,
        cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
        buildargs: Some(build_args),
        // A tag would rename what BuildKit pushes.
        t: common.t.clone().filter(|_| spec.push_to.is_none()),
        ..common
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

/// The exporter's answer naming what it pushed: the manifest's digest,
/// or the index's for several platforms.
const PUSHED_DIGEST: &str = "containerimage.digest";

/// `spec` as one solve of BuildKit's control API, pushing to `repository`
/// by digest: what `buildkit_options` and `/build` ask of the engine,
/// spelled as the frontend and exporter read it (`platform` may name
/// several, comma-separated).
pub fn solve_of(
    spec: &BuildSpec<'_>,
    repository: &str,
    (dirs, shared_key): (LocalDirs, String),
) -> Solve {
    let mut attrs: HashMap<String, String> = HashMap::from([
        ("filename".into(), DOCKERFILE_NAME.into()),
        // What the engine's `/build` does: a `FROM` the engine has is used.
        ("image-resolve-mode".into(), "local".into()),
    ]);
    let mut build_args = spec.build_args.clone();
    let mut cache_exports = Vec::new();
    if spec.inline_cache {
        build_args.insert(INLINE_CACHE_ARG.to_owned(), "1".to_owned());
        cache_exports.push(("inline".to_owned(), HashMap::new()));
    }
    attrs.extend(
        build_args
            .into_iter()
            .map(|(k, v)| (format!("build-arg:{k}"), v)),
    );
    attrs.extend(
        spec.labels
            .iter()
            .map(|(k, v)| (format!("label:{k}"), v.clone())),
    );
    for (key, value) in [("target", &spec.target), ("platform", &spec.platform)] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            attrs.insert(key.to_owned(), value.clone());
        }
    }
    let mut entitlements = Vec::new();
    match spec.network.as_deref() {
        Some("host") => {
            attrs.insert("force-network-mode".into(), "host".into());
            entitlements.push("network.host".to_owned());
        }
        Some("none") => {
            attrs.insert("force-network-mode".into(), "none".into());
        }
        _ => {}
    }
    let mut cache_imports: Vec<(String, HashMap<String, String>)> = spec
        .cache_from
        .iter()
        .chain(&spec.registry_cache)
        .map(|image| {
            let attrs = HashMap::from([("ref".to_owned(), image.clone())]);
            ("registry".to_owned(), attrs)
        })
        .collect();
    cache_imports.dedup();
    if let Some(cache) = &spec.registry_cache {
        cache_exports.push(("registry".to_owned(), registry_cache_export(cache)));
    }
    let image = HashMap::from(
        [
            ("name", repository),
            ("push", "true"),
            ("push-by-digest", "true"),
            ("oci-mediatypes", "true"),
            ("store", "false"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Solve {
        frontend_attrs: attrs,
        exporters: vec![("image".to_owned(), image)],
        cache_imports,
        cache_exports,
        entitlements,
        dirs,
        shared_key,
        credentials: spec.credentials.clone(),
        secrets: spec.secrets.clone(),
    }
}

/// BuildKit's registry cache exporter for `reference`: every stage's
/// steps (`mode=max`), OCI types, and a registry refusing it is only
/// a line of the log, not a failed build (the image is what matters).
fn registry_cache_export(reference: &str) -> HashMap<String, String> {
    [
        ("ref", reference),
        ("mode", "max"),
        ("oci-mediatypes", "true"),
        ("ignore-error", "true"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into()
}

/// Reads a solve: progress as grouped step lines, the steps cached and
/// run, what was pushed, and on failure the step that failed.
pub async fn solve_log(
    mut stream: impl Stream<Item = Result<SolveEvent, BuildKitError>> + Unpin,
    image: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Built, EngineError> {
    let mut progress = Progress::default();
    let mut buildkit_pushed = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(SolveEvent::Status(status)) => {
                for line in progress.update(&status) {
                    on_line(&without_upload_sessions(&line));
                }
            }
            Ok(SolveEvent::Solved(response)) => {
                buildkit_pushed = response.get(PUSHED_DIGEST).cloned();
            }
            Err(BuildKitError::Build { message }) => {
                let failed = progress.failed();
                return Err(EngineError::BuildFailed {
                    image: image.to_owned(),
                    step: failed.map(|f| f.name.clone()),
                    message: without_upload_sessions(&message).into_owned(),
                    tail: failed.map(|f| f.tail.join("\n")).unwrap_or_default(),
                });
            }
            Err(other) => return Err(EngineError::BuildKit(other)),
        }
    }
    let (cached, executed) = progress.counts();
    Ok(Built {
        cached,
        executed,
        buildkit_pushed,
        ..Built::default()
    })
}

/// Reads a BuildKit build: progress as grouped step lines, the steps
/// cached and run, what was pushed (with `pushes`), and on failure the
/// step that failed.
pub async fn buildkit_log(
    mut stream: impl Stream<Item = Result<BuildInfo, BuildKitError>> + Unpin,
    image: &str,
    pushes: bool,
    on_line: &mut dyn FnMut(&str),
) -> Result<Built, EngineError> {
    let mut progress = Progress::default();
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        // The stream turns the engine's `errorDetail` into `Build`.
        let info = match item {
            Ok(info) => info,
            Err(BuildKitError::Build { message }) => {
                let failed = progress.failed();
                return Err(EngineError::BuildFailed {
                    image: image.to_owned(),
                    step: failed.map(|f| f.name.clone()),
                    // A refused push names its signed upload URL.
                    message: without_upload_sessions(&message).into_owned(),
                    tail: failed.map(|f| f.tail.join("\n")).unwrap_or_default(),
                });
            }
            Err(other) => return Err(EngineError::BuildKit(other)),
        };
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                for line in progress.update(&status) {
                    on_line(&without_upload_sessions(&line));
                }
            }
            Some(BuildInfoAux::Default(id)) => image_id = id.id.or(image_id),
            None => {}
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
        // Pushing, the engine names the manifest BuildKit pushed as the
        // image; else it is a local image's ID.
        buildkit_pushed: image_id.filter(|_| pushes),
        ..Built::default()
    })
}

/// Where a registry's upload endpoint ends and an upload session's own
/// path and query (its state, signed on some registries) begin.
const UPLOADS: &str = "/blobs/uploads/";

/// A BuildKit log line with every upload session's URL cut after the
/// upload endpoint: BuildKit names the session in a push's errors.
fn without_upload_sessions(line: &str) -> Cow<'_, str> {
    if !line.contains(UPLOADS) {
        return Cow::Borrowed(line);
    }
    let mut shown = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(UPLOADS) {
        let (before, session) = rest.split_at(at + UPLOADS.len());
        shown.push_str(before);
        let end = session
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(session.len());
        if end > 0 {
            shown.push('…');
        }
        rest = &session[end..];
    }
    shown.push_str(rest);
    Cow::Owned(shown)
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

/// Whether a solve failed because the engine offers no control API to
/// solve through (`/grpc` refused, an engine that can't hold a session):
/// nothing was built, and `/build` may still serve.
pub fn no_control_api(error: &EngineError) -> bool {
    refused_session(error)
        || matches!(
            error,
            EngineError::BuildKit(BuildKitError::ControlRefused { .. })
        )
}

fn api_error(image: &str, source: bollard::errors::Error) -> EngineError {
    EngineError::Api {
        action: "build",
        image: image.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_solve_asks_what_build_asks_in_the_frontends_words() {
        let spec = BuildSpec {
            context: Path::new("/ctx"),
            dockerfile: Path::new("/ctx/Dockerfile"),
            tag: "local",
            build_args: HashMap::from([("V".into(), "1".into())]),
            labels: HashMap::from([("org.opencontainers.image.revision".into(), "abc".into())]),
            target: Some("runtime".into()),
            platform: Some("linux/amd64,linux/arm64".into()),
            network: Some("host".into()),
            credentials: HashMap::new(),
            builder: Builder::BuildKit,
            secrets: BuildSecrets::default(),
            cache_from: vec!["r/app:latest".into()],
            inline_cache: true,
            push_to: Some("r/app".into()),
            registry_cache: Some("127.0.0.1:5000/r/app:buildcache".into()),
        };
        let solve = solve_of(
            &spec,
            "127.0.0.1:5000/r/app",
            (LocalDirs::default(), "k".into()),
        );
        let attrs = &solve.frontend_attrs;
        for (key, value) in [
            ("filename", DOCKERFILE_NAME),
            ("target", "runtime"),
            ("platform", "linux/amd64,linux/arm64"),
            ("build-arg:V", "1"),
            ("build-arg:BUILDKIT_INLINE_CACHE", "1"),
            ("label:org.opencontainers.image.revision", "abc"),
            ("force-network-mode", "host"),
            ("image-resolve-mode", "local"),
        ] {
            assert_eq!(attrs.get(key).map(String::as_str), Some(value), "{key}");
        }
        assert_eq!(solve.entitlements, ["network.host"]);
        let exports: Vec<&str> = solve
            .cache_exports
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(exports, ["inline", "registry"]);
        let registry = &solve.cache_exports[1].1;
        assert_eq!(
            (registry["ref"].as_str(), registry["mode"].as_str()),
            ("127.0.0.1:5000/r/app:buildcache", "max")
        );
        let imports: Vec<&str> = solve
            .cache_imports
            .iter()
            .map(|(_, a)| a["ref"].as_str())
            .collect();
        assert_eq!(imports, ["r/app:latest", "127.0.0.1:5000/r/app:buildcache"]);
        let (kind, image) = &solve.exporters[0];
        assert_eq!(kind, "image");
        assert_eq!(
            (
                image["name"].as_str(),
                image["push-by-digest"].as_str(),
                image["store"].as_str()
            ),
            ("127.0.0.1:5000/r/app", "true", "false")
        );
    }

    #[tokio::test]
    async fn the_image_a_build_names_is_what_buildkit_pushed_only_when_pushing() {
        let named = || {
            let info = BuildInfo {
                aux: Some(BuildInfoAux::Default(bollard::models::ImageId {
                    id: Some("sha256:abc".into()),
                })),
                ..BuildInfo::default()
            };
            futures_util::stream::iter([Ok(info)])
        };
        let pushing = buildkit_log(named(), "local", true, &mut |_| {}).await;
        assert_eq!(
            pushing.unwrap().buildkit_pushed.as_deref(),
            Some("sha256:abc")
        );
        let kept = buildkit_log(named(), "local", false, &mut |_| {}).await;
        assert_eq!(kept.unwrap().buildkit_pushed, None);
    }

    #[test]
    fn upload_sessions_are_cut_from_buildkit_lines() {
        let line = r#"#5 error: failed to do request: Put "http://127.0.0.1:5000/v2/a/b/blobs/uploads/662f-0e?_state=NsWn%3D&digest=sha256%3A46": EOF"#;
        assert_eq!(
            without_upload_sessions(line),
            r#"#5 error: failed to do request: Put "http://127.0.0.1:5000/v2/a/b/blobs/uploads/…": EOF"#
        );
        let two = "POST /v2/a/blobs/uploads/ then PATCH /v2/a/blobs/uploads/u1?_state=x";
        assert_eq!(
            without_upload_sessions(two),
            "POST /v2/a/blobs/uploads/ then PATCH /v2/a/blobs/uploads/…"
        );
        assert_eq!(without_upload_sessions("#3 DONE 0.1s"), "#3 DONE 0.1s");
    }
}
