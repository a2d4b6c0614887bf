//! `merge`: the images one job per platform pushed by digest
//! (`push-by-digest`), listed in one OCI index under the tags `publish`
//! would give them. It lives beside `publish`, whose inputs, tag rules and
//! push order it shares.

pub use super::publish::merge::run;
