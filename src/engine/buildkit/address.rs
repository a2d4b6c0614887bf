//! Where the engine listens, and one fresh HTTP/1 connection to it.
//!
//! The session and the build each get their own connection: the session's
//! is hijacked (HTTP/2 runs on it afterwards), so it cannot be shared with
//! a pooled client such as bollard's.

use std::path::PathBuf;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::BuildKitError;
use super::task::Owned;

/// Docker's own default when DOCKER_HOST is unset (bollard's too).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Docker's port for plain-TCP engines when DOCKER_HOST names none.
const DEFAULT_TCP_PORT: u16 = 2375;

/// The engine DOCKER_HOST names, Docker's default socket when it is unset
/// or empty (as the docker CLI reads it).
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl EngineAddress {
    /// DOCKER_HOST, read the way `Engine::connect` reads it, so the session
    /// reaches the same engine as the rest of the build.
    pub fn from_env() -> Result<Self, BuildKitError> {
        let host = docker_host();
        let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        let address = Self::parse(&host)?;
        if tls && matches!(address, EngineAddress::Tcp(_)) {
            return Err(unsupported(&host, "DOCKER_TLS_VERIFY asks for TLS"));
        }
        Ok(address)
    }

    /// `unix:///path`, `tcp://host[:port]` or `http://host[:port]`.
    pub fn parse(host: &str) -> Result<Self, BuildKitError> {
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(unsupported(host, "it names no socket"));
            }
            return Ok(EngineAddress::Unix(PathBuf::from(path)));
        }
        let authority = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .ok_or_else(|| unsupported(host, "only unix://, tcp:// and http:// are spoken"))?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(unsupported(host, "it is not host[:port]"));
        }
        // A bare IPv6 address ("[::1]") or a name without a port gets 2375.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok() && !authority.ends_with(']'));
        Ok(EngineAddress::Tcp(if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{DEFAULT_TCP_PORT}")
        }))
    }

    /// The Host header: any name does for a socket; the address for TCP.
    fn host_header(&self) -> &str {
        match self {
            EngineAddress::Unix(_) => "docker",
            EngineAddress::Tcp(authority) => authority,
        }
    }

    async fn dial(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            EngineAddress::Unix(path) => Box::new(UnixStream::connect(path).await?),
            EngineAddress::Tcp(authority) => Box::new(TcpStream::connect(authority).await?),
        })
    }
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineAddress::Unix(path) => write!(f, "unix://{}", path.display()),
            EngineAddress::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

fn unsupported(host: &str, why: &str) -> BuildKitError {
    BuildKitError::UnsupportedHost {
        host: host.to_owned(),
        why: why.to_owned(),
    }
}

/// A socket of either kind, so one HTTP client serves both.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One HTTP/1 connection. Dropping it stops its driver task, so nothing
/// outlives the build that opened it.
pub(super) struct Connection {
    pub sender: SendRequest<super::Body>,
    host: String,
    _driver: Owned,
}

impl Connection {
    /// Connects and shakes hands within `limit`. The driver allows
    /// upgrades, which the session needs and the build never asks for.
    pub async fn open(address: &EngineAddress, limit: Duration) -> Result<Self, BuildKitError> {
        let connect = async {
            let io = address.dial().await?;
            http1::handshake(TokioIo::new(io))
                .await
                .map_err(std::io::Error::other)
        };
        let (sender, connection) = tokio::time::timeout(limit, connect)
            .await
            .map_err(|_| BuildKitError::Timeout {
                address: address.to_string(),
                waiting_for: "a connection",
                after: limit,
            })?
            .map_err(|source| BuildKitError::Connect {
                address: address.to_string(),
                source,
            })?;
        let driver = Owned::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!("engine connection ended: {e}");
            }
        });
        Ok(Connection {
            sender,
            host: address.host_header().to_owned(),
            _driver: driver,
        })
    }

    /// A request for `path_and_query` with the Host header this engine wants.
    pub fn request(&self, path_and_query: &str) -> http::request::Builder {
        http::Request::post(path_and_query).header(http::header::HOST, &self.host)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_docker_host_forms() {
        for (host, want) in [
            (
                "unix:///run/docker.sock",
                EngineAddress::Unix("/run/docker.sock".into()),
            ),
            (
                "tcp://127.0.0.1:2376",
                EngineAddress::Tcp("127.0.0.1:2376".into()),
            ),
            (
                "http://docker:2375/",
                EngineAddress::Tcp("docker:2375".into()),
            ),
            ("tcp://docker", EngineAddress::Tcp("docker:2375".into())),
            ("tcp://[::1]", EngineAddress::Tcp("[::1]:2375".into())),
        ] {
            assert_eq!(EngineAddress::parse(host).unwrap(), want, "{host}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_speak_naming_the_host() {
        for host in [
            "ssh://me@box",
            "https://docker:2376",
            "unix://",
            "tcp://",
            "npipe:////./pipe/x",
        ] {
            let e = EngineAddress::parse(host).unwrap_err().to_string();
            assert!(e.contains(host), "{e}");
        }
    }
}
