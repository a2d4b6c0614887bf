//! Test support: real git repositories, the binary run as a runner runs it,
//! and a local HTTP server replaying the real GitHub payloads.

#![allow(dead_code)]

pub mod cosign;
pub mod engine_proxy;
pub mod fixtures;
pub mod git;
pub mod hostile;
pub mod images;
pub mod listing;
pub mod log;
pub mod markdown;
pub mod mermaid;
pub mod own_registry;
pub mod packages;
pub mod proxy;
pub mod referrers_registry;
pub mod replay;
pub mod requests;
pub mod run;
pub mod secret;
pub mod services;
pub mod slsa;
pub mod trivy;
pub mod trivy_db;

pub use fixtures::{fixture, fixture_bytes};

/// `tests/fixtures/<relative>`, parsed as JSON.
pub fn fixture_json(relative: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture_bytes(relative))
        .unwrap_or_else(|e| panic!("fixture {relative} is not JSON: {e}"))
}

/// `url` (`http://127.0.0.1:…`) as an address the loopback rule does not
/// count as loopback (IPv4-mapped IPv6) that still reaches the same local
/// server: a request sent to it despite the rule would arrive there.
pub fn not_loopback(url: &str) -> String {
    let rest = url
        .strip_prefix("http://127.0.0.1")
        .expect("a server on 127.0.0.1");
    format!("http://[::ffff:127.0.0.1]{rest}")
}
