//! Test support: real git repositories, the binary run as a runner runs it,
//! and a local HTTP server replaying the real GitHub payloads.

#![allow(dead_code)]

pub mod cosign;
pub mod engine_proxy;
pub mod git;
pub mod hostile;
pub mod images;
pub mod log;
pub mod mermaid;
pub mod own_registry;
pub mod proxy;
pub mod replay;
pub mod run;
pub mod services;
pub mod trivy;
pub mod trivy_db;

use std::path::PathBuf;

/// `../shared/fixtures`, where the real payloads live.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

pub fn fixture_json(relative: &str) -> serde_json::Value {
    json_at(fixtures().join(relative))
}

/// `tests/fixtures`: documented payloads `../shared/fixtures` lacks (each
/// folder's README gives the origins).
pub fn own_fixture_json(relative: &str) -> serde_json::Value {
    json_at(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(relative),
    )
}

fn json_at(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); the tests read ../shared/fixtures beside the checkout and tests/fixtures",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("fixture is JSON")
}
