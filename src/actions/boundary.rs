//! The workspace is a boundary: a path input is resolved, symlinks
//! followed, and must land inside the workspace (`GITHUB_WORKSPACE`, else
//! the current directory), or, for a file a job's steps hand each other,
//! under RUNNER_TEMP. A committed symlink can't make us build, read or
//! write what lies outside.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What a path input is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// What the checkout supplies (an image directory, a Dockerfile, the
    /// context root, an ignore file): the workspace only.
    Checkout,
    /// A file a job's steps hand each other (an archive, a report, a key,
    /// SARIF, an SBOM), read or written: the workspace, or RUNNER_TEMP,
    /// where workflows keep such files (`${{ runner.temp }}/image.tar`).
    Exchange,
}

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "`{input}`: {given:?} resolves to {}, outside the workspace {}{}; give a path inside the workspace{}",
        resolved.display(),
        workspace.display(),
        temp.as_ref().map(|t| format!(" and RUNNER_TEMP {}", t.display())).unwrap_or_default(),
        if temp.is_some() { " or RUNNER_TEMP" } else { "" },
    )]
    Outside {
        input: String,
        given: String,
        resolved: PathBuf,
        workspace: PathBuf,
        /// RUNNER_TEMP, when it was allowed.
        temp: Option<PathBuf>,
    },
    #[error("`{input}`: {given:?} can't be resolved ({source}); give a path inside the workspace")]
    Unresolvable {
        input: String,
        given: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the workspace {} can't be opened ({source}); check the repository out first (actions/checkout)",
        workspace.display()
    )]
    Workspace {
        workspace: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The workspace and RUNNER_TEMP, resolved once.
#[derive(Debug, Clone)]
pub struct Boundary {
    workspace: PathBuf,
    temp: Option<PathBuf>,
}

impl Boundary {
    /// RUNNER_TEMP that doesn't exist (or isn't set) allows nothing.
    pub fn new(workspace: &Path, runner_temp: Option<&Path>) -> Result<Self, PathError> {
        let workspace =
            std::fs::canonicalize(workspace).map_err(|source| PathError::Workspace {
                workspace: workspace.to_owned(),
                source,
            })?;
        let temp = runner_temp.and_then(|t| std::fs::canonicalize(t).ok());
        Ok(Boundary { workspace, temp })
    }

    /// The workspace, symlinks resolved: resolved paths start with it.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// `given` (relative to the workspace, or absolute) with every symlink
    /// followed, when it lands where `access` allows; `input` is the input's
    /// name as the workflow spells it, for the error. What doesn't exist
    /// yet resolves through its nearest existing ancestor.
    pub fn resolve(&self, input: &str, given: &str, access: Access) -> Result<PathBuf, PathError> {
        let resolved = resolve_links(&self.workspace.join(given)).map_err(|source| {
            PathError::Unresolvable {
                input: input.to_owned(),
                given: given.to_owned(),
                source,
            }
        })?;
        let temp = match access {
            Access::Checkout => None,
            Access::Exchange => self.temp.as_deref(),
        };
        if resolved.starts_with(&self.workspace) || temp.is_some_and(|t| resolved.starts_with(t)) {
            return Ok(resolved);
        }
        Err(PathError::Outside {
            input: input.to_owned(),
            given: given.to_owned(),
            resolved,
            workspace: self.workspace.clone(),
            temp: temp.map(Path::to_owned),
        })
    }

    /// A path below the workspace as the repository names it (`/`-separated).
    pub fn relative(&self, resolved: &Path) -> Option<String> {
        let inside = resolved.strip_prefix(&self.workspace).ok()?;
        let parts: Option<Vec<&str>> = inside.iter().map(|p| p.to_str()).collect();
        parts.map(|parts| parts.join("/"))
    }
}

/// Symlinks a path may pass through before it counts as a loop (Linux's
/// own limit).
const MAX_LINKS: usize = 40;

/// `path` with every symlink followed, `.` and `..` applied. The existing
/// part is the file system's to resolve; the rest (names not created yet)
/// is appended, and a dangling symlink is followed by hand, since writing
/// through it would create its target.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut missing: Vec<OsString> = Vec::new();
    let mut links = 0;
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        if let Ok(target) = std::fs::read_link(&existing) {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let parent = existing.parent().unwrap_or(Path::new("/"));
            existing = parent.join(target);
            continue;
        }
        let (Some(parent), Some(Component::Normal(name))) =
            (existing.parent(), existing.components().next_back())
        else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "a folder on the way doesn't exist",
            ));
        };
        missing.push(name.to_owned());
        existing = parent.to_path_buf();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A workspace with a file, a folder and links in and out, beside an
    /// outside folder with a secret and a runner temp folder.
    struct Tree {
        _root: tempfile::TempDir,
        workspace: PathBuf,
        outside: PathBuf,
        temp: PathBuf,
    }

    fn tree() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("ws");
        let outside = root.path().join("outside");
        let temp = root.path().join("temp");
        for dir in [&workspace, &outside, &temp] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(workspace.join("ops/docker/app")).unwrap();
        std::fs::write(
            workspace.join("ops/docker/app/Dockerfile"),
            "FROM scratch\n",
        )
        .unwrap();
        std::fs::write(outside.join("secret"), "root:x:0:0\n").unwrap();
        symlink(&outside, workspace.join("ops/docker/evil")).unwrap();
        symlink("app", workspace.join("ops/docker/alias")).unwrap();
        symlink(outside.join("secret"), workspace.join("passwd")).unwrap();
        symlink(outside.join("new"), workspace.join("dangling")).unwrap();
        symlink("../ws/ops", workspace.join("loop-free")).unwrap();
        symlink("self", workspace.join("self")).unwrap();
        Tree {
            workspace: std::fs::canonicalize(&workspace).unwrap(),
            outside: std::fs::canonicalize(&outside).unwrap(),
            temp: std::fs::canonicalize(&temp).unwrap(),
            _root: root,
        }
    }

    fn boundary(t: &Tree) -> Boundary {
        Boundary::new(&t.workspace, Some(&t.temp)).unwrap()
    }

    #[test]
    fn paths_inside_resolve_to_their_real_place() {
        let t = tree();
        let b = boundary(&t);
        let app = t.workspace.join("ops/docker/app");
        for (given, access, expected) in [
            ("ops/docker/app", Access::Checkout, app.clone()),
            ("./ops/docker/app/", Access::Checkout, app.clone()),
            ("ops/docker/alias", Access::Checkout, app.clone()),
            (
                "loop-free/docker/alias/Dockerfile",
                Access::Checkout,
                app.join("Dockerfile"),
            ),
            ("ops/../ops/docker/app", Access::Checkout, app.clone()),
            (app.to_str().unwrap(), Access::Checkout, app.clone()),
            (
                "reports/new/usage.json",
                Access::Exchange,
                t.workspace.join("reports/new/usage.json"),
            ),
            (
                t.temp.join("r.json").to_str().unwrap(),
                Access::Exchange,
                t.temp.join("r.json"),
            ),
        ] {
            assert_eq!(b.resolve("x", given, access).unwrap(), expected, "{given}");
        }
        assert_eq!(
            b.relative(
                &b.resolve("x", "ops/docker/alias/Dockerfile", Access::Checkout)
                    .unwrap()
            ),
            Some("ops/docker/app/Dockerfile".into())
        );
    }

    #[test]
    fn paths_outside_are_refused_naming_the_input() {
        let t = tree();
        let b = boundary(&t);
        let temp_file = t.temp.join("r.json");
        for (given, access, resolved) in [
            ("ops/docker/evil", Access::Checkout, t.outside.clone()),
            (
                "ops/docker/evil/secret",
                Access::Checkout,
                t.outside.join("secret"),
            ),
            ("passwd", Access::Exchange, t.outside.join("secret")),
            ("dangling", Access::Exchange, t.outside.join("new")),
            (
                "../outside/secret",
                Access::Checkout,
                t.outside.join("secret"),
            ),
            (
                "/etc/passwd",
                Access::Checkout,
                PathBuf::from("/etc/passwd"),
            ),
            (
                temp_file.to_str().unwrap(),
                Access::Checkout,
                temp_file.clone(),
            ),
        ] {
            match b.resolve("dockerfile", given, access) {
                Err(PathError::Outside {
                    input,
                    resolved: found,
                    ..
                }) => {
                    assert_eq!(input, "dockerfile");
                    assert_eq!(found, resolved, "{given}");
                }
                other => panic!("{given}: {other:?}"),
            }
        }
        let err = b
            .resolve("report-file", "../outside/x", Access::Exchange)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`report-file`: \"../outside/x\" resolves to ")
                && err.contains("outside the workspace")
                && err.contains("or RUNNER_TEMP"),
            "{err}"
        );
        let err = b
            .resolve("dockerfile", "passwd", Access::Checkout)
            .unwrap_err();
        assert!(!err.to_string().contains("root:x"), "{err}");
    }

    #[test]
    fn loops_and_missing_folders_before_dots_are_errors() {
        let t = tree();
        let b = boundary(&t);
        for given in ["self", "missing/../../outside/secret"] {
            assert!(
                matches!(
                    b.resolve("archive", given, Access::Exchange),
                    Err(PathError::Unresolvable { .. })
                ),
                "{given}"
            );
        }
    }

    #[test]
    fn without_runner_temp_writes_stay_in_the_workspace() {
        let t = tree();
        let b = Boundary::new(&t.workspace, None).unwrap();
        let in_temp = t.temp.join("r.json");
        assert!(
            b.resolve("sarif", in_temp.to_str().unwrap(), Access::Exchange)
                .is_err()
        );
        let missing = t.workspace.join("nope");
        assert!(matches!(
            Boundary::new(&missing, None),
            Err(PathError::Workspace { .. })
        ));
    }
}
