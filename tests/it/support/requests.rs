//! The requests a client sends through one of the test proxies, read off
//! the bytes as they pass, so that a test can count what reached a real
//! engine or registry.

use std::sync::{Arc, Mutex};

/// Every request line seen on a proxy's connections, as `POST /v2/a/b`:
/// method and path, without the query.
#[derive(Clone, Default)]
pub struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// A reader for one connection's client side.
    pub fn connection(&self) -> RequestLines {
        RequestLines {
            pending: Vec::new(),
            noted: self.clone(),
        }
    }
}

/// Finds request lines in what a client sends on one connection. Bodies
/// aren't parsed: a request line is whatever ends a CRLF-terminated line
/// with `<METHOD> /<path> HTTP/1.1`, which is also how one follows a body
/// sent without a line end. A body line that looked like that would be
/// noted too; the contexts, blobs and API bodies of these tests have none.
pub struct RequestLines {
    pending: Vec<u8>,
    noted: Requests,
}

const METHODS: [&str; 6] = ["GET /", "HEAD /", "POST /", "PUT /", "PATCH /", "DELETE /"];
/// The longest line kept while looking for its end.
const LONGEST: usize = 64 << 10;

impl RequestLines {
    /// Notes the requests that `bytes` complete, and returns them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut found = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.pending.drain(..end + 2).collect();
            found.extend(request_line(&String::from_utf8_lossy(&line[..end])));
        }
        if self.pending.len() > LONGEST {
            self.pending.drain(..self.pending.len() - LONGEST);
        }
        self.noted.0.lock().unwrap().extend(found.iter().cloned());
        found
    }
}

/// `POST /v2/a/blobs/uploads/?mount=x HTTP/1.1`, after whatever preceded
/// it on the line, as `POST /v2/a/blobs/uploads/`.
fn request_line(line: &str) -> Option<String> {
    let target = line.strip_suffix(" HTTP/1.1")?;
    let start = METHODS.iter().filter_map(|m| target.rfind(m)).max()?;
    let (method, path) = target[start..].split_once(' ')?;
    Some(format!(
        "{method} {}",
        path.split('?').next().unwrap_or(path)
    ))
}
