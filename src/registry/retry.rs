//! When to try a request again, and how long to wait.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Attempts per request, the first included: bounded, as every loop here is.
pub const ATTEMPTS: u32 = 4;
/// No server gets to park a run longer than this per retry.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// When one request, every retry and pause included, must be done: the
/// bound `request-timeout` sets, which retries never stretch.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
    /// The whole bound, as the error names it.
    pub bound: Duration,
}

impl Deadline {
    pub fn after(bound: Duration) -> Self {
        Deadline {
            at: tokio::time::Instant::now() + bound,
            bound,
        }
    }

    /// The time left; `None` once it is spent.
    pub fn left(&self) -> Option<Duration> {
        Some(
            self.at
                .saturating_duration_since(tokio::time::Instant::now()),
        )
        .filter(|left| !left.is_zero())
    }

    /// Whether waiting `pause` still leaves time to try again.
    pub fn allows(&self, pause: Duration) -> bool {
        self.left().is_some_and(|left| left > pause)
    }
}

/// 429 and 5xx are worth another try; anything else is an answer.
pub fn retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// How long to wait before another try at what answered with `headers`.
pub fn pause(attempt: u32, headers: &http::HeaderMap) -> Duration {
    after(attempt, asked(headers))
}

/// The wait a server asked for in `headers`, if it asked.
pub fn asked(headers: &http::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = crate::time::now().unsigned_abs();
    told(header("retry-after"), header("x-retry-after"), now)
}

/// What the server asked for when it did, else exponential back-off from
/// half a second; never more than [`MAX_WAIT`].
pub fn after(attempt: u32, asked: Option<Duration>) -> Duration {
    asked
        .unwrap_or_else(|| Duration::from_millis(500 << attempt.min(6)))
        .min(MAX_WAIT)
}

/// `Retry-After` (seconds) or Docker Hub's `X-Retry-After` (a unix time).
fn told(retry_after: Option<&str>, x_retry_after: Option<&str>, now_unix: u64) -> Option<Duration> {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| {
            x_retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|at| Duration::from_secs(at.saturating_sub(now_unix)))
        })
}

/// Runs `work` until it succeeds, fails in a way `pause` finds final, or
/// [`ATTEMPTS`] are spent. For work that can't resume midway (a blob whose
/// connection dropped): every try starts over from the beginning.
pub async fn again<T, E, F, Fut>(
    what: impl Fn() -> String,
    mut work: F,
    pause: impl Fn(&E, u32) -> Option<Duration>,
) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let error = match work().await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        match pause(&error, attempt).filter(|_| attempt + 1 < ATTEMPTS) {
            Some(wait) => {
                tracing::warn!("{} failed ({error}); starting over in {wait:?}", what());
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            None => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(attempt: u32, retry_after: Option<&str>, x: Option<&str>, now: u64) -> Duration {
        after(attempt, told(retry_after, x, now))
    }

    #[test]
    fn waits() {
        assert_eq!(wait(0, Some("3"), None, 0), Duration::from_secs(3));
        assert_eq!(wait(0, None, Some("1005"), 1000), Duration::from_secs(5));
        assert_eq!(wait(0, Some("9999"), None, 0), MAX_WAIT);
        assert_eq!(wait(0, None, None, 0), Duration::from_millis(500));
        assert_eq!(wait(2, Some("soon"), None, 0), Duration::from_millis(2000));
    }

    #[tokio::test]
    async fn a_deadline_allows_only_pauses_that_leave_time() {
        let deadline = Deadline::after(Duration::from_millis(300));
        assert!(
            deadline
                .left()
                .is_some_and(|l| l <= Duration::from_millis(300))
        );
        assert!(deadline.allows(Duration::from_millis(100)));
        assert!(!deadline.allows(Duration::from_millis(300)));
        tokio::time::sleep(Duration::from_millis(310)).await;
        assert_eq!(deadline.left(), None);
        assert!(!deadline.allows(Duration::ZERO));
        assert_eq!(deadline.bound, Duration::from_millis(300));
    }

    #[test]
    fn which_statuses() {
        assert!(retryable(429) && retryable(503) && !retryable(404) && !retryable(401));
    }

    #[tokio::test]
    async fn again_stops_at_success_at_a_final_error_or_after_all_attempts() {
        let tries = std::cell::Cell::new(0);
        let count = || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move { if n < 3 { Err(n) } else { Ok(n) } }
        };
        assert_eq!(
            again(|| "t".to_owned(), count, |_, _| Some(Duration::ZERO)).await,
            Ok(3)
        );
        tries.set(0);
        let fail = || {
            tries.set(tries.get() + 1);
            async { Err::<(), _>("cut") }
        };
        assert_eq!(
            again(|| "t".to_owned(), fail, |_, _| Some(Duration::ZERO)).await,
            Err("cut")
        );
        assert_eq!(tries.get(), ATTEMPTS);
        tries.set(0);
        assert_eq!(
            again(|| "t".to_owned(), fail, |_, _| None).await,
            Err("cut")
        );
        assert_eq!(tries.get(), 1);
    }
}
