//! One build through the control API: our session (now also serving the
//! local directories), `Control.Solve` with the Dockerfile frontend, and
//! `Control.Status` for its progress, side by side.

use std::collections::HashMap;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard_buildkit_proto::moby::buildkit::v1::{
    CacheOptions, CacheOptionsEntry, Exporter, SolveRequest, StatusRequest, StatusResponse,
};
use futures_util::Stream;
use tokio::sync::mpsc;

use super::control::Control;
use super::filesync::LocalDirs;
use super::secrets::BuildSecrets;
use super::services::Services;
use super::session::Session;
use super::task::streamed;
use super::{BuildKitEngine, BuildKitError};

/// BuildKit's Dockerfile frontend, built into every BuildKit.
const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";
/// Progress messages queued before the solve's status stream waits.
const QUEUED: usize = 64;
/// How long the status stream may run on after the solve answered: it
/// ends by itself once BuildKit has flushed the job's last messages.
const STATUS_TAIL: Duration = Duration::from_secs(10);

/// One solve: the frontend's attributes (`filename`, `target`,
/// `platform`, `build-arg:…`), the exporters and caches, and what the
/// session serves.
pub struct Solve {
    pub frontend_attrs: HashMap<String, String>,
    /// `(type, attrs)`, e.g. the `image` exporter pushing by digest.
    pub exporters: Vec<(String, HashMap<String, String>)>,
    pub cache_imports: Vec<(String, HashMap<String, String>)>,
    pub cache_exports: Vec<(String, HashMap<String, String>)>,
    /// e.g. `network.host`.
    pub entitlements: Vec<String>,
    pub dirs: LocalDirs,
    /// Names the local directories across builds (the session's shared
    /// key): a sync under the same key sends only what changed.
    pub shared_key: String,
    pub credentials: HashMap<String, DockerCredentials>,
    pub secrets: BuildSecrets,
}

/// Values shown by name only: build args carry tokens too.
impl std::fmt::Debug for Solve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attrs: Vec<&String> = self.frontend_attrs.keys().collect();
        f.debug_struct("Solve")
            .field("frontend_attrs", &attrs)
            .field("exporters", &self.exporters)
            .field("registries", &self.credentials.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// What a solve reports as it runs.
#[derive(Debug)]
pub enum SolveEvent {
    Status(Box<StatusResponse>),
    /// The last event: the exporters' answer (`containerimage.digest`, …).
    Solved(HashMap<String, String>),
}

fn entries(list: Vec<(String, HashMap<String, String>)>) -> Vec<CacheOptionsEntry> {
    list.into_iter()
        .map(|(r#type, attrs)| CacheOptionsEntry { r#type, attrs })
        .collect()
}

/// The cache imports as the frontend reads them too (`cache-imports`,
/// the JSON the buildkit client sends), so `FROM` stages can use them.
fn cache_imports_attr(imports: &[CacheOptionsEntry]) -> Option<String> {
    let list: Vec<serde_json::Value> = imports
        .iter()
        .map(|entry| serde_json::json!({ "Type": entry.r#type, "Attrs": entry.attrs }))
        .collect();
    (!list.is_empty()).then(|| serde_json::Value::from(list).to_string())
}

impl Solve {
    fn request(mut self, session: &str, reference: &str) -> (SolveRequest, Services) {
        let imports = entries(std::mem::take(&mut self.cache_imports));
        if let Some(attr) = cache_imports_attr(&imports) {
            self.frontend_attrs.insert("cache-imports".into(), attr);
        }
        let exporters: Vec<Exporter> = self
            .exporters
            .into_iter()
            .map(|(r#type, attrs)| Exporter { r#type, attrs })
            .collect();
        let request = SolveRequest {
            r#ref: reference.to_owned(),
            session: session.to_owned(),
            frontend: DOCKERFILE_FRONTEND.to_owned(),
            frontend_attrs: self.frontend_attrs,
            // Older BuildKits read only the first exporter, from here.
            exporter_deprecated: exporters
                .first()
                .map(|e| e.r#type.clone())
                .unwrap_or_default(),
            exporter_attrs_deprecated: exporters
                .first()
                .map(|e| e.attrs.clone())
                .unwrap_or_default(),
            exporters,
            cache: Some(CacheOptions {
                exports: entries(self.cache_exports),
                imports,
                ..CacheOptions::default()
            }),
            entitlements: self.entitlements,
            ..SolveRequest::default()
        };
        let services = Services {
            credentials: self.credentials,
            secrets: self.secrets,
            files: self.dirs,
        };
        (request, services)
    }
}

type Events = mpsc::Sender<Result<SolveEvent, BuildKitError>>;

impl BuildKitEngine {
    /// Runs `solve`; the stream yields its progress and ends with
    /// `Solved`, or with the error that ended it (`BuildKitError::Build`
    /// for a failed build, `ControlRefused` before anything ran when the
    /// engine has no control API). Dropping the stream stops the solve.
    pub fn solve(
        &self,
        solve: Solve,
    ) -> impl Stream<Item = Result<SolveEvent, BuildKitError>> + Send + 'static {
        let engine = self.clone();
        streamed(QUEUED, |events| run(engine, solve, events))
    }
}

async fn run(engine: BuildKitEngine, solve: Solve, events: Events) {
    if let Err(e) = solve_reporting(&engine, solve, &events).await {
        let _ = events.send(Err(e)).await;
    }
}

async fn solve_reporting(
    engine: &BuildKitEngine,
    solve: Solve,
    events: &Events,
) -> Result<(), BuildKitError> {
    let address = engine.address.to_string();
    let control = Control::open(&engine.address, &engine.api_version, &engine.limits).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let reference = uuid::Uuid::new_v4().simple().to_string();
    let shared_key = solve.shared_key.clone();
    let (request, services) = solve.request(&id, &reference);
    let _session = Session::open(
        &engine.address,
        &engine.api_version,
        (&id, &shared_key),
        services,
        &engine.limits,
    )
    .await?;
    tracing::debug!("BuildKit solve {reference} with session {id} on {address}");
    let status = tokio::spawn(forward_status(
        control.client.clone(),
        reference,
        events.clone(),
    ));
    let solved = control.client.clone().solve(request).await;
    if tokio::time::timeout(STATUS_TAIL, async { status.await.ok() })
        .await
        .is_err()
    {
        tracing::debug!("BuildKit's status stream outlived the solve; cut");
    }
    let response = solved.map_err(|status| solve_failure(&address, status))?;
    let _ = events
        .send(Ok(SolveEvent::Solved(
            response.into_inner().exporter_response,
        )))
        .await;
    Ok(())
}

/// BuildKit answers a failed build with the step's error (Unknown, the
/// code grpc-go gives an error of no code); a connection lost or an
/// engine that can't solve at all with codes of their own.
fn solve_failure(address: &str, status: tonic::Status) -> BuildKitError {
    match status.code() {
        tonic::Code::Unimplemented | tonic::Code::Unavailable | tonic::Code::Cancelled => {
            BuildKitError::Rpc {
                address: address.to_owned(),
                doing: "solve",
                status: Box::new(status),
            }
        }
        _ => BuildKitError::Build {
            message: status.message().to_owned(),
        },
    }
}

async fn forward_status(
    mut client: bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient<
        super::control::H2,
    >,
    reference: String,
    events: Events,
) {
    let request = StatusRequest { r#ref: reference };
    let mut stream = match client.status(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::debug!("no BuildKit status stream: {status}");
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(status)) => {
                if events
                    .send(Ok(SolveEvent::Status(Box::new(status))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(None) => return,
            Err(status) => {
                tracing::debug!("BuildKit status stream ended: {status}");
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn solve() -> Solve {
        Solve {
            frontend_attrs: HashMap::from([
                ("platform".into(), "linux/amd64,linux/arm64".into()),
                ("build-arg:NPM_TOKEN".into(), "s3cr3t".into()),
            ]),
            exporters: vec![(
                "image".into(),
                HashMap::from([("push".into(), "true".into())]),
            )],
            cache_imports: vec![(
                "registry".into(),
                HashMap::from([("ref".into(), "r/app:cache".into())]),
            )],
            cache_exports: vec![("inline".into(), HashMap::new())],
            entitlements: vec![],
            dirs: LocalDirs::default(),
            shared_key: String::new(),
            credentials: HashMap::new(),
            secrets: BuildSecrets::default(),
        }
    }

    #[test]
    fn the_request_names_session_frontend_exporter_and_caches() {
        let (request, _) = solve().request("sess", "ref1");
        assert_eq!(
            (
                request.session.as_str(),
                request.r#ref.as_str(),
                request.frontend.as_str()
            ),
            ("sess", "ref1", "dockerfile.v0")
        );
        assert_eq!(request.exporters.len(), 1);
        assert_eq!(request.exporter_deprecated, "image");
        assert_eq!(request.exporter_attrs_deprecated["push"], "true");
        let cache = request.cache.unwrap();
        assert_eq!(cache.exports[0].r#type, "inline");
        assert_eq!(cache.imports[0].attrs["ref"], "r/app:cache");
        let attr: serde_json::Value =
            serde_json::from_str(&request.frontend_attrs["cache-imports"]).unwrap();
        assert_eq!(
            attr,
            serde_json::json!([{"Type": "registry", "Attrs": {"ref": "r/app:cache"}}])
        );
    }

    #[test]
    fn debug_shows_no_build_arg_value() {
        let shown = format!("{:?}", solve());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("build-arg:NPM_TOKEN"), "{shown}");
    }

    #[test]
    fn a_failed_step_is_a_build_error_with_its_message() {
        let failed = solve_failure(
            "unix:///x",
            tonic::Status::unknown("process \"/bin/sh -c false\" did not complete successfully"),
        );
        assert!(matches!(failed, BuildKitError::Build { .. }), "{failed:?}");
        let gone = solve_failure("unix:///x", tonic::Status::unavailable("transport"));
        assert!(matches!(gone, BuildKitError::Rpc { .. }), "{gone:?}");
    }
}
