//! Storage over time (pure): the points each report carries forward, and
//! growth as a monthly rate.

use serde::{Deserialize, Serialize};

/// Points a report keeps: two months of nightly runs.
pub const KEPT: usize = 60;

const DAYS_PER_MONTH: f64 = 30.0;

/// One run's total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Point {
    /// RFC 3339, as the report's `generated`.
    pub generated: String,
    pub total_bytes: u64,
    /// All images' pulls a day since the run before, where the registry
    /// counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulls_per_day: Option<f64>,
}

/// Growth from `before` to `now` over `days`, scaled to 30 days. Less than
/// a day counts as one: minutes between two runs say nothing about a
/// month. `None` when there was nothing before to grow from.
pub fn monthly_growth(before: u64, now: u64, days: f64) -> Option<f64> {
    if before == 0 {
        return None;
    }
    let relative = (now as f64 - before as f64) / before as f64;
    Some(relative * DAYS_PER_MONTH / days.max(1.0))
}

/// The previous report's points (or its own total, for a `usage` report,
/// which has none), then `now`; the newest [`KEPT`].
pub fn extend(before: Option<(&[Point], Point)>, now: Point) -> Vec<Point> {
    let mut points = match before {
        Some((history, _)) if !history.is_empty() => history.to_vec(),
        Some((_, last)) => vec![last],
        None => Vec::new(),
    };
    points.push(now);
    let excess = points.len().saturating_sub(KEPT);
    points.drain(..excess);
    points
}

/// Days from one RFC 3339 time to another; `None` when either is unreadable.
pub fn days_between(from: &str, to: &str) -> Option<f64> {
    let (from, to) = (
        crate::time::unix_seconds(from)?,
        crate::time::unix_seconds(to)?,
    );
    Some((to - from) as f64 / 86_400.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(day: u32, total_bytes: u64) -> Point {
        Point {
            generated: format!("2026-11-{day:02}T03:00:00Z"),
            total_bytes,
            pulls_per_day: None,
        }
    }

    #[test]
    fn growth_is_scaled_to_a_month() {
        assert_eq!(monthly_growth(1000, 1100, 30.0), Some(0.1));
        assert_eq!(monthly_growth(1000, 1010, 1.0), Some(0.3));
        assert_eq!(monthly_growth(1000, 900, 15.0), Some(-0.2));
        // Minutes apart: taken as a day, not blown up to a month.
        assert_eq!(monthly_growth(1000, 1010, 0.001), Some(0.3));
        assert_eq!(monthly_growth(0, 10, 1.0), None);
        assert_eq!(
            days_between("2026-11-01T00:00:00Z", "2026-11-02T12:00:00Z"),
            Some(1.5)
        );
        assert_eq!(days_between("yesterday", "2026-11-02T12:00:00Z"), None);
    }

    #[test]
    fn history_carries_forward_and_is_bounded() {
        assert_eq!(extend(None, point(2, 5)), vec![point(2, 5)]);
        assert_eq!(
            extend(Some((&[], point(1, 4))), point(2, 5)),
            vec![point(1, 4), point(2, 5)],
            "a usage report's total starts the trend"
        );
        let long: Vec<Point> = (0..KEPT as u64).map(|n| point(1, n)).collect();
        let kept = extend(Some((&long, point(1, 0))), point(2, 99));
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].total_bytes, 1);
        assert_eq!(kept[KEPT - 1], point(2, 99));
    }
}
