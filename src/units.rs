//! Quantities as people read and write them.

use std::time::Duration;

/// A byte count for people: B, KiB, MiB or GiB.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `30m`, `1m30s`, `45s`: as a log line says how long.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// A span as people write it (`30m`, `1h30m`, `36h`, `2w`, `1 day 12
/// hours`, or ISO 8601's `PT90S`), through jiff, with days of 24 hours.
/// `None` for anything else, a negative span, and months or years, whose
/// length varies.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let span: jiff::Span = text.trim().parse().ok()?;
    if span.get_months() != 0 || span.get_years() != 0 {
        return None;
    }
    let day = jiff::SpanRelativeTo::days_are_24_hours();
    let seconds = span.total((jiff::Unit::Second, day)).ok()?;
    (seconds >= 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_with_units_up_to_weeks() {
        let secs = Duration::from_secs;
        for (text, seconds) in [
            ("30m", 1800),
            (" 90s ", 90),
            ("1h30m", 5400),
            ("0s", 0),
            ("2w", 14 * 86_400),
            ("1 day 12 hours", 36 * 3600),
            ("PT90S", 90),
        ] {
            assert_eq!(parse_duration(text), Some(secs(seconds)), "{text}");
        }
        assert_eq!(parse_duration("1.5h"), Some(secs(5400)));
        for bad in [
            "",
            "30",
            "m",
            "-5m",
            "1mo",
            "1y",
            "a month",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_as_a_log_line_says_them() {
        let secs = Duration::from_secs;
        assert_eq!(duration(secs(45)), "45s");
        assert_eq!(duration(secs(1800)), "30m");
        assert_eq!(duration(secs(90)), "1m30s");
    }

    #[test]
    fn byte_counts_take_the_largest_unit_below_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
    }
}
