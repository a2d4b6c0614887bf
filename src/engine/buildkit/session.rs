//! Our end of a BuildKit session: `POST /session` upgraded to h2c, then a
//! gRPC server on that one connection, where the engine is the client.
//!
//! The engine keeps a session until its connection closes, so the session
//! lives exactly as long as the `Session` value: dropping it cuts the
//! connection (see `SessionIo`).

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

use super::address::EngineAddress;
use super::services::Services;
use super::upgrade::Refused;
use super::{BuildKitError, Limits};

/// Shown to the engine (`docker buildx du` and debug logs name sessions).
const SESSION_NAME: &str = "registry-action";

/// A running session; dropping it ends it.
pub(super) struct Session {
    _end: DropGuard,
}

impl Session {
    /// Upgrades `POST /session` and starts serving on it. Returns once the
    /// engine has switched protocols (101), so a build sent afterwards
    /// finds the session registered.
    pub async fn open(
        address: &EngineAddress,
        api_version: &str,
        (id, shared_key): (&str, &str),
        services: Services,
        limits: &Limits,
    ) -> Result<Self, BuildKitError> {
        let mut headers = vec![
            ("X-Docker-Expose-Session-Uuid", id.to_owned()),
            ("X-Docker-Expose-Session-Name", SESSION_NAME.to_owned()),
        ];
        // BuildKit keeps what a file sync received under this key and, on
        // the next sync with the same key, asks only for files whose size
        // or mtime changed.
        if !shared_key.is_empty() {
            headers.push(("X-Docker-Expose-Session-Sharedkey", shared_key.to_owned()));
        }
        for method in services.methods() {
            headers.push(("X-Docker-Expose-Session-Grpc-Method", method));
        }
        let upgraded = upgrade(address, api_version, &headers, limits).await?;
        let end = CancellationToken::new();
        let io = SessionIo::new(upgraded, end.clone());
        let router = services.router();
        tokio::spawn(async move {
            // tonic hands the connection to a task of its own and returns
            // when this one-item stream ends; `SessionIo` ends that task.
            let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(io)]);
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::debug!("BuildKit session server ended: {e}");
            }
        });
        Ok(Session {
            _end: end.drop_guard(),
        })
    }
}

/// The hijack: 101 Switching Protocols within `limits.session_upgrade`.
async fn upgrade(
    address: &EngineAddress,
    api_version: &str,
    headers: &[(&str, String)],
    limits: &Limits,
) -> Result<Upgraded, BuildKitError> {
    let path = format!("/v{api_version}/session");
    let names = (
        "the BuildKit session upgrade (POST /session)",
        "open the BuildKit session (POST /session)",
    );
    match super::upgrade::upgrade(address, &path, headers, limits, names).await? {
        Ok(upgraded) => Ok(upgraded),
        Err(Refused { status, message }) => Err(BuildKitError::SessionRefused {
            address: address.to_string(),
            status,
            message,
        }),
    }
}

/// The upgraded connection as tonic wants it (`Connected`), and our way to
/// close it: tonic serves it on a detached task we cannot stop, so once
/// `end` fires reads see end-of-file and writes fail; the HTTP/2 server
/// then ends and drops the socket, and the engine drops the session.
struct SessionIo {
    inner: TokioIo<Upgraded>,
    end: CancellationToken,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl SessionIo {
    fn new(upgraded: Upgraded, end: CancellationToken) -> Self {
        let ended = Box::pin(end.clone().cancelled_owned());
        SessionIo {
            inner: TokioIo::new(upgraded),
            end,
            ended,
        }
    }

    /// Also registers the waker, so a read waiting on the engine wakes
    /// up when the session ends.
    fn has_ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.end.is_cancelled() || self.ended.as_mut().poll(cx).is_ready()
    }
}

impl Connected for SessionIo {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SessionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.has_ended(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.has_ended(cx) {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
