//! The README and the pages of docs/ link to what is there: every relative
//! link names a file or folder of the repository, and every `#anchor` a
//! heading of the page it points to, as GitHub makes them.

use std::path::{Component, Path, PathBuf};

use crate::clone::tracked;
use crate::support::markdown;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target` read from the repository-relative file `from`, made
/// repository-relative; `None` when it climbs out of the repository.
fn resolve(from: &str, target: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    let base = Path::new(from).parent().unwrap_or(Path::new(""));
    for component in base.join(target).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !path.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// The links of the markdown file `from` (repository-relative, its text
/// `markdown`) that lead nowhere, each with why.
fn broken_links(from: &str, markdown: &str) -> Vec<String> {
    let mut broken = Vec::new();
    for link in markdown::links(markdown) {
        if link.contains("://") || link.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
        let target = if file.is_empty() {
            Some(PathBuf::from(from))
        } else {
            resolve(from, file)
        };
        let Some(target) = target.filter(|t| root().join(t).exists()) else {
            broken.push(format!("{link}: no such file or folder"));
            continue;
        };
        if anchor.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&target)).unwrap_or_default();
        if !markdown::anchors(&text).contains(anchor) {
            broken.push(format!(
                "{link}: no heading of {} has that anchor",
                target.display()
            ));
        }
    }
    broken
}

#[test]
fn relative_links_in_the_markdown_resolve() {
    let pages: Vec<String> = tracked()
        .into_iter()
        .filter(|name| name.ends_with(".md"))
        .collect();
    assert!(
        pages.iter().any(|p| p == "README.md") && pages.iter().any(|p| p == "docs/plan.md"),
        "{pages:?}"
    );
    let broken: Vec<String> = pages
        .iter()
        .flat_map(|page| {
            let text = std::fs::read_to_string(root().join(page)).unwrap();
            broken_links(page, &text)
                .into_iter()
                .map(move |why| format!("{page}: {why}"))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "links leading nowhere:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_link_check_finds_a_missing_file_anchor_or_escape() {
    let page = "[a](plan.md#plan-inputs) [b](../README.md#try-it) [c](#not-here) \
                [d](nope.md) [e](plan.md#nope) [f](../../elsewhere.md) [g](https://example.com/x)";
    let broken = broken_links("docs/x.md", page);
    assert_eq!(broken.len(), 4, "{broken:#?}");
    for (found, link) in
        broken
            .iter()
            .zip(["#not-here", "nope.md", "plan.md#nope", "../../elsewhere.md"])
    {
        assert!(found.starts_with(&format!("{link}:")), "{found}");
    }
}
