//! Blobs as streams: downloads are hashed and counted as they arrive and
//! uploads are fed from any stream, so a layer never sits whole in memory.
//!
//! A blob can be large and a link slow, so its transfer is bounded by its
//! stalls rather than by one total that would cut off a big layer: no byte
//! may take longer than `request-timeout` to move. A total still applies,
//! generous enough for any working link (see [`transfer_timeout`]), so that
//! a trickle can't hold a run either.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode, header};
use sha2::{Digest as _, Sha256};
use tokio_util::io::ReaderStream;

use super::mount::Upload;
use super::{Registry, RegistryError, Route, Wait, retry};

/// A blob's bytes, chunk by chunk; see [`verified`].
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// How long one blob may take to travel in all: `request-timeout`, and a
/// second more per 32 KiB (a 1 GiB layer gets over nine hours). Stalls are
/// what gives up on a dead transfer (see [`paced`]); this only stops a
/// trickle.
fn transfer_timeout(base: Duration, size: u64) -> Duration {
    base + Duration::from_secs(size / (32 << 10))
}

/// `chunks`, ended by `stalled()` when the next one takes longer than
/// `bound` to come.
fn paced<E: Send + 'static>(
    chunks: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    bound: Duration,
    stalled: impl Fn() -> E + Send + 'static,
) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static {
    let chunks = Box::pin(chunks);
    futures_util::stream::unfold(Some((chunks, stalled)), move |state| async move {
        let (mut chunks, stalled) = state?;
        match tokio::time::timeout(bound, chunks.next()).await {
            Ok(Some(item)) => Some((item, Some((chunks, stalled)))),
            Ok(None) => None,
            Err(_) => Some((Err(stalled()), None)),
        }
    })
}

struct Hashing<S> {
    chunks: S,
    hasher: Sha256,
    /// Bytes so far, and how many the descriptor declares.
    seen: u64,
    size: u64,
    /// Held back until the digest is known, so that a consumer never sees
    /// the end of a blob whose bytes are wrong.
    pending: Option<Bytes>,
    expected: String,
    origin: String,
    what: String,
    done: bool,
}

/// `chunks`, checked against the descriptor (`expected` digest, `size`)
/// while they pass. A byte past `size` ends the stream at once, so no more
/// is ever read; the last chunk is released only once the size and digest
/// match. Otherwise the stream ends with [`RegistryError::SizeMismatch`]
/// or [`RegistryError::DigestMismatch`], so an upload fed from it never
/// completes and a file written from it is never kept.
pub fn verified(
    chunks: impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
    expected: &str,
    size: u64,
    origin: &str,
    what: String,
) -> BlobStream {
    let state = Hashing {
        chunks: Box::pin(chunks),
        hasher: Sha256::new(),
        seen: 0,
        size,
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
                    s.seen += chunk.len() as u64;
                    if s.seen > s.size {
                        s.done = true;
                        let sent = format!("more than {} bytes", s.size);
                        return Some((Err(s.size_mismatch(sent)), s));
                    }
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
                    if s.seen < s.size {
                        let sent = format!("{} bytes", s.seen);
                        return Some((Err(s.size_mismatch(sent)), s));
                    }
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

impl<S> Hashing<S> {
    fn size_mismatch(&self, sent: String) -> RegistryError {
        RegistryError::SizeMismatch {
            registry: self.origin.clone(),
            what: self.what.clone(),
            declared: self.size,
            sent,
        }
    }
}

/// Whether an upload's body still moves: the hyper client stops taking
/// chunks when the registry stops reading, which nothing else would notice.
struct Progress {
    last: Mutex<tokio::time::Instant>,
    /// The client asked for a chunk the source hasn't given yet: a wait on
    /// the source (which has bounds of its own), not on the registry.
    awaiting_source: AtomicBool,
    /// Bytes of the body not yet taken. At zero (or at the stream's end)
    /// what is left is the registry's answer, due within the same bound
    /// from the last chunk on. Counted, because the client stops polling
    /// once it has sent the `Content-Length` it declared.
    left: AtomicU64,
    ended: AtomicBool,
}

impl Progress {
    fn new(size: u64) -> Arc<Self> {
        Arc::new(Progress {
            last: Mutex::new(tokio::time::Instant::now()),
            awaiting_source: AtomicBool::new(false),
            left: AtomicU64::new(size),
            ended: AtomicBool::new(false),
        })
    }

    /// `chunks`, noting each one taken and their end.
    fn tracking(self: &Arc<Self>, mut chunks: BlobStream) -> BlobStream {
        let progress = self.clone();
        futures_util::stream::poll_fn(move |cx| {
            let next = chunks.poll_next_unpin(cx);
            let waiting = next.is_pending();
            if !waiting {
                if let Ok(mut last) = progress.last.lock() {
                    *last = tokio::time::Instant::now();
                }
            }
            progress.awaiting_source.store(waiting, Ordering::Relaxed);
            match &next {
                Poll::Ready(Some(Ok(chunk))) => {
                    let taken = chunk.len() as u64;
                    let _ =
                        progress
                            .left
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                Some(left.saturating_sub(taken))
                            });
                }
                Poll::Ready(None) => progress.ended.store(true, Ordering::Relaxed),
                _ => {}
            }
            next
        })
        .boxed()
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed) || self.left.load(Ordering::Relaxed) == 0
    }

    /// Resolves once the transfer waited `bound` on the registry: with no
    /// chunk taken while one was there to take ([`Wait::Stall`]), or, the
    /// whole body sent, with no answer yet ([`Wait::Answer`]; otherwise a
    /// registry that keeps the blob and never answers would hold the run
    /// for the whole transfer time). The request's own end ends the loop,
    /// through the `select!` it runs in.
    async fn stalled(&self, bound: Duration) -> Wait {
        loop {
            let ended = self.ended();
            if !ended && self.awaiting_source.load(Ordering::Relaxed) {
                tokio::time::sleep(bound / 4).await;
                continue;
            }
            let wait = if ended { Wait::Answer } else { Wait::Stall };
            let Ok(last) = self.last.lock().map(|l| *l) else {
                return wait;
            };
            if last.elapsed() >= bound {
                return wait;
            }
            tokio::time::sleep_until(last + bound).await;
        }
    }
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
    ReaderStream::with_capacity(file, CHUNK)
        .map_err(move |e| RegistryError::Protocol(format!("reading {shown} failed: {e}")))
}

/// How often a follower of a growing file looks for more bytes: the writer
/// doesn't say when it adds some, only when it is done.
const GROWING_POLL: Duration = Duration::from_millis(5);

/// The bytes of `file` (opened at its start) while another thread still writes it,
/// from its start to the size of the blob `done` names once the writer is finished;
/// `shown` names it in errors. `done` dropped without a size (the writer
/// failed) ends the stream with an error, so an upload fed from it never
/// completes.
pub fn growing_file_chunks(
    file: std::fs::File,
    done: tokio::sync::watch::Receiver<Option<SealedBlob>>,
    shown: String,
) -> BlobStream {
    use tokio::io::AsyncReadExt as _;
    let failed = move |what: String| RegistryError::Protocol(format!("{shown}: {what}"));
    futures_util::stream::try_unfold(
        (tokio::fs::File::from_std(file), 0u64, done, failed),
        |(mut file, offset, mut done, failed)| async move {
            loop {
                // Read before the read: bytes flushed just before the seal
                // may land between an empty read and a look at `done`.
                let sealed = done.borrow().as_ref().map(|blob| blob.size);
                let mut chunk = vec![0; CHUNK];
                let read = file
                    .read(&mut chunk)
                    .await
                    .map_err(|e| failed(format!("reading it failed: {e}")))?;
                if read > 0 {
                    chunk.truncate(read);
                    let offset = offset + read as u64;
                    let state = (file, offset, done, failed);
                    return Ok(Some((Bytes::from(chunk), state)));
                }
                match sealed {
                    Some(size) if size == offset => return Ok(None),
                    Some(size) => {
                        return Err(failed(format!(
                            "its writer finished it at {size} bytes, {offset} were read"
                        )));
                    }
                    // Sealed since: what it flushed last may be there now.
                    None if done.borrow().is_some() => continue,
                    None => {}
                }
                tokio::select! {
                    changed = done.changed() => if changed.is_err() && done.borrow().is_none() {
                        return Err(failed("its writer stopped before finishing it".to_owned()));
                    },
                    () = tokio::time::sleep(GROWING_POLL) => {}
                }
            }
        },
    )
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
        let path = self.path(repository, Route::Blob(digest))?;
        let transfer = transfer_timeout(self.timeout, size);
        let response = self
            .send(Method::GET, &path, repository, |r| r.timeout(transfer))
            .await?;
        if !response.status().is_success() {
            return Err(self.failure(Method::GET, &path, repository, response).await);
        }
        if let Some(declared) = response.content_length().filter(|&n| n > size) {
            return Err(RegistryError::SizeMismatch {
                registry: self.name.clone(),
                what: format!("blob {digest} of {repository}"),
                declared: size,
                sent: format!("a Content-Length of {declared}"),
            });
        }
        let chunks =
            response
                .bytes_stream()
                .map_err(self.transport(&path, Wait::Transfer, transfer));
        let (registry, url, after) = (self.name.clone(), self.shown(&path), self.timeout);
        let chunks = paced(chunks, after, move || RegistryError::TimedOut {
            registry: registry.clone(),
            url: url.clone(),
            wait: Wait::Stall,
            after,
        });
        Ok(verified(
            chunks,
            digest,
            size,
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
        let request = self
            .http
            .put(&url)
            .header(header::CONTENT_LENGTH, size)
            .timeout(transfer_timeout(self.timeout, size));
        let response = self.send_body(repository, request, chunks, size).await?;
        if response.status() != StatusCode::CREATED {
            let shown = self.path(repository, Route::Uploads)?;
            return Err(self
                .failure(Method::PUT, &shown, repository, response)
                .await);
        }
        Ok(())
    }

    /// Sends the bytes of `chunks` into the upload `session` in one PATCH,
    /// for a blob whose size and digest are known only at its end (as
    /// `docker push` sends a layer while compressing it); returns the
    /// session's path for what follows, [`Registry::finish_upload`] with
    /// no bytes left. Bounded like any upload, by its stalls and its
    /// answer. Errors name the upload endpoint, never the session.
    pub async fn send_chunks(
        &self,
        repository: &str,
        session: &str,
        chunks: BlobStream,
    ) -> Result<String, RegistryError> {
        let url = format!("{}{session}", self.base);
        let request = self
            .http
            .patch(&url)
            // The size is unknown: a budget for 4 GiB, stalls bound the rest.
            .timeout(transfer_timeout(self.timeout, u32::MAX.into()));
        // Unknown size: the body's end is what says all of it went.
        let response = self
            .send_body(repository, request, chunks, u64::MAX)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            let shown = self.path(repository, Route::Uploads)?;
            return Err(self
                .failure(Method::PATCH, &shown, repository, response)
                .await);
        }
        self.session(repository, &response)
    }

    /// Sends `request` (to an upload session) with the bytes of `chunks`,
    /// `size` of them (`u64::MAX`: unknown), bounded by its stalls and its
    /// answer; errors name the upload endpoint, never the session.
    async fn send_body(
        &self,
        repository: &str,
        request: reqwest::RequestBuilder,
        chunks: BlobStream,
        size: u64,
    ) -> Result<reqwest::Response, RegistryError> {
        let shown = self.path(repository, Route::Uploads)?;
        // The body's own error would reach us only as a transport failure;
        // kept aside, it is reported as what it was (e.g. a digest mismatch).
        let refused: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let slot = refused.clone();
        let progress = Progress::new(size);
        let body = reqwest::Body::wrap_stream(progress.tracking(chunks).map_err(move |e| {
            let message = e.to_string();
            if let Ok(mut slot) = slot.lock() {
                slot.get_or_insert(e);
            }
            std::io::Error::other(message)
        }));
        let request = self.authorize(
            request
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
            repository,
        );
        let sent = tokio::select! {
            sent = request.send() => Ok(sent),
            wait = progress.stalled(self.timeout) => Err(wait),
        };
        if let Some(e) = refused.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let sent = sent.map_err(|wait| self.timed_out(&shown, wait, self.timeout))?;
        let transfer = transfer_timeout(self.timeout, size.min(u32::MAX.into()));
        sent.map_err(self.transport(&shown, Wait::Transfer, transfer))
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
        self.upload(repository, digest, size, || file_upload(path.to_owned()))
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
        let tries = &AtomicU32::new(0);
        let sending = &AtomicBool::new(false);
        let once = || self.upload_once(repository, digest, size, &open, tries, sending);
        let what = || format!("uploading blob {digest} to {}/{repository}", self.name);
        retry::again(what, once, |e, attempt| resumable(e, attempt, sending))
            .await
            .map_err(|e| self.upload_failed(repository, digest, tries, e))
    }

    /// One try of [`Registry::upload`]: a new session, all the bytes.
    async fn upload_once<F, Fut>(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        open: &F,
        tries: &AtomicU32,
        sending: &AtomicBool,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<BlobStream, RegistryError>>,
    {
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
    }

    /// Uploads a blob while it is still being written, as `docker push`
    /// sends a layer while compressing it: one session, its bytes in one
    /// PATCH as `growing` yields them, then the digest once `sealed` names
    /// it. A first try cut off is followed by tries of the whole file, as
    /// [`Registry::upload`] makes them, [`retry::ATTEMPTS`] in all. Returns
    /// the blob `sealed` named.
    pub async fn upload_growing(
        &self,
        repository: &str,
        file: std::fs::File,
        shown: String,
        sealed: tokio::sync::watch::Receiver<Option<SealedBlob>>,
    ) -> Result<SealedBlob, RegistryError> {
        let growing = growing_file_chunks(file, sealed.clone(), shown);
        let growing = Mutex::new(Some(growing));
        let tries = &AtomicU32::new(0);
        let sending = &AtomicBool::new(false);
        let blob = || async {
            let mut sealed = sealed.clone();
            let blob = sealed.wait_for(Option::is_some).await.ok();
            blob.and_then(|blob| blob.clone())
                .ok_or_else(|| RegistryError::Protocol("the blob was never finished".to_owned()))
        };
        let once = || async {
            let first = growing.lock().ok().and_then(|mut g| g.take());
            let Some(growing) = first else {
                let blob = blob().await?;
                let open = || file_upload(blob.path.clone());
                return self
                    .upload_once(repository, &blob.digest, blob.size, &open, tries, sending)
                    .await;
            };
            tries.fetch_add(1, Ordering::Relaxed);
            let session = self.open_upload(repository).await?;
            sending.store(true, Ordering::Relaxed);
            let sent = self.send_chunks(repository, &session, growing).await;
            // Another try needs the whole blob: wait for it either way.
            let blob = blob().await?;
            let nothing = futures_util::stream::empty().boxed();
            self.finish_upload(repository, &sent?, &blob.digest, 0, nothing)
                .await
        };
        let digest = || {
            let sealed = sealed.borrow();
            sealed.as_ref().map(|b| b.digest.to_string())
        };
        let what = || {
            let digest = digest().unwrap_or_else(|| "being written".to_owned());
            format!("uploading blob {digest} to {}/{repository}", self.name)
        };
        // The first try is only a head start: however it failed once it
        // was sending, the whole file is worth a try.
        let pause = |e: &RegistryError, attempt| {
            resumable(e, attempt, sending).or_else(|| {
                (attempt == 0 && sending.load(Ordering::Relaxed)).then_some(Duration::ZERO)
            })
        };
        let done = retry::again(what, once, pause).await;
        let shown = digest().unwrap_or_else(|| "(unfinished)".to_owned());
        done.map_err(|e| self.upload_failed(repository, &shown, tries, e))?;
        blob().await
    }

    fn upload_failed(
        &self,
        repository: &str,
        digest: &str,
        tries: &AtomicU32,
        source: RegistryError,
    ) -> RegistryError {
        RegistryError::Upload {
            registry: self.name.clone(),
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            tries: tries.load(Ordering::Relaxed),
            source: Box::new(source),
        }
    }
}

/// A blob whose writing is done: what [`Registry::upload_growing`] needs
/// to finish it, or to send it again from its file.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    pub digest: crate::oci::Digest,
    pub size: u64,
    pub path: std::path::PathBuf,
}

/// The bytes of the blob file at `path`, for one upload try.
async fn file_upload(path: std::path::PathBuf) -> Result<BlobStream, RegistryError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| RegistryError::Protocol(format!("couldn't open {}: {e}", path.display())))?;
    // Not hashed again here: the export hashed these very bytes as it
    // wrote them, and the registry checks them against the digest.
    Ok(file_chunks(file, path.display().to_string()).boxed())
}

/// Whether a failed upload try is worth another, and after how long.
/// Opening the session already retried the registry's 429 and 5xx answers
/// (`send`); only a dropped connection is worth a new try there.
fn resumable(error: &RegistryError, attempt: u32, sending: &AtomicBool) -> Option<Duration> {
    match error {
        RegistryError::Status { .. } if !sending.load(Ordering::Relaxed) => None,
        _ => error.retry_pause(attempt),
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

    /// A file written in pieces by another thread, the size told at the end.
    fn written_slowly(
        pieces: usize,
        tell: bool,
    ) -> (BlobStream, Vec<u8>, std::thread::JoinHandle<()>) {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        let mut writer = std::fs::File::create(&path).unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        let (done, seen) = tokio::sync::watch::channel(None);
        let bytes: Vec<u8> = (0..pieces * 300_000).map(|i| (i % 251) as u8).collect();
        let all = bytes.clone();
        let thread = std::thread::spawn(move || {
            for piece in all.chunks(300_000) {
                writer.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            // Renamed as a sealed blob is: the open reader keeps reading.
            std::fs::rename(&path, dir.path().join("sealed")).unwrap();
            if tell {
                let sealed = SealedBlob {
                    digest: crate::oci::Digest::try_from(sha256_digest(&all)).unwrap(),
                    size: all.len() as u64,
                    path: dir.path().join("sealed"),
                };
                done.send(Some(sealed)).unwrap();
            }
        });
        let stream = growing_file_chunks(reader, seen, "blob.partial".into());
        (stream, bytes, thread)
    }

    #[tokio::test]
    async fn a_growing_file_is_read_to_the_size_told_at_its_end() {
        let (stream, bytes, writer) = written_slowly(12, true);
        assert_eq!(collect(stream).await, (bytes, None));
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn a_growing_file_whose_writer_stops_unfinished_ends_in_an_error() {
        let (stream, bytes, writer) = written_slowly(3, false);
        let (read, error) = collect(stream).await;
        writer.join().unwrap();
        assert!(bytes.starts_with(&read));
        assert_eq!(
            error.as_deref(),
            Some("blob.partial: its writer stopped before finishing it")
        );
    }

    #[tokio::test]
    async fn matching_bytes_pass_whole() {
        let digest = sha256_digest(b"hello world");
        let stream = verified(
            chunks(&[b"hello", b" ", b"world"]),
            &digest,
            11,
            "r",
            "b".into(),
        );
        assert_eq!(collect(stream).await, (b"hello world".to_vec(), None));
        let empty = verified(chunks(&[]), &sha256_digest(b""), 0, "r", "b".into());
        assert_eq!(collect(empty).await, (Vec::new(), None));
    }

    #[tokio::test]
    async fn wrong_bytes_never_deliver_their_last_chunk() {
        let digest = sha256_digest(b"hello world");
        let stream = verified(
            chunks(&[b"hello", b" ", b"w0rld"]),
            &digest,
            11,
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

    #[tokio::test]
    async fn no_byte_past_the_declared_size_is_read() {
        let taken = std::sync::Arc::new(AtomicU32::new(0));
        let counter = taken.clone();
        // A "config" whose descriptor says 121 bytes, sent without end.
        let endless = futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(Bytes::from_static(&[b'x'; 100]))
        });
        let stream = verified(endless, &sha256_digest(b"x"), 121, "reg", "blob c".into());
        let (bytes, error) = collect(stream).await;
        assert!(bytes.is_empty(), "a held-back chunk of a refused blob");
        assert_eq!(taken.load(Ordering::Relaxed), 2);
        assert_eq!(
            error.as_deref(),
            Some(
                "reg sent more than 121 bytes for blob c, not the 121 bytes its descriptor declares; refusing it"
            )
        );
    }

    #[tokio::test]
    async fn a_blob_that_ends_short_of_its_size_is_refused() {
        let digest = sha256_digest(b"hello");
        let stream = verified(chunks(&[b"hello"]), &digest, 6, "reg", "blob s".into());
        let (bytes, error) = collect(stream).await;
        assert!(bytes.is_empty());
        assert_eq!(
            error.as_deref(),
            Some(
                "reg sent 5 bytes for blob s, not the 6 bytes its descriptor declares; refusing it"
            )
        );
    }

    #[tokio::test]
    async fn a_stall_ends_a_paced_stream() {
        let slow = futures_util::stream::iter([Ok::<_, &str>(Bytes::from_static(b"a"))])
            .chain(futures_util::stream::pending());
        let started = std::time::Instant::now();
        let items: Vec<_> = paced(slow, Duration::from_millis(200), || "stalled")
            .collect()
            .await;
        assert_eq!(items, [Ok(Bytes::from_static(b"a")), Err("stalled")]);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        // Chunks that keep coming within the bound pass, however long in all.
        let steady = futures_util::stream::iter(0..5).then(|_| async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Ok::<_, &str>(Bytes::from_static(b"b"))
        });
        let items: Vec<_> = paced(steady, Duration::from_millis(200), || "stalled")
            .collect()
            .await;
        assert_eq!(items.len(), 5);
        assert!(items.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn an_upload_body_that_stops_moving_is_a_stall_and_one_that_ended_awaits_its_answer() {
        let one_then_nothing = || {
            futures_util::stream::iter([Ok(Bytes::from_static(b"a"))])
                .chain(futures_util::stream::pending())
                .boxed()
        };
        let progress = Progress::new(2);
        let mut body = progress.tracking(one_then_nothing());
        assert!(body.next().await.is_some());
        let started = std::time::Instant::now();
        let wait = progress.stalled(Duration::from_millis(200)).await;
        let took = started.elapsed();
        assert_eq!(wait, Wait::Stall);
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );

        // The whole body taken (the client asks no further once it has its
        // `Content-Length`), the answer is due within the bound too.
        let progress = Progress::new(1);
        let mut body = progress.tracking(one_then_nothing());
        assert!(body.next().await.is_some());
        let started = std::time::Instant::now();
        let wait = progress.stalled(Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert_eq!(wait, Wait::Answer);
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );

        // A source that keeps the client waiting is the source's stall.
        let progress = Progress::new(1);
        let mut body = progress.tracking(futures_util::stream::pending().boxed());
        let asked = tokio::time::timeout(Duration::from_millis(50), body.next()).await;
        assert!(asked.is_err());
        let waited = tokio::time::timeout(
            Duration::from_millis(400),
            progress.stalled(Duration::from_millis(100)),
        )
        .await;
        assert!(waited.is_err(), "blamed the registry for a slow source");
    }
}
