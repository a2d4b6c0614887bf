//! Finds the image directories under the context root.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::actions::boundary::{Access, Boundary};

/// An image directory found on disk: its name below the context root and
/// its Dockerfile's text.
pub struct Found {
    pub name: String,
    pub dockerfile: String,
}

/// Directories holding a `Dockerfile`, at most `max_depth` levels below
/// `context_root`, sorted by name. The root and every Dockerfile must
/// resolve inside the workspace: a symlink out is refused, not followed.
pub fn discover(
    boundary: &Boundary,
    context_root: &str,
    max_depth: usize,
) -> anyhow::Result<Vec<Found>> {
    let root = boundary.resolve("context-root", context_root, Access::Checkout)?;
    if !root.is_dir() {
        bail!(
            "the context root {context_root:?} is not a directory in the workspace {}; set `context-root` to the folder holding your image directories (default `ops/docker`) and check the repository out first (actions/checkout)",
            boundary.workspace().display()
        );
    }
    let mut found = Vec::new();
    let mut walk = Walk {
        boundary,
        context_root,
        found: &mut found,
    };
    walk.dir(&root, "", max_depth)?;
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

struct Walk<'a> {
    boundary: &'a Boundary,
    context_root: &'a str,
    found: &'a mut Vec<Found>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, prefix: &str, depth_left: usize) -> anyhow::Result<()> {
        if depth_left == 0 {
            return Ok(());
        }
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("couldn't list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("couldn't list {}", dir.display()))?;
            // Symlinked directories are skipped: they could loop or leave the workspace.
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            let name = if prefix.is_empty() {
                file_name.to_owned()
            } else {
                format!("{prefix}/{file_name}")
            };
            if entry.path().join("Dockerfile").is_file() {
                let text = self.dockerfile(&name)?;
                self.found.push(Found {
                    name: name.clone(),
                    dockerfile: text,
                });
            }
            self.dir(&entry.path(), &name, depth_left - 1)?;
        }
        Ok(())
    }

    /// The text of `<name>/Dockerfile`, which may be a symlink, but not
    /// one out of the workspace.
    fn dockerfile(&self, name: &str) -> anyhow::Result<String> {
        let given = format!("{}/{name}/Dockerfile", self.context_root);
        let path = self
            .boundary
            .resolve("context-root", &given, Access::Checkout)?;
        std::fs::read_to_string(&path).with_context(|| format!("couldn't read {given}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "FROM scratch\n").unwrap();
        }
        dir
    }

    fn inside(dir: &tempfile::TempDir) -> Boundary {
        Boundary::new(dir.path(), None).unwrap()
    }

    #[test]
    fn links_out_of_the_workspace_are_refused() {
        use std::os::unix::fs::symlink;
        let outside = tree(&["images/secret/Dockerfile"]);
        let dir = tree(&["ops/docker/app/Dockerfile"]);
        symlink(outside.path().join("images"), dir.path().join("elsewhere")).unwrap();
        let err = discover(&inside(&dir), "elsewhere", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("`context-root`: \"elsewhere\" resolves to ")
                && err.contains("outside the workspace"),
            "{err}"
        );

        std::fs::create_dir(dir.path().join("ops/docker/host")).unwrap();
        symlink(
            "/etc/hostname",
            dir.path().join("ops/docker/host/Dockerfile"),
        )
        .unwrap();
        let err = discover(&inside(&dir), "ops/docker", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(
                "`context-root`: \"ops/docker/host/Dockerfile\" resolves to /etc/hostname"
            ),
            "{err}"
        );
        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        assert!(
            hostname.trim().is_empty() || !err.contains(hostname.trim()),
            "{err}"
        );
    }

    #[test]
    fn links_inside_the_workspace_are_followed() {
        use std::os::unix::fs::symlink;
        let dir = tree(&["ops/docker/app/Dockerfile", "common/Dockerfile"]);
        symlink("ops/docker", dir.path().join("images")).unwrap();
        std::fs::create_dir(dir.path().join("ops/docker/linked")).unwrap();
        symlink(
            "../../../common/Dockerfile",
            dir.path().join("ops/docker/linked/Dockerfile"),
        )
        .unwrap();
        // A symlinked image directory is not walked, inside or not.
        symlink("app", dir.path().join("ops/docker/alias")).unwrap();
        let names: Vec<_> = discover(&inside(&dir), "images", 1)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["app", "linked"]);
    }

    #[test]
    fn depth_one_finds_direct_children_only() {
        let dir = tree(&[
            "ops/docker/b/Dockerfile",
            "ops/docker/a/Dockerfile",
            "ops/docker/a/nested/Dockerfile",
            "ops/docker/notes/README.md",
            "ops/docker/.hidden/Dockerfile",
        ]);
        let names: Vec<_> = discover(&inside(&dir), "ops/docker", 1)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let names: Vec<_> = discover(&inside(&dir), "ops/docker", 2)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["a", "a/nested", "b"]);
    }

    #[test]
    fn a_missing_root_says_which_and_how_to_fix() {
        let dir = tree(&[]);
        let err = discover(&inside(&dir), "ops/dockr", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("\"ops/dockr\"") && err.contains("context-root"),
            "{err}"
        );
    }
}
