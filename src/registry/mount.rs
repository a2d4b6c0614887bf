//! Upload sessions and cross-repository mounts: what a streamed copy needs
//! beyond the one-request upload.

use reqwest::{Method, StatusCode, header};

use super::{Registry, RegistryError, Route, same_host_path};

/// How a blob upload began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// The registry linked the blob from the other repository: nothing to send.
    Mounted,
    /// Send the bytes to this path (see [`Registry::finish_upload`]).
    Session(String),
}

impl Registry {
    /// Opens an upload of `digest` into `repository`. With `from`, asks the
    /// registry to mount it from that repository instead, with a token that
    /// names both (token scopes are per repository); a registry that won't
    /// (202: another storage, no pull right on `from`) hands out a session
    /// anyway, and an issuer that refuses `from` gets a plain one.
    pub async fn start_upload(
        &self,
        repository: &str,
        digest: &str,
        from: Option<&str>,
    ) -> Result<Upload, RegistryError> {
        let plain = self.path(repository, Route::Uploads)?;
        if let Some(from) = from {
            // The blob's path in `from` checks both names the query carries.
            self.path(from, Route::Blob(digest))?;
            let path = format!("{plain}?mount={digest}&from={from}");
            let both = format!("{repository} {from}");
            let answer = self
                .send(Method::POST, &path, &both, |r| {
                    r.header(header::CONTENT_LENGTH, 0)
                })
                .await;
            match answer {
                Ok(response) => match response.status() {
                    StatusCode::CREATED => return Ok(Upload::Mounted),
                    StatusCode::ACCEPTED => {
                        return self.session(repository, &response).map(Upload::Session);
                    }
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {}
                    _ => {
                        return Err(self
                            .failure(Method::POST, &path, repository, response)
                            .await);
                    }
                },
                // A token issuer that won't grant pull on `from`.
                Err(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        self.open_upload(repository).await.map(Upload::Session)
    }

    /// Opens a plain upload session into `repository`, for a blob whose
    /// digest isn't known yet; returns its path.
    pub async fn open_upload(&self, repository: &str) -> Result<String, RegistryError> {
        let plain = self.path(repository, Route::Uploads)?;
        let response = self
            .send(Method::POST, &plain, repository, |r| {
                r.header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self
                .failure(Method::POST, &plain, repository, response)
                .await);
        }
        self.session(repository, &response)
    }

    /// Abandons an upload session from [`Registry::start_upload`]: the
    /// registry keeps nothing of it. One already gone (404) is fine.
    /// distribution asks for the `delete` right here, not `push`.
    pub async fn cancel_upload(
        &self,
        repository: &str,
        session: &str,
    ) -> Result<(), RegistryError> {
        let response = self
            .send(Method::DELETE, session, repository, |r| r)
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self
                .failure(Method::DELETE, session, repository, response)
                .await),
        }
    }

    pub(super) fn session(
        &self,
        repository: &str,
        response: &reqwest::Response,
    ) -> Result<String, RegistryError> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(same_host_path)
            .ok_or_else(|| {
                RegistryError::Protocol(format!(
                    "{} started an upload to {repository} without a usable Location",
                    self.name
                ))
            })
    }
}
