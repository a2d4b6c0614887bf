//! `plan`: which images a push changed, as a build matrix.
//!
//! Pure core — `strategy` (event → ranges), `select` (changed paths →
//! images, dependency order), `matrix` — with the I/O at the edges:
//! `discover` (the image directories on disk) and the two change sources,
//! `git` and `github`, behind the `source` trait.

pub mod discover;
pub mod dockerfile;
pub mod filter;
pub mod git;
pub mod github;
pub mod image;
pub mod matrix;
pub mod outcome;
pub mod select;
pub mod source;
pub mod strategy;
