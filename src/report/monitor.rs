//! The `monitor` job summary (pure): the status of each image per check,
//! the alerts worst first, and the storage and pull trends as Mermaid
//! charts.

use std::fmt::Write as _;

use crate::monitor::pulls::figure;
use crate::monitor::trend::Point;
use crate::monitor::{Level, Report, Row, percent};
use crate::report::{bytes, code, prose};

pub fn summary(report: &Report) -> String {
    let mut md = format!(
        "### registry-action monitor: {} — {}\n\n",
        code(&report.usage.registry),
        badge(Some(report.status))
    );
    md.push_str(&table(&report.images));
    md.push_str(&alerts(report));
    // A pull that succeeded has its time, slow or not.
    let pulled = report
        .images
        .iter()
        .filter(|row| row.pull_seconds.is_some())
        .count();
    let _ = writeln!(
        md,
        "\n**Pulled:** {pulled} of {} · **stored:** {}{}\n",
        report.images.len(),
        bytes(report.usage.total_bytes),
        report
            .pass_rate
            .map(|r| format!(" · **scan pass rate:** {}", percent(r)))
            .unwrap_or_default()
    );
    md.push_str(&not_counted(report));
    md.push_str(&chart(&report.history));
    md.push_str(&pulls_chart(&report.history));
    md
}

/// Said once, where no image has a pull count to judge.
fn not_counted(report: &Report) -> String {
    if report.images.is_empty() || report.images.iter().any(|row| row.downloads.is_some()) {
        return String::new();
    }
    format!(
        "{} keeps no pull counts (Docker Hub does; Harbor with `harbor-api`), so unusual pulls aren't checked.\n\n",
        code(&report.usage.registry)
    )
}

fn badge(level: Option<Level>) -> &'static str {
    match level {
        None => "—",
        Some(Level::Ok) => "✅ ok",
        Some(Level::Warning) => "⚠️ warning",
        Some(Level::Critical) => "❌ critical",
    }
}

fn table(rows: &[Row]) -> String {
    let mut md = String::from(
        "| image | auth | pull | storage | scan | pulls a day |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let pull_time = row
            .pull_seconds
            .map(|s| format!(" ({s:.1} s)"))
            .unwrap_or_default();
        let rate = match (row.downloads, row.pulls_per_day) {
            (None, _) => "—".to_owned(),
            (Some(level), rate) => format!(
                "{}{}",
                badge(Some(level)),
                rate.map(|r| format!(" ({})", figure(r)))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {}{pull_time} | {} | {} | {rate} |",
            code(&row.repository),
            badge(row.auth),
            badge(row.pull),
            badge(row.storage),
            badge(row.scan)
        );
    }
    md
}

fn alerts(report: &Report) -> String {
    if report.alerts.is_empty() {
        return "\nNo alerts.\n".into();
    }
    let mut md = String::from("\n**Alerts**\n\n");
    for alert in &report.alerts {
        let _ = writeln!(
            md,
            "- {} · {} · {}: {}",
            badge(Some(alert.level)),
            alert.check.as_str(),
            code(&alert.subject),
            prose(&alert.message)
        );
    }
    md
}

/// The stored total per run as a Mermaid `xychart-beta` line, which
/// GitHub and Forgejo render in a summary.
pub fn chart(history: &[Point]) -> String {
    let top = history.iter().map(|p| p.total_bytes).max().unwrap_or(0);
    let (unit, scale) = unit(top);
    let labels = labels(history);
    let values: Vec<String> = history
        .iter()
        .map(|p| format!("{:.2}", p.total_bytes as f64 / scale))
        .collect();
    let ceiling = (top as f64 / scale * 1.1).ceil().max(1.0);
    format!(
        "```mermaid\nxychart-beta\n    title \"Stored, all images\"\n    x-axis [{}]\n    y-axis \"{unit}\" 0 --> {ceiling}\n    line [{}]\n```\n",
        labels.join(", "),
        values.join(", ")
    )
}

/// All images' pulls a day per run, beside the storage chart; only the
/// runs that had a rate to give (none the first night, none where the
/// registry keeps no counts).
pub fn pulls_chart(history: &[Point]) -> String {
    let counted: Vec<(&Point, f64)> = history
        .iter()
        .filter_map(|p| Some((p, p.pulls_per_day?)))
        // From the previous report, a file: only what can be a rate.
        .filter(|(_, rate)| rate.is_finite() && *rate >= 0.0)
        .collect();
    if counted.is_empty() {
        return String::new();
    }
    let points: Vec<Point> = counted.iter().map(|(p, _)| (*p).clone()).collect();
    let top = counted.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let values: Vec<String> = counted.iter().map(|(_, r)| format!("{r:.1}")).collect();
    let ceiling = (top * 1.1).ceil().max(1.0);
    format!(
        "```mermaid\nxychart-beta\n    title \"Pulls a day, all images\"\n    x-axis [{}]\n    y-axis \"pulls a day\" 0 --> {ceiling}\n    line [{}]\n```\n",
        labels(&points).join(", "),
        values.join(", ")
    )
}

fn unit(top: u64) -> (&'static str, f64) {
    match top {
        n if n >= 1 << 30 => ("GiB", f64::from(1 << 30)),
        n if n >= 1 << 20 => ("MiB", f64::from(1 << 20)),
        n if n >= 1 << 10 => ("KiB", 1024.0),
        _ => ("bytes", 1.0),
    }
}

/// `"MM-DD HH:MM"` per point, quoted; a label that repeats (two runs in a
/// minute) gets a number, since the chart merges equal categories.
fn labels(history: &[Point]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    history
        .iter()
        .map(|p| {
            let short = p
                .generated
                .get(5..16)
                .map_or_else(|| p.generated.clone(), |s| s.replace('T', " "));
            // From the previous report, a file: a quote or a line break
            // would end the label or the chart.
            let short: String = short
                .chars()
                .filter(|c| *c != '"' && !c.is_control())
                .collect();
            let repeats = seen.iter().filter(|s| **s == short).count();
            seen.push(short.clone());
            if repeats > 0 {
                format!("\"{short} #{}\"", repeats + 1)
            } else {
                format!("\"{short}\"")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::monitor::{Alert, Check};
    use crate::usage;

    fn point(generated: &str, total_bytes: u64) -> Point {
        Point {
            generated: generated.into(),
            total_bytes,
            pulls_per_day: None,
        }
    }

    #[test]
    fn the_trend_is_an_xychart() {
        let md = chart(&[
            point("2026-11-27T03:00:00Z", 3 << 20),
            point("2026-11-28T03:00:00Z", 5 << 20),
            point("2026-11-28T03:00:30Z", 5 << 20),
        ]);
        assert_eq!(
            md,
            "```mermaid\nxychart-beta\n    title \"Stored, all images\"\n    x-axis [\"11-27 03:00\", \"11-28 03:00\", \"11-28 03:00 #2\"]\n    y-axis \"MiB\" 0 --> 6\n    line [3.00, 5.00, 5.00]\n```\n"
        );
    }

    #[test]
    fn status_table_then_alerts() {
        let report = Report {
            usage: usage::Report {
                registry: "127.0.0.1:5000".into(),
                generated: "2026-11-28T03:00:00Z".into(),
                total_bytes: 2048,
                repositories: Vec::new(),
            },
            history: vec![point("2026-11-28T03:00:00Z", 2048)],
            status: Level::Critical,
            pass_rate: Some(0.5),
            images: vec![Row {
                repository: "acme/app".into(),
                auth: Some(Level::Ok),
                pull: Some(Level::Warning),
                storage: None,
                scan: Some(Level::Critical),
                pull_seconds: Some(3.25),
                blobs: Some(3),
                fetched: Some(1),
                downloads: None,
                pulls: None,
                pulls_per_day: None,
                pull_rates: Vec::new(),
            }],
            alerts: vec![Alert {
                level: Level::Critical,
                check: Check::Scan,
                subject: "acme/app".into(),
                message: "`acme/app:latest` has 1 critical finding(s): CVE-1".into(),
            }],
        };
        let md = summary(&report);
        assert!(
            md.starts_with("### registry-action monitor: `127.0.0.1:5000` — ❌ critical\n"),
            "{md}"
        );
        assert!(
            md.contains("| `acme/app` | ✅ ok | ⚠️ warning (3.2 s) | — | ❌ critical | — |"),
            "{md}"
        );
        assert!(
            md.contains("- ❌ critical · scan · `acme/app`: `acme/app:latest` has 1 critical finding(s): CVE-1"),
            "{md}"
        );
        assert!(
            md.contains("**Pulled:** 1 of 1 · **stored:** 2.0 KiB · **scan pass rate:** 50%"),
            "{md}"
        );
        assert!(md.contains("xychart-beta"), "{md}");
        assert_eq!(
            md.matches("keeps no pull counts").count(),
            1,
            "said once: {md}"
        );
        assert!(
            md.contains("`127.0.0.1:5000` keeps no pull counts (Docker Hub does; Harbor with `harbor-api`), so unusual pulls aren't checked."),
            "{md}"
        );
    }

    #[test]
    fn the_pull_rate_is_charted_for_the_runs_that_have_one() {
        let mut history = vec![
            point("2026-11-27T03:00:00Z", 1 << 20),
            point("2026-11-28T03:00:00Z", 1 << 20),
            point("2026-11-29T03:00:00Z", 1 << 20),
        ];
        assert_eq!(pulls_chart(&history), "");
        history[1].pulls_per_day = Some(120.0);
        history[2].pulls_per_day = Some(12.5);
        assert_eq!(
            pulls_chart(&history),
            "```mermaid\nxychart-beta\n    title \"Pulls a day, all images\"\n    x-axis [\"11-28 03:00\", \"11-29 03:00\"]\n    y-axis \"pulls a day\" 0 --> 132\n    line [120.0, 12.5]\n```\n"
        );
    }
}
