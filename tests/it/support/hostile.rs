//! A registry on 127.0.0.1 that misbehaves as a hostile or broken one
//! would, for the one thing a test names, and answers like a small
//! docker-registry otherwise: `acme/app` with the tag `latest`, an image
//! manifest over one config blob. Plus the binary run under GNU time, so a
//! test reads the child's own peak memory and how long it ran.
//!
//! Every loop here ends by itself: a body stops when the client hangs up,
//! when the test drops the server, or after [`MAX_BODY`] bytes or
//! [`MAX_LIFE`], whichever comes first.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use registry_action::registry::sha256_digest;

use super::run::{Action, BINARY, Ran};

/// The one repository served.
pub const REPOSITORY: &str = "acme/app";
/// What "200 MB" means below.
pub const HUGE: u64 = 200_000_000;
/// An endless body is given up on here: past any limit, and more than the
/// child could hold under the 256 MiB the tests allow.
pub const MAX_BODY: u64 = 512 << 20;
/// No connection is served longer.
pub const MAX_LIFE: Duration = Duration::from_secs(120);
/// An upload up to this size is read and stored, even by
/// [`Misbehaviour::StalledUpload`].
pub const SMALL_UPLOAD: u64 = 1 << 20;

/// How many tags [`Misbehaviour::FanOut`] lists.
pub const FAN_OUT: usize = 64;
/// The size of each of [`Misbehaviour::FanOut`]'s configs: just under the
/// limit for one blob read into memory.
pub const FAN_OUT_CONFIG: u64 = 30 << 20;
/// How long a [`Misbehaviour::FanOut`] config's last byte waits for the
/// others.
pub const FAN_OUT_WAIT: Duration = Duration::from_secs(3);

/// The length of a [`Misbehaviour::TrickledAnswers`] answer: at a byte a
/// second, longer than [`MAX_LIFE`].
pub const TRICKLE_LENGTH: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// The manifest comes chunked and never ends.
    EndlessManifest,
    /// The manifest declares [`HUGE`] bytes (`Content-Length`) and sends them.
    HugeManifest,
    /// The tag list is [`HUGE`] bytes, chunked.
    HugeTagList,
    /// The config blob is [`HUGE`] bytes; its descriptor says [`config`]'s size.
    OversizedConfig,
    /// The manifest comes one byte a second.
    TrickledManifest,
    /// The config blob: its headers and half its bytes, then nothing.
    StalledConfig,
    /// Uploads of more than [`SMALL_UPLOAD`] bytes: taken until the socket
    /// is full, then never read again. Smaller ones are stored.
    StalledUpload,
    /// Uploads of more than [`SMALL_UPLOAD`] bytes: read whole, then never
    /// answered. Smaller ones are stored.
    UnansweredUpload,
    /// [`FAN_OUT`] tags, each an image with its own [`FAN_OUT_CONFIG`]-byte
    /// config, every one as its descriptor declares it but for its digest
    /// (the bytes are held before the digest can be checked).
    FanOut,
    /// Connections are accepted and requests read; nothing is answered.
    Silent,
    /// Every request, whatever it asks, is answered 200 with a JSON object
    /// padded to [`TRICKLE_LENGTH`] bytes, one byte a second: an HTTP API
    /// (GitHub's here) that no per-read timeout ever gives up on.
    TrickledAnswers,
}

pub struct Hostile {
    /// `127.0.0.1:port`, to use as the registry's name.
    pub address: String,
    state: Arc<State>,
}

struct State {
    misbehaviour: Misbehaviour,
    stop: AtomicBool,
    /// Body bytes the misbehaving answers got into the socket.
    sent: AtomicU64,
    /// [`Misbehaviour::FanOut`]'s configs sent but for their last byte.
    held: AtomicUsize,
}

/// The image config served (and declared in the manifest). Padded to
/// 512 KiB by a label, so that its whole transfer may take longer than a
/// stall (`request-timeout` plus a second per 32 KiB): a stalled transfer
/// fails by its stall, not by its total.
pub fn config() -> Vec<u8> {
    let pad = "x".repeat(512 << 10);
    format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-03-01T10:00:00Z","config":{{"Labels":{{"pad":"{pad}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes()
}

/// The image manifest `latest` names.
pub fn manifest() -> Vec<u8> {
    let config = config();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        sha256_digest(&config),
        config.len()
    )
    .into_bytes()
}

/// [`Misbehaviour::FanOut`]'s tag `t<i>`, the digest its config is
/// declared by, and its image manifest.
pub fn fan_out_tag(i: usize) -> (String, String, Vec<u8>) {
    let digest = format!("sha256:{:064x}", i + 1);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{FAN_OUT_CONFIG}}},"layers":[]}}"#
    );
    (format!("t{i}"), digest, manifest.into_bytes())
}

impl Hostile {
    pub fn start(misbehaviour: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            misbehaviour,
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            held: AtomicUsize::new(0),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let state = shared.clone();
                std::thread::spawn(move || state.serve(client));
            }
        });
        Hostile { address, state }
    }

    /// Body bytes the misbehaving answers got into the socket: what the
    /// client read, plus what the kernel buffered before it hung up.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// `http://address/v2/acme/app/<rest>`, as errors name it.
    pub fn url(&self, rest: &str) -> String {
        format!("http://{}/v2/{REPOSITORY}/{rest}", self.address)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(&self.address);
    }
}

impl State {
    fn serve(&self, mut client: TcpStream) {
        let Some(mut reader) = client.try_clone().ok().map(BufReader::new) else {
            return;
        };
        let Some((method, path, length)) = request(&mut reader) else {
            return;
        };
        let path = path.split('?').next().unwrap_or_default().to_owned();
        if self.misbehaviour == Misbehaviour::Silent {
            return self.hold(client);
        }
        if self.misbehaviour == Misbehaviour::TrickledAnswers {
            let body = format!("{:<TRICKLE_LENGTH$}", r#"{"id":4}"#);
            let _ = self.trickled(&mut client, body.as_bytes());
            return;
        }
        let uploads = format!("/v2/{REPOSITORY}/blobs/uploads/");
        if method == "POST" && path == uploads {
            let _ = write!(
                client,
                "HTTP/1.1 202 Accepted\r\nLocation: {uploads}session\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        if method == "PUT" && path.starts_with(&uploads) {
            if self.misbehaviour == Misbehaviour::StalledUpload && length > SMALL_UPLOAD {
                return self.idle();
            }
            let read = std::io::copy(&mut reader.take(length), &mut std::io::sink());
            if self.misbehaviour == Misbehaviour::UnansweredUpload && length > SMALL_UPLOAD {
                return self.idle();
            }
            if read.is_ok_and(|n| n == length) {
                let _ = write!(
                    client,
                    "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
            return;
        }
        let repo = format!("/v2/{REPOSITORY}");
        if self.misbehaviour == Misbehaviour::FanOut && path != "/v2/" {
            let _ = self.fan_out(&mut client, &method, &path);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let manifest = manifest();
        let config = config();
        let is_manifest = path == format!("{repo}/manifests/latest")
            || path == format!("{repo}/manifests/{}", sha256_digest(&manifest));
        let _ = if path == "/v2/" {
            answer(&mut client, &method, 200, "application/json", b"{}", None)
        } else if path == format!("{repo}/tags/list") {
            match self.misbehaviour {
                Misbehaviour::HugeTagList => self.huge_tag_list(&mut client),
                _ => {
                    let list = format!(r#"{{"name":"{REPOSITORY}","tags":["latest"]}}"#);
                    answer(
                        &mut client,
                        &method,
                        200,
                        "application/json",
                        list.as_bytes(),
                        None,
                    )
                }
            }
        } else if is_manifest && method == "GET" {
            self.manifest(&mut client, &manifest)
        } else if is_manifest {
            let digest = sha256_digest(&manifest);
            answer(
                &mut client,
                &method,
                200,
                MANIFEST_TYPE,
                &manifest,
                Some(&digest),
            )
        } else if path == format!("{repo}/blobs/{}", sha256_digest(&config)) {
            match self.misbehaviour {
                // Chunked: no length to refuse it by, only the reading.
                Misbehaviour::OversizedConfig => self.chunked(&mut client, &config, HUGE),
                Misbehaviour::StalledConfig => self.stalled(&mut client, &config),
                _ => answer(
                    &mut client,
                    &method,
                    200,
                    "application/octet-stream",
                    &config,
                    None,
                ),
            }
        } else {
            let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#;
            answer(&mut client, &method, 404, "application/json", unknown, None)
        };
        let _ = client.shutdown(Shutdown::Both);
    }

    fn manifest(&self, client: &mut TcpStream, manifest: &[u8]) -> std::io::Result<()> {
        match self.misbehaviour {
            Misbehaviour::EndlessManifest => self.chunked(client, manifest, MAX_BODY),
            Misbehaviour::HugeManifest => self.declared(client, manifest, HUGE),
            Misbehaviour::TrickledManifest => self.trickled(client, manifest),
            _ => answer(
                client,
                "GET",
                200,
                MANIFEST_TYPE,
                manifest,
                Some(&sha256_digest(manifest)),
            ),
        }
    }

    /// [`Misbehaviour::FanOut`]'s tag list, manifests and configs.
    fn fan_out(&self, client: &mut TcpStream, method: &str, path: &str) -> std::io::Result<()> {
        let repo = format!("/v2/{REPOSITORY}");
        let tags = (0..FAN_OUT).map(fan_out_tag);
        if path == format!("{repo}/tags/list") {
            let names: Vec<String> = tags.map(|(tag, ..)| tag).collect();
            let list = serde_json::json!({"name": REPOSITORY, "tags": names}).to_string();
            return answer(
                client,
                method,
                200,
                "application/json",
                list.as_bytes(),
                None,
            );
        }
        for (tag, digest, manifest) in tags {
            if path == format!("{repo}/manifests/{tag}")
                || path == format!("{repo}/manifests/{}", sha256_digest(&manifest))
            {
                let own = sha256_digest(&manifest);
                return answer(client, method, 200, MANIFEST_TYPE, &manifest, Some(&own));
            }
            if path == format!("{repo}/blobs/{digest}") {
                return self.held_back(client);
            }
        }
        let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#;
        answer(client, method, 404, "application/json", unknown, None)
    }

    /// A [`FAN_OUT_CONFIG`]-byte config but its last byte, which waits
    /// until every config is that far or [`FAN_OUT_WAIT`] passed: a client
    /// that reads them all at once then holds them all at once.
    fn held_back(&self, client: &mut TcpStream) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {FAN_OUT_CONFIG}\r\nConnection: close\r\n\r\n"
        );
        client.write_all(head.as_bytes())?;
        let filler = filler();
        let mut left = FAN_OUT_CONFIG - 1;
        while left > 0 && self.serving() {
            let n = filler
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            client.write_all(&filler[..n])?;
            left -= n as u64;
            self.sent.fetch_add(n as u64, Ordering::SeqCst);
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        while self.held.load(Ordering::SeqCst) < FAN_OUT
            && started.elapsed() < FAN_OUT_WAIT
            && self.serving()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        client.write_all(b"}")?;
        self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn huge_tag_list(&self, client: &mut TcpStream) -> std::io::Result<()> {
        let start = format!(r#"{{"name":"{REPOSITORY}","tags":["#);
        self.chunked(client, start.as_bytes(), HUGE)
    }

    /// `start`, then filler, chunked, until `total` bytes or the client
    /// hangs up: no end a client could wait for.
    fn chunked(&self, client: &mut TcpStream, start: &[u8], total: u64) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_TYPE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        client.write_all(head.as_bytes())?;
        let filler = filler();
        let mut piece: &[u8] = start;
        let mut sent = 0;
        while sent < total && self.serving() {
            write!(client, "{:x}\r\n", piece.len())?;
            client.write_all(piece)?;
            client.write_all(b"\r\n")?;
            sent += piece.len() as u64;
            self.sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
            piece = &filler;
        }
        Ok(())
    }

    /// A `Content-Length` of `total`, then `start` and filler up to it.
    fn declared(&self, client: &mut TcpStream, start: &[u8], total: u64) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_TYPE}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        );
        client.write_all(head.as_bytes())?;
        let filler = filler();
        let mut piece: &[u8] = start;
        let mut sent = 0;
        while sent < total && self.serving() {
            let n = piece
                .len()
                .min(usize::try_from(total - sent).unwrap_or(usize::MAX));
            client.write_all(&piece[..n])?;
            sent += n as u64;
            self.sent.fetch_add(n as u64, Ordering::SeqCst);
            piece = &filler;
        }
        Ok(())
    }

    /// The right body with the right headers, one byte a second.
    fn trickled(&self, client: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_TYPE}\r\nDocker-Content-Digest: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            sha256_digest(body),
            body.len()
        );
        client.write_all(head.as_bytes())?;
        let started = Instant::now();
        for byte in body {
            if !self.serving() || started.elapsed() > MAX_LIFE {
                break;
            }
            client.write_all(&[*byte])?;
            self.sent.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    }

    /// The right headers for `body`, half of it, then nothing more.
    fn stalled(&self, client: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
        write!(
            client,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        client.write_all(&body[..body.len() / 2])?;
        client.flush()?;
        self.idle();
        Ok(())
    }

    /// Keeps the connection as it is, reading nothing, until the test is
    /// done with the server.
    fn idle(&self) {
        let started = Instant::now();
        while self.serving() && started.elapsed() < MAX_LIFE {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Keeps the connection open, answering nothing, until the client
    /// hangs up.
    fn hold(&self, mut client: TcpStream) {
        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
        let started = Instant::now();
        let mut buf = [0; 1024];
        while self.serving() && started.elapsed() < MAX_LIFE {
            match client.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }

    fn serving(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
    }
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// 64 KiB of JSON-ish text: what a body that goes on too long is made of.
fn filler() -> Vec<u8> {
    br#""0123456789abcdef0123456789abcdef","#.repeat(2048)
}

/// Method, path and `Content-Length` of the one request read; its body,
/// if any, is left in `reader`.
fn request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, u64)> {
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    // Headers, up to the blank line; bounded like everything here.
    for _ in 0..200 {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    Some((method, path, length))
}

fn answer(
    client: &mut TcpStream,
    method: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
    digest: Option<&str>,
) -> std::io::Result<()> {
    let digest = digest.map_or(String::new(), |d| format!("Docker-Content-Digest: {d}\r\n"));
    write!(
        client,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{digest}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        client.write_all(body)?;
    }
    Ok(())
}

/// A run of the binary, measured.
pub struct Measured {
    pub ran: Ran,
    pub elapsed: Duration,
    /// The child's own peak resident memory (GNU time's `%M`, from wait4).
    pub max_rss_kib: u64,
}

/// GNU time: the one measure of a child's own peak memory that doesn't
/// need unsafe code (`RUSAGE_CHILDREN` is the peak of every child this
/// test binary ever reaped). `scripts/test` installs it.
const TIME: &str = "/usr/bin/time";

/// Runs `action` under GNU time; killed (and the test failed) if it is
/// still running `limit` after it started.
pub fn run_measured(action: &Action, limit: Duration) -> Measured {
    assert!(
        Path::new(TIME).exists(),
        "{TIME} (GNU time) measures the child's memory; install it (apt-get install time)"
    );
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let inner = action.command();
    assert_eq!(inner.get_program(), BINARY);
    let mut timed = Command::new(TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in inner.get_envs() {
        if let Some(value) = value {
            timed.env(name, value);
        }
    }
    if let Some(dir) = inner.get_current_dir() {
        timed.current_dir(dir);
    }
    // Its own group, so that an overrun kills GNU time and the binary both.
    std::os::unix::process::CommandExt::process_group(&mut timed, 0);
    let started = Instant::now();
    let mut child = timed.spawn().unwrap();
    let pid = child.id();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            panic!("the run outlived {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let measured = std::fs::read_to_string(rss_file.path()).unwrap();
    let max_rss_kib = measured
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("GNU time wrote no peak memory: {measured:?}"));
    Measured {
        ran: action.finish(output),
        elapsed,
        max_rss_kib,
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}
