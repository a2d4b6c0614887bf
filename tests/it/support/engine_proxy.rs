//! Unix-socket proxies in front of the real engine. [`NoSessionEngine`]
//! answers `POST /session` with 404, as an engine without BuildKit
//! (Podman's Docker API, say) does, and passes every other connection
//! through untouched; [`CountingEngine`] passes everything and counts the
//! connections, for a test that must show the engine was never asked.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct NoSessionEngine(Forwarder);

impl NoSessionEngine {
    pub fn start(engine: &Path) -> Self {
        NoSessionEngine(Forwarder::start(engine, true))
    }

    pub fn docker_host(&self) -> String {
        self.0.docker_host()
    }
}

pub struct CountingEngine(Forwarder);

impl CountingEngine {
    pub fn start(engine: &Path) -> Self {
        CountingEngine(Forwarder::start(engine, false))
    }

    pub fn docker_host(&self) -> String {
        self.0.docker_host()
    }

    /// Connections clients opened to the engine through this proxy.
    pub fn connections(&self) -> usize {
        self.0.connections.load(Ordering::SeqCst)
    }
}

struct Forwarder {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    connections: Arc<AtomicUsize>,
}

impl Forwarder {
    fn start(engine: &Path, refuse_sessions: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let engine = engine.to_owned();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let engine = engine.clone();
                std::thread::spawn(move || serve(client, &engine, refuse_sessions));
            }
        });
        Forwarder {
            _dir: dir,
            socket,
            connections,
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

/// The first request of a connection decides: a session is refused when
/// `refuse_sessions` says so, the rest goes to the engine as it came.
fn serve(mut client: UnixStream, engine: &Path, refuse_sessions: bool) {
    let Some(head) = request_head(&mut client) else {
        return;
    };
    let first_line =
        String::from_utf8_lossy(&head[..head.iter().position(|b| *b == b'\n').unwrap_or(0)])
            .into_owned();
    if refuse_sessions && first_line.starts_with("POST ") && first_line.contains("/session ") {
        let body = "page not found";
        let _ = write!(
            client,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let Ok(mut server) = UnixStream::connect(engine) else {
        return;
    };
    if server.write_all(&head).is_err() {
        return;
    }
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

/// Bytes up to the end of the first request's head (at most 64 KiB).
fn request_head(client: &mut UnixStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 || client.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}
