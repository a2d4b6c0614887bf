//! How much of an answer from outside is read. Every body a registry, a
//! token service or an API sends goes through [`read`] under one of these
//! limits, enforced while the bytes arrive: a body that never ends costs at
//! most its limit in memory, and one that declares more is refused before
//! its first byte. Error bodies are only ever quoted, so [`prefix`] reads
//! their start and drops the rest. The GitHub API's bounds in time are
//! here too: its clients have no `request-timeout` of their own.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

/// A manifest or an index: what distribution and containerd accept too.
pub const MANIFEST: u64 = 4 << 20;
/// One page of a registry's tag list (a thousand tags asked for; a
/// registry that sends all at once still fits ~90,000 commit-SHA tags).
pub const TAG_PAGE: u64 = 4 << 20;
/// A token service's answer: a bearer token is a few KiB at most.
pub const TOKEN: u64 = 256 << 10;
/// An answer of Docker Hub's API or Vault Transit: a page of 100 tags with
/// their platforms, a login, a signature.
pub const API_ANSWER: u64 = 8 << 20;
/// An answer of the GitHub REST API: a compare lists up to 300 files.
pub const GITHUB_ANSWER: u64 = 32 << 20;
/// One request to the GitHub REST API, its retries and the whole answer
/// included (GitHub itself gives up on a request after 10 s).
pub const GITHUB_REQUEST: Duration = Duration::from_secs(30);
/// Everything `plan` asks the GitHub API for one list of changed files:
/// up to a thousand requests when a compare is completed commit by commit.
pub const GITHUB_LISTING: Duration = Duration::from_secs(5 * 60);
/// Descriptors (children, or config and layers) one manifest may list:
/// real images have fewer than 128 layers, and a 4 MiB manifest would
/// otherwise be ~40,000 descriptors, each kept.
pub const MANIFEST_DESCRIPTORS: usize = 10_000;
/// Descriptors kept for one repository's inventory (`cleanup`, `usage`,
/// `monitor`; Docker Hub's platform images of all its tags): at some 200
/// bytes each, under 100 MiB held; room for 5,000 images of 100 layers.
pub const REPOSITORY_DESCRIPTORS: usize = 500_000;
/// A blob read into memory (an image config, a signature, an attestation)
/// is read up to its descriptor's size, and no blob larger than this is
/// read into memory at all. Layers are streamed, never held.
pub const IN_MEMORY_BLOB: u64 = 32 << 20;
/// Image configs read into memory at once while a repository is
/// inventoried, counted in their declared sizes: `concurrency` configs of
/// up to [`IN_MEMORY_BLOB`] each would otherwise be 2 GiB.
pub const CONFIGS_IN_FLIGHT: u64 = 64 << 20;
/// An OCI layout's `index.json`: a backup's every tag, by name and digest.
pub const LAYOUT_INDEX: u64 = 64 << 20;
/// What is read of an error body: enough for any message worth quoting.
pub const ERROR_PREFIX: usize = 64 << 10;
/// A report an earlier run wrote (`previous-report`): a usage or monitor
/// report, its history included.
pub const EARLIER_REPORT: u64 = 64 << 20;
/// A scanner's JSON report (`report`): Trivy's for a large image with
/// thousands of findings stays well below this.
pub const SCAN_REPORT: u64 = 128 << 20;
/// A public key in PEM (`public-key`): a few hundred bytes.
pub const PUBLIC_KEY: u64 = 64 << 10;
/// An ignore list (`ignore-file`, a build context's `.dockerignore`).
pub const IGNORE_LIST: u64 = 1 << 20;

/// An answer larger than its limit: names where it came from, what it was
/// and the limit, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{url} sent more than {}, the limit for {what}; refusing to read further",
    crate::units::bytes(*limit)
)]
pub struct TooLarge {
    pub url: String,
    pub what: &'static str,
    pub limit: u64,
}

/// Why [`read`] stopped before the end of a body.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut<E> {
    /// More than the limit was declared or sent.
    Over,
    /// The transport failed first.
    Failed(E),
}

/// The whole of `chunks`, or [`Cut::Over`] as soon as they declare
/// (`declared`: a `Content-Length`) or pass `limit` bytes: no more than
/// `limit` is ever held.
pub async fn read<E>(
    chunks: impl Stream<Item = Result<Bytes, E>>,
    declared: Option<u64>,
    limit: u64,
) -> Result<Vec<u8>, Cut<E>> {
    if declared.is_some_and(|n| n > limit) {
        return Err(Cut::Over);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // What the server declared is believed only up to the limit.
    let expected = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    let mut body = Vec::with_capacity(expected.min(limit));
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(Cut::Failed)?;
        if chunk.len() > limit - body.len() {
            return Err(Cut::Over);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of `chunks` (fewer when they end or fail first);
/// the rest is never read.
pub async fn prefix<E>(chunks: impl Stream<Item = Result<Bytes, E>>, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = std::pin::pin!(chunks);
    while body.len() < limit {
        let Some(Ok(chunk)) = chunks.next().await else {
            break;
        };
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    body
}

/// A reqwest answer's body through [`read`], its `Content-Length` believed
/// only to refuse early.
pub async fn response(
    response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, Cut<reqwest::Error>> {
    let declared = response.content_length();
    read(response.bytes_stream(), declared, limit).await
}

/// The first [`ERROR_PREFIX`] bytes of a reqwest answer's body.
pub async fn error_prefix(response: reqwest::Response) -> Vec<u8> {
    prefix(response.bytes_stream(), ERROR_PREFIX).await
}

/// The file at `path`, or `None` when it holds more than `limit` bytes:
/// a file from outside is read under a limit, as an answer is.
pub fn read_file(path: &std::path::Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    // A file known to be too large is refused before a byte is read.
    if file.metadata()?.len() > limit {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// A file an input names, read under `limit`: an error names the input,
/// the file and the limit; `fix` says what to pass instead.
pub fn read_input(
    input: &str,
    path: &std::path::Path,
    limit: u64,
    fix: &str,
) -> anyhow::Result<Vec<u8>> {
    match read_file(path, limit) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(anyhow::anyhow!(
            "`{input}`: {} is larger than {}, the limit for it; {fix}",
            path.display(),
            crate::units::bytes(limit)
        )),
        Err(error) => Err(anyhow::anyhow!(
            "`{input}`: couldn't read {} ({error}); {fix}",
            path.display()
        )),
    }
}

/// [`read_input`] for a text file: UTF-8 is required.
pub fn read_input_text(
    input: &str,
    path: &std::path::Path,
    limit: u64,
    fix: &str,
) -> anyhow::Result<String> {
    String::from_utf8(read_input(input, path, limit, fix)?)
        .map_err(|_| anyhow::anyhow!("`{input}`: {} is not UTF-8 text; {fix}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, &'static str>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    /// Chunks that never end, counting how many were taken.
    fn endless(
        taken: &std::cell::Cell<usize>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + '_ {
        futures_util::stream::repeat_with(move || {
            taken.set(taken.get() + 1);
            Ok(Bytes::from_static(&[b'x'; 1000]))
        })
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_is_read_whole() {
        let body = read(chunks(&[b"abc", b"de"]), None, 5).await;
        assert_eq!(body, Ok(b"abcde".to_vec()));
        assert_eq!(read(chunks(&[]), Some(0), 0).await, Ok(Vec::new()));
        // A declared length is only a hint: a short body is still read.
        assert_eq!(read(chunks(&[b"ab"]), Some(5), 5).await, Ok(b"ab".to_vec()));
    }

    #[tokio::test]
    async fn one_byte_over_is_refused() {
        assert_eq!(
            read(chunks(&[b"abc", b"def"]), None, 5).await,
            Err(Cut::Over)
        );
        assert_eq!(read(chunks(&[b"abcdef"]), None, 5).await, Err(Cut::Over));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let taken = std::cell::Cell::new(0);
        assert_eq!(read(endless(&taken), Some(6), 5).await, Err(Cut::Over));
        assert_eq!(taken.get(), 0);
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        let taken = std::cell::Cell::new(0);
        assert_eq!(read(endless(&taken), None, 10_500).await, Err(Cut::Over));
        assert_eq!(taken.get(), 11, "chunks of 1000 read past 10,500 bytes");
    }

    #[tokio::test]
    async fn a_transport_failure_is_passed_on() {
        let failing = futures_util::stream::iter([Ok(Bytes::from_static(b"ab")), Err("reset")]);
        assert_eq!(read(failing, None, 5).await, Err(Cut::Failed("reset")));
    }

    #[tokio::test]
    async fn a_prefix_reads_no_further_than_it_keeps() {
        let taken = std::cell::Cell::new(0);
        let start = prefix(endless(&taken), 2500).await;
        assert_eq!(start.len(), 2500);
        assert_eq!(taken.get(), 3);
        assert_eq!(prefix(chunks(&[b"short"]), 2500).await, b"short");
        let failing = futures_util::stream::iter([Ok(Bytes::from_static(b"ab")), Err("reset")]);
        assert_eq!(prefix(failing, 10).await, b"ab");
    }

    #[test]
    fn the_error_names_the_url_and_the_limit() {
        let error = TooLarge {
            url: "http://127.0.0.1:5000/v2/a/b/manifests/latest".into(),
            what: "a manifest",
            limit: MANIFEST,
        };
        assert_eq!(
            error.to_string(),
            "http://127.0.0.1:5000/v2/a/b/manifests/latest sent more than 4.0 MiB, the limit for a manifest; refusing to read further"
        );
    }
}
