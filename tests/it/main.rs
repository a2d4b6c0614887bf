//! One integration binary: the plan against real git repositories, against
//! a replay of the GitHub API, and the binary run as a runner runs it.

#![allow(clippy::unwrap_used)]

mod action_image;
mod action_yml;
mod architecture;
mod bases;
mod boundary;
mod buildkit;
mod buildkit_session;
mod check_run;
mod cleanup;
mod clone;
mod docs;
mod escape;
mod ghcr;
mod hostile_bounds;
mod hostile_names;
mod hub;
mod layers;
mod mirror;
mod monitor;
mod monitor_harbor;
mod multiplatform;
mod plan_git;
mod plan_github;
mod publish;
mod publish_layers;
mod registry;
mod release;
mod runner;
mod scan;
mod scan_container;
mod services;
mod supply;
mod supply_attestations;
mod supply_bundles;
mod supply_merge;
mod supply_provenance;
mod supply_referrers;
mod supply_trivy;
mod support;
mod unchanged;
mod unchanged_platforms;
mod upload;
mod usage;
