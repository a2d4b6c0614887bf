//! Where the tests' data files are: `tests/fixtures`, in the repository
//! (each folder's README names every file's origin and licence). The one
//! way to reach them for the integration tests, the unit tests (src/lib.rs
//! includes this file) and the benches (benches/common includes it).

use std::path::PathBuf;

/// `tests/fixtures/<relative>`, a file or a folder; panics naming it when
/// it is not there.
pub fn fixture(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    assert!(
        path.exists(),
        "fixture {} is missing: tests/fixtures is part of the repository, so a checkout without it is incomplete",
        path.display()
    );
    path
}

/// The bytes of `tests/fixtures/<relative>`.
pub fn fixture_bytes(relative: &str) -> Vec<u8> {
    let path = fixture(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
