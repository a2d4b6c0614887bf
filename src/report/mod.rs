//! Rendering for people: job-summary markdown (pure).

pub mod check_run;
pub mod cleanup;
pub mod monitor;
pub mod plan;
pub mod publish;
pub mod scan;
pub mod usage;
pub mod verify;

/// A byte count for people: B, KiB, MiB or GiB.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Escapes text for a markdown table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// One finding in a sentence, for annotations: id, package, the fix, the
/// advisory's title (unless it only repeats the id) and its link.
pub fn finding_message(f: &crate::scan::Finding) -> String {
    let fix = match &f.fixed {
        Some(fixed) => format!("fixed in {fixed}"),
        None => "no fix yet".to_owned(),
    };
    let mut text = format!("{} in {} {} ({fix})", f.id, f.package, f.installed);
    if !f.title.is_empty() && f.title != f.id {
        text.push_str(": ");
        text.push_str(&f.title);
    }
    if let Some(url) = &f.url {
        text.push('\n');
        text.push_str(url);
    }
    text
}
