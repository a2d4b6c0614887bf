//! Waiting for the images an image builds on: before `publish` builds an
//! image whose matrix entry names bases in `depends-on`, each base's image
//! of this commit (its SHA tag) must be in the registry, and the build
//! takes exactly that digest.
//!
//! Pure: `policy` (the inputs' forms, when to look again, when to log);
//! I/O: `jobs` (this run's jobs from the GitHub API, to stop early when a
//! base's job failed).

pub mod jobs;
pub mod policy;
