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

/// A writer tests read back after the code under test took ownership of a
/// clone of it.
#[cfg(test)]
pub(crate) mod capture {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        pub fn text(&self) -> String {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}
