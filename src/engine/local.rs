//! The context as BuildKit's file sync serves it: the same walk as the
//! tar (`.dockerignore` applied, symlinks as links), each entry with what
//! fsutil's receiver compares (size, mtime), and the Dockerfile as a
//! directory of its own.

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
        .with(CONTEXT_DIR, context.entries)
        .with(DOCKERFILE_DIR, vec![dockerfile]))
}

struct Entries<'a> {
    root: &'a Path,
    entries: Vec<LocalEntry>,
}

impl Entries<'_> {
    fn push(
        &mut self,
        name: &str,
        mode: u32,
        kind: impl FnOnce(&Metadata) -> LocalKind,
    ) -> anyhow::Result<()> {
        let path = self.root.join(name);
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        self.entries.push(LocalEntry {
            path: name.to_owned(),
            mode,
            mtime_ns: mtime_ns(&meta),
            kind: kind(&meta),
        });
        Ok(())
    }
}

impl Sink for Entries<'_> {
    fn directory(&mut self, name: &str, mode: u32) -> anyhow::Result<()> {
        self.push(name, mode, |_| LocalKind::Directory)
    }

    fn symlink(&mut self, name: &str, mode: u32, target: &str) -> anyhow::Result<()> {
        self.push(name, mode, |_| LocalKind::Symlink {
            target: target.to_owned(),
        })
    }

    fn file(&mut self, name: &str, mode: u32, path: &Path) -> anyhow::Result<()> {
        self.push(name, mode, |meta| LocalKind::File {
            size: meta.len(),
            source: path.to_owned(),
        })
    }
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
        std::fs::write(root.join(".dockerignore"), "secret\n").unwrap();
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
                        size: 7,
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
