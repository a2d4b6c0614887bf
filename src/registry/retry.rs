//! When to try a request again, and how long to wait (pure).

use std::time::Duration;

/// Attempts per request, the first included: bounded, as every loop here is.
pub const ATTEMPTS: u32 = 4;
/// No server gets to park a run longer than this per retry.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// 429 and 5xx are worth another try; anything else is an answer.
pub fn retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// How long to wait before another try at what answered with `headers`.
pub fn pause(attempt: u32, headers: &http::HeaderMap) -> Duration {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    wait(attempt, header("retry-after"), header("x-retry-after"), now)
}

/// `Retry-After` (seconds) or Docker Hub's `X-Retry-After` (a unix time)
/// when given, else exponential back-off from half a second.
pub fn wait(
    attempt: u32,
    retry_after: Option<&str>,
    x_retry_after: Option<&str>,
    now_unix: u64,
) -> Duration {
    let told = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| {
            x_retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|at| Duration::from_secs(at.saturating_sub(now_unix)))
        });
    told.unwrap_or_else(|| Duration::from_millis(500 << attempt.min(6)))
        .min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits() {
        assert_eq!(wait(0, Some("3"), None, 0), Duration::from_secs(3));
        assert_eq!(wait(0, None, Some("1005"), 1000), Duration::from_secs(5));
        assert_eq!(wait(0, Some("9999"), None, 0), MAX_WAIT);
        assert_eq!(wait(0, None, None, 0), Duration::from_millis(500));
        assert_eq!(wait(2, Some("soon"), None, 0), Duration::from_millis(2000));
    }

    #[test]
    fn which_statuses() {
        assert!(retryable(429) && retryable(503) && !retryable(404) && !retryable(401));
    }
}
