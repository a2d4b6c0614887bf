//! `moby.filesync.v1.FileSync`: the build's local directories, sent to the
//! engine's BuildKit as its fsutil receiver asks for them (`DiffCopy`).
//!
//! The protocol (tonistiigi/fsutil send.go and receive.go): we send one
//! STAT packet per entry in walk order (a directory's entries right after
//! it, names in byte order, every parent before its children) and an empty
//! STAT to end the listing; an entry's id is its index in that sequence.
//! The receiver then asks for regular files by id (REQ); each is answered
//! with DATA packets of its bytes and an empty DATA. Its FIN is answered
//! with ours and ends the call; an ERR from either side ends it too.
//!
//! What is sent is decided here, not by the engine: the entries are those
//! our context walk found (`.dockerignore` already applied, symlinks as
//! links, nothing outside the directory), narrowed by the patterns the
//! engine names in the call's metadata. A REQ can only name a file we
//! listed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::{Packet, Stat};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::stream::BoxStream;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::task::streamed;
use crate::engine::dockerignore::DockerIgnore;

/// Bytes of a file per DATA packet: well under gRPC's 4 MiB message limit
/// on the receiving side.
const CHUNK: usize = 1 << 20;
/// Packets queued towards the engine before reading waits.
const QUEUED: usize = 8;
/// Symlinks resolved for one `followpaths` entry before giving up (the
/// kernel's own limit for a path).
const MAX_LINKS: usize = 40;

const DIR_NAME: &str = "dir-name";
const INCLUDE_PATTERNS: &str = "include-patterns";
const EXCLUDE_PATTERNS: &str = "exclude-patterns";
const FOLLOW_PATHS: &str = "followpaths";

/// Go's `os.FileMode` bits, which fsutil's `Stat.mode` carries.
mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const STICKY: u32 = 1 << 20;
}

/// One entry of a local directory, as our walk found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    /// `/`-separated, relative to the directory, never `..`.
    pub path: String,
    /// Unix permission bits (`0o7777`).
    pub mode: u32,
    /// Nanoseconds since the epoch: BuildKit's receiver compares it (with
    /// the size) to decide which files of an earlier sync to ask again.
    pub mtime_ns: i64,
    pub kind: LocalKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalKind {
    Directory,
    /// Sent as a link; the target is never read.
    Symlink {
        target: String,
    },
    /// Read from `source` when the engine asks for it.
    File {
        size: u64,
        source: PathBuf,
    },
}

/// The local directories a solve may ask for, by the names its frontend
/// uses (`context`, `dockerfile`).
#[derive(Debug, Clone, Default)]
pub struct LocalDirs(HashMap<String, Arc<LocalDir>>);

#[derive(Debug)]
struct LocalDir {
    entries: Vec<LocalEntry>,
    /// Sent whatever the engine's exclude patterns say, as `docker build`
    /// always sends the Dockerfile and `.dockerignore` (the frontend
    /// passes `.dockerignore`'s lines on as those patterns).
    kept: Vec<String>,
}

impl LocalDirs {
    /// Adds `name`, its entries in walk order, and the paths in it that
    /// no exclude pattern takes out.
    pub fn with(mut self, name: &str, entries: Vec<LocalEntry>, kept: &[&str]) -> Self {
        let kept = kept.iter().map(|k| (*k).to_owned()).collect();
        self.0
            .insert(name.to_owned(), Arc::new(LocalDir { entries, kept }));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries of `name`, in walk order.
    pub fn entries(&self, name: &str) -> Option<&[LocalEntry]> {
        self.0.get(name).map(|dir| dir.entries.as_slice())
    }
}

/// What the engine asks of one sync, from the call's metadata.
#[derive(Debug, Default, PartialEq, Eq)]
struct SyncOptions {
    dir_name: String,
    include: Vec<String>,
    exclude: Vec<String>,
    follow: Vec<String>,
}

impl SyncOptions {
    /// BuildKit sends non-ASCII values query-escaped, with `<key>-encoded`
    /// set (session/filesync `encodeOpts`).
    fn from_metadata(metadata: &MetadataMap) -> Self {
        let values = |key: &str| -> Vec<String> {
            let encoded = metadata
                .get(format!("{key}-encoded").as_str())
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| matches!(v, "1" | "true" | "True" | "TRUE" | "t" | "T"));
            metadata
                .get_all(key)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| {
                    if encoded {
                        query_unescape(v)
                    } else {
                        v.to_owned()
                    }
                })
                .collect()
        };
        SyncOptions {
            dir_name: values(DIR_NAME).into_iter().next().unwrap_or_default(),
            include: values(INCLUDE_PATTERNS),
            exclude: values(EXCLUDE_PATTERNS),
            follow: values(FOLLOW_PATHS),
        }
    }
}

/// Go's `url.QueryUnescape`, leniently: a bad escape stays as it is.
fn query_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match bytes[i] {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries one sync sends, in order: those the patterns select, each
/// preceded by any parent directory not yet sent (as fsutil's filter does
/// when an exception re-includes something below an excluded directory).
fn select<'a>(
    entries: &'a [LocalEntry],
    kept: &[String],
    options: &SyncOptions,
) -> Result<Vec<&'a LocalEntry>, Status> {
    let invalid = |what: &'static str| {
        move |e: crate::engine::dockerignore::PatternError| {
            Status::invalid_argument(format!("{what}: {e}"))
        }
    };
    let mut include = options.include.clone();
    include.extend(followed(entries, &options.follow));
    let include = (!include.is_empty())
        .then(|| DockerIgnore::from_patterns(&include))
        .transpose()
        .map_err(invalid(INCLUDE_PATTERNS))?;
    let exclude = (!options.exclude.is_empty())
        .then(|| DockerIgnore::from_patterns(&options.exclude))
        .transpose()
        .map_err(invalid(EXCLUDE_PATTERNS))?
        .map(|mut exclude| {
            kept.iter().for_each(|path| exclude.keep(path));
            exclude
        });
    let index: HashMap<&str, &LocalEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut sent: Vec<&LocalEntry> = Vec::new();
    // The directories the last entry sent is inside, outermost first.
    let mut open: Vec<&str> = Vec::new();
    for entry in entries {
        let selected = include.as_ref().is_none_or(|i| i.selects(&entry.path))
            && !exclude.as_ref().is_some_and(|e| e.is_excluded(&entry.path));
        if !selected {
            continue;
        }
        while open.last().is_some_and(|dir| !is_below(&entry.path, dir)) {
            open.pop();
        }
        for parent in parents(&entry.path) {
            if open.contains(&parent) {
                continue;
            }
            let Some(dir) = index.get(parent) else {
                return Err(Status::internal(format!(
                    "{:?} was listed without its directory",
                    entry.path
                )));
            };
            sent.push(dir);
            open.push(parent);
        }
        sent.push(entry);
        if entry.kind == LocalKind::Directory {
            open.push(&entry.path);
        }
    }
    Ok(sent)
}

fn is_below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// `a/b/c` → `a`, `a/b`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// fsutil's `FollowLinks`: each path of `followpaths` with the symlinks on
/// its way resolved inside the directory (an absolute target counts from
/// its root), every link met and the final path selected too. Paths only:
/// nothing is read, and nothing outside the listing can be named.
fn followed(entries: &[LocalEntry], follow: &[String]) -> Vec<String> {
    let links: HashMap<&str, &str> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            LocalKind::Symlink { target } => Some((e.path.as_str(), target.as_str())),
            _ => None,
        })
        .collect();
    let mut found = Vec::new();
    for path in follow {
        let mut pending = clean_segments(path, &[]);
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(segment) = pending.first().cloned() {
            pending.remove(0);
            resolved.push(segment);
            let here = resolved.join("/");
            let Some(target) = links.get(here.as_str()) else {
                continue;
            };
            hops += 1;
            if hops > MAX_LINKS {
                break;
            }
            found.push(here);
            resolved.pop();
            let base: &[String] = if target.starts_with('/') {
                &[]
            } else {
                &resolved
            };
            let mut next = clean_segments(target, base);
            next.extend(pending);
            pending = next;
            resolved.clear();
        }
        if !resolved.is_empty() {
            found.push(resolved.join("/"));
        }
    }
    found
}

/// `path`'s segments joined onto `base`, `.` and `..` resolved without
/// ever rising above the root.
fn clean_segments(path: &str, base: &[String]) -> Vec<String> {
    let mut segments = base.to_vec();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other.to_owned()),
        }
    }
    segments
}

/// The STAT packet of `entry`: owner root, as `docker build` sends it.
fn stat_of(entry: &LocalEntry) -> Stat {
    let special = [
        (0o4000, go_mode::SETUID),
        (0o2000, go_mode::SETGID),
        (0o1000, go_mode::STICKY),
    ]
    .iter()
    .filter(|(unix, _)| entry.mode & unix != 0)
    .fold(0, |bits, (_, go)| bits | go);
    let mut stat = Stat {
        path: entry.path.clone(),
        mode: (entry.mode & 0o777) | special,
        mod_time: entry.mtime_ns,
        ..Stat::default()
    };
    match &entry.kind {
        LocalKind::Directory => stat.mode |= go_mode::DIR,
        LocalKind::Symlink { target } => {
            stat.mode |= go_mode::SYMLINK;
            stat.linkname = target.clone();
            stat.size = i64::try_from(target.len()).unwrap_or(i64::MAX);
        }
        LocalKind::File { size, .. } => stat.size = i64::try_from(*size).unwrap_or(i64::MAX),
    }
    stat
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Packet::default()
    }
}

/// The listing as sent, and the files by id.
fn listing(selected: &[&LocalEntry]) -> (Vec<Packet>, HashMap<u32, PathBuf>) {
    let mut files = HashMap::new();
    let mut packets = Vec::with_capacity(selected.len() + 1);
    for (id, entry) in (0u32..).zip(selected) {
        if let LocalKind::File { source, .. } = &entry.kind {
            files.insert(id, source.clone());
        }
        packets.push(Packet {
            stat: Some(stat_of(entry)),
            ..packet(PacketType::PacketStat)
        });
    }
    packets.push(packet(PacketType::PacketStat));
    (packets, files)
}

pub(super) struct FileSyncService {
    pub dirs: LocalDirs,
}

type Packets = BoxStream<'static, Result<Packet, Status>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = Packets;
    type TarStreamStream = Packets;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Packets>, Status> {
        let options = SyncOptions::from_metadata(request.metadata());
        let Some(dir) = self.dirs.0.get(&options.dir_name).cloned() else {
            return Err(Status::not_found(format!(
                "no local directory {:?} in this build",
                options.dir_name
            )));
        };
        let (packets, files) = listing(&select(&dir.entries, &dir.kept, &options)?);
        tracing::debug!(
            "file sync of {:?}: {} entries listed",
            options.dir_name,
            packets.len() - 1
        );
        let incoming = request.into_inner();
        Ok(Response::new(Box::pin(streamed(QUEUED, |out| {
            send(packets, files, incoming, out)
        }))))
    }

    async fn tar_stream(&self, _: Request<Streaming<Packet>>) -> Result<Response<Packets>, Status> {
        Err(Status::unimplemented(
            "TarStream is not served; BuildKit uses DiffCopy",
        ))
    }
}

type Outgoing = mpsc::Sender<Result<Packet, Status>>;

/// The sender's side of one sync; ends when the receiver is done, gone or
/// failed. A failure to read a file is sent as ERR and ends the call.
async fn send(
    listing: Vec<Packet>,
    mut files: HashMap<u32, PathBuf>,
    mut incoming: Streaming<Packet>,
    out: Outgoing,
) {
    for stat in listing {
        if out.send(Ok(stat)).await.is_err() {
            return;
        }
    }
    loop {
        let request = match incoming.message().await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!("file sync ended by the engine: {status}");
                return;
            }
        };
        match PacketType::try_from(request.r#type) {
            Ok(PacketType::PacketReq) => {
                // Each id once, and only a file we listed.
                let Some(source) = files.remove(&request.id) else {
                    let _ = out
                        .send(Err(Status::invalid_argument(format!(
                            "no file with id {} to send",
                            request.id
                        ))))
                        .await;
                    return;
                };
                if let Err(e) = send_file(request.id, &source, &out).await {
                    let _ = out
                        .send(Ok(Packet {
                            data: format!("{e:#}").into_bytes(),
                            ..packet(PacketType::PacketErr)
                        }))
                        .await;
                    return;
                }
            }
            Ok(PacketType::PacketFin) => {
                let _ = out.send(Ok(packet(PacketType::PacketFin))).await;
                return;
            }
            Ok(PacketType::PacketErr) => {
                tracing::debug!(
                    "the engine's file sync failed: {}",
                    String::from_utf8_lossy(&request.data)
                );
                return;
            }
            _ => {}
        }
    }
}

/// One file's bytes as DATA packets, then the empty DATA that ends it.
/// The path is re-checked to be no symlink: it came from our walk, and
/// what is sent must be what was listed.
async fn send_file(id: u32, source: &PathBuf, out: &Outgoing) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let reading = || format!("reading {}", source.display());
    let meta = tokio::fs::symlink_metadata(source)
        .await
        .with_context(reading)?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} changed during the build: it is no longer a regular file",
            source.display()
        );
    }
    let mut file = tokio::fs::File::open(source).await.with_context(reading)?;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        let read = (&mut file)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .await
            .with_context(reading)?;
        let done = read == 0;
        let data = Packet {
            id,
            data: chunk,
            ..packet(PacketType::PacketData)
        };
        if out.send(Ok(data)).await.is_err() {
            anyhow::bail!("the engine stopped reading {}", source.display());
        }
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir(path: &str) -> LocalEntry {
        LocalEntry {
            path: path.into(),
            mode: 0o755,
            mtime_ns: 7,
            kind: LocalKind::Directory,
        }
    }

    fn file(path: &str) -> LocalEntry {
        LocalEntry {
            path: path.into(),
            mode: 0o644,
            mtime_ns: 7,
            kind: LocalKind::File {
                size: 3,
                source: PathBuf::from("/ctx").join(path),
            },
        }
    }

    fn link(path: &str, target: &str) -> LocalEntry {
        LocalEntry {
            path: path.into(),
            mode: 0o777,
            mtime_ns: 7,
            kind: LocalKind::Symlink {
                target: target.into(),
            },
        }
    }

    /// A tree in walk order.
    fn tree() -> Vec<LocalEntry> {
        vec![
            file(".dockerignore"),
            file("Dockerfile"),
            dir("app"),
            file("app/main.rs"),
            dir("node_modules"),
            dir("node_modules/keep"),
            file("node_modules/keep/x.js"),
            file("node_modules/y.js"),
            link("shared", "app"),
            link("up", "../../etc"),
        ]
    }

    fn paths(selected: &[&LocalEntry]) -> Vec<String> {
        selected.iter().map(|e| e.path.clone()).collect()
    }

    fn options(include: &[&str], exclude: &[&str], follow: &[&str]) -> SyncOptions {
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        SyncOptions {
            dir_name: "context".into(),
            include: own(include),
            exclude: own(exclude),
            follow: own(follow),
        }
    }

    #[test]
    fn no_patterns_send_everything_in_walk_order() {
        let tree = tree();
        let all = select(&tree, &[], &SyncOptions::default()).unwrap();
        assert_eq!(all.len(), tree.len());
    }

    #[test]
    fn an_exception_below_an_excluded_directory_sends_its_parents_first() {
        let tree = tree();
        let sent = select(
            &tree,
            &[],
            &options(&[], &["node_modules", "!node_modules/keep/x.js"], &[]),
        )
        .unwrap();
        assert_eq!(
            paths(&sent),
            [
                ".dockerignore",
                "Dockerfile",
                "app",
                "app/main.rs",
                "node_modules",
                "node_modules/keep",
                "node_modules/keep/x.js",
                "shared",
                "up"
            ]
        );
    }

    #[test]
    fn kept_paths_stay_whatever_the_exclude_patterns_say() {
        let tree = tree();
        let kept = [".dockerignore".to_owned(), "Dockerfile".to_owned()];
        let sent = select(
            &tree,
            &kept,
            &options(&[], &["Dockerfile", ".*", "app"], &[]),
        )
        .unwrap();
        assert_eq!(
            paths(&sent)[..2],
            [".dockerignore", "Dockerfile"],
            "{:?}",
            paths(&sent)
        );
        assert!(!paths(&sent).contains(&"app".to_owned()));
    }

    #[test]
    fn include_patterns_narrow_to_what_they_name_with_parents() {
        let tree = tree();
        let sent = select(&tree, &[], &options(&["Dockerfile", "app/*.rs"], &[], &[])).unwrap();
        assert_eq!(paths(&sent), ["Dockerfile", "app", "app/main.rs"]);
        let ignore = select(&tree, &[], &options(&[".dockerignore"], &[], &[])).unwrap();
        assert_eq!(paths(&ignore), [".dockerignore"]);
        let nothing = select(&tree, &[], &options(&["missing"], &[], &[])).unwrap();
        assert!(nothing.is_empty());
    }

    #[test]
    fn followpaths_add_the_link_and_its_target_inside_the_directory() {
        let tree = tree();
        let sent = select(
            &tree,
            &[],
            &options(&["Dockerfile"], &[], &["shared/main.rs"]),
        )
        .unwrap();
        assert_eq!(
            paths(&sent),
            ["Dockerfile", "app", "app/main.rs", "shared"],
            "the link is sent as a link, its target as the files it names"
        );
        // A link climbing out resolves against the root, never above it.
        assert_eq!(followed(&tree, &["up/passwd".into()]), ["up", "etc/passwd"]);
        assert_eq!(followed(&tree, &["/../Dockerfile".into()]), ["Dockerfile"]);
    }

    #[test]
    fn a_link_loop_in_followpaths_ends() {
        let tree = vec![link("a", "b"), link("b", "a")];
        let found = followed(&tree, &["a/x".into()]);
        assert!(found.len() <= MAX_LINKS + 1, "{found:?}");
    }

    #[test]
    fn bad_patterns_are_refused_naming_the_metadata() {
        let e = select(&tree(), &[], &options(&[], &["["], &[])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(EXCLUDE_PATTERNS), "{}", e.message());
    }

    #[test]
    fn stats_carry_go_modes_links_and_ids_count_every_entry() {
        let tree = [dir("d"), link("d/l", "../f"), file("f")];
        let selected: Vec<&LocalEntry> = tree.iter().collect();
        let (packets, files) = listing(&selected);
        assert_eq!(packets.len(), 4, "three stats and the empty one");
        let stat = |i: usize| packets[i].stat.clone().unwrap();
        assert_eq!(stat(0).mode, go_mode::DIR | 0o755);
        assert_eq!(
            (stat(1).mode, stat(1).linkname.as_str(), stat(1).size),
            (go_mode::SYMLINK | 0o777, "../f", 4)
        );
        assert_eq!((stat(2).mode, stat(2).size, stat(2).uid), (0o644, 3, 0));
        assert_eq!(packets[3], packet(PacketType::PacketStat));
        assert_eq!(files, HashMap::from([(2, PathBuf::from("/ctx/f"))]));
        let setuid = LocalEntry {
            mode: 0o4755,
            ..file("s")
        };
        assert_eq!(stat_of(&setuid).mode, go_mode::SETUID | 0o755);
    }

    #[test]
    fn metadata_values_are_read_and_unescaped_when_marked() {
        let mut metadata = MetadataMap::new();
        metadata.insert("dir-name", "context".parse().unwrap());
        metadata.append("exclude-patterns", "a%C3%A9+b".parse().unwrap());
        metadata.append("exclude-patterns", "!keep".parse().unwrap());
        metadata.insert("exclude-patterns-encoded", "1".parse().unwrap());
        metadata.append("include-patterns", "x%20y".parse().unwrap());
        let options = SyncOptions::from_metadata(&metadata);
        assert_eq!(options.dir_name, "context");
        assert_eq!(options.exclude, ["aé b", "!keep"]);
        assert_eq!(options.include, ["x%20y"], "not marked encoded");
        assert_eq!(query_unescape("100%"), "100%");
    }

    #[tokio::test]
    async fn a_file_is_sent_in_chunks_ending_with_empty_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; CHUNK + 10]).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        send_file(3, &path, &tx).await.unwrap();
        drop(tx);
        let mut sizes = Vec::new();
        while let Some(Ok(p)) = rx.recv().await {
            assert_eq!((p.id, p.r#type), (3, PacketType::PacketData as i32));
            sizes.push(p.data.len());
        }
        assert_eq!(sizes, [CHUNK, 10, 0]);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let e = send_file(4, &link, &tx).await.unwrap_err();
        assert!(e.to_string().contains("no longer a regular file"), "{e}");
    }
}
