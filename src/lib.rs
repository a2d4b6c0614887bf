//! registry-action: a monorepo's container-image pipeline in one binary.
//!
//! The pipeline, in the order a run walks it:
//! `cli` (inputs from flags or `INPUT_*`) → `actions` (the runner contract) →
//! `plan` (changed paths → image set → matrix) → `commands` (orchestration).
//! `reference` holds the pure image-reference grammar the plan uses to match
//! `FROM` lines against the images it publishes.

pub mod actions;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod github;
pub mod metadata;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod report;
pub mod retention;
pub mod scan;
pub mod tags;
