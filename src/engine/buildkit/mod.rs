//! BuildKit builds through the engine's `/build`, with our own session.
//!
//! bollard's `build_image` does this too, but its session (0.21.1) serves
//! registry logins only, so `RUN --mount=type=secret` finds nothing; and it
//! opens that session itself whenever `version=2`. Here the session also
//! serves build secrets:
//!
//! 1. `POST /session` upgraded to h2c, our gRPC services on it (`session`,
//!    `services`): health, registry logins, secrets;
//! 2. once the engine switched protocols, `POST /build?version=2&session=…`
//!    with the context tar on a second connection; its JSON lines are the
//!    stream returned (`BuildInfo`, with BuildKit progress in `aux`);
//! 3. the session closes when that stream ends or is dropped.
//!
//! Every wait on the engine before the build runs is bounded (`Limits`);
//! the build itself takes as long as it takes.

mod address;
mod control;
mod filesync;
mod lines;
mod secrets;
mod services;
mod session;
mod solve;
mod task;
mod upgrade;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::models::BuildInfo;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

pub use address::{EngineAddress, docker_host};
pub use filesync::{LocalDirs, LocalEntry, LocalKind};
pub use secrets::BuildSecrets;
pub use solve::{Solve, SolveEvent};

use address::Connection;
use lines::JsonLines;
use services::Services;
use session::Session;

/// Bytes of a refusal's body read for its message.
const REFUSAL_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildKitError {
    #[error(
        "DOCKER_HOST {host} can't carry a BuildKit session: {why}; use the engine's unix:// socket or a plain tcp:// address"
    )]
    UnsupportedHost { host: String, why: String },
    #[error(
        "couldn't connect to the Docker Engine at {address}: {source}; start dockerd or point DOCKER_HOST at its socket"
    )]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Docker Engine at {address} gave no answer to {waiting_for} within {after:?}; is it an engine with BuildKit (Docker 18.09 or newer), reached without a proxy that drops `Upgrade: h2c`?"
    )]
    Timeout {
        address: String,
        waiting_for: &'static str,
        after: Duration,
    },
    #[error("the Docker Engine at {address} failed to {doing}: {source}")]
    Http {
        address: String,
        doing: &'static str,
        #[source]
        source: hyper::Error,
    },
    #[error(
        "the Docker Engine at {address} refused a BuildKit session (POST /session answered {status}: {message}); BuildKit needs Docker 18.09 or newer (Podman has none): build with the legacy builder there"
    )]
    SessionRefused {
        address: String,
        status: u16,
        message: String,
    },
    #[error(
        "the Docker Engine at {address} has no BuildKit control API (POST /grpc answered {status}: {message})"
    )]
    ControlRefused {
        address: String,
        status: u16,
        message: String,
    },
    #[error(
        "the Docker Engine at {address} failed to {doing} through BuildKit's control API: {status}"
    )]
    Rpc {
        address: String,
        doing: &'static str,
        status: Box<tonic::Status>,
    },
    #[error(
        "the Docker Engine at {address} refused the build (POST /build answered {status}: {message})"
    )]
    BuildRefused {
        address: String,
        status: u16,
        message: String,
    },
    #[error("invalid BuildKit build request: {0}")]
    InvalidRequest(String),
    /// The build ran and failed (the engine's `errorDetail`).
    #[error("{message}")]
    Build { message: String },
    #[error("the Docker Engine sent a build message that isn't JSON ({reason}): {line}")]
    Decode { line: String, reason: String },
}

/// How long to wait on the engine before the build runs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connecting and the HTTP/1 handshake, per connection.
    pub connect: Duration,
    /// The 101 answer to `POST /session`.
    pub session_upgrade: Duration,
    /// The answer to `POST /build`: the engine sends it as the build starts
    /// (its first progress), after taking in the context.
    pub build_answer: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(10),
            session_upgrade: Duration::from_secs(30),
            build_answer: Duration::from_secs(300),
        }
    }
}

/// One build: the `/build` query, the context tar, registry logins keyed
/// by registry host (`https://index.docker.io/v1/` and `docker.io` both
/// mean Docker Hub) and the secrets for `RUN --mount=type=secret`.
pub struct BuildRequest {
    /// `version` must be `BuilderBuildKit`; `session` is the session id,
    /// made up when `None` (it must be unique among running builds).
    pub options: BuildImageOptions,
    pub context: ContextBody,
    pub credentials: HashMap<String, DockerCredentials>,
    pub secrets: BuildSecrets,
    /// BuildKit pushes the result to this repository (`registry/path`)
    /// itself, by digest only, asking the session for the registry's login;
    /// the engine's image store keeps no copy. The containerd store only.
    pub push_to: Option<String>,
}

/// `/build`'s `outputs` (API 1.40+) for `push_to`: BuildKit's `image`
/// exporter, pushing in OCI media types with no tag (the caller tags after
/// its own checks) and storing nothing in the engine.
fn push_outputs(repository: &str) -> String {
    serde_json::json!([{
        "Type": "image",
        "Attrs": {
            "name": repository,
            "push": "true",
            "push-by-digest": "true",
            "oci-mediatypes": "true",
            "store": "false",
        },
    }])
    .to_string()
}

/// The context is shown by size only; the secrets by id only; build-args
/// by name only (users pass tokens there too).
impl std::fmt::Debug for BuildRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut options = self.options.clone();
        for value in options
            .buildargs
            .iter_mut()
            .flat_map(|args| args.values_mut())
        {
            *value = "<redacted>".into();
        }
        f.debug_struct("BuildRequest")
            .field("options", &options)
            .field("context_bytes", &self.context.size)
            .field("registries", &self.credentials.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .field("push_to", &self.push_to)
            .finish()
    }
}

/// The build context, `/build`'s body: bytes in hand, or a tar streamed
/// while it is being made (so the engine unpacks while we read files).
pub struct ContextBody {
    body: Body,
    /// Known for bytes in hand; a stream's size is not.
    size: Option<usize>,
}

impl From<Bytes> for ContextBody {
    fn from(bytes: Bytes) -> Self {
        ContextBody {
            size: Some(bytes.len()),
            body: full(bytes),
        }
    }
}

impl ContextBody {
    /// The chunks of `chunks`; an `Err` aborts the request.
    pub fn stream(
        chunks: impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let frames =
            futures_util::StreamExt::map(chunks, |chunk| chunk.map(hyper::body::Frame::data));
        ContextBody {
            body: http_body_util::StreamBody::new(frames).boxed(),
            size: None,
        }
    }
}

/// Every request body we send: the build's context or nothing at all.
pub(super) type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub(super) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// The engine to build on: where it listens and the API version
/// negotiated with it (`Docker::client_version()`, e.g. "1.41").
#[derive(Debug, Clone)]
pub struct BuildKitEngine {
    pub address: EngineAddress,
    pub api_version: String,
    pub limits: Limits,
}

impl BuildKitEngine {
    pub fn new(address: EngineAddress, api_version: impl Into<String>) -> Self {
        BuildKitEngine {
            address,
            api_version: api_version.into(),
            limits: Limits::default(),
        }
    }

    /// Runs the build; the stream yields its messages and ends with the
    /// build (an `aux` of `BuildInfoAux::Default` carries the image id).
    /// A failed build ends it with `BuildKitError::Build`.
    pub fn build(
        &self,
        request: BuildRequest,
    ) -> impl Stream<Item = Result<BuildInfo, BuildKitError>> + Send + 'static {
        let start = State::Start(Box::new((self.clone(), request)));
        futures_util::stream::unfold(start, step)
    }
}

enum State {
    Start(Box<(BuildKitEngine, BuildRequest)>),
    Running(Box<Running>),
    Done,
}

/// The stream's one step; any error ends it (and with it the session).
async fn step(state: State) -> Option<(Result<BuildInfo, BuildKitError>, State)> {
    let mut running = match state {
        State::Start(start) => {
            let (engine, request) = *start;
            match start_build(engine, request).await {
                Ok(running) => Box::new(running),
                Err(e) => return Some((Err(e), State::Done)),
            }
        }
        State::Running(running) => running,
        State::Done => return None,
    };
    match running.next().await? {
        Ok(info) => Some((Ok(info), State::Running(running))),
        Err(e) => Some((Err(e), State::Done)),
    }
}

/// A build under way: the answer being read, and what must live as long.
struct Running {
    body: Incoming,
    lines: JsonLines,
    pending: VecDeque<Result<BuildInfo, BuildKitError>>,
    address: String,
    /// Drives `body`; dropped with it.
    _connection: Connection,
    /// Ends when the build's stream does.
    _session: Session,
}

impl Running {
    async fn next(&mut self) -> Option<Result<BuildInfo, BuildKitError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item.and_then(failure));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend(self.lines.push(&data));
                    }
                }
                Some(Err(source)) => {
                    return Some(Err(BuildKitError::Http {
                        address: self.address.clone(),
                        doing: "send the build's output",
                        source,
                    }));
                }
                None => {
                    return std::mem::take(&mut self.lines)
                        .finish()
                        .map(|i| i.and_then(failure));
                }
            }
        }
    }
}

/// The engine reports a failed build as a message with `errorDetail`.
fn failure(info: BuildInfo) -> Result<BuildInfo, BuildKitError> {
    match info.error_detail.as_ref().and_then(|d| d.message.clone()) {
        Some(message) => Err(BuildKitError::Build { message }),
        None => Ok(info),
    }
}

/// Opens the session, then sends the build while it runs.
async fn start_build(
    engine: BuildKitEngine,
    request: BuildRequest,
) -> Result<Running, BuildKitError> {
    let BuildRequest {
        mut options,
        context,
        credentials,
        secrets,
        push_to,
    } = request;
    check_options(&options)?;
    let id = options
        .session
        .get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string())
        .clone();
    let services = Services {
        credentials,
        secrets,
        files: LocalDirs::default(),
    };
    let session = Session::open(
        &engine.address,
        &engine.api_version,
        (&id, ""),
        services,
        &engine.limits,
    )
    .await?;
    tracing::debug!("BuildKit session {id} open on {}", engine.address);
    let (connection, body) = send_build(&engine, &options, push_to.as_deref(), context).await?;
    Ok(Running {
        body,
        lines: JsonLines::default(),
        pending: VecDeque::new(),
        address: engine.address.to_string(),
        _connection: connection,
        _session: session,
    })
}

fn check_options(options: &BuildImageOptions) -> Result<(), BuildKitError> {
    if options.version != BuilderVersion::BuilderBuildKit {
        return Err(BuildKitError::InvalidRequest(
            "the options ask for the legacy builder (version=1); this path is BuildKit's".into(),
        ));
    }
    if options.outputs.is_some() {
        return Err(BuildKitError::InvalidRequest(
            "`outputs` (tar/local export) needs a file receiver this session does not serve; build into the engine's image store".into(),
        ));
    }
    if options.session.as_ref().is_some_and(String::is_empty) {
        return Err(BuildKitError::InvalidRequest(
            "the session id is empty".into(),
        ));
    }
    Ok(())
}

/// `POST /build` with the context; the answer's head within the limit.
async fn send_build(
    engine: &BuildKitEngine,
    options: &BuildImageOptions,
    push_to: Option<&str>,
    context: ContextBody,
) -> Result<(Connection, Incoming), BuildKitError> {
    let invalid = |e: serde_urlencoded::ser::Error| {
        BuildKitError::InvalidRequest(format!("the build options: {e}"))
    };
    let mut query = serde_urlencoded::to_string(options).map_err(invalid)?;
    if let Some(repository) = push_to {
        let outputs = [("outputs", push_outputs(repository))];
        query = format!(
            "{query}&{}",
            serde_urlencoded::to_string(outputs).map_err(invalid)?
        );
    }
    let address = engine.address.to_string();
    let mut connection = Connection::open(&engine.address, engine.limits.connect).await?;
    let request = connection
        .request(&format!("/v{}/build?{query}", engine.api_version))
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(context.body)
        .map_err(|e| BuildKitError::InvalidRequest(format!("the build request: {e}")))?;
    let response = tokio::time::timeout(
        engine.limits.build_answer,
        connection.sender.send_request(request),
    )
    .await
    .map_err(|_| BuildKitError::Timeout {
        address: address.clone(),
        waiting_for: "the build (POST /build)",
        after: engine.limits.build_answer,
    })?
    .map_err(|source| BuildKitError::Http {
        address: address.clone(),
        doing: "take the build (POST /build)",
        source,
    })?;
    if !response.status().is_success() {
        let (status, message) = refusal(response, &engine.limits).await;
        return Err(BuildKitError::BuildRefused {
            address,
            status,
            message,
        });
    }
    Ok((connection, response.into_body()))
}

/// Status and message of an engine's refusal: its JSON `message` when
/// there is one, else the start of the body, else the status's reason.
async fn refusal(response: hyper::Response<Incoming>, limits: &Limits) -> (u16, String) {
    let status = response.status();
    let body = Limited::new(response.into_body(), REFUSAL_BODY).collect();
    let text = match tokio::time::timeout(limits.connect, body).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        _ => String::new(),
    };
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or(text);
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    } else {
        message
    };
    (status.as_u16(), message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures_util::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::UnixListener;
    use tokio::sync::oneshot;

    use super::*;

    fn request(version: BuilderVersion) -> BuildRequest {
        BuildRequest {
            options: BuildImageOptions {
                version,
                ..Default::default()
            },
            context: Bytes::new().into(),
            credentials: HashMap::new(),
            secrets: [("token", "s3cr3t")].into_iter().collect(),
            push_to: None,
        }
    }

    /// A fake engine on a socket that reads one request head, sends it
    /// back to the test and then writes `answer`, or never answers.
    fn fake_engine(
        dir: &tempfile::TempDir,
        answer: Option<&'static str>,
    ) -> (EngineAddress, oneshot::Receiver<String>) {
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (head_tx, head_rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(socket.read_u8().await.unwrap());
            }
            let _ = head_tx.send(String::from_utf8_lossy(&head).into_owned());
            match answer {
                Some(answer) => socket.write_all(answer.as_bytes()).await.unwrap(),
                None => std::future::pending().await,
            }
        });
        (EngineAddress::Unix(path), head_rx)
    }

    async fn first_error(engine: &BuildKitEngine, request: BuildRequest) -> BuildKitError {
        let mut stream = Box::pin(engine.build(request));
        let first = stream.next().await.unwrap();
        assert!(stream.next().await.is_none(), "an error ends the stream");
        first.unwrap_err()
    }

    #[tokio::test]
    async fn an_engine_that_never_upgrades_times_out_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let (address, head) = fake_engine(&dir, None);
        let mut engine = BuildKitEngine::new(address, "1.41");
        engine.limits.session_upgrade = Duration::from_millis(300);
        let e = first_error(&engine, request(BuilderVersion::BuilderBuildKit)).await;
        assert!(matches!(e, BuildKitError::Timeout { .. }), "{e:?}");
        assert!(e.to_string().contains("POST /session"), "{e}");
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("post /v1.41/session http/1.1\r\n"),
            "{head}"
        );
        for line in [
            "upgrade: h2c",
            "connection: upgrade",
            "x-docker-expose-session-name: registry-action",
            "x-docker-expose-session-grpc-method: /grpc.health.v1.health/check",
            "x-docker-expose-session-grpc-method: /moby.filesync.v1.auth/credentials",
            "x-docker-expose-session-grpc-method: /moby.buildkit.secrets.v1.secrets/getsecret",
        ] {
            assert!(
                head.contains(&format!("\r\n{line}\r\n")),
                "{line} in {head}"
            );
        }
        assert!(
            head.contains("\r\nx-docker-expose-session-uuid: "),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_engine_without_sessions_is_refused_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"message":"page not found"}"#;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (address, _) = fake_engine(&dir, Some(answer));
        let engine = BuildKitEngine::new(address, "1.41");
        let e = first_error(&engine, request(BuilderVersion::BuilderBuildKit)).await;
        match &e {
            BuildKitError::SessionRefused {
                status, message, ..
            } => assert_eq!((*status, message.as_str()), (404, "page not found")),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("legacy builder"), "{e}");
    }

    #[tokio::test]
    async fn an_engine_without_a_control_api_refuses_the_solve_before_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"message":"page not found"}"#;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (address, head) = fake_engine(&dir, Some(answer));
        let engine = BuildKitEngine::new(address, "1.51");
        let solve = Solve {
            frontend_attrs: HashMap::new(),
            exporters: Vec::new(),
            cache_imports: Vec::new(),
            cache_exports: Vec::new(),
            entitlements: Vec::new(),
            dirs: LocalDirs::default(),
            shared_key: String::new(),
            credentials: HashMap::new(),
            secrets: BuildSecrets::default(),
        };
        let mut events = Box::pin(engine.solve(solve));
        let e = events.next().await.unwrap().unwrap_err();
        match &e {
            BuildKitError::ControlRefused {
                status, message, ..
            } => assert_eq!((*status, message.as_str()), (404, "page not found")),
            other => panic!("{other:?}"),
        }
        assert!(events.next().await.is_none(), "an error ends the stream");
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post /v1.51/grpc http/1.1\r\n"), "{head}");
        for line in ["upgrade: h2c", "connection: upgrade"] {
            assert!(
                head.contains(&format!("\r\n{line}\r\n")),
                "{line} in {head}"
            );
        }
    }

    #[tokio::test]
    async fn the_legacy_builder_is_refused_before_any_connection() {
        let engine = BuildKitEngine::new(
            EngineAddress::Unix("/nonexistent/docker.sock".into()),
            "1.41",
        );
        let e = first_error(&engine, request(BuilderVersion::BuilderV1)).await;
        assert!(matches!(e, BuildKitError::InvalidRequest(_)), "{e:?}");
    }

    #[tokio::test]
    async fn no_engine_is_a_connect_error_naming_the_socket() {
        let engine = BuildKitEngine::new(
            EngineAddress::Unix("/nonexistent/docker.sock".into()),
            "1.41",
        );
        let e = first_error(&engine, request(BuilderVersion::BuilderBuildKit)).await;
        assert!(matches!(e, BuildKitError::Connect { .. }), "{e:?}");
        assert!(
            e.to_string().contains("unix:///nonexistent/docker.sock"),
            "{e}"
        );
    }

    #[test]
    fn debug_of_a_request_shows_no_secret_and_no_context() {
        let mut request = request(BuilderVersion::BuilderBuildKit);
        request.context = Bytes::from_static(b"context-bytes").into();
        request.options.buildargs = Some(HashMap::from([("NPM_TOKEN".into(), "s3cr3t".into())]));
        let shown = format!("{request:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("context-bytes"),
            "{shown}"
        );
        assert!(
            shown.contains("token")
                && shown.contains("NPM_TOKEN")
                && shown.contains("context_bytes: Some(13)"),
            "{shown}"
        );
    }
}
