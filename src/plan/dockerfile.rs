//! The `FROM` lines of a Dockerfile: which images an image builds on, and
//! where each one is written; and the other images a build reads.
//!
//! Only as much of the Dockerfile grammar as `FROM` needs: parser
//! directives, comments, line continuations, heredocs (so a `from x import y`
//! inside `RUN <<EOF` is not an instruction) and global `ARG` substitution.

use std::collections::BTreeMap;

use crate::platform::{self, Platform};

/// One `FROM` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image or earlier stage, after `ARG` substitution.
    pub base: String,
    /// The `AS` name, as written.
    pub name: Option<String>,
    /// 1-based line of the `FROM` keyword.
    pub line: usize,
}

/// Every `FROM` in `content`, in order.
///
/// As in Docker, only `ARG`s declared before the first `FROM` reach a `FROM`
/// line; `build_args` override their defaults and an unset variable expands
/// to nothing. BuildKit's platform arguments (`TARGETARCH`, `BUILDPLATFORM`
/// …) need no declaration: they describe `target`, and this machine as the
/// build platform.
pub fn stages(
    content: &str,
    build_args: &BTreeMap<String, String>,
    target: &Platform,
) -> Vec<Stage> {
    let escape = escape_char(content);
    let automatic = platform_args(target, &platform::host());
    let mut vars = automatic.clone();
    let mut stages = Vec::new();
    for Instruction { line, text, .. } in instructions(content, escape) {
        let (keyword, rest) = text
            .trim_start()
            .split_once(char::is_whitespace)
            .unwrap_or((text.trim(), ""));
        if keyword.eq_ignore_ascii_case("arg") && stages.is_empty() {
            // One at a time: a default may use an ARG declared before it.
            for word in split_words(rest, escape) {
                let (name, default) = match word.split_once('=') {
                    Some((name, default)) => (name, Some(expand(default, &vars, escape))),
                    None => (word, None),
                };
                let given = build_args.get(name).or_else(|| automatic.get(name));
                if let Some(value) = given.cloned().or(default) {
                    vars.insert(name.to_string(), value);
                }
            }
        } else if keyword.eq_ignore_ascii_case("from") {
            let mut words = split_words(rest, escape)
                .into_iter()
                .skip_while(|word| word.starts_with("--"));
            let Some(base) = words.next() else { continue };
            let name = match (words.next(), words.next()) {
                (Some(as_), Some(name)) if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                base: expand(base, &vars, escape),
                name,
                line,
            });
        }
    }
    stages
}

/// The arguments BuildKit defines in the global scope of every build.
fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    [("TARGET", target), ("BUILD", build)]
        .into_iter()
        .flat_map(|(prefix, platform)| {
            [
                ("PLATFORM", platform.to_string()),
                ("OS", platform.os.clone()),
                ("ARCH", platform.architecture.clone()),
                ("VARIANT", platform.variant.clone().unwrap_or_default()),
            ]
            .map(|(name, value)| (format!("{prefix}{name}"), value))
        })
        .collect()
}

/// The stages built on an image from a registry: not `scratch`, not an
/// earlier stage.
pub fn external_bases(stages: &[Stage]) -> Vec<&Stage> {
    stages
        .iter()
        .enumerate()
        .filter(|(i, stage)| {
            let is_stage = stages[..*i].iter().any(|earlier| {
                earlier
                    .name
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case(&stage.base))
            });
            !is_stage && !stage.base.eq_ignore_ascii_case("scratch")
        })
        .map(|(_, stage)| stage)
        .collect()
}

/// The images a build reads besides its bases — `COPY --from=<image>`,
/// `ADD --from=<image>`, `RUN --mount=…,from=<image>` — as written. `Err`
/// says what a build reads that no digest can pin: an `ADD` of a URL, or a
/// `--from` made of variables.
pub fn other_images(content: &str, stages: &[Stage]) -> Result<Vec<String>, String> {
    let escape = escape_char(content);
    let is_stage = |from: &str| {
        from.bytes().all(|b| b.is_ascii_digit())
            || stages.iter().any(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(from))
            })
    };
    let mut images = Vec::new();
    for Instruction { line, text, .. } in instructions(content, escape) {
        let words = split_words(&text, escape);
        let Some((keyword, rest)) = words.split_first() else {
            continue;
        };
        let keyword = keyword.to_ascii_lowercase();
        let froms: Vec<&str> = match keyword.as_str() {
            "copy" | "add" => rest
                .iter()
                .filter_map(|w| w.strip_prefix("--from="))
                .collect(),
            "run" => rest
                .iter()
                .filter_map(|w| w.strip_prefix("--mount="))
                .flat_map(|mount| mount.split(','))
                .filter_map(|option| option.strip_prefix("from="))
                .collect(),
            _ => Vec::new(),
        };
        for from in froms.into_iter().filter(|from| !is_stage(from)) {
            if from.contains('$') {
                return Err(format!(
                    "line {line} reads from `{from}`, named by a variable"
                ));
            }
            images.push(from.to_owned());
        }
        if keyword == "add" {
            let sources = rest.iter().filter(|w| !w.starts_with("--"));
            let sources: Vec<&&str> = sources.collect();
            let remote = sources
                .split_last()
                .map(|(_, sources)| sources)
                .unwrap_or_default()
                .iter()
                .find(|source| source.contains("://") || source.starts_with("git@"));
            if let Some(url) = remote {
                return Err(format!(
                    "line {line} adds {url}, which may change at any time"
                ));
            }
        }
    }
    Ok(images)
}

/// The stage `docker build` builds when no `--target` is given.
pub fn final_stage(stages: &[Stage]) -> Option<&Stage> {
    stages.last()
}

/// The 1-based line where the instruction BuildKit names as a build step
/// (`[build 2/4] RUN make`) starts. BuildKit prints the instruction with
/// continuations joined and `ARG`s expanded, so the words are compared, and
/// a step whose text no longer matches anything falls back to the first
/// instruction that starts with the same words.
pub fn step_line(content: &str, step: &str) -> Option<usize> {
    let text = step
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .map_or(step, |(_, text)| text);
    let wanted = words(text);
    let keyword = wanted.first()?.clone();
    let instructions: Vec<(usize, Vec<String>)> = instructions(content, escape_char(content))
        .into_iter()
        .map(|i| (i.line, words(&i.text)))
        .filter(|(_, words)| words.first() == Some(&keyword))
        .collect();
    let exact = instructions.iter().find(|(_, words)| *words == wanted);
    let prefix = || {
        instructions
            .iter()
            .find(|(_, words)| words.len() > 1 && wanted.len() > 1 && words[..2] == wanted[..2])
    };
    exact.or_else(prefix).map(|(line, _)| *line)
}

/// A layer's `created_by` (from the image config's history) as the
/// Dockerfile instruction it reads like: BuildKit's ` # buildkit` mark
/// dropped, the classic builder's `/bin/sh -c #(nop) ` dropped, and its
/// bare `/bin/sh -c <command>` (a `RUN`) given its keyword back.
pub fn created_by_step(created_by: &str) -> String {
    let text = created_by.trim();
    let text = text.strip_suffix("# buildkit").unwrap_or(text).trim_end();
    if let Some(rest) = text.strip_prefix("/bin/sh -c #(nop)") {
        return rest.trim().to_owned();
    }
    match text.strip_prefix("/bin/sh -c ") {
        Some(command) => format!("RUN {}", command.trim()),
        None => text.to_owned(),
    }
}

/// The Dockerfile line of the instruction that made a layer, from its
/// `created_by`, where one can be told: a `RUN` whose command ends the
/// recorded one (which may start with build arguments and the shell), a
/// `COPY`/`ADD` with the same words (the classic builder's
/// `COPY file:<hash> in <dest>`: the same destination), any other
/// instruction word for word. `--` options are left out on both sides;
/// of several, the last (the final stage comes last).
pub fn created_by_line(content: &str, created_by: &str) -> Option<usize> {
    let step = created_by_step(created_by);
    let wanted = plain_words(&step);
    let (keyword, args) = wanted.split_first()?;
    let classic_copy = matches!(keyword.as_str(), "COPY" | "ADD")
        && args.len() == 3
        && args[1] == "in"
        && (args[0].starts_with("file:") || args[0].starts_with("dir:"));
    instructions(content, escape_char(content))
        .into_iter()
        .filter(|i| {
            let words = plain_words(&i.text);
            let Some((key, rest)) = words.split_first() else {
                return false;
            };
            if key != keyword || rest.is_empty() {
                return false;
            }
            match keyword.as_str() {
                "RUN" => args.ends_with(rest),
                _ if classic_copy => rest.last() == args.last(),
                _ => rest == args,
            }
        })
        .map(|i| i.line)
        .next_back()
}

/// [`words`] without `--option` words after the keyword.
fn plain_words(text: &str) -> Vec<String> {
    let mut all = words(text);
    if all.len() > 1 {
        let keyword = all.remove(0);
        all.retain(|w| !w.starts_with("--"));
        all.insert(0, keyword);
    }
    all
}

/// Whitespace-separated words, the instruction keyword upper-cased.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_ascii_uppercase()
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// The `# escape=` parser directive, which Windows Dockerfiles set to a
/// backtick so that `\` can be a path separator.
fn escape_char(content: &str) -> char {
    let backtick = directives(content)
        .iter()
        .any(|(_, key, value)| key.eq_ignore_ascii_case("escape") && value == "`");
    if backtick { '`' } else { '\\' }
}

/// The `# syntax=` parser directive: its 1-based line and the frontend
/// image BuildKit fetches for it.
pub fn syntax_directive(content: &str) -> Option<(usize, String)> {
    directives(content)
        .into_iter()
        .find(|(_, key, _)| key.eq_ignore_ascii_case("syntax"))
        .map(|(line, _, value)| (line, value))
}

/// Parser directives `# key=value`: only at the top, before anything
/// else, even a comment.
fn directives(content: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (index, line) in content.lines().enumerate() {
        let Some((key, value)) = line
            .trim()
            .strip_prefix('#')
            .and_then(|body| body.split_once('='))
        else {
            break;
        };
        let key = key.trim();
        if !(key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            break;
        }
        found.push((index + 1, key.to_owned(), value.trim().to_owned()));
    }
    found
}

/// One logical instruction: its 1-based first and last lines and its text
/// with continuations joined.
struct Instruction {
    line: usize,
    end: usize,
    text: String,
}

fn instructions(content: &str, escape: char) -> Vec<Instruction> {
    let is_code = |line: &str| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#')
    };
    let mut instructions = Vec::new();
    let mut lines = content.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        if !is_code(first) {
            continue;
        }
        let mut text = String::new();
        let mut part = first;
        let mut end = index;
        // Comment and blank lines inside a continuation are dropped, as Docker does.
        while let Some(head) = part.trim_end().strip_suffix(escape) {
            text.push_str(head);
            match lines.by_ref().find(|(_, line)| is_code(line)) {
                Some((at, next)) => {
                    part = next;
                    end = at;
                }
                None => {
                    part = "";
                    break;
                }
            }
        }
        text.push_str(part);
        for (delimiter, strip_tabs) in heredocs(&text) {
            lines.by_ref().find(|(_, line)| {
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                line == delimiter
            });
        }
        instructions.push(Instruction {
            line: index + 1,
            end: end + 1,
            text,
        });
    }
    instructions
}

/// `content` with the image of the `FROM` instructions starting on the
/// given lines replaced (`--platform` and `AS` kept). A `FROM` continued
/// over several lines becomes one line followed by blank ones, so every
/// later instruction keeps its line number for annotations.
pub fn pin(content: &str, images: &BTreeMap<usize, String>) -> String {
    let escape = escape_char(content);
    let mut rewritten: BTreeMap<usize, String> = BTreeMap::new();
    for instruction in instructions(content, escape) {
        let Some(image) = images.get(&instruction.line) else {
            continue;
        };
        let (keyword, rest) = instruction
            .text
            .trim_start()
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.text.trim(), ""));
        let mut words = vec![keyword];
        let mut replaced = false;
        for word in split_words(rest, escape) {
            if !replaced && !word.starts_with("--") {
                words.push(image);
                replaced = true;
            } else {
                words.push(word);
            }
        }
        rewritten.insert(instruction.line, words.join(" "));
        for blank in instruction.line + 1..=instruction.end {
            rewritten.insert(blank, String::new());
        }
    }
    content
        .split_inclusive('\n')
        .enumerate()
        .map(|(index, line)| match rewritten.get(&(index + 1)) {
            Some(text) => {
                let ending = &line[line.trim_end_matches(['\r', '\n']).len()..];
                format!("{text}{ending}")
            }
            None => line.to_owned(),
        })
        .collect()
}

/// The heredoc delimiters (`<<EOF`, `<<-"EOF"`) a `RUN`, `COPY` or `ADD`
/// opens, with whether `<<-` strips leading tabs from the closing line.
fn heredocs(text: &str) -> Vec<(String, bool)> {
    let mut words = text.split_whitespace();
    let takes_heredocs = words.next().is_some_and(|keyword| {
        ["run", "copy", "add"]
            .iter()
            .any(|k| keyword.eq_ignore_ascii_case(k))
    });
    if !takes_heredocs {
        return Vec::new();
    }
    words
        .filter_map(|word| {
            word.trim_start_matches(|c: char| c.is_ascii_digit())
                .strip_prefix("<<")
        })
        .filter_map(|spec| {
            let (spec, strip_tabs) = match spec.strip_prefix('-') {
                Some(spec) => (spec, true),
                None => (spec, false),
            };
            let delimiter: String = spec.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
            (!delimiter.is_empty() && !delimiter.contains('<')).then_some((delimiter, strip_tabs))
        })
        .collect()
}

/// Splits on whitespace outside quotes; words keep their quotes for `expand`.
fn split_words(text: &str, escape: char) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == escape && quote != Some('\'') {
            escaped = true;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
    }
    words.extend(start.map(|s| &text[s..]));
    words
}

/// Removes quotes and escapes and substitutes `$NAME`, `${NAME}`,
/// `${NAME:-default}`, `${NAME-default}`, `${NAME:+alt}` and `${NAME+alt}`.
fn expand(word: &str, vars: &BTreeMap<String, String>, escape: char) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut quote = None;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (_, '$') => out.push_str(&variable(&chars, &mut i, vars, escape)),
            (_, c) if c == escape && i < chars.len() => {
                out.push(chars[i]);
                i += 1;
            }
            (_, c) => out.push(c),
        }
    }
    out
}

/// The value of the variable reference after a `$` at `chars[*i]`, moving `i`
/// past it.
fn variable(
    chars: &[char],
    i: &mut usize,
    vars: &BTreeMap<String, String>,
    escape: char,
) -> String {
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    match chars.get(*i) {
        Some('{') => {
            let start = *i + 1;
            let mut depth = 1;
            let mut end = start;
            while let Some(&c) = chars.get(end) {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                if depth == 0 {
                    break;
                }
                end += 1;
            }
            *i = (end + 1).min(chars.len());
            let body = &chars[start..end.min(chars.len())];
            let name_len = body.iter().take_while(|c| is_name(c)).count();
            let name: String = body[..name_len].iter().collect();
            let modifier: String = body[name_len..].iter().collect();
            let value = vars.get(&name).map(String::as_str);
            let set_and_non_empty = value.filter(|v| !v.is_empty());
            let word = |w: &str| expand(w, vars, escape);
            if let Some(default) = modifier.strip_prefix(":-") {
                set_and_non_empty.map_or_else(|| word(default), str::to_string)
            } else if let Some(alt) = modifier.strip_prefix(":+") {
                set_and_non_empty.map(|_| word(alt)).unwrap_or_default()
            } else if let Some(default) = modifier.strip_prefix('-') {
                value.map_or_else(|| word(default), str::to_string)
            } else if let Some(alt) = modifier.strip_prefix('+') {
                value.map(|_| word(alt)).unwrap_or_default()
            } else {
                // Other shell modifiers (`#`, `%`, `?`) never matter for a FROM line.
                value.unwrap_or_default().to_string()
            }
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let name: String = chars[*i..].iter().take_while(|c| is_name(c)).collect();
            *i += name.len();
            vars.get(&name).cloned().unwrap_or_default()
        }
        _ => "$".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(content: &str) -> Vec<Stage> {
        stages(content, &BTreeMap::new(), &arm64())
    }

    fn arm64() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn other_images_are_those_read_from_outside_the_stages() {
        let content = "FROM golang:1.23 AS build\nCOPY --from=0 /a /a\nFROM scratch\nCOPY --from=build /bin/app /app\nCOPY --from=alpine:3.20 /etc/ssl /etc/ssl\nRUN --mount=type=cache,target=/c --mount=type=bind,from=ghcr.io/o/tools:1,target=/t make\nADD --chmod=644 notes.txt /notes\n";
        let stages = parse(content);
        assert_eq!(
            other_images(content, &stages).unwrap(),
            ["alpine:3.20", "ghcr.io/o/tools:1"]
        );
        let remote = "FROM scratch\nADD https://example.com/x.tgz /x\n";
        assert_eq!(
            other_images(remote, &parse(remote)).unwrap_err(),
            "line 2 adds https://example.com/x.tgz, which may change at any time"
        );
        let variable = "FROM scratch\nARG IMG\nCOPY --from=$IMG /a /a\n";
        assert!(
            other_images(variable, &parse(variable))
                .unwrap_err()
                .contains("line 3")
        );
    }

    #[test]
    fn syntax_directive_is_read_only_at_the_top() {
        assert_eq!(
            syntax_directive("# escape=`\n# syntax = docker/dockerfile:1.7\nFROM scratch\n"),
            Some((2, "docker/dockerfile:1.7".to_owned()))
        );
        assert_eq!(syntax_directive("FROM scratch\n# syntax=x\n"), None);
        assert_eq!(syntax_directive("# a comment\n# syntax=x\n"), None);
    }

    #[test]
    fn step_line_finds_the_instruction_buildkit_names() {
        let content = "# syntax=docker/dockerfile:1\nFROM scratch AS build\nCOPY a /a\nRUN make \\\n    all\n\nFROM scratch\nrun   exit 3\nCOPY --from=build /a /b\n";
        assert_eq!(step_line(content, "[build 2/3] RUN make     all"), Some(4));
        assert_eq!(step_line(content, "[stage-1 2/3] RUN exit 3"), Some(8));
        assert_eq!(
            step_line(content, "[stage-1 3/3] COPY --from=build /a /b"),
            Some(9)
        );
        // ARG expansion changed the text: the same first words still point at it.
        assert_eq!(step_line(content, "[build 3/3] RUN make release"), Some(4));
        assert_eq!(step_line(content, "[internal] load metadata"), None);
        assert_eq!(step_line(content, "[2/2] ADD x /x"), None);
    }

    #[test]
    fn created_by_finds_the_line_that_made_a_layer() {
        let content = "FROM scratch AS build\nRUN make\nFROM scratch\nCOPY busybox /bin/busybox\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nRUN --mount=type=cache,target=/c /bin/busybox dd \\\n  if=/dev/zero of=/x\nRUN make\nWORKDIR /app\n";
        let line = |created_by| created_by_line(content, created_by);
        assert_eq!(line("COPY busybox /bin/busybox # buildkit"), Some(4));
        assert_eq!(
            line("RUN /bin/busybox sh -c /bin/busybox dd if=/dev/zero of=/x # buildkit"),
            Some(6)
        );
        assert_eq!(line("RUN |1 V=2 /bin/sh -c make # buildkit"), Some(8));
        assert_eq!(line("/bin/sh -c make"), Some(8));
        assert_eq!(
            line("/bin/sh -c #(nop) COPY file:0a1b in /bin/busybox "),
            Some(4)
        );
        assert_eq!(line("WORKDIR /app"), Some(9));
        assert_eq!(line("RUN /bin/sh -c make test # buildkit"), None);
        assert_eq!(line(""), None);
        assert_eq!(
            created_by_step("RUN /bin/sh -c make # buildkit"),
            "RUN /bin/sh -c make"
        );
        assert_eq!(created_by_step("/bin/sh -c make"), "RUN make");
    }

    fn bases(stages: &[Stage]) -> Vec<&str> {
        stages.iter().map(|stage| stage.base.as_str()).collect()
    }

    fn stage(base: &str, name: Option<&str>, line: usize) -> Stage {
        Stage {
            base: base.to_string(),
            name: name.map(str::to_string),
            line,
        }
    }

    #[test]
    fn multi_stage_with_names_and_reuse() {
        let content = "\
FROM rust:1.85 AS build
RUN cargo build --release

FROM build AS test
RUN cargo test

FROM gcr.io/distroless/cc AS runtime
COPY --from=build /app /app
";
        let stages = parse(content);
        assert_eq!(
            stages,
            vec![
                stage("rust:1.85", Some("build"), 1),
                stage("build", Some("test"), 4),
                stage("gcr.io/distroless/cc", Some("runtime"), 7),
            ]
        );
        let external: Vec<_> = external_bases(&stages)
            .iter()
            .map(|s| s.base.as_str())
            .collect();
        assert_eq!(external, ["rust:1.85", "gcr.io/distroless/cc"]);
        assert_eq!(final_stage(&stages), Some(&stages[2]));
    }

    #[test]
    fn a_stage_name_only_shadows_later_stages() {
        let stages = parse("FROM app AS base\nFROM base AS app\nFROM app\n");
        let external: Vec<_> = external_bases(&stages)
            .into_iter()
            .map(|s| s.line)
            .collect();
        assert_eq!(external, [1]);
    }

    #[test]
    fn global_args_defaults_and_overrides() {
        let content = "\
ARG BASE=alpine
ARG VERSION=3.20
ARG UNSET
FROM ${BASE}:$VERSION$UNSET
ARG VERSION=9.9
FROM node:$VERSION
";
        assert_eq!(bases(&parse(content)), ["alpine:3.20", "node:3.20"]);

        let args = BTreeMap::from([
            ("VERSION".to_string(), "3.21".to_string()),
            ("UNSET".to_string(), "-slim".to_string()),
            ("UNDECLARED".to_string(), "x".to_string()),
        ]);
        assert_eq!(
            bases(&stages(content, &args, &arm64())),
            ["alpine:3.21-slim", "node:3.21"]
        );
        assert_eq!(bases(&stages("FROM a$UNDECLARED", &args, &arm64())), ["a"]);
    }

    #[test]
    fn args_on_one_line_see_earlier_ones_and_lose_their_quotes() {
        let content = "ARG REGISTRY=\"ghcr.io/webgrip\" IMAGE=${REGISTRY}/base TAG=\"1.0\"\nFROM $IMAGE:$TAG\n";
        assert_eq!(bases(&parse(content)), ["ghcr.io/webgrip/base:1.0"]);
    }

    #[test]
    fn substitution_modifiers() {
        let content = "\
ARG EMPTY=
ARG SET=x
FROM a${MISSING:-d}
FROM b${EMPTY:-d}
FROM c${SET:-d}
FROM d${MISSING:+alt}
FROM e${SET:+alt}
FROM f${EMPTY-d}
FROM g${EMPTY+alt}
FROM h${MISSING:-${SET}y}
FROM i${SET}
";
        assert_eq!(
            bases(&parse(content)),
            ["ad", "bd", "cx", "d", "ealt", "f", "galt", "hxy", "ix"]
        );
    }

    #[test]
    fn continuation_lines_comments_and_platform_flags() {
        let content = "\
# syntax=docker/dockerfile:1

# a comment mentioning FROM evil
FROM \\
    --platform=$BUILDPLATFORM \\
    # a comment inside the instruction

    node:20 \\
    AS web
RUN echo \\
FROM not-an-instruction
FROM --platform=linux/amd64 nginx:1.27
";
        assert_eq!(
            parse(content),
            vec![
                stage("node:20", Some("web"), 4),
                stage("nginx:1.27", None, 12)
            ]
        );
    }

    #[test]
    fn scratch_is_not_pulled() {
        let stages =
            parse("FROM golang:1.23 AS build\nFROM scratch\nCOPY --from=build /bin/app /app\n");
        assert_eq!(bases(&stages), ["golang:1.23", "scratch"]);
        assert_eq!(external_bases(&stages), [&stages[0]]);
        assert_eq!(final_stage(&stages).unwrap().base, "scratch");
    }

    #[test]
    fn keywords_and_stage_names_are_case_insensitive() {
        let stages = parse("arg V=1\nfrom Alpine:$V as Base\nFrOm base As final\n");
        assert_eq!(
            stages,
            vec![
                stage("Alpine:1", Some("Base"), 2),
                stage("base", Some("final"), 3)
            ]
        );
        assert_eq!(external_bases(&stages), [&stages[0]]);
    }

    #[test]
    fn escape_directive_changes_the_continuation_character() {
        let content = "# escape=`\r\nARG WIN=ltsc2022\r\nFROM `\r\n  mcr.microsoft.com/windows/servercore:$WIN\r\nRUN dir C:\\ \r\nFROM x\r\n";
        assert_eq!(
            parse(content),
            vec![
                stage("mcr.microsoft.com/windows/servercore:ltsc2022", None, 3),
                stage("x", None, 6)
            ]
        );
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let content = "\
FROM python:3.13
RUN <<EOF python3 - && cat <<-'END'
from os import path
EOF
\tFROM nothing
\tEND
FROM python:3.13-slim
";
        assert_eq!(bases(&parse(content)), ["python:3.13", "python:3.13-slim"]);
        assert_eq!(parse(content)[1].line, 7);
    }

    #[test]
    fn pin_replaces_only_the_image_and_keeps_every_line_number() {
        let content = "\
# syntax=docker/dockerfile:1
ARG REGISTRY=127.0.0.1:5000
FROM --platform=$BUILDPLATFORM \\
    # the base of this repository
    ${REGISTRY}/acme/base:latest \\
    AS build\r
RUN make
FROM acme/tool:1.0
FROM acme/base
COPY --from=build /a /a
";
        let pins = BTreeMap::from([
            (3, "127.0.0.1:5000/acme/base@sha256:aa".to_owned()),
            (9, "docker.io/acme/base@sha256:aa".to_owned()),
        ]);
        let pinned = pin(content, &pins);
        assert_eq!(
            pinned,
            "\
# syntax=docker/dockerfile:1
ARG REGISTRY=127.0.0.1:5000
FROM --platform=$BUILDPLATFORM 127.0.0.1:5000/acme/base@sha256:aa AS build


\r
RUN make
FROM acme/tool:1.0
FROM docker.io/acme/base@sha256:aa
COPY --from=build /a /a
"
        );
        assert_eq!(
            parse(&pinned),
            vec![
                stage("127.0.0.1:5000/acme/base@sha256:aa", Some("build"), 3),
                stage("acme/tool:1.0", None, 8),
                stage("docker.io/acme/base@sha256:aa", None, 9),
            ]
        );
        assert_eq!(pin(content, &BTreeMap::new()), content);
    }

    #[test]
    fn platform_arguments_need_no_declaration() {
        let content = "\
ARG REGISTRY=ghcr.io/acme
FROM ${REGISTRY}/base:1.0-${TARGETARCH} AS target
FROM tools:${TARGETOS}-${TARGETVARIANT}
ARG TARGETARCH
FROM late:${TARGETARCH}
";
        let platform = Platform::parse("linux/arm/v7").unwrap();
        let found = stages(content, &BTreeMap::new(), &platform);
        assert_eq!(
            bases(&found),
            ["ghcr.io/acme/base:1.0-arm", "tools:linux-v7", "late:arm"]
        );
        // The build platform is this machine's, whatever the target.
        let build = stages("FROM b:${BUILDPLATFORM}", &BTreeMap::new(), &platform);
        assert_eq!(bases(&build), [format!("b:{}", platform::host())]);
    }

    #[test]
    fn no_from_means_no_stages() {
        let stages = parse("# just a comment\nARG X=1\nRUN true\n");
        assert!(stages.is_empty());
        assert!(external_bases(&stages).is_empty());
        assert_eq!(final_stage(&stages), None);
        assert!(parse("").is_empty());
        // A bare FROM is a syntax error for Docker; it names no image here.
        assert!(parse("FROM\nFROM --platform=x\n").is_empty());
    }
}
