//! docs/architecture.md stays true to the code: every module of src/ is in
//! its table, and no module imports one the table does not allow it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `module` → the modules its row says it may import.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let (_, table) = doc
        .split_once("| module | what it is | may import |")
        .expect("docs/architecture.md has the module table");
    let ticked = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            let module = ticked(cells[1]).pop_first().expect("a module name");
            (module, ticked(cells[3]))
        })
        .collect()
}

/// The text of `text` without its `#[cfg(test)] mod …{…}` blocks.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let open = after.find(['{', ';']).unwrap_or(after.len());
        let head = &after[..open];
        if !head.contains("mod ") || !after[open..].starts_with('{') {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        rest = &after[open + block_len(&after[open..])..];
    }
    out.push_str(rest);
    out
}

/// The length of the `{…}` block `text` starts with, strings and chars
/// skipped.
fn block_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    text.len()
}

/// The top-level modules `text` names as `crate::name`.
fn imports(text: &str) -> BTreeSet<String> {
    names_after(text, "crate::")
}

/// What `text` names right after `prefix` (`prefix{a, b::c}` names both).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// Every `.rs` file below `dir`, relative to it, with the name of the
/// top-level module (file or folder) it belongs to.
fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                let top = relative.components().next().unwrap().as_os_str();
                let module = top.to_string_lossy().trim_end_matches(".rs").to_owned();
                files.push((relative, module));
            }
        }
    }
    files
}

/// Each top-level module of src/ (a file or a folder) → what it imports.
fn actual() -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = root().join("src");
    for (relative, module) in rust_files(&src) {
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(src.join(relative)).unwrap();
        let mut used = imports(&without_test_modules(&text));
        used.remove(&module);
        modules.entry(module).or_default().extend(used);
    }
    modules
}

/// A circle in `graph`, as the modules on it (`a → b → a`), if any.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut found = path[at..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(found) = walk(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| walk(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_in_no_circle() {
    let found = circle(&actual());
    assert_eq!(found, None, "modules import each other in a circle");
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .into();
    assert_eq!(
        circle(&graph),
        Some(["a", "b", "c", "a"].map(str::to_owned).to_vec())
    );
}

#[test]
fn the_module_table_matches_src() {
    let documented = documented();
    let actual = actual();
    assert!(actual.len() > 20, "{actual:?}");
    let listed: BTreeSet<&String> = documented.keys().collect();
    let present: BTreeSet<&String> = actual.keys().collect();
    assert_eq!(
        listed, present,
        "docs/architecture.md's module table lists other modules than src/ has"
    );
    for (module, used) in &actual {
        if module == "commands" {
            continue; // it may import every module
        }
        let beyond: Vec<&String> = used.difference(&documented[module]).collect();
        assert!(
            beyond.is_empty(),
            "`{module}` imports {beyond:?}, which docs/architecture.md does not allow it: change the import or the table (and say why)"
        );
    }
    // The layering the page states: nothing imports `commands`, only
    // `commands` imports `cli`.
    for (module, allowed) in &documented {
        assert!(
            !allowed.contains("commands"),
            "`{module}` may not import `commands`"
        );
        assert!(
            module == "commands" || !allowed.contains("cli"),
            "only `commands` may import `cli`, not `{module}`"
        );
    }
}

/// The commands: each file or folder of src/commands but `mod.rs`.
fn commands() -> BTreeSet<String> {
    std::fs::read_dir(root().join("src/commands"))
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".rs").to_owned()
        })
        .filter(|name| name != "mod")
        .collect()
}

/// The commands `text`, a file of the command `command`, names as
/// `crate::commands::name` or, from a file right in src/commands,
/// `super::name`.
fn commands_named(text: &str, command: &str, top_level: bool) -> BTreeSet<String> {
    let commands = commands();
    let mut named = names_after(text, "crate::commands::");
    if top_level {
        named.extend(names_after(text, "super::"));
    }
    named.retain(|name| commands.contains(name) && name != command);
    named
}

#[test]
fn no_command_imports_another() {
    let commands = commands();
    assert!(commands.len() > 8, "{commands:?}");
    let mut found = Vec::new();
    let dir = root().join("src/commands");
    for (relative, command) in rust_files(&dir) {
        if command == "mod" {
            continue;
        }
        let text = without_test_modules(&std::fs::read_to_string(dir.join(&relative)).unwrap());
        let top_level = relative.components().count() == 1;
        for other in commands_named(&text, &command, top_level) {
            found.push(format!("{} → {other}", relative.display()));
        }
    }
    assert!(
        found.is_empty(),
        "commands import other commands: {found:?}; move what they share into a library module (or commands/mod.rs)"
    );
    let text =
        "use crate::commands::{Session, scan};\nuse super::mirror::copy;\nuse crate::usage;\n";
    assert_eq!(
        commands_named(text, "publish", true),
        ["mirror", "scan"].map(str::to_owned).into()
    );
    assert_eq!(commands_named(text, "publish", false).len(), 1);
}

#[test]
fn test_modules_and_grouped_imports_are_read_right() {
    let text = "use crate::a::x;\nuse crate::{b::y, c};\nfn f() { crate::d::g(\"}\") }\n\
                #[cfg(test)]\nfn helper() {}\n#[cfg(test)]\nmod tests {\n    use crate::e;\n    fn t() { let _ = '{'; }\n}\nuse crate::z;\n";
    let names = imports(&without_test_modules(text));
    assert_eq!(
        names,
        ["a", "b", "c", "d", "z"].map(str::to_owned).into(),
        "{}",
        without_test_modules(text)
    );
}
