//! Quantities as people read them.

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

#[cfg(test)]
mod tests {
    use super::*;

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
