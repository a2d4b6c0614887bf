//! The runner contract: everything a GitHub, Forgejo or Gitea runner hands a
//! container action (context, inputs, event payload) and everything it reads
//! back (output file, step summary, workflow commands on stdout).

pub mod boundary;
pub mod context;
pub mod event;
pub mod inputs;
pub mod log;
pub mod outputs;
pub mod summary;
pub mod workflow;
