//! registry-action: a monorepo's container-image pipeline in one binary.
//!
//! The pipeline, in the order a run walks it:
//! `cli` (inputs from flags or `INPUT_*`) → `actions` (the runner contract)
//! → `plan` (changed paths → image set → matrix) → `commands` (one file per
//! command, orchestration only): `publish` builds through `engine`, scans
//! with `scan` through the `gate`, pushes through `registry` with the tags `tags` decides;
//! `report` renders summaries, annotations and check runs; `bases` waits
//! for the monorepo images an image builds on.
//! Pure helpers: `names` (the OCI grammar of repository names, tags and
//! digests, checked wherever a name comes in), `reference` (image names),
//! `metadata` (labels), `release`
//! (release tags, versions, prereleases), `build_key` (what makes a build
//! the same build),
//! `platform` (platforms, image indexes), `retention` (what a cleanup may
//! delete), `monitor` (health checks → alerts); `github` is the shared REST
//! client; `hub` is Docker Hub's own API (tag dates and deletes);
//! `repositories` names the repositories `cleanup`, `usage` and `monitor`
//! read and opens the store holding them; `limits` bounds every body read
//! from outside; `markdown` escapes untrusted text for summaries.

pub mod actions;
pub mod bases;
pub mod build_key;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod gate;
pub mod github;
pub mod hub;
pub mod inventory;
pub mod layers;
pub mod layout;
pub mod limits;
pub mod markdown;
pub mod metadata;
pub mod mirror;
pub mod monitor;
pub mod names;
pub mod oci;
pub mod packages;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod release;
pub mod report;
pub mod repositories;
pub mod retention;
pub mod scan;
pub mod supply;
pub mod tags;
pub mod time;
pub mod units;
pub mod usage;
pub mod validate;
pub mod web_api;

/// tests/fixtures, found the same way as by the integration tests and benches.
#[cfg(test)]
#[path = "../tests/it/support/fixtures.rs"]
mod fixtures;
