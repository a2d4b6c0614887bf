//! Rendering for people: job-summary markdown (pure).

pub mod check_run;
pub mod plan;
pub mod publish;
pub mod scan;

/// Escapes text for a markdown table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
