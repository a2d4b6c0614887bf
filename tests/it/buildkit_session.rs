//! Our own BuildKit session (`engine::buildkit`) against the real engine:
//! `RUN --mount=type=secret` gets the value and the image keeps none of it;
//! an unknown secret id fails naming it; registry logins reach `FROM`
//! through the session's Auth service (the token flow, where BuildKit
//! falls back from our Unimplemented token methods to `Credentials`); and
//! a plain build's final `aux` names the image the engine has.
//!
//! Nothing can be pulled here: images are `FROM scratch` plus Debian's
//! static busybox, and `RUN` uses network `none` (the engine has no bridge).

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use registry_action::engine::{
    BuildKitEngine, BuildKitError, BuildRequest, BuildSecrets, EngineAddress,
};
use registry_action::registry::sha256_digest;

use crate::support::secret::assert_absent_bytes;
use crate::support::services::services;

const BUSYBOX: &str = "/bin/busybox";

async fn docker() -> Docker {
    Docker::connect_with_unix(&services().docker_host, 120, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// The test engine, at the API version negotiated with it (1.41 here).
async fn engine() -> BuildKitEngine {
    let address = EngineAddress::parse(&services().docker_host).unwrap();
    BuildKitEngine::new(address, docker().await.client_version().to_string())
}

/// A tar of the Dockerfile and `files` (name, bytes); with busybox when
/// the Dockerfile copies it.
fn context(dockerfile: &str, files: &[(&str, &[u8])]) -> Bytes {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644);
    for (name, bytes) in files {
        add(name, bytes, 0o644);
    }
    if dockerfile.contains("COPY busybox") {
        let busybox = std::fs::read(Path::new(BUSYBOX)).unwrap_or_else(|e| {
            panic!(
                "{BUSYBOX} is missing ({e}): install Debian's static busybox \
                 (`apt-get install -y busybox-static`; scripts/test does)"
            )
        });
        add("busybox", &busybox, 0o755);
    }
    Bytes::from(tar.into_inner().unwrap())
}

fn options(tag: &str) -> BuildImageOptions {
    BuildImageOptions {
        t: Some(tag.to_owned()),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(uuid::Uuid::new_v4().simple().to_string()),
        networkmode: Some("none".to_owned()),
        ..Default::default()
    }
}

/// Every message of the build, or the error that ended it.
async fn build(
    options: BuildImageOptions,
    dockerfile: &str,
    credentials: HashMap<String, DockerCredentials>,
    secrets: BuildSecrets,
) -> Result<Vec<BuildInfo>, BuildKitError> {
    let request = BuildRequest {
        options,
        context: context(dockerfile, &[("hello.txt", b"hello\n")]).into(),
        credentials,
        secrets,
        push_to: None,
    };
    let engine = engine().await;
    let mut stream = Box::pin(engine.build(request));
    let mut messages = Vec::new();
    while let Some(item) = stream.next().await {
        messages.push(item?);
    }
    Ok(messages)
}

/// The image id of the final `aux`.
fn image_id(messages: &[BuildInfo]) -> String {
    messages
        .iter()
        .rev()
        .find_map(|m| match &m.aux {
            Some(BuildInfoAux::Default(id)) => id.id.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no image id in the build's messages: {messages:#?}"))
}

/// `docker save` of `tag`, whole (layers are plain tars inside it).
async fn saved(tag: &str) -> Vec<u8> {
    let docker = docker().await;
    let mut stream = docker.export_image(tag);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

/// Each member of a `docker save` archive, gunzipped where it is gzip: the
/// classic store saves layers as plain `layer.tar`, the containerd store
/// as the gzip blobs it holds.
fn members(saved: &[u8]) -> Vec<Vec<u8>> {
    let mut outer = tar::Archive::new(saved);
    let mut members = Vec::new();
    for entry in outer.entries().unwrap() {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry.unwrap(), &mut bytes).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
                .unwrap();
            bytes = plain;
        }
        members.push(bytes);
    }
    members
}

/// The content of `path` (no leading slash) in the saved image's layers:
/// its members that read as tar archives.
fn file_in_layers(members: &[Vec<u8>], path: &str) -> Option<String> {
    for layer in members {
        let mut archive = tar::Archive::new(&layer[..]);
        let Ok(files) = archive.entries() else {
            continue;
        };
        for file in files {
            let Ok(mut file) = file else { break };
            let Ok(name) = file.path().map(|p| p.to_string_lossy().into_owned()) else {
                break;
            };
            if name.trim_start_matches("./") == path {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                return Some(text);
            }
        }
    }
    None
}

async fn remove(tag: &str) {
    let options = RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker().await.remove_image(tag, Some(options), None).await;
}

/// All the text a build showed: stream lines, vertex names, step logs.
fn output(messages: &[BuildInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend(m.stream.iter().chain(&m.status).flat_map(|s| s.bytes()));
        if let Some(BuildInfoAux::BuildKit(status)) = &m.aux {
            for vertex in &status.vertexes {
                out.extend(vertex.name.bytes());
            }
            for log in &status.logs {
                out.extend(&log.msg);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_secret_reaches_run_and_nothing_of_it_stays_in_the_image() {
    let tag = "registry-action-test/buildkit-session:secret";
    let secret = format!("s3cret-{}", uuid::Uuid::new_v4().simple());
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN --mount=type=secret,id=token,target=/run/secrets/token \
        [\"/bin/busybox\",\"sh\",\"-c\",\"/bin/busybox sha256sum /run/secrets/token > /digest\"]\n";
    let secrets: BuildSecrets = [("token", secret.clone())].into_iter().collect();
    // A secret's value is not part of BuildKit's cache key: without
    // nocache, a rerun would reuse the RUN of an earlier run's secret.
    let fresh = BuildImageOptions {
        nocache: true,
        ..options(tag)
    };
    let messages = build(fresh, dockerfile, HashMap::new(), secrets)
        .await
        .unwrap_or_else(|e| panic!("the build failed: {e}"));

    let inspected = docker().await.inspect_image(tag).await.unwrap();
    assert_eq!(inspected.id, Some(image_id(&messages)));
    let image = members(&saved(tag).await);
    let digest = file_in_layers(&image, "digest").expect("/digest is in the image");
    let want = sha256_digest(secret.as_bytes()).replace("sha256:", "");
    assert_eq!(
        digest.split_whitespace().next(),
        Some(want.as_str()),
        "{digest}"
    );
    let image = image.concat();
    assert_absent_bytes(&image, &secret, "the saved image");
    assert!(
        contains(&image, want.as_bytes()),
        "the search sees layer contents"
    );
    assert_absent_bytes(&output(&messages), &secret, "the build's messages");
    remove(tag).await;
}

#[tokio::test]
async fn a_required_secret_nobody_gave_fails_the_build_naming_its_id() {
    let tag = "registry-action-test/buildkit-session:missing";
    // Without `required`, BuildKit skips a secret mount it cannot fill.
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN --mount=type=secret,id=npm-token,required=true \
        [\"/bin/busybox\",\"true\"]\n";
    let secrets: BuildSecrets = [("token", "given")].into_iter().collect();
    let e = build(options(tag), dockerfile, HashMap::new(), secrets)
        .await
        .expect_err("the build fails");
    let message = e.to_string();
    assert!(matches!(e, BuildKitError::Build { .. }), "{e:?}");
    assert!(message.contains("npm-token"), "{message}");
    remove(tag).await;
}

#[tokio::test]
async fn a_build_without_secrets_names_the_image_the_engine_has() {
    let tag = "registry-action-test/buildkit-session:plain";
    let messages = build(
        options(tag),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
        HashMap::new(),
        BuildSecrets::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("the build failed: {e}"));
    let progress = messages
        .iter()
        .filter(|m| matches!(m.aux, Some(BuildInfoAux::BuildKit(_))))
        .count();
    assert!(
        progress > 0,
        "BuildKit progress arrives decoded: {messages:#?}"
    );
    let inspected = docker().await.inspect_image(tag).await.unwrap();
    assert_eq!(inspected.id, Some(image_id(&messages)));
    remove(tag).await;
}

/// A base image on the token registry, pushed by the engine.
async fn private_base(repository: &str, login: &DockerCredentials) -> String {
    let local = "registry-action-test/buildkit-session:base";
    build(
        options(local),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
        HashMap::new(),
        BuildSecrets::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("building the base failed: {e}"));
    let docker = docker().await;
    let tag = TagImageOptions {
        repo: Some(repository.to_owned()),
        tag: Some("base".to_owned()),
    };
    docker.tag_image(local, Some(tag)).await.unwrap();
    let push = PushImageOptions {
        tag: Some("base".to_owned()),
        ..Default::default()
    };
    let mut pushed = docker.push_image(repository, Some(push), Some(login.clone()));
    while let Some(item) = pushed.next().await {
        let info = item.unwrap_or_else(|e| panic!("pushing {repository}: {e}"));
        assert!(
            info.error_detail.is_none(),
            "pushing {repository}: {info:?}"
        );
    }
    remove(local).await;
    let reference = format!("{repository}:base");
    remove(&reference).await;
    reference
}

#[tokio::test]
async fn from_a_private_registry_takes_the_login_through_the_session() {
    let s = services();
    let login = DockerCredentials {
        username: Some(s.token_user.clone()),
        password: Some(s.token_password.clone()),
        serveraddress: Some(s.registry_token.clone()),
        ..Default::default()
    };
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let repository = format!("{}/bk-session-{run}/base", s.registry_token);
    let base = private_base(&repository, &login).await;
    let dockerfile = format!("FROM {base}\nCOPY hello.txt /again.txt\n");
    let tag = "registry-action-test/buildkit-session:from-private";

    let anonymous = build(
        options(tag),
        &dockerfile,
        HashMap::new(),
        BuildSecrets::new(),
    )
    .await
    .expect_err("an anonymous pull of a private image fails");
    assert!(
        matches!(anonymous, BuildKitError::Build { .. }),
        "{anonymous:?}"
    );

    let logins = HashMap::from([(s.registry_token.clone(), login)]);
    let messages = build(options(tag), &dockerfile, logins, BuildSecrets::new())
        .await
        .unwrap_or_else(|e| panic!("the build with the login failed: {e}"));
    let inspected = docker().await.inspect_image(tag).await.unwrap();
    assert_eq!(inspected.id, Some(image_id(&messages)));
    remove(tag).await;
}
