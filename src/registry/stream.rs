//! Blobs as streams: downloads are hashed as they arrive and uploads are fed
//! from any stream, so a layer never sits whole in memory.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode, header};
use sha2::{Digest as _, Sha256};

use super::{Registry, RegistryError};

/// A blob's bytes, chunk by chunk; see [`verified`].
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// How long one blob may take to travel. The client's 300 s covers a whole
/// request, body included, which a large layer on a slow link can need
/// more than; a second more per 256 KiB still gives up on a stalled one.
fn transfer_timeout(size: u64) -> Duration {
    Duration::from_secs(300 + size / (256 << 10))
}

struct Hashing<S> {
    chunks: S,
    hasher: Sha256,
    /// Held back until the digest is known, so that a consumer never sees
    /// the end of a blob whose bytes are wrong.
    pending: Option<Bytes>,
    expected: String,
    origin: String,
    what: String,
    done: bool,
}

/// `chunks`, checked against `expected` while they pass. The last chunk is
/// released only once the digest matches; otherwise the stream ends with
/// [`RegistryError::DigestMismatch`], so an upload fed from it never
/// completes and a file written from it is never kept.
pub fn verified(
    chunks: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
    expected: &str,
    origin: &str,
    what: String,
) -> BlobStream {
    let state = Hashing {
        chunks: Box::pin(chunks),
        hasher: Sha256::new(),
        pending: None,
        expected: expected.to_owned(),
        origin: origin.to_owned(),
        what,
        done: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match s.chunks.next().await {
                Some(Ok(chunk)) => {
                    s.hasher.update(&chunk);
                    if let Some(previous) = s.pending.replace(chunk) {
                        return Some((Ok(previous), s));
                    }
                }
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
                None => {
                    s.done = true;
                    let actual = s.hasher.finalize_reset().iter().fold(
                        String::from("sha256:"),
                        |mut out, b| {
                            let _ = write!(out, "{b:02x}");
                            out
                        },
                    );
                    if actual != s.expected {
                        let mismatch = RegistryError::DigestMismatch {
                            registry: s.origin.clone(),
                            what: s.what.clone(),
                            expected: s.expected.clone(),
                            actual,
                        };
                        return Some((Err(mismatch), s));
                    }
                    return s.pending.take().map(|last| (Ok(last), s));
                }
            }
        }
    })
    .boxed()
}

impl Registry {
    /// A blob of `size` bytes as it downloads, verified against `digest`
    /// (see [`verified`]).
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
    ) -> Result<BlobStream, RegistryError> {
        if !digest.starts_with("sha256:") {
            return Err(RegistryError::Protocol(format!(
                "blob {digest} of {repository} is not a sha256 digest; only sha256 content can be verified and copied"
            )));
        }
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self
            .send(Method::GET, &path, repository, |r| {
                r.timeout(transfer_timeout(size))
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::GET, &path, repository, response).await);
        }
        let (registry, url) = (self.name.clone(), format!("{}{path}", self.base));
        let chunks = response
            .bytes_stream()
            .map_err(move |source| RegistryError::Transport {
                registry: registry.clone(),
                url: url.clone(),
                source,
            });
        Ok(verified(
            chunks,
            digest,
            &self.name,
            format!("blob {digest} of {repository}"),
        ))
    }

    /// Finishes the upload `session` (a path from [`Registry::start_upload`])
    /// with the bytes of `chunks` in one PUT; the registry checks the digest
    /// again before it keeps them. Not retried here: a stream can't be
    /// replayed, so the caller starts over with a new session.
    pub async fn finish_upload(
        &self,
        repository: &str,
        session: &str,
        digest: &str,
        size: u64,
        chunks: BlobStream,
    ) -> Result<(), RegistryError> {
        let separator = if session.contains('?') { '&' } else { '?' };
        let path = format!("{session}{separator}digest={digest}");
        let url = format!("{}{path}", self.base);
        // The body's own error would reach us only as a transport failure;
        // kept aside, it is reported as what it was (e.g. a digest mismatch).
        let refused: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let slot = refused.clone();
        let body = reqwest::Body::wrap_stream(chunks.map_err(move |e| {
            let message = e.to_string();
            if let Ok(mut slot) = slot.lock() {
                slot.get_or_insert(e);
            }
            std::io::Error::other(message)
        }));
        let request = self.authorize(
            self.http
                .put(&url)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size)
                .timeout(transfer_timeout(size))
                .body(body),
            repository,
        );
        let sent = request.send().await;
        if let Some(e) = refused.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let response = sent.map_err(|source| RegistryError::Transport {
            registry: self.name.clone(),
            url: format!("{}{session}", self.base),
            source,
        })?;
        if response.status() != StatusCode::CREATED {
            return Err(self.failure(Method::PUT, &path, repository, response).await);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::sha256_digest;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn collect(stream: BlobStream) -> (Vec<u8>, Option<String>) {
        let mut bytes = Vec::new();
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(e) => return (bytes, Some(e.to_string())),
            }
        }
        (bytes, None)
    }

    #[tokio::test]
    async fn matching_bytes_pass_whole() {
        let digest = sha256_digest(b"hello world");
        let stream = verified(
            chunks(&[b"hello", b" ", b"world"]),
            &digest,
            "r",
            "b".into(),
        );
        assert_eq!(collect(stream).await, (b"hello world".to_vec(), None));
        let empty = verified(chunks(&[]), &sha256_digest(b""), "r", "b".into());
        assert_eq!(collect(empty).await, (Vec::new(), None));
    }

    #[tokio::test]
    async fn wrong_bytes_never_deliver_their_last_chunk() {
        let digest = sha256_digest(b"hello world");
        let stream = verified(
            chunks(&[b"hello", b" ", b"w0rld"]),
            &digest,
            "reg",
            "blob x".into(),
        );
        let (bytes, error) = collect(stream).await;
        assert_eq!(bytes, b"hello ");
        let error = error.unwrap();
        assert!(
            error.contains(&digest) && error.contains(&sha256_digest(b"hello w0rld")),
            "{error}"
        );
    }
}
