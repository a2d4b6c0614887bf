//! Finds the image directories under the context root.

use std::path::Path;

use anyhow::{Context as _, bail};

/// An image directory found on disk: its name below the context root and
/// its Dockerfile's text.
pub struct Found {
    pub name: String,
    pub dockerfile: String,
}

/// Directories holding a `Dockerfile`, at most `max_depth` levels below
/// `context_root`, sorted by name.
pub fn discover(
    workspace: &Path,
    context_root: &str,
    max_depth: usize,
) -> anyhow::Result<Vec<Found>> {
    let root = workspace.join(context_root);
    if !root.is_dir() {
        bail!(
            "the context root {context_root:?} is not a directory in the workspace {}; set `context-root` to the folder holding your image directories (default `ops/docker`) and check the repository out first (actions/checkout)",
            workspace.display()
        );
    }
    let mut found = Vec::new();
    walk(&root, "", max_depth, &mut found)?;
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn walk(dir: &Path, prefix: &str, depth_left: usize, found: &mut Vec<Found>) -> anyhow::Result<()> {
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
        let dockerfile = entry.path().join("Dockerfile");
        if dockerfile.is_file() {
            let text = std::fs::read_to_string(&dockerfile)
                .with_context(|| format!("couldn't read {}", dockerfile.display()))?;
            found.push(Found {
                name: name.clone(),
                dockerfile: text,
            });
        }
        walk(&entry.path(), &name, depth_left - 1, found)?;
    }
    Ok(())
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

    #[test]
    fn depth_one_finds_direct_children_only() {
        let dir = tree(&[
            "ops/docker/b/Dockerfile",
            "ops/docker/a/Dockerfile",
            "ops/docker/a/nested/Dockerfile",
            "ops/docker/notes/README.md",
            "ops/docker/.hidden/Dockerfile",
        ]);
        let names: Vec<_> = discover(dir.path(), "ops/docker", 1)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let names: Vec<_> = discover(dir.path(), "ops/docker", 2)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["a", "a/nested", "b"]);
    }

    #[test]
    fn a_missing_root_says_which_and_how_to_fix() {
        let dir = tree(&[]);
        let err = discover(dir.path(), "ops/dockr", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("\"ops/dockr\"") && err.contains("context-root"),
            "{err}"
        );
    }
}
