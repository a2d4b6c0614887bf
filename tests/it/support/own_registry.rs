//! A docker-registry of the test's own, for what the shared ones can't be:
//! one with deletes disabled, or one the test stops midway.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct OwnRegistry {
    /// `127.0.0.1:port`.
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnRegistry {
    pub fn start(delete_enabled: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Bound then released: the registry takes the port a moment later.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete_enabled}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("docker-registry didn't start ({e}); install it: apt-get install -y docker-registry")
            });
        let address = format!("127.0.0.1:{port}");
        let registry = OwnRegistry {
            address,
            child,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.address).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry on {} never answered", registry.address);
    }
}

impl OwnRegistry {
    /// Where the registry keeps a blob's bytes (distribution's filesystem
    /// driver layout), for tests that damage them. (The mirror bench
    /// shares this file and has no use for it.)
    #[allow(dead_code)]
    pub fn blob_data(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
