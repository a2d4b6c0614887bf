//! A writer that passes writes through while hashing them: blob files and
//! build contexts get their digest as they are written, never read twice.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

use crate::oci::Digest;

pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, the `sha256:<hex>` digest and the size of exactly
    /// what was written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::of_hasher(self.hasher), self.size)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_size_are_of_what_was_written() {
        let mut out = Hashing::new(Vec::new());
        out.write_all(b"hello ").unwrap();
        out.write_all(b"world").unwrap();
        let (inner, digest, size) = out.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(size, 11);
        assert_eq!(
            digest,
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(digest, crate::registry::sha256_digest(b"hello world"));
    }
}
