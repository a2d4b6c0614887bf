//! A loopback TCP proxy in front of a real registry that breaks
//! connections the way networks and dying servers do, and notes the
//! requests that pass.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::requests::Requests;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Nothing breaks: the proxy only notes the requests.
    None,
    /// Once `bytes` went upstream in all, every connection is dropped, open
    /// and later ones: to a client, a registry that died.
    DieAfter(u64),
    /// A connection that would send more than `after` bytes upstream is
    /// dropped at that point, for the first `times` such connections; later
    /// ones pass. Requests stay far below `after`, so only a blob upload
    /// is cut.
    Cut { after: u64, times: u32 },
    /// Every chunk the registry sends back waits this long first: a slow
    /// registry, or (longer than a client's timeout) a hung one.
    Delay(std::time::Duration),
    /// A connection is dropped when it sends a `method` request whose path
    /// ends in `ending`, before the request's line is complete upstream: a
    /// registry refusing that write, every other request passing. The
    /// dropped request is still among [`Proxy::requests`].
    Drop {
        method: &'static str,
        ending: &'static str,
    },
}

pub struct Proxy {
    /// `127.0.0.1:port`, to use as the registry's name.
    pub address: String,
    state: Arc<State>,
}

struct State {
    fault: Fault,
    dead: AtomicBool,
    connections: AtomicU64,
    sent: AtomicU64,
    cuts: AtomicU32,
    open: Mutex<Vec<TcpStream>>,
    requests: Requests,
}

impl Proxy {
    pub fn start(upstream: &str, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            fault,
            dead: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            cuts: AtomicU32::new(0),
            open: Mutex::default(),
            requests: Requests::default(),
        });
        let (upstream, shared) = (upstream.to_owned(), state.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                if shared.dead.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                shared.forward(client, server);
            }
        });
        Proxy { address, state }
    }

    /// Whether a [`Fault::DieAfter`] proxy has died.
    pub fn dead(&self) -> bool {
        self.state.dead.load(Ordering::SeqCst)
    }

    /// Connections clients opened to the proxy, whatever became of them.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Bytes a [`Fault::DieAfter`] proxy sent upstream: requests and blobs.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// How many connections a [`Fault::Cut`] proxy has cut.
    pub fn cuts(&self) -> u32 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// The requests sent upstream so far, as `PUT /v2/a/b/manifests/t`.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.all()
    }

    /// The requests sent upstream that may write: all but `GET` and `HEAD`.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
            .collect()
    }
}

impl State {
    fn forward(self: &Arc<Self>, client: TcpStream, server: TcpStream) {
        let ends = [client.try_clone().unwrap(), server.try_clone().unwrap()];
        self.open
            .lock()
            .unwrap()
            .extend(ends.iter().map(|s| s.try_clone().unwrap()));
        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (state, here) = (self.clone(), AtomicU64::new(0));
        let mut lines = self.requests.connection();
        std::thread::spawn(move || {
            pipe(client, server, |bytes| {
                let requests = lines.feed(bytes);
                state.allow(bytes.len() as u64, &here, &ends) && state.passes(&requests, &ends)
            })
        });
        let delay = match self.fault {
            Fault::Delay(delay) => delay,
            _ => std::time::Duration::ZERO,
        };
        std::thread::spawn(move || {
            pipe(s2, c2, |_| {
                std::thread::sleep(delay);
                true
            })
        });
    }

    /// Whether `n` more bytes may go upstream on the connection with `ends`
    /// that has sent `here` so far; drops what the fault says to drop.
    fn allow(&self, n: u64, here: &AtomicU64, ends: &[TcpStream; 2]) -> bool {
        match self.fault {
            Fault::DieAfter(limit) => {
                if self.sent.fetch_add(n, Ordering::SeqCst) + n > limit
                    && !self.dead.swap(true, Ordering::SeqCst)
                {
                    close(&self.open.lock().unwrap());
                }
                !self.dead.load(Ordering::SeqCst)
            }
            Fault::Cut { after, times } => {
                let cut = here.fetch_add(n, Ordering::SeqCst) + n > after
                    && self
                        .cuts
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                            (c < times).then_some(c + 1)
                        })
                        .is_ok();
                if cut {
                    close(ends);
                }
                !cut
            }
            Fault::Delay(_) | Fault::None | Fault::Drop { .. } => true,
        }
    }

    /// Whether the `requests` a chunk completes may go upstream; drops the
    /// connection of one a [`Fault::Drop`] names.
    fn passes(&self, requests: &[String], ends: &[TcpStream; 2]) -> bool {
        let Fault::Drop { method, ending } = self.fault else {
            return true;
        };
        let dropped = requests.iter().any(|r| {
            r.split_once(' ')
                .is_some_and(|(m, path)| m == method && path.ends_with(ending))
        });
        if dropped {
            close(ends);
        }
        !dropped
    }
}

fn close(streams: &[TcpStream]) {
    for stream in streams {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// Copies while `go(bytes)` says so.
fn pipe(mut from: TcpStream, mut to: TcpStream, mut go: impl FnMut(&[u8]) -> bool) {
    let mut buf = vec![0; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || !go(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
