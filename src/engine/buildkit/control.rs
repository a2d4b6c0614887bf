//! BuildKit's control API (`moby.buildkit.v1.Control`) as the engine
//! exposes it: `POST /grpc` upgraded to h2c, then HTTP/2 with us as the
//! client, one connection per build. It is what `docker buildx` speaks to
//! the engine's own BuildKit, and unlike `/build` it solves several
//! platforms at once, syncs local files over the session and exports a
//! cache.

use std::task::{Context, Poll};

use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::TokioExecutor;

use super::address::EngineAddress;
use super::task::Owned;
use super::upgrade::Refused;
use super::{BuildKitError, Limits};

/// The `:authority` of our requests: the engine serves one API on the
/// connection and reads none, but HTTP/2 wants one.
const AUTHORITY: &str = "http://buildkit";

/// A control API client on its own hijacked connection; dropping it
/// closes the connection.
pub(super) struct Control {
    pub client: ControlClient<H2>,
    _driver: Owned,
}

impl Control {
    /// Upgrades `POST /grpc` and shakes HTTP/2 hands on it, each within
    /// `limits`. An engine without the endpoint (Docker before 18.09, a
    /// proxy in the way) answers `ControlRefused`.
    pub async fn open(
        address: &EngineAddress,
        api_version: &str,
        limits: &Limits,
    ) -> Result<Self, BuildKitError> {
        let path = format!("/v{api_version}/grpc");
        let names = (
            "the BuildKit control API upgrade (POST /grpc)",
            "open BuildKit's control API (POST /grpc)",
        );
        let upgraded = match super::upgrade::upgrade(address, &path, &[], limits, names).await? {
            Ok(upgraded) => upgraded,
            Err(Refused { status, message }) => {
                return Err(BuildKitError::ControlRefused {
                    address: address.to_string(),
                    status,
                    message,
                });
            }
        };
        let handshake = http2::Builder::new(TokioExecutor::new())
            // Status messages of a large build run to megabytes.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake(upgraded);
        let (sender, connection) = tokio::time::timeout(limits.connect, handshake)
            .await
            .map_err(|_| BuildKitError::Timeout {
                address: address.to_string(),
                waiting_for: "the HTTP/2 handshake on POST /grpc",
                after: limits.connect,
            })?
            .map_err(|source| BuildKitError::Http {
                address: address.to_string(),
                doing: "speak HTTP/2 on POST /grpc",
                source,
            })?;
        let driver = Owned::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("BuildKit control connection ended: {e}");
            }
        });
        let origin = http::Uri::from_static(AUTHORITY);
        let client =
            ControlClient::with_origin(H2 { sender }, origin).max_decoding_message_size(64 << 20);
        Ok(Control {
            client,
            _driver: driver,
        })
    }
}

/// The HTTP/2 connection as the tower service tonic's client wants.
#[derive(Clone)]
pub(super) struct H2 {
    sender: http2::SendRequest<tonic::body::Body>,
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let sent = self.sender.send_request(request);
        Box::pin(sent)
    }
}
