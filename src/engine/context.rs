//! The build context the engine receives: a plain tar of the context
//! directory, filtered by its `.dockerignore`.
//!
//! The tar is byte-for-byte reproducible (sorted walk, zero mtime, root
//! owner, no user names): the engine's build cache and the re-run detection
//! key on it, so two checkouts of the same tree must give the same bytes.

use std::fs::{self, Metadata};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow, bail};
use tar::{Builder, EntryType, Header};
use tokio::task::JoinHandle;

use super::dockerignore::DockerIgnore;
use sha2::{Digest as _, Sha256};

use crate::limits;
use crate::registry::digest_of;

/// What the engine looks for when no Dockerfile is named.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Where a Dockerfile from outside the context is put inside it, since the
/// engine only reads the Dockerfile from the tar.
pub const OUTSIDE_DOCKERFILE: &str = ".registry-action.Dockerfile";

const IGNORE_FILE: &str = ".dockerignore";

/// A context checked and ready to be written: the Dockerfile's name inside
/// the tar is known before a byte is, so the build request can be sent
/// while the tar is still being made.
pub struct ContextPlan {
    root: PathBuf,
    dockerfile: Dockerfile,
    ignore: DockerIgnore,
}

/// What a written context holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Regular files and symlinks.
    pub files: usize,
    /// Content bytes of the regular files.
    pub bytes: u64,
    /// The context's identity (see [`ContextPlan::identity`]): names the
    /// build's input files.
    pub digest: String,
}

impl ContextPlan {
    pub fn new(dir: &Path, dockerfile: Option<&Path>) -> anyhow::Result<Self> {
        let root = context_root(dir)?;
        let dockerfile = locate_dockerfile(&root, dir, dockerfile)?;
        let mut ignore = read_ignore_file(&root)?;
        // Docker always sends these two, whatever `.dockerignore` says.
        ignore.keep(IGNORE_FILE);
        if let Dockerfile::Inside(name) = &dockerfile {
            ignore.keep(name);
        }
        Ok(ContextPlan {
            root,
            dockerfile,
            ignore,
        })
    }

    /// The engine's `dockerfile` parameter: the Dockerfile's path in the tar.
    pub fn dockerfile(&self) -> &str {
        match &self.dockerfile {
            Dockerfile::Inside(name) => name,
            Dockerfile::Outside(_) => OUTSIDE_DOCKERFILE,
        }
    }

    /// The context's identity — what [`Stats::digest`] of a write would
    /// be — without writing the tar: the files are hashed side by side.
    pub fn identity(&self) -> anyhow::Result<String> {
        self.identity_unless(&AtomicBool::new(false))
    }

    /// [`identity`](Self::identity), given up (an error) soon after `stop`
    /// is set: a caller that learns it needs no identity after all stops
    /// the reading of a large context.
    pub fn identity_unless(&self, stop: &AtomicBool) -> anyhow::Result<String> {
        let mut listing = Listing::default();
        if let Dockerfile::Outside(path) = &self.dockerfile {
            listing.add_file(OUTSIDE_DOCKERFILE, 0o644, path);
        }
        self.walk()
            .directory(&mut listing, &self.root, &Relative::root())?;
        listing.identity(stop)
    }

    /// Hands every entry of the context to `sink` in tar order, the
    /// outside Dockerfile left out (file sync serves it on its own).
    pub(super) fn visit(&self, sink: &mut impl Sink) -> anyhow::Result<()> {
        self.walk().directory(sink, &self.root, &Relative::root())
    }

    /// What Docker sends whatever `.dockerignore` says: that file, and the
    /// Dockerfile when it is inside the context.
    pub(super) fn always_sent(&self) -> Vec<&str> {
        match &self.dockerfile {
            Dockerfile::Inside(name) => vec![IGNORE_FILE, name],
            Dockerfile::Outside(_) => vec![IGNORE_FILE],
        }
    }

    /// The context directory, canonical.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Where the Dockerfile is read from.
    pub(super) fn dockerfile_source(&self) -> PathBuf {
        match &self.dockerfile {
            Dockerfile::Inside(name) => self.root.join(name),
            Dockerfile::Outside(path) => path.clone(),
        }
    }

    fn walk(&self) -> Walk<'_> {
        Walk {
            ignore: &self.ignore,
            generated: match self.dockerfile {
                Dockerfile::Inside(_) => None,
                Dockerfile::Outside(_) => Some(OUTSIDE_DOCKERFILE),
            },
        }
    }

    /// Writes the tar to `out`, file by file (never the whole context in
    /// memory); blocking file I/O.
    pub fn write<W: Write>(&self, out: W) -> anyhow::Result<(W, Stats)> {
        let mut tarball = Tarball::new(out);
        if let Dockerfile::Outside(path) = &self.dockerfile {
            tarball.add_outside_dockerfile(path)?;
        }
        self.walk()
            .directory(&mut tarball, &self.root, &Relative::root())?;
        tarball.finish()
    }
}

/// A context's identity being learnt on a blocking thread, given up soon
/// after this is dropped before [`wait`](Self::wait) ends: a build that
/// failed or was cancelled, or a run that needs no identity after all,
/// leaves no thread reading a large context to the end.
pub struct IdentityTask {
    task: Option<JoinHandle<anyhow::Result<String>>>,
    stop: Arc<AtomicBool>,
}

impl IdentityTask {
    /// Starts `learn`, which is to give up once the flag it is handed is
    /// set (as [`ContextPlan::identity_unless`] does).
    pub fn spawn(
        learn: impl FnOnce(&AtomicBool) -> anyhow::Result<String> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::task::spawn_blocking(move || learn(&stopped));
        IdentityTask {
            task: Some(task),
            stop,
        }
    }

    /// The identity, once learnt.
    pub async fn wait(mut self) -> anyhow::Result<String> {
        let task = self
            .task
            .take()
            .context("the context's identity was awaited twice")?;
        task.await
            .context("the task learning the context's identity failed")?
    }
}

impl Drop for IdentityTask {
    /// After `wait`, too late to matter; before it, the identity is not
    /// needed.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn context_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = fs::canonicalize(dir).map_err(|error| {
        anyhow!(
            "build context {} cannot be opened ({error}); set the `path` input to the image's directory",
            dir.display()
        )
    })?;
    if !root.is_dir() {
        bail!(
            "build context {} is not a directory; set the `path` input to the image's directory",
            dir.display()
        );
    }
    Ok(root)
}

enum Dockerfile {
    /// `/`-separated path inside the context.
    Inside(String),
    /// Canonical path outside it.
    Outside(PathBuf),
}

fn locate_dockerfile(root: &Path, dir: &Path, given: Option<&Path>) -> anyhow::Result<Dockerfile> {
    let path = given.map_or_else(|| dir.join(DEFAULT_DOCKERFILE), Path::to_path_buf);
    let missing = |reason: String| {
        anyhow!(
            "no Dockerfile at {} ({reason}); set the `path` input to a directory holding one",
            path.display()
        )
    };
    let real = fs::canonicalize(&path).map_err(|error| missing(error.to_string()))?;
    if !real.is_file() {
        return Err(missing("not a regular file".to_owned()));
    }
    // Canonical paths on both sides, so a Dockerfile symlinked from outside
    // counts as outside: the engine could not follow that link.
    let Ok(inside) = real.strip_prefix(root) else {
        return Ok(Dockerfile::Outside(real));
    };
    let name = slash_path(inside).ok_or_else(|| not_utf8(&real))?;
    Ok(Dockerfile::Inside(name))
}

/// The context's `.dockerignore`, read only from inside the context (a
/// committed link out would have a line of another file quoted in a
/// parse error) and under [`limits::IGNORE_LIST`].
fn read_ignore_file(root: &Path) -> anyhow::Result<DockerIgnore> {
    let path = root.join(IGNORE_FILE);
    let real = match fs::canonicalize(&path) {
        Ok(real) => real,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DockerIgnore::default());
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    if !real.starts_with(root) {
        bail!(
            "{} links to {}, outside the build context; commit the .dockerignore itself, not a link",
            path.display(),
            real.display()
        );
    }
    let bytes = limits::read_file(&real, limits::IGNORE_LIST)
        .with_context(|| format!("reading {}", path.display()))?
        .ok_or_else(|| {
            anyhow!(
                "{} is larger than {}, the limit for it; shorten it",
                path.display(),
                crate::units::bytes(limits::IGNORE_LIST)
            )
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{} is not UTF-8 text; save it as UTF-8", path.display()))?;
    DockerIgnore::try_parse(&text).with_context(|| format!("in {}", path.display()))
}

fn slash_path(path: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = path.iter().map(|part| part.to_str()).collect();
    parts.map(|parts| parts.join("/"))
}

fn not_utf8(path: &Path) -> anyhow::Error {
    anyhow!(
        "{} is not valid UTF-8; rename it or exclude it in .dockerignore",
        path.display()
    )
}

/// A path relative to the context root. `utf8` is false once any segment
/// was not valid UTF-8: `text` is then lossy, good enough to match ignore
/// rules but never to name an entry.
struct Relative {
    text: String,
    utf8: bool,
}

impl Relative {
    fn root() -> Self {
        Relative {
            text: String::new(),
            utf8: true,
        }
    }

    fn child(&self, name: &std::ffi::OsStr) -> Self {
        let segment = name.to_string_lossy();
        let text = if self.text.is_empty() {
            segment.into_owned()
        } else {
            format!("{}/{segment}", self.text)
        };
        Relative {
            text,
            utf8: self.utf8 && name.to_str().is_some(),
        }
    }
}

struct Walk<'a> {
    ignore: &'a DockerIgnore,
    /// The outside Dockerfile's name, which shadows a file of that name.
    generated: Option<&'static str>,
}

impl Walk<'_> {
    fn directory(&self, sink: &mut impl Sink, dir: &Path, rel: &Relative) -> anyhow::Result<()> {
        for name in sorted_names(dir)? {
            self.entry(sink, &dir.join(&name), &rel.child(&name))?;
        }
        Ok(())
    }

    fn entry(&self, sink: &mut impl Sink, path: &Path, rel: &Relative) -> anyhow::Result<()> {
        if self.generated == Some(rel.text.as_str()) {
            return Ok(());
        }
        let meta =
            fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if self.ignore.is_excluded(&rel.text) {
            // Docker leaves the excluded directory itself out but still
            // sends what an exception re-includes below it.
            if meta.is_dir() && self.ignore.may_reinclude_below(&rel.text) {
                self.directory(sink, path, rel)?;
            }
            return Ok(());
        }
        if !rel.utf8 {
            return Err(not_utf8(path));
        }
        let name = rel.text.as_str();
        let kind = meta.file_type();
        if kind.is_dir() {
            sink.directory(name, mode(&meta), &meta)?;
            self.directory(sink, path, rel)
        } else if kind.is_symlink() {
            sink.symlink(name, mode(&meta), &link_target(path)?, &meta)
        } else if kind.is_file() {
            sink.file(name, mode(&meta), path, &meta)
        } else {
            // Sockets, FIFOs and devices mean nothing to a build.
            tracing::debug!(path = %path.display(), "skipping special file in build context");
            Ok(())
        }
    }
}

fn link_target(path: &Path) -> anyhow::Result<String> {
    let target = fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?;
    match target.to_str() {
        Some(text) => Ok(text.to_owned()),
        None => bail!(
            "symlink {} points to {}, which is not valid UTF-8; change the link or exclude it in .dockerignore",
            path.display(),
            target.display()
        ),
    }
}

/// Where the walk hands each entry, in tar order; `name` is `/`-separated,
/// relative to the context, `meta` what the walk read of it (the link
/// itself for a symlink).
pub(super) trait Sink {
    fn directory(&mut self, name: &str, mode: u32, meta: &Metadata) -> anyhow::Result<()>;
    fn symlink(
        &mut self,
        name: &str,
        mode: u32,
        target: &str,
        meta: &Metadata,
    ) -> anyhow::Result<()>;
    fn file(&mut self, name: &str, mode: u32, path: &Path, meta: &Metadata) -> anyhow::Result<()>;
}

/// The context's identity: every entry's name, kind, mode, size, link and
/// content digest, in tar order. The tar and a listing of the tree give
/// the same identity, so it can be learnt without writing the tar, with
/// the files hashed side by side.
struct Identity(Sha256);

impl Identity {
    fn new() -> Self {
        Identity(Sha256::new())
    }

    fn add(&mut self, kind: char, name: &str, mode: u32, link: &str, content: Option<(u64, &str)>) {
        let (size, digest) = content.unwrap_or((0, ""));
        for field in [
            kind.to_string(),
            name.to_owned(),
            format!("{mode:o}"),
            link.to_owned(),
            size.to_string(),
            digest.to_owned(),
        ] {
            self.0.update(field.as_bytes());
            self.0.update([0]);
        }
    }

    fn finish(self) -> String {
        digest_of(self.0)
    }
}

/// The tree as the tar would hold it, file contents not yet read.
#[derive(Default)]
struct Listing {
    entries: Vec<Listed>,
}

enum Listed {
    Directory {
        name: String,
        mode: u32,
    },
    Symlink {
        name: String,
        mode: u32,
        target: String,
    },
    File {
        name: String,
        mode: u32,
        path: PathBuf,
    },
}

impl Sink for Listing {
    fn directory(&mut self, name: &str, mode: u32, _: &Metadata) -> anyhow::Result<()> {
        self.entries.push(Listed::Directory {
            name: name.to_owned(),
            mode,
        });
        Ok(())
    }

    fn symlink(&mut self, name: &str, mode: u32, target: &str, _: &Metadata) -> anyhow::Result<()> {
        self.entries.push(Listed::Symlink {
            name: name.to_owned(),
            mode,
            target: target.to_owned(),
        });
        Ok(())
    }

    fn file(&mut self, name: &str, mode: u32, path: &Path, _: &Metadata) -> anyhow::Result<()> {
        self.add_file(name, mode, path);
        Ok(())
    }
}

impl Listing {
    fn add_file(&mut self, name: &str, mode: u32, path: &Path) {
        self.entries.push(Listed::File {
            name: name.to_owned(),
            mode,
            path: path.to_owned(),
        });
    }

    /// The identity, with the files read and hashed on every core, unless
    /// `stop` is set.
    fn identity(&self, stop: &AtomicBool) -> anyhow::Result<String> {
        let paths: Vec<&Path> = self
            .entries
            .iter()
            .filter_map(|entry| match entry {
                Listed::File { path, .. } => Some(path.as_path()),
                _ => None,
            })
            .collect();
        let mut contents = file_digests(&paths, stop)?.into_iter();
        let mut identity = Identity::new();
        for entry in &self.entries {
            match entry {
                Listed::Directory { name, mode } => identity.add('d', name, *mode, "", None),
                Listed::Symlink { name, mode, target } => {
                    identity.add('l', name, *mode, target, None)
                }
                Listed::File { name, mode, .. } => {
                    let (size, digest) = contents.next().context("a file digest went missing")?;
                    identity.add('f', name, *mode, "", Some((size, &digest)));
                }
            }
        }
        Ok(identity.finish())
    }
}

/// Each file's size and content digest ([`content_digest`]), read in
/// pieces on worker threads until `stop` is set.
fn file_digests(paths: &[&Path], stop: &AtomicBool) -> anyhow::Result<Vec<(u64, String)>> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len())
        .max(1);
    let mut found: Vec<(usize, (u64, String))> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, (u64, String))>> {
                    let mut buf = vec![0; 1 << 20];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else {
                            return Ok(done);
                        };
                        done.push((i, file_digest(path, &mut buf, stop)?));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow!("a hashing thread panicked")))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(|parts| parts.into_iter().flatten().collect())
    })?;
    found.sort_by_key(|(i, _)| *i);
    Ok(found.into_iter().map(|(_, digest)| digest).collect())
}

fn file_digest(path: &Path, buf: &mut [u8], stop: &AtomicBool) -> anyhow::Result<(u64, String)> {
    use std::io::Read as _;
    let reading = || format!("reading {}", path.display());
    let mut file = fs::File::open(path).with_context(reading)?;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("stopped reading the build context: its identity is not needed");
        }
        let n = file.read(buf).with_context(reading)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, blake3_digest(&hasher)))
}

/// A file's content digest in the identity: BLAKE3, a few times faster
/// than SHA-256 even with the CPU's SHA extensions, so a large context
/// costs little to recognise. Never a registry digest: only the identity
/// (a `sha256:` over the entries) leaves this module.
fn content_digest(content: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(content);
    blake3_digest(&hasher)
}

fn blake3_digest(hasher: &blake3::Hasher) -> String {
    format!("blake3:{}", hasher.finalize().to_hex())
}

/// Byte order of the names, so the tar never depends on `readdir` order.
fn sorted_names(dir: &Path) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let mut names = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        })
        .with_context(|| format!("listing {}", dir.display()))?;
    names.sort();
    Ok(names)
}

struct Tarball<W: Write> {
    builder: Builder<W>,
    identity: Identity,
    files: usize,
    bytes: u64,
}

impl<W: Write> Tarball<W> {
    fn new(out: W) -> Self {
        Tarball {
            builder: Builder::new(out),
            identity: Identity::new(),
            files: 0,
            bytes: 0,
        }
    }

    fn add_outside_dockerfile(&mut self, path: &Path) -> anyhow::Result<()> {
        let content = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.add_content(OUTSIDE_DOCKERFILE, 0o644, &content)
    }

    fn add_content(&mut self, name: &str, mode: u32, content: &[u8]) -> anyhow::Result<()> {
        let size = content.len() as u64;
        let mut header = header(EntryType::Regular, mode, size);
        self.builder
            .append_data(&mut header, name, content)
            .with_context(|| format!("adding {name} to the build context"))?;
        self.identity
            .add('f', name, mode, "", Some((size, &content_digest(content))));
        self.files += 1;
        self.bytes += size;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<(W, Stats)> {
        let out = self
            .builder
            .into_inner()
            .context("finishing the build context tar")?;
        let stats = Stats {
            files: self.files,
            bytes: self.bytes,
            digest: self.identity.finish(),
        };
        Ok((out, stats))
    }
}

impl<W: Write> Sink for Tarball<W> {
    fn directory(&mut self, name: &str, mode: u32, _: &Metadata) -> anyhow::Result<()> {
        let mut header = header(EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut header, format!("{name}/"), std::io::empty())
            .with_context(|| format!("adding {name}/ to the build context"))?;
        self.identity.add('d', name, mode, "", None);
        Ok(())
    }

    fn symlink(&mut self, name: &str, mode: u32, target: &str, _: &Metadata) -> anyhow::Result<()> {
        let mut header = header(EntryType::Symlink, mode, 0);
        self.builder
            .append_link(&mut header, name, target)
            .with_context(|| format!("adding {name} to the build context"))?;
        self.identity.add('l', name, mode, target, None);
        self.files += 1;
        Ok(())
    }

    fn file(&mut self, name: &str, mode: u32, path: &Path, _: &Metadata) -> anyhow::Result<()> {
        let reading = || format!("reading {}", path.display());
        let file = fs::File::open(path).with_context(reading)?;
        // The size is taken once, from the open file, and exactly that many
        // bytes are sent, so the header is true even if the file changes
        // under us; it passes through in pieces, never whole in memory.
        let size = file.metadata().with_context(reading)?.len();
        let mut content = Exactly::new(file, size, path);
        let mut header = header(EntryType::Regular, mode, size);
        self.builder
            .append_data(
                &mut header,
                name,
                std::io::BufReader::with_capacity(READ_PIECE, &mut content),
            )
            .with_context(|| format!("adding {name} to the build context"))?;
        self.identity.add(
            'f',
            name,
            mode,
            "",
            Some((size, &blake3_digest(&content.hasher))),
        );
        self.files += 1;
        self.bytes += size;
        Ok(())
    }
}

/// How much of a file is read at once.
const READ_PIECE: usize = 1 << 20;

/// The first `size` bytes of a file, hashed as they are read; a file that
/// ends before them is an error, not a short tar entry.
struct Exactly<'a> {
    file: std::io::Take<fs::File>,
    left: u64,
    path: &'a Path,
    hasher: blake3::Hasher,
}

impl<'a> Exactly<'a> {
    fn new(file: fs::File, size: u64, path: &'a Path) -> Self {
        use std::io::Read as _;
        Exactly {
            file: file.take(size),
            left: size,
            path,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl std::io::Read for Exactly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let shown = || self.path.display();
        let n = self
            .file
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("reading {}: {e}", shown())))?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being sent", shown()),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Everything that varies between checkouts of the same tree (mtime,
/// owner, user and group names) is left zero; `new_gnu` zero-fills the names.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

#[cfg(unix)]
fn mode(meta: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Without Unix modes, give what a fresh Linux checkout would have.
#[cfg(not(unix))]
fn mode(meta: &Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    /// A build context ready for the engine's `/build` endpoint.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Context {
        /// Uncompressed tar.
        tar: Vec<u8>,
        /// Regular files and symlinks in the tar.
        files: usize,
        /// Content bytes of the regular files.
        bytes: u64,
        /// The engine's `dockerfile` parameter: the Dockerfile's path inside the tar.
        dockerfile: String,
    }

    /// Tars `dir` for the engine. `dockerfile` defaults to `dir/Dockerfile`; a
    /// relative one is resolved against the working directory, like
    /// `docker build -f`, and may lie outside `dir`.
    ///
    /// Blocking file I/O: call it from `spawn_blocking` in async code.
    fn tar_context(dir: &Path, dockerfile: Option<&Path>) -> anyhow::Result<Context> {
        let plan = ContextPlan::new(dir, dockerfile)?;
        let dockerfile = plan.dockerfile().to_owned();
        let (tar, stats) = plan.write(Vec::new())?;
        Ok(Context {
            tar,
            files: stats.files,
            bytes: stats.bytes,
            dockerfile,
        })
    }

    use super::*;
    use std::io::Read;

    #[derive(Debug, PartialEq, Eq)]
    struct Entry {
        path: String,
        kind: EntryType,
        mode: u32,
        link: Option<String>,
        content: Vec<u8>,
    }

    fn entries(context: &Context) -> Vec<Entry> {
        let mut archive = tar::Archive::new(context.tar.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header();
                assert_eq!(header.mtime().unwrap(), 0);
                assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
                assert_eq!(header.username().unwrap(), Some(""));
                let path = entry.path().unwrap().to_str().unwrap().to_owned();
                let kind = header.entry_type();
                let mode = header.mode().unwrap();
                let link = entry
                    .link_name()
                    .unwrap()
                    .map(|link| link.to_str().unwrap().to_owned());
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                Entry {
                    path,
                    kind,
                    mode,
                    link,
                    content,
                }
            })
            .collect()
    }

    fn paths(context: &Context) -> Vec<String> {
        entries(context)
            .into_iter()
            .map(|entry| entry.path)
            .collect()
    }

    fn write(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            write(dir.path(), path, content);
        }
        dir
    }

    #[test]
    fn tars_the_tree_in_sorted_order_with_counts() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            ("src/b.rs", "b"),
            ("src/a.rs", "aa"),
            ("README", "r"),
        ]);
        let context = tar_context(dir.path(), None).unwrap();
        assert_eq!(
            paths(&context),
            ["Dockerfile", "README", "src/", "src/a.rs", "src/b.rs"]
        );
        assert_eq!(context.dockerfile, "Dockerfile");
        assert_eq!(context.files, 4);
        assert_eq!(context.bytes, 13 + 1 + 2 + 1);
    }

    #[test]
    fn applies_ignore_rules_and_exceptions() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*.log\nnode_modules\n!node_modules/keep\n"),
            ("app.log", ""),
            ("app.rs", ""),
            ("logs/deep.log", ""),
            ("node_modules/drop/x.js", ""),
            ("node_modules/keep/y.js", ""),
        ]);
        let context = tar_context(dir.path(), None).unwrap();
        assert_eq!(
            paths(&context),
            [
                ".dockerignore",
                "Dockerfile",
                "app.rs",
                "logs/",
                "logs/deep.log",
                "node_modules/keep/",
                "node_modules/keep/y.js",
            ]
        );
    }

    #[test]
    fn always_sends_the_dockerfile_and_the_ignore_file() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*\n"),
            ("other", ""),
        ]);
        let context = tar_context(dir.path(), None).unwrap();
        assert_eq!(paths(&context), [".dockerignore", "Dockerfile"]);
    }

    #[test]
    fn sends_a_named_dockerfile_below_an_ignored_directory() {
        let dir = tree(&[
            ("ops/build.Dockerfile", "FROM scratch\n"),
            ("ops/secret", ""),
            (".dockerignore", "ops\n"),
        ]);
        let dockerfile = dir.path().join("ops/build.Dockerfile");
        let context = tar_context(dir.path(), Some(&dockerfile)).unwrap();
        assert_eq!(context.dockerfile, "ops/build.Dockerfile");
        assert_eq!(paths(&context), [".dockerignore", "ops/build.Dockerfile"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("run.sh", "#!/bin/sh\n")]);
        let script = dir.path().join("run.sh");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        let context = tar_context(dir.path(), None).unwrap();
        let run = entries(&context)
            .into_iter()
            .find(|e| e.path == "run.sh")
            .unwrap();
        assert_eq!(run.mode, 0o750);
        assert_eq!(run.kind, EntryType::Regular);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_symlinks_as_symlinks() {
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("real/file", "x")]);
        std::os::unix::fs::symlink("real", dir.path().join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("outside")).unwrap();
        let context = tar_context(dir.path(), None).unwrap();
        let links: Vec<_> = entries(&context)
            .into_iter()
            .filter(|entry| entry.kind == EntryType::Symlink)
            .map(|entry| (entry.path, entry.link.unwrap(), entry.content.len()))
            .collect();
        assert_eq!(
            links,
            [
                ("alias".to_owned(), "real".to_owned(), 0),
                ("outside".to_owned(), "/etc/passwd".to_owned(), 0),
            ]
        );
        assert!(!paths(&context).contains(&"alias/file".to_owned()));
    }

    #[test]
    fn same_tree_gives_same_bytes() {
        let files = [
            ("Dockerfile", "FROM scratch\n"),
            ("z/y/x", "1"),
            ("a", "2"),
            (".dockerignore", "a\n"),
        ];
        let first = tree(&files);
        let mut reversed = files;
        reversed.reverse();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = tree(&reversed);
        let one = tar_context(first.path(), None).unwrap();
        let again = tar_context(first.path(), None).unwrap();
        let elsewhere = tar_context(second.path(), None).unwrap();
        assert_eq!(one.tar, again.tar);
        assert_eq!(one.tar, elsewhere.tar);
        let plan = ContextPlan::new(first.path(), None).unwrap();
        let (_, stats) = plan.write(std::io::sink()).unwrap();
        assert_eq!(plan.identity().unwrap(), stats.digest);
        let elsewhere = ContextPlan::new(second.path(), None).unwrap();
        assert_eq!(elsewhere.identity().unwrap(), stats.digest);
        write(first.path(), "z/y/x", "changed");
        assert_ne!(plan.identity().unwrap(), stats.digest);
        let (_, changed) = plan.write(std::io::sink()).unwrap();
        assert_eq!(plan.identity().unwrap(), changed.digest);
    }

    #[test]
    fn a_dockerignore_linked_out_of_the_context_is_refused_and_never_quoted() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", "SECRET[line\n");
        let dir = tree(&[("Dockerfile", "FROM scratch\n")]);
        let ignore = dir.path().join(".dockerignore");
        std::os::unix::fs::symlink(outside.path().join("secret"), &ignore).unwrap();
        let error = format!("{:#}", ContextPlan::new(dir.path(), None).err().unwrap());
        assert!(error.contains("outside the build context"), "{error}");
        assert!(!error.contains("SECRET"), "{error}");

        // A link inside the context is read, as Docker reads it.
        write(dir.path(), "ignored", "skip\n");
        fs::remove_file(&ignore).unwrap();
        std::os::unix::fs::symlink("ignored", &ignore).unwrap();
        assert!(ContextPlan::new(dir.path(), None).is_ok());

        fs::remove_file(&ignore).unwrap();
        fs::write(&ignore, "x\n".repeat(1 << 20)).unwrap();
        let error = format!("{:#}", ContextPlan::new(dir.path(), None).err().unwrap());
        assert!(error.contains("larger than 1.0 MiB"), "{error}");
    }

    #[test]
    fn the_identity_without_a_tar_is_the_written_tars_for_every_kind_of_entry() {
        use std::os::unix::fs::PermissionsExt as _;
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "build.Dockerfile", "FROM scratch\n");
        let dir = tree(&[
            ("a/b", "1"),
            ("c", "22"),
            ("skip/x", "3"),
            (".dockerignore", "skip\n"),
        ]);
        std::os::unix::fs::symlink("c", dir.path().join("link")).unwrap();
        fs::set_permissions(dir.path().join("c"), fs::Permissions::from_mode(0o750)).unwrap();
        let plan =
            ContextPlan::new(dir.path(), Some(&outside.path().join("build.Dockerfile"))).unwrap();
        let (_, stats) = plan.write(std::io::sink()).unwrap();
        assert_eq!(plan.identity().unwrap(), stats.digest);
        fs::set_permissions(dir.path().join("c"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(
            plan.identity().unwrap(),
            stats.digest,
            "a mode is part of it"
        );
        write(dir.path(), "skip/x", "ignored");
        let (_, again) = plan.write(std::io::sink()).unwrap();
        assert_eq!(plan.identity().unwrap(), again.digest);
    }

    /// What the build can see, changed one thing at a time: each gives a
    /// new identity, the same one the written tar then has.
    #[test]
    fn every_change_the_build_can_see_changes_the_identity() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            ("a", "one"),
            ("b/c", "two"),
            ("skip/x", "3"),
            (".dockerignore", "skip\n"),
        ]);
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        let root = dir.path();
        let identity = || {
            let plan = ContextPlan::new(root, None).unwrap();
            let (_, stats) = plan.write(std::io::sink()).unwrap();
            assert_eq!(plan.identity().unwrap(), stats.digest);
            stats.digest
        };
        let mut seen = vec![identity()];
        let mut changed = |what: &str, change: &dyn Fn()| {
            change();
            let now = identity();
            assert!(!seen.contains(&now), "{what} left the identity alone");
            seen.push(now);
        };
        changed("content", &|| write(root, "b/c", "tw0"));
        changed("mode", &|| {
            fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o755)).unwrap()
        });
        changed("name", &|| {
            fs::rename(root.join("b/c"), root.join("b/d")).unwrap()
        });
        changed("symlink target", &|| {
            fs::remove_file(root.join("link")).unwrap();
            std::os::unix::fs::symlink("b", root.join("link")).unwrap();
        });
        changed(".dockerignore", &|| {
            write(root, ".dockerignore", "skip\nb\n")
        });
        changed("a file no longer ignored", &|| {
            write(root, ".dockerignore", "b\n")
        });
    }

    #[test]
    fn a_file_is_sent_at_the_size_it_had_when_opened() {
        use std::io::Read as _;
        let dir = tree(&[("f", "0123456789")]);
        let path = dir.path().join("f");
        let mut grown = Vec::new();
        Exactly::new(fs::File::open(&path).unwrap(), 4, &path)
            .read_to_end(&mut grown)
            .unwrap();
        assert_eq!(grown, b"0123");
        let mut shrunk = Exactly::new(fs::File::open(&path).unwrap(), 20, &path);
        let error = shrunk.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(
            error.to_string().contains("shrank while it was being sent"),
            "{error}"
        );
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_stopped_identity_is_an_error_never_a_digest() {
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("a", "1"), ("b", "2")]);
        let plan = ContextPlan::new(dir.path(), None).unwrap();
        let stopped = plan.identity_unless(&AtomicBool::new(true)).unwrap_err();
        assert!(
            stopped
                .to_string()
                .contains("stopped reading the build context"),
            "{stopped:#}"
        );
        let (_, stats) = plan.write(std::io::sink()).unwrap();
        assert_eq!(
            plan.identity_unless(&AtomicBool::new(false)).unwrap(),
            stats.digest
        );
    }

    #[tokio::test]
    async fn an_identity_task_dropped_unwaited_stops_and_a_waited_one_answers() {
        use std::time::{Duration, Instant};
        let (saw, seen) = std::sync::mpsc::channel();
        let task = IdentityTask::spawn(move |stop| {
            // Bounded: a task that is never stopped fails the test.
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = saw.send(stop.load(Ordering::Relaxed));
            anyhow::bail!("stopped")
        });
        drop(task);
        assert_eq!(seen.recv_timeout(Duration::from_secs(60)), Ok(true));

        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("a", "1")]);
        let plan = ContextPlan::new(dir.path(), None).unwrap();
        let (_, stats) = plan.write(std::io::sink()).unwrap();
        let learnt = IdentityTask::spawn(move |stop| plan.identity_unless(stop))
            .wait()
            .await
            .unwrap();
        assert_eq!(learnt, stats.digest);
    }

    #[test]
    fn adds_an_outside_dockerfile_under_a_generated_name() {
        let dir = tree(&[("app.rs", ""), (".registry-action.Dockerfile", "stale")]);
        let outside = tree(&[("build.Dockerfile", "FROM alpine\n")]);
        let dockerfile = outside.path().join("build.Dockerfile");
        let context = tar_context(dir.path(), Some(&dockerfile)).unwrap();
        assert_eq!(context.dockerfile, OUTSIDE_DOCKERFILE);
        let entries = entries(&context);
        let generated: Vec<_> = entries
            .iter()
            .filter(|entry| entry.path == OUTSIDE_DOCKERFILE)
            .collect();
        assert_eq!(generated.len(), 1);
        assert_eq!(generated[0].content, b"FROM alpine\n");
        assert_eq!(paths(&context), [OUTSIDE_DOCKERFILE, "app.rs"]);
    }

    #[test]
    fn missing_directory_names_it_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = tar_context(&missing, None).unwrap_err().to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
        assert!(error.contains("`path` input"), "{error}");
    }

    #[test]
    fn missing_dockerfile_names_it_and_the_fix() {
        let dir = tree(&[("app.rs", "")]);
        let error = tar_context(dir.path(), None).unwrap_err().to_string();
        let expected = dir.path().join("Dockerfile").display().to_string();
        assert!(error.contains(&expected), "{error}");
        assert!(error.contains("`path` input"), "{error}");
    }

    #[test]
    fn refuses_bad_ignore_patterns() {
        let dir = tree(&[("Dockerfile", ""), (".dockerignore", "ok\n[\n")]);
        let error = format!("{:#}", tar_context(dir.path(), None).unwrap_err());
        assert!(error.contains("line 2"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn refuses_non_utf8_paths_unless_ignored() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tree(&[("Dockerfile", "")]);
        let bad = dir.path().join(OsStr::from_bytes(b"bad\xff"));
        fs::write(&bad, "").unwrap();
        let error = tar_context(dir.path(), None).unwrap_err().to_string();
        assert!(error.contains("not valid UTF-8"), "{error}");
        assert!(error.contains("bad"), "{error}");

        write(dir.path(), ".dockerignore", "bad*\n");
        let context = tar_context(dir.path(), None).unwrap();
        assert_eq!(paths(&context), [".dockerignore", "Dockerfile"]);
    }
}
