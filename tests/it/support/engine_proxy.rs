//! A unix-socket proxy in front of the real engine that notes every
//! request it passes on, and the bytes each connection sent the engine,
//! and, if asked, answers `POST /session` (or `POST /grpc`) with 404, as
//! an engine without BuildKit (Podman's Docker API, say) does.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::requests::Requests;

pub struct EngineProxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Requests,
    sent: Sent,
}

/// Per connection: its first request (as `requests` shows it) and the
/// bytes sent towards the engine on it, hijacked protocols included.
type Sent = Arc<Mutex<Vec<(String, u64)>>>;

impl EngineProxy {
    /// Passes everything through.
    pub fn start(engine: &Path) -> Self {
        Self::serving(engine, None)
    }

    /// Refuses BuildKit sessions, passes the rest through.
    pub fn refusing_sessions(engine: &Path) -> Self {
        Self::serving(engine, Some("POST /session"))
    }

    /// Refuses BuildKit's control API, passes the rest through.
    pub fn refusing_control_api(engine: &Path) -> Self {
        Self::serving(engine, Some("POST /grpc"))
    }

    fn serving(engine: &Path, refused: Option<&'static str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let engine = engine.to_owned();
        let requests = Requests::default();
        let noted = requests.clone();
        let sent = Sent::default();
        let counted = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (engine, noted, counted) = (engine.clone(), noted.clone(), counted.clone());
                std::thread::spawn(move || serve(client, &engine, refused, noted, counted));
            }
        });
        EngineProxy {
            _dir: dir,
            socket,
            requests,
            sent,
        }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The requests sent so far, in order, as `POST /build`: method and
    /// path, without the API version or the query.
    pub fn requests(&self) -> Vec<String> {
        self.requests.all().iter().map(|r| unversioned(r)).collect()
    }

    /// Bytes sent to the engine on the connections that began with
    /// `first` (e.g. `POST /session`), counted as each one ends.
    pub fn bytes_sent_on(&self, first: &str) -> u64 {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(request, _)| request == first)
            .map(|(_, bytes)| bytes)
            .sum()
    }
}

/// The first request of a connection decides whether it is refused (a
/// session upgrades its connection, so it is always a first request); the
/// rest goes to the engine as it came, its request lines noted.
fn serve(
    mut client: UnixStream,
    engine: &Path,
    refused: Option<&str>,
    noted: Requests,
    counted: Sent,
) {
    let Some(head) = request_head(&mut client) else {
        return;
    };
    let mut lines = noted.connection();
    let first = lines.feed(&head).first().map(|r| unversioned(r));
    if refused.is_some() && first.as_deref() == refused {
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
    let head_len = head.len() as u64;
    let upstream = std::thread::spawn(move || {
        let mut buf = vec![0; 64 << 10];
        let mut bytes = head_len;
        while let Ok(n @ 1..) = client_read.read(&mut buf) {
            lines.feed(&buf[..n]);
            bytes += n as u64;
            if server_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_write.shutdown(std::net::Shutdown::Write);
        bytes
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    if let (Ok(bytes), Some(first)) = (upstream.join(), first) {
        counted.lock().unwrap().push((first, bytes));
    }
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

/// `POST /v1.47/build` as `POST /build`.
fn unversioned(request: &str) -> String {
    let (method, path) = request.split_once(' ').unwrap_or((request, ""));
    let path = path
        .strip_prefix("/v1.")
        .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or(path);
    format!("{method} {path}")
}
