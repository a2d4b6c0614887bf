pub mod build;
pub mod buildkit;
pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod export;
pub mod progress;
pub mod run;
