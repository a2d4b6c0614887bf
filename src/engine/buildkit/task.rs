//! The tasks a BuildKit call spawns (a connection's driver, a solve, a
//! file sync's sender), owned by what the caller holds: dropped, they are
//! aborted, so none outlives the build that started it.

use std::future::Future;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A spawned task, aborted when this is dropped.
pub(super) struct Owned(JoinHandle<()>);

impl Owned {
    pub fn spawn(work: impl Future<Output = ()> + Send + 'static) -> Self {
        Owned(tokio::spawn(work))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What `work` sends on the channel it is handed (at most `queued` items
/// waiting), as a stream that ends when `work` drops its sender; dropping
/// the stream aborts `work`.
pub(super) fn streamed<T, F>(
    queued: usize,
    work: impl FnOnce(mpsc::Sender<T>) -> F,
) -> impl Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(queued);
    let task = Owned::spawn(work(sender));
    futures_util::stream::unfold((receiver, task), |(mut receiver, task)| async move {
        receiver.recv().await.map(|item| (item, (receiver, task)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    /// Sends `0..` until its channel is closed; says when it ends, whether
    /// by returning or by being aborted (its future dropped).
    async fn counting(items: mpsc::Sender<u32>, ended: tokio::sync::oneshot::Sender<()>) {
        struct Ended(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Ended {
            fn drop(&mut self) {
                if let Some(ended) = self.0.take() {
                    let _ = ended.send(());
                }
            }
        }
        let _ended = Ended(Some(ended));
        // Never returns by itself while the stream is held: after the
        // items, it waits for what never comes.
        for i in 0..3 {
            if items.send(i).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }

    #[tokio::test]
    async fn the_stream_yields_what_the_task_sends_and_dropping_it_aborts_the_task() {
        let (ended, has_ended) = tokio::sync::oneshot::channel();
        let mut stream = Box::pin(streamed(1, |items| counting(items, ended)));
        let first: Vec<u32> = (&mut stream).take(3).collect().await;
        assert_eq!(first, [0, 1, 2]);
        drop(stream);
        let aborted = tokio::time::timeout(std::time::Duration::from_secs(30), has_ended).await;
        assert!(matches!(aborted, Ok(Ok(()))), "{aborted:?}");
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_task_does() {
        let stream = streamed(4, |items| async move {
            for i in 0..2 {
                let _ = items.send(i).await;
            }
        });
        assert_eq!(stream.collect::<Vec<u32>>().await, [0, 1]);
    }
}
