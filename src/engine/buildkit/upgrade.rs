//! The engine's hijacked endpoints: a `POST` answered `101 Switching
//! Protocols`, after which the connection speaks HTTP/2 (h2c). Our session
//! (`/session`, where we serve) and BuildKit's control API (`/grpc`, where
//! we are the client) both start so.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::upgrade::Upgraded;

use super::address::{Connection, EngineAddress};
use super::{BuildKitError, Limits, refusal};

/// What the engine answered instead of switching protocols.
pub(super) struct Refused {
    pub status: u16,
    pub message: String,
}

/// One hijack: `POST path` with `Upgrade: h2c` and `headers`, upgraded
/// within `limits.session_upgrade`. `waiting_for` and `doing` name the
/// endpoint in errors.
pub(super) async fn upgrade(
    address: &EngineAddress,
    path: &str,
    headers: &[(&str, String)],
    limits: &Limits,
    (waiting_for, doing): (&'static str, &'static str),
) -> Result<Result<Upgraded, Refused>, BuildKitError> {
    let mut connection = Connection::open(address, limits.connect).await?;
    let mut request = connection
        .request(path)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(super::full(Bytes::new()))
        .map_err(|e| BuildKitError::InvalidRequest(format!("the {doing} request: {e}")))?;
    let waited = async {
        let response = connection.sender.send_request(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Err(response));
        }
        hyper::upgrade::on(response).await.map(Ok)
    };
    let answer = tokio::time::timeout(limits.session_upgrade, waited)
        .await
        .map_err(|_| BuildKitError::Timeout {
            address: address.to_string(),
            waiting_for,
            after: limits.session_upgrade,
        })?
        .map_err(|source| BuildKitError::Http {
            address: address.to_string(),
            doing,
            source,
        })?;
    Ok(match answer {
        Ok(upgraded) => Ok(upgraded),
        Err(response) => {
            let (status, message) = refusal(response, limits).await;
            Err(Refused { status, message })
        }
    })
}
