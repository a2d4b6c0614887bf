//! The real services the tests talk to, all on 127.0.0.1: a private Docker
//! Engine and three OCI registries (open, basic auth, token auth), started
//! by `scripts/services start` (which `scripts/test` runs), plus the token
//! issuer of the token registry, which runs inside the test process.
//!
//! `services()` reads `$REGISTRY_ACTION_SERVICES/env` (default
//! `/tmp/registry-action-services/env`). When the services are missing it
//! panics saying how to start them: a test that needs them never skips.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const DEFAULT_DIR: &str = "/tmp/registry-action-services";
const HOW_TO_START: &str = "start them with `scripts/services start` (as root; \
     `scripts/services stop` ends them), or run the tests through `scripts/test`, \
     which starts and stops them";
/// Seconds an issued token is valid.
pub const TOKEN_LIFETIME: u64 = 300;

/// Where the services are and the credentials they take.
#[derive(Debug, Clone)]
pub struct Services {
    /// The state directory of `scripts/services`.
    pub dir: PathBuf,
    /// The engine these tests run on (`REGISTRY_ACTION_ENGINE`).
    pub engine: Engine,
    /// Docker 28's directory (`bin/docker`, `cli-plugins/docker-buildx`).
    pub docker_28: PathBuf,
    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub docker_host: String,
    /// The engine's socket itself.
    pub docker_socket: PathBuf,
    /// `127.0.0.1:port` of the registry without authentication.
    pub registry_open: String,
    /// `127.0.0.1:port` of the registry with htpasswd basic auth.
    pub registry_basic: String,
    pub basic_user: String,
    pub basic_password: String,
    /// `127.0.0.1:port` of the registry with token auth.
    pub registry_token: String,
    /// Port of the token issuer (the registry's realm); it runs in this process.
    pub token_issuer_port: u16,
    /// The issuer's P-256 key (PKCS#8 PEM) and its self-signed certificate,
    /// which is also the registry's `rootcertbundle`.
    pub token_key: PathBuf,
    pub token_cert: PathBuf,
    /// The registry's `service` (the tokens' `aud`) and `issuer` (`iss`).
    pub token_service: String,
    pub token_issuer: String,
    /// The credentials the issuer accepts (HTTP Basic on `GET /token`).
    pub token_user: String,
    pub token_password: String,
}

/// The engines `scripts/services` starts; `REGISTRY_ACTION_ENGINE` picks
/// the one a test run uses (`scripts/test` runs the suite on each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian bookworm's Docker 20.10: the classic image store, API 1.41.
    Docker20,
    /// Docker 28.5 with the classic (graph driver) image store.
    Docker28Classic,
    /// Docker 28.5 with the containerd image store.
    Docker28Containerd,
}

impl Engine {
    pub const ALL: [Engine; 3] = [
        Engine::Docker20,
        Engine::Docker28Classic,
        Engine::Docker28Containerd,
    ];

    /// As `REGISTRY_ACTION_ENGINE` and `scripts/services engine-start` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker20 => "20.10",
            Engine::Docker28Classic => "28-classic",
            Engine::Docker28Containerd => "28-containerd",
        }
    }

    fn env_key(self) -> &'static str {
        match self {
            Engine::Docker20 => "DOCKER_HOST",
            Engine::Docker28Classic => "DOCKER_HOST_28_CLASSIC",
            Engine::Docker28Containerd => "DOCKER_HOST_28_CONTAINERD",
        }
    }

    fn selected() -> Result<Engine, String> {
        let Some(name) = std::env::var("REGISTRY_ACTION_ENGINE")
            .ok()
            .filter(|n| !n.is_empty())
        else {
            return Ok(Engine::Docker20);
        };
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Engine::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "REGISTRY_ACTION_ENGINE is '{name}', not one of {}",
                    names.join(", ")
                )
            })
    }

    /// The containerd image store: layers kept compressed, several
    /// platforms in one image.
    pub fn containerd_store(self) -> bool {
        self == Engine::Docker28Containerd
    }
}

/// The services, read and checked once per test process; the token issuer
/// is started with them.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let services = Services::load().unwrap_or_else(|e| {
            panic!(
                "the test services (Docker Engine, registries) are not usable: {e}; {HOW_TO_START}"
            )
        });
        if let Err(e) = services.check() {
            let dir = services.dir.display();
            panic!("the test services in {dir} do not answer: {e}; {HOW_TO_START}");
        }
        if let Err(e) = start_issuer(&services) {
            panic!(
                "the token issuer for {} cannot start: {e}",
                services.registry_token
            );
        }
        services
    })
}

impl Services {
    fn load() -> Result<Self, String> {
        let dir = std::env::var_os("REGISTRY_ACTION_SERVICES")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {} ({e})", file.display()))?;
        let env = parse_env(&text);
        let get = |key: &str| {
            env.get(key).cloned().ok_or_else(|| {
                format!(
                    "{} has no {key} (from an older scripts/services? run `scripts/services stop`, \
                     then `start`)",
                    file.display()
                )
            })
        };
        let engine = Engine::selected()?;
        let docker_host = get(engine.env_key())?;
        let docker_socket =
            PathBuf::from(docker_host.strip_prefix("unix://").ok_or_else(|| {
                format!(
                    "DOCKER_HOST in {} is not unix://: {docker_host}",
                    file.display()
                )
            })?);
        let port = get("TOKEN_ISSUER_PORT")?;
        Ok(Services {
            engine,
            docker_28: PathBuf::from(get("DOCKER_28")?),
            docker_socket,
            docker_host,
            registry_open: get("REGISTRY_OPEN")?,
            registry_basic: get("REGISTRY_BASIC")?,
            basic_user: get("REGISTRY_BASIC_USER")?,
            basic_password: get("REGISTRY_BASIC_PASSWORD")?,
            registry_token: get("REGISTRY_TOKEN")?,
            token_issuer_port: port.parse().map_err(|_| {
                format!(
                    "TOKEN_ISSUER_PORT in {} is not a port: {port}",
                    file.display()
                )
            })?,
            token_key: PathBuf::from(get("TOKEN_KEY")?),
            token_cert: PathBuf::from(get("TOKEN_CERT")?),
            token_service: get("TOKEN_SERVICE")?,
            token_issuer: get("TOKEN_ISSUER")?,
            token_user: get("TOKEN_USER")?,
            token_password: get("TOKEN_PASSWORD")?,
            dir,
        })
    }

    /// The engine pings and each registry's `/v2/` answers as configured.
    fn check(&self) -> Result<(), String> {
        let (status, body) = unix_get(&self.docker_socket, "/_ping")
            .map_err(|e| format!("the engine at {} ({e})", self.docker_host))?;
        if status != 200 || body.trim() != "OK" {
            return Err(format!(
                "the engine at {} answered /_ping with {status}: {body}",
                self.docker_host
            ));
        }
        for (name, address, want) in [
            ("open", &self.registry_open, 200),
            ("basic", &self.registry_basic, 401),
            ("token", &self.registry_token, 401),
        ] {
            let (status, _) = tcp_get(address, "/v2/")
                .map_err(|e| format!("the {name} registry at {address} ({e})"))?;
            if status != want {
                return Err(format!(
                    "the {name} registry at {address} answered /v2/ with {status}, not {want}"
                ));
            }
        }
        Ok(())
    }

    pub fn open_url(&self) -> String {
        format!("http://{}", self.registry_open)
    }

    pub fn basic_url(&self) -> String {
        format!("http://{}", self.registry_basic)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}", self.registry_token)
    }

    /// The token registry's realm: where clients ask for tokens.
    pub fn token_realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.token_issuer_port)
    }

    /// `GET path` on the engine's socket: status and body.
    pub fn engine_get(&self, path: &str) -> (u16, String) {
        unix_get(&self.docker_socket, path)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.docker_host))
    }
}

/// `KEY=value` lines; blank lines and `#` comments are skipped.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

// --- a minimal HTTP/1.0 GET, for the checks -----------------------------------

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn unix_get(socket: &Path, path: &str) -> Result<(u16, String), String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    http_get(stream, "docker", path)
}

fn tcp_get(address: &str, path: &str) -> Result<(u16, String), String> {
    let addr = address
        .parse()
        .map_err(|e| format!("not an address ({e})"))?;
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    http_get(stream, address, path)
}

/// HTTP/1.0, so the server closes the connection after a plain body.
fn http_get(
    mut stream: impl std::io::Read + std::io::Write,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut response)
        .map_err(|e| format!("no answer: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {head:?}"))?;
    Ok((status, body.to_owned()))
}

// --- the token issuer ---------------------------------------------------------

/// `GET /token?service=…&scope=repository:<name>:<actions>` with HTTP Basic
/// credentials: an ES256 JWT (header `x5c` = the certificate) granting the
/// scopes asked for, the way Docker Hub's and GHCR's issuers do.
pub struct Issuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// base64 DER of the certificate.
    x5c: String,
    service: String,
    issuer: String,
    user: String,
    password: String,
}

impl Issuer {
    pub fn new(services: &Services) -> Result<Self, String> {
        let key_pem = std::fs::read_to_string(&services.token_key)
            .map_err(|e| format!("cannot read {} ({e})", services.token_key.display()))?;
        let cert_pem = std::fs::read_to_string(&services.token_cert)
            .map_err(|e| format!("cannot read {} ({e})", services.token_cert.display()))?;
        let key_der = pem_body(&key_pem, "PRIVATE KEY")
            .ok_or_else(|| format!("{} is not a PKCS#8 PEM key", services.token_key.display()))?;
        let key_der = STANDARD
            .decode(key_der)
            .map_err(|e| format!("{}: bad base64 ({e})", services.token_key.display()))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_der, &rng)
            .map_err(|e| {
                format!(
                    "{} is not a P-256 PKCS#8 key ({e})",
                    services.token_key.display()
                )
            })?;
        // A PEM body is the base64 of the DER: exactly what x5c holds.
        let x5c = pem_body(&cert_pem, "CERTIFICATE")
            .ok_or_else(|| format!("{} is not a PEM certificate", services.token_cert.display()))?;
        Ok(Issuer {
            key,
            rng,
            x5c,
            service: services.token_service.clone(),
            issuer: services.token_issuer.clone(),
            user: services.token_user.clone(),
            password: services.token_password.clone(),
        })
    }

    /// A signed token for `subject` granting `scopes` (`type:name:actions`).
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
                Some(json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // The FIXED algorithm signs as JWS wants it: r || s, 64 bytes.
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA P-256 signing does not fail");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    fn authorized(&self, request: &Request) -> bool {
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.user, self.password))
        );
        request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected)
    }
}

impl Respond for Issuer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !self.authorized(request) {
            return ResponseTemplate::new(401)
                .insert_header(
                    "WWW-Authenticate",
                    "Basic realm=\"registry-action-test-issuer\"",
                )
                .set_body_json(json!({"details": "incorrect username or password"}));
        }
        let mut scopes = Vec::new();
        for (key, value) in request.url.query_pairs() {
            match &*key {
                "service" if value != self.service => {
                    let details = format!("unknown service {value}; this is {}'s", self.service);
                    return ResponseTemplate::new(400).set_body_json(json!({ "details": details }));
                }
                // Several scopes come as repeated parameters or space-separated.
                "scope" => scopes.extend(
                    value
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let token = self.token(&self.user, &scopes);
        ResponseTemplate::new(200).set_body_json(json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME,
        }))
    }
}

/// The base64 body of the first PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    Some(pem[start..stop].split_whitespace().collect())
}

/// Serves the issuer on its fixed port from a thread with its own runtime,
/// for the rest of the process. When the port is taken by another test
/// process's issuer (same key, same credentials), that one serves.
fn start_issuer(services: &Services) -> Result<(), String> {
    let issuer = Issuer::new(services)?;
    let port = services.token_issuer_port;
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return match tcp_get(&format!("127.0.0.1:{port}"), "/token") {
                Ok((401, _)) => Ok(()),
                Ok((status, _)) => Err(format!(
                    "127.0.0.1:{port} is taken by something that is not a token issuer \
                     (GET /token: {status})"
                )),
                Err(e) => Err(format!(
                    "127.0.0.1:{port} is taken and does not answer ({e})"
                )),
            };
        }
        Err(e) => return Err(format!("cannot listen on 127.0.0.1:{port} ({e})")),
    };
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("token-issuer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(format!("no runtime ({e})")));
                    return;
                }
            };
            runtime.block_on(async move {
                let server = MockServer::builder()
                    .listener(listener)
                    .disable_request_recording()
                    .start()
                    .await;
                Mock::given(method("GET"))
                    .and(path("/token"))
                    .respond_with(issuer)
                    .mount(&server)
                    .await;
                let _ = ready.send(Ok(()));
                // The server lives as long as the test process.
                std::future::pending::<()>().await;
            });
        })
        .map_err(|e| format!("cannot start its thread ({e})"))?;
    started
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "it did not start within 10 s".to_owned())?
}
