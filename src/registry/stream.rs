//! Blobs as streams: downloads are hashed as they arrive and uploads are fed
//! from any stream, so a layer never sits whole in memory.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode, header};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::mount::Upload;
use super::{Registry, RegistryError, Route, retry};

/// A blob's bytes, chunk by chunk; see [`verified`].
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// How long one blob may take to travel. The client's bound (300 s unless
/// set) covers a whole request, body included, which a large layer on a
/// slow link can need more than; a second more per 256 KiB still gives up
/// on a stalled one.
fn transfer_timeout(base: Duration, size: u64) -> Duration {
    base + Duration::from_secs(size / (256 << 10))
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
                    let actual = super::digest_of(std::mem::take(&mut s.hasher));
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

/// Chunks a blob file is read in: big enough for few reads, small enough
/// for memory to stay flat however large the blob.
const CHUNK: usize = 1 << 20;

/// The bytes of `file` from where it stands to its end, `CHUNK` at a time;
/// `shown` names it in a read error.
pub fn file_chunks(
    file: tokio::fs::File,
    shown: String,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static {
    futures_util::stream::unfold(Some(file), move |file| {
        let shown = shown.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((
                    Err(RegistryError::Protocol(format!(
                        "reading {shown} failed: {e}"
                    ))),
                    None,
                )),
            }
        }
    })
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
        let path = self.path(repository, Route::Blob(digest))?;
        let response = self
            .send(Method::GET, &path, repository, |r| {
                r.timeout(transfer_timeout(self.timeout, size))
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::GET, &path, repository, response).await);
        }
        let chunks = response.bytes_stream().map_err(self.transport(&path));
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
    /// replayed, so the caller starts over with a new session. Errors name
    /// the upload endpoint, never the session: its path and query are the
    /// registry's state, signed on some registries.
    pub async fn finish_upload(
        &self,
        repository: &str,
        session: &str,
        digest: &str,
        size: u64,
        chunks: BlobStream,
    ) -> Result<(), RegistryError> {
        // The blob route checks the digest the query carries.
        self.path(repository, Route::Blob(digest))?;
        let separator = if session.contains('?') { '&' } else { '?' };
        let url = format!("{}{session}{separator}digest={digest}", self.base);
        let shown = self.path(repository, Route::Uploads)?;
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
                .timeout(transfer_timeout(self.timeout, size))
                .body(body),
            repository,
        );
        let sent = request.send().await;
        if let Some(e) = refused.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let response = sent.map_err(self.transport(&shown))?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .failure(Method::PUT, &shown, repository, response)
                .await);
        }
        Ok(())
    }

    /// Uploads the blob in the file at `path` (exactly the bytes that hash
    /// to `digest`), read in chunks so that it never sits whole in memory.
    /// See [`Registry::upload`] for what happens when a try is cut off.
    pub async fn upload_blob_file(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        self.upload(repository, digest, size, || async {
            let file = tokio::fs::File::open(path).await.map_err(|e| {
                RegistryError::Protocol(format!("couldn't open {}: {e}", path.display()))
            })?;
            // Not hashed again here: the export hashed these very bytes as
            // it wrote them, and the registry checks them against `digest`.
            Ok(file_chunks(file, path.display().to_string()).boxed())
        })
        .await
    }

    /// Uploads a blob whose bytes `open` supplies, afresh for every try. The
    /// bytes go in one PUT, which has no offset to resume from, so a try cut
    /// off midway (dropped connection, 429, 5xx) starts over in a new
    /// session, [`retry::ATTEMPTS`] tries in all. The registry completes
    /// only a session whose bytes match the digest, so an abandoned one
    /// never shows up as a blob.
    pub(super) async fn upload<F, Fut>(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        open: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<BlobStream, RegistryError>>,
    {
        // Atomics only so that the future stays `Send`.
        let (open, tries) = (&open, &AtomicU32::new(0));
        let sending = &AtomicBool::new(false);
        let once = || async move {
            tries.fetch_add(1, Ordering::Relaxed);
            sending.store(false, Ordering::Relaxed);
            match self.start_upload(repository, digest, None).await? {
                // Only asked for with a `from`: nothing left to send.
                Upload::Mounted => Ok(()),
                Upload::Session(session) => {
                    sending.store(true, Ordering::Relaxed);
                    let chunks = open().await?;
                    self.finish_upload(repository, &session, digest, size, chunks)
                        .await
                }
            }
        };
        // Opening the session already retried the registry's 429 and 5xx
        // answers (`send`); only a dropped connection is worth a new try there.
        let pause = |error: &RegistryError, attempt| match error {
            RegistryError::Status { .. } if !sending.load(Ordering::Relaxed) => None,
            _ => error.retry_pause(attempt),
        };
        let what = format!("uploading blob {digest} to {}/{repository}", self.name);
        retry::again(&what, once, pause)
            .await
            .map_err(|e| RegistryError::Upload {
                registry: self.name.clone(),
                repository: repository.to_owned(),
                digest: digest.to_owned(),
                tries: tries.load(Ordering::Relaxed),
                source: Box::new(e),
            })
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
