//! A body written on a blocking thread: what `tar` (a blocking writer)
//! writes becomes a request body as it is written, through tokio_util's
//! bridges, so a context or an archive of any size never sits in memory.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_util::io::{ReaderStream, SyncIoBridge};

/// Size of each chunk of the body.
pub(super) const CHUNK: usize = 1 << 20;
/// Chunks in flight between the writer and the body: the writer waits
/// when the request doesn't take them.
const CHUNKS_QUEUED: usize = 4;

/// Where the blocking writer writes. A write after the body is gone (the
/// request ended) fails with [`io::ErrorKind::BrokenPipe`].
pub(super) type BodyWriter = SyncIoBridge<DuplexStream>;

/// The body `write` writes on a blocking thread, and the writer's outcome.
/// When `write` fails, the body ends with `abort`'s error instead of
/// ending cleanly, so the engine never takes a cut tar for a whole one.
pub(super) fn written_body<T, E>(
    write: impl FnOnce(BodyWriter) -> Result<T, E> + Send + 'static,
    abort: impl FnOnce(&E) -> io::Error + Send + 'static,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    JoinHandle<Result<T, E>>,
)
where
    T: Send + 'static,
    E: Send + 'static,
{
    let (writer, reader) = tokio::io::duplex(CHUNK * CHUNKS_QUEUED);
    let (failed, failure) = tokio::sync::oneshot::channel();
    let writer = SyncIoBridge::new(writer);
    let written = tokio::task::spawn_blocking(move || {
        let written = write(writer);
        if let Err(e) = &written {
            let _ = failed.send(abort(e));
        }
        written
    });
    // At the end of the bytes, the writer's outcome: a failure is the last
    // item; success (the sender dropped unsent) ends the body.
    let outcome = futures_util::stream::once(failure)
        .filter_map(|failure| async move { failure.ok().map(Err) });
    let body = ReaderStream::with_capacity(reader, CHUNK).chain(outcome);
    (body, written)
}
