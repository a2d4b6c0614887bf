pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod export;
pub mod gzip;
pub mod run;
