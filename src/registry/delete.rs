//! Reading digests and deleting manifests: what `cleanup` needs beyond a push.

use reqwest::{Method, StatusCode, header};

use super::{Registry, RegistryError, Route};
use crate::names::{DIGEST_RULE, is_digest};
use crate::oci::MANIFEST_TYPES;

/// How a delete ended; both mean the manifest is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    /// Someone (an interrupted earlier run) deleted it first.
    AlreadyGone,
}

impl Registry {
    /// Asks bearer tokens for `delete` too: registries with token auth grant
    /// a manifest DELETE only to a token that names that action.
    pub fn deleting(mut self) -> Self {
        self.token_actions = "pull,push,delete";
        self
    }

    /// The digest a tag names, from a HEAD (no manifest body travels), or
    /// `None` when the tag is gone.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let path = self.path(repository, Route::Manifest(reference))?;
        let response = self
            .send(Method::HEAD, &path, repository, |r| {
                r.header(header::ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => {
                return Err(self
                    .failure(Method::HEAD, &path, repository, response)
                    .await);
            }
        }
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match digest {
            Some(d) if is_digest(&d) => Ok(Some(d)),
            Some(d) => Err(RegistryError::Protocol(format!(
                "{} named {repository}:{reference} by the digest {d:?}; {DIGEST_RULE}",
                self.name
            ))),
            // A registry that hides the digest on HEAD still sends the body
            // on GET, which `manifest` hashes.
            None => Ok(self
                .manifest(repository, reference)
                .await?
                .map(|m| m.digest)),
        }
    }

    /// Deletes a manifest by digest, which removes every tag naming it.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Deleted, RegistryError> {
        let path = self.path(repository, Route::Manifest(digest))?;
        let response = self.send(Method::DELETE, &path, repository, |r| r).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(Deleted::AlreadyGone),
            s if s.is_success() => Ok(Deleted::Now),
            StatusCode::METHOD_NOT_ALLOWED => Err(RegistryError::DeleteDisabled {
                registry: self.name.clone(),
                repository: repository.to_owned(),
            }),
            _ => Err(self
                .failure(Method::DELETE, &path, repository, response)
                .await),
        }
    }
}
