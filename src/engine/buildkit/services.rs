//! The gRPC services our side of the session serves to the engine's BuildKit.
//!
//! - `grpc.health.v1.Health`: BuildKit pings it every second and drops a
//!   session that does not answer.
//! - `moby.filesync.v1.Auth`: registry logins for `FROM` pulls and cache
//!   imports. Only `Credentials` is served. BuildKit (session/auth/auth.go,
//!   util/resolver/authorizer.go, v0.8 to master) asks `GetTokenAuthority`
//!   first and falls back to `Credentials` when it answers Unimplemented (or
//!   Unavailable); `FetchToken` and `VerifyTokenAuthority` are only asked
//!   once a token authority key was handed out, which never happens here.
//!   With username and secret, BuildKit fetches registry tokens itself.
//! - `moby.buildkit.secrets.v1.Secrets`: `RUN --mount=type=secret` values.
//! - `moby.filesync.v1.FileSync`: the build's local directories, for a
//!   solve through the control API (`filesync`); a `/build` sends its
//!   context as a tar instead and the session does not offer it.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::auth::DockerCredentials;
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use futures_util::stream::BoxStream;
use tonic::server::NamedService;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use super::filesync::{FileSyncService, LocalDirs};
use super::secrets::BuildSecrets;
use crate::reference::is_docker_hub;

/// Docker Hub's registry host as BuildKit asks for it, whatever name its
/// login is filed under (the engine's legacy key is
/// `https://index.docker.io/v1/`).
const DOCKER_HUB: &str = "registry-1.docker.io";

/// What the session serves.
pub(super) struct Services {
    pub credentials: HashMap<String, DockerCredentials>,
    pub secrets: BuildSecrets,
    /// Served (and offered) only when not empty.
    pub files: LocalDirs,
}

impl Services {
    /// The gRPC services always served, by full name.
    pub fn names() -> [&'static str; 3] {
        [
            HealthServer::<HealthService>::NAME,
            AuthServer::<AuthService>::NAME,
            SecretsServer::<SecretsService>::NAME,
        ]
    }

    /// Every `/package.Service/Method` served, for the session's
    /// `X-Docker-Expose-Session-Grpc-Method` headers (the Go client
    /// advertises each method of each registered service, as here).
    pub fn methods(&self) -> Vec<String> {
        let [health, auth, secrets] = Self::names();
        let files = FileSyncServer::<FileSyncService>::NAME;
        let mut methods = vec![
            (health, "Check"),
            (health, "List"),
            (health, "Watch"),
            (auth, "Credentials"),
            (auth, "FetchToken"),
            (auth, "GetTokenAuthority"),
            (auth, "VerifyTokenAuthority"),
            (secrets, "GetSecret"),
        ];
        if !self.files.is_empty() {
            methods.extend([(files, "DiffCopy"), (files, "TarStream")]);
        }
        methods
            .iter()
            .map(|(service, method)| format!("/{service}/{method}"))
            .collect()
    }

    pub fn router(self) -> Router {
        let files = (!self.files.is_empty()).then(|| {
            FileSyncServer::new(FileSyncService { dirs: self.files })
                .max_encoding_message_size(usize::MAX)
        });
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(HealthService))
            .add_service(AuthServer::new(AuthService::new(self.credentials)))
            .add_service(SecretsServer::new(SecretsService {
                secrets: Arc::new(self.secrets),
            }))
            .add_optional_service(files)
    }
}

pub(super) struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    /// "" is the server as a whole, which is all BuildKit asks about.
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        if !service.is_empty() && !Services::names().contains(&service.as_str()) {
            return Err(Status::not_found(format!("unknown service {service}")));
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("List is not served; use Check"))
    }

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("Watch is not served; use Check"))
    }
}

pub(super) struct AuthService {
    /// Keyed by normalised registry host (see `registry_host`).
    by_host: HashMap<String, DockerCredentials>,
}

impl AuthService {
    fn new(credentials: HashMap<String, DockerCredentials>) -> Self {
        let by_host = credentials
            .into_iter()
            .map(|(key, login)| (registry_host(&key), login))
            .collect();
        AuthService { by_host }
    }

    /// The login for `host`; none means anonymous (an empty answer).
    fn credentials_for(&self, host: &str) -> Result<CredentialsResponse, Status> {
        let Some(login) = self.by_host.get(&registry_host(host)) else {
            return Ok(CredentialsResponse::default());
        };
        // An identity token goes as the secret with no username: that is
        // how BuildKit recognises a refresh token.
        if let Some(token) = login.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(CredentialsResponse {
                username: String::new(),
                secret: token.clone(),
            });
        }
        match (&login.username, &login.password) {
            (Some(username), Some(password)) => Ok(CredentialsResponse {
                username: username.clone(),
                secret: password.clone(),
            }),
            _ => Err(Status::failed_precondition(format!(
                "the login for {host} has no username and password (nor an identity token)"
            ))),
        }
    }
}

/// `https://index.docker.io/v1/`, `docker.io` and friends → Docker Hub's
/// registry host; otherwise the key without scheme and trailing slash.
fn registry_host(key: &str) -> String {
    let host = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if is_docker_hub(&host) {
        DOCKER_HUB.to_owned()
    } else {
        host
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        self.credentials_for(&request.get_ref().host)
            .map(Response::new)
    }

    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(no_token_authority())
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(no_token_authority())
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(no_token_authority())
    }
}

/// Unimplemented is the code BuildKit falls back to `Credentials` on.
fn no_token_authority() -> Status {
    Status::unimplemented("this session hands out credentials, not tokens")
}

pub(super) struct SecretsService {
    secrets: Arc<BuildSecrets>,
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.secrets.get(id) {
            Some(value) => Ok(Response::new(GetSecretResponse {
                data: value.expose().to_vec(),
            })),
            // NotFound is what BuildKit turns into "secret <id> not found"
            // (or skips, for a mount that is not `required`).
            None => Err(Status::not_found(format!(
                "no secret with id {id:?} was given to this build (it has: {})",
                self.secrets.ids().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn login(user: &str, password: &str) -> DockerCredentials {
        DockerCredentials {
            username: Some(user.into()),
            password: Some(password.into()),
            ..Default::default()
        }
    }

    fn auth(entries: &[(&str, DockerCredentials)]) -> AuthService {
        AuthService::new(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn credentials_by_host_with_docker_hub_aliases() {
        let auth = auth(&[
            ("https://index.docker.io/v1/", login("hub", "p1")),
            ("127.0.0.1:5000", login("local", "p2")),
            ("http://ghcr.io/", login("gh", "p3")),
        ]);
        let hub = auth.credentials_for("registry-1.docker.io").unwrap();
        assert_eq!((hub.username.as_str(), hub.secret.as_str()), ("hub", "p1"));
        let local = auth.credentials_for("127.0.0.1:5000").unwrap();
        assert_eq!(local.username, "local");
        assert_eq!(auth.credentials_for("GHCR.io").unwrap().secret, "p3");
        let anonymous = auth.credentials_for("quay.io").unwrap();
        assert!(anonymous.username.is_empty() && anonymous.secret.is_empty());
    }

    #[test]
    fn identity_token_goes_without_username_and_half_a_login_is_refused() {
        let token = DockerCredentials {
            username: Some("ignored".into()),
            identitytoken: Some("refresh".into()),
            ..Default::default()
        };
        let half = DockerCredentials {
            username: Some("me".into()),
            ..Default::default()
        };
        let auth = auth(&[("a.io", token), ("b.io", half)]);
        let a = auth.credentials_for("a.io").unwrap();
        assert_eq!((a.username.as_str(), a.secret.as_str()), ("", "refresh"));
        let b = auth.credentials_for("b.io").unwrap_err();
        assert_eq!(b.code(), tonic::Code::FailedPrecondition);
        assert!(b.message().contains("b.io"), "{}", b.message());
    }

    #[tokio::test]
    async fn token_methods_are_unimplemented_so_buildkit_falls_back() {
        let auth = auth(&[]);
        let e = auth
            .get_token_authority(Request::new(GetTokenAuthorityRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }

    #[tokio::test]
    async fn unknown_secret_is_not_found_naming_the_id() {
        let service = SecretsService {
            secrets: Arc::new([("token", "v")].into_iter().collect()),
        };
        let found = service
            .get_secret(Request::new(GetSecretRequest {
                id: "token".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(found.get_ref().data, b"v");
        let e = service
            .get_secret(Request::new(GetSecretRequest {
                id: "npmrc".into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().contains("\"npmrc\""), "{}", e.message());
    }

    #[tokio::test]
    async fn health_serves_the_whole_server() {
        let ok = HealthService
            .check(Request::new(HealthCheckRequest::default()))
            .await
            .unwrap();
        assert_eq!(ok.get_ref().status, ServingStatus::Serving as i32);
        let auth_ok = HealthService
            .check(Request::new(HealthCheckRequest {
                service: "moby.filesync.v1.Auth".into(),
            }))
            .await;
        assert!(auth_ok.is_ok());
        let unknown = HealthService
            .check(Request::new(HealthCheckRequest {
                service: "nope.Service".into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
    }
}
