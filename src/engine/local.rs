//! The context as BuildKit's file sync serves it: the same walk as the
//! tar (`.dockerignore` applied, symlinks as links), each entry with what
//! fsutil's receiver compares (size, mtime), and the Dockerfile as a
//! directory of its own.

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::Context as _;

use crate::engine::buildkit::{LocalDirs, LocalEntry, LocalKind};
use crate::engine::context::{ContextPlan, Sink};

/// The frontend's names for the two directories, and the Dockerfile's
/// name in its own.
pub const CONTEXT_DIR: &str = "context";
pub const DOCKERFILE_DIR: &str = "dockerfile";
pub const DOCKERFILE_NAME: &str = "Dockerfile";

/// Both directories of `plan`; blocking file I/O.
pub fn local_dirs(plan: &ContextPlan) -> anyhow::Result<LocalDirs> {
    let mut context = Entries {
        root: plan.root(),
        entries: Vec::new(),
        directories: HashSet::new(),
    };
    plan.visit(&mut context)?;
    let source = plan.dockerfile_source();
    let meta =
        std::fs::metadata(&source).with_context(|| format!("reading {}", source.display()))?;
    let dockerfile = LocalEntry {
        path: DOCKERFILE_NAME.to_owned(),
        mode: 0o644,
        mtime_ns: mtime_ns(&meta),
        kind: LocalKind::File {
            size: meta.len(),
            source,
        },
    };
    Ok(LocalDirs::default()
        .with(CONTEXT_DIR, context.entries, &plan.always_sent())
        .with(DOCKERFILE_DIR, vec![dockerfile], &[]))
}

struct Entries<'a> {
    root: &'a Path,
    entries: Vec<LocalEntry>,
    /// Those listed so far: a file that an exception re-includes below an
    /// excluded directory comes without it in the walk (a tar needs no
    /// parent entry), and fsutil's receiver wants every parent first.
    directories: HashSet<String>,
}

impl Entries<'_> {
    /// `name` with what the walk read of it, after the parents the walk
    /// left out (excluded, so read here).
    fn push(
        &mut self,
        name: &str,
        mode: u32,
        meta: &Metadata,
        kind: LocalKind,
    ) -> anyhow::Result<()> {
        for (at, _) in name.match_indices('/') {
            let parent = &name[..at];
            if !self.directories.contains(parent) {
                let meta = self.metadata(parent)?;
                self.add(parent, unix_mode(&meta), &meta, LocalKind::Directory);
            }
        }
        self.add(name, mode, meta, kind);
        Ok(())
    }

    fn add(&mut self, name: &str, mode: u32, meta: &Metadata, kind: LocalKind) {
        if kind == LocalKind::Directory {
            self.directories.insert(name.to_owned());
        }
        self.entries.push(LocalEntry {
            path: name.to_owned(),
            mode,
            mtime_ns: mtime_ns(meta),
            kind,
        });
    }

    fn metadata(&self, name: &str) -> anyhow::Result<Metadata> {
        let path = self.root.join(name);
        std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))
    }
}

impl Sink for Entries<'_> {
    fn directory(&mut self, name: &str, mode: u32, meta: &Metadata) -> anyhow::Result<()> {
        self.push(name, mode, meta, LocalKind::Directory)
    }

    fn symlink(
        &mut self,
        name: &str,
        mode: u32,
        target: &str,
        meta: &Metadata,
    ) -> anyhow::Result<()> {
        let target = target.to_owned();
        self.push(name, mode, meta, LocalKind::Symlink { target })
    }

    fn file(&mut self, name: &str, mode: u32, path: &Path, meta: &Metadata) -> anyhow::Result<()> {
        let (size, source) = (meta.len(), path.to_owned());
        self.push(name, mode, meta, LocalKind::File { size, source })
    }
}

/// The permission bits, as the context walk takes them.
fn unix_mode(meta: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o7777
}

fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_becomes_entries_and_the_dockerfile_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile.app"), "FROM scratch\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "secret\nvendor\n!vendor/keep\n").unwrap();
        std::fs::create_dir_all(root.join("vendor/keep")).unwrap();
        std::fs::write(root.join("vendor/keep/k"), "k").unwrap();
        std::fs::write(root.join("vendor/drop"), "d").unwrap();
        std::fs::write(root.join("secret"), "no").unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(root.join("src/a"), "abc").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("src/out")).unwrap();
        let plan = ContextPlan::new(root, Some(&root.join("Dockerfile.app"))).unwrap();
        let dirs = local_dirs(&plan).unwrap();
        let names = |name: &str| -> Vec<(String, LocalKind)> {
            dirs.entries(name)
                .unwrap()
                .iter()
                .map(|e| (e.path.clone(), e.kind.clone()))
                .collect()
        };
        let real = std::fs::canonicalize(root).unwrap();
        assert_eq!(
            names(CONTEXT_DIR),
            [
                (
                    ".dockerignore".into(),
                    LocalKind::File {
                        size: 27,
                        source: real.join(".dockerignore")
                    }
                ),
                (
                    "Dockerfile.app".into(),
                    LocalKind::File {
                        size: 13,
                        source: real.join("Dockerfile.app")
                    }
                ),
                ("src".into(), LocalKind::Directory),
                (
                    "src/a".into(),
                    LocalKind::File {
                        size: 3,
                        source: real.join("src/a")
                    }
                ),
                (
                    "src/out".into(),
                    LocalKind::Symlink {
                        target: "/etc/passwd".into()
                    }
                ),
                ("vendor".into(), LocalKind::Directory),
                ("vendor/keep".into(), LocalKind::Directory),
                (
                    "vendor/keep/k".into(),
                    LocalKind::File {
                        size: 1,
                        source: real.join("vendor/keep/k")
                    }
                ),
            ]
        );
        assert_eq!(
            names(DOCKERFILE_DIR),
            [(
                DOCKERFILE_NAME.into(),
                LocalKind::File {
                    size: 13,
                    source: real.join("Dockerfile.app")
                }
            )]
        );
    }
}
