//! `.dockerignore` as Docker's own client applies it (moby/patternmatcher),
//! so an image built here sees exactly the files `docker build` would send.
//!
//! Pure: the caller reads the file and walks the tree.

use thiserror::Error;

/// The rules of one `.dockerignore`, in file order: the last rule that
/// matches a path decides whether it is excluded.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

/// A pattern Docker itself would reject, failing the whole build.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(".dockerignore line {line}: invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
struct Rule {
    exception: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    Star,
    /// `[...]`
    Class(Class),
    /// `**/`, or `**` inside a pattern: zero or more whole leading segments.
    AnyDirs,
    /// A trailing `**`: anything at all, `/` included.
    AnyAll,
}

#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl DockerIgnore {
    /// Parses leniently: a line Docker would reject is dropped, so callers
    /// that must behave exactly like Docker should use [`Self::try_parse`].
    /// (Only the tests read patterns so.)
    #[cfg(test)]
    pub fn parse(text: &str) -> DockerIgnore {
        let rules = lines(text)
            .filter_map(|(_, pattern)| Rule::compile(&pattern).ok())
            .collect();
        DockerIgnore { rules }
    }

    /// Parses the way `docker build` does, refusing the first bad pattern.
    pub fn try_parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let rules = lines(text)
            .map(|(line, pattern)| {
                Rule::compile(&pattern).map_err(|reason| PatternError {
                    line,
                    pattern,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DockerIgnore { rules })
    }

    /// Patterns as a list, the way BuildKit's file sync receives them
    /// (`include-patterns`, `exclude-patterns`): no comments, each one
    /// cleaned as a `.dockerignore` line is.
    pub fn from_patterns(patterns: &[String]) -> Result<DockerIgnore, PatternError> {
        let rules = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.trim().is_empty())
            .map(|(index, raw)| {
                let pattern = normalise(raw.trim());
                Rule::compile(&pattern).map_err(|reason| PatternError {
                    line: index + 1,
                    pattern,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DockerIgnore { rules })
    }

    /// Whether these rules, read as include patterns, select `path`: the
    /// same test as an exclusion (the last rule matching it or an ancestor
    /// is not an exception), named for what it means there.
    pub fn selects(&self, path: &str) -> bool {
        self.is_excluded(path)
    }

    /// Appends an exception for one exact path, the way the Docker CLI
    /// re-includes the Dockerfile and `.dockerignore` whatever the rules say.
    pub fn keep(&mut self, path: &str) {
        let tokens = clean(path).chars().map(Token::Literal).collect();
        self.rules.push(Rule {
            exception: true,
            tokens,
        });
    }

    /// Whether `path` (relative to the context root, `/`-separated) stays
    /// out of the context. A rule matching a directory matches everything
    /// below it.
    pub fn is_excluded(&self, path: &str) -> bool {
        let Some(path) = context_path(path) else {
            return false;
        };
        self.last_match(&path).is_some_and(|rule| !rule.exception)
    }

    /// Whether a walker must still descend into `dir`: true unless `dir` is
    /// excluded and no exception after the excluding rule can match anything
    /// below it. Skipping a directory without asking this loses files such
    /// as `!node_modules/keep`.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let Some(dir) = context_path(dir) else {
            return true;
        };
        let Some(index) = self.rules.iter().rposition(|rule| rule.matches(&dir)) else {
            return true;
        };
        if self.rules[index].exception {
            return true;
        }
        let mut below = dir;
        below.push('/');
        self.rules[index + 1..]
            .iter()
            .any(|rule| rule.exception && rule.could_match_below(&below))
    }

    fn last_match(&self, path: &[char]) -> Option<&Rule> {
        self.rules.iter().rev().find(|rule| rule.matches(path))
    }
}

/// The non-comment lines of a `.dockerignore`, each with its 1-based number
/// and its pattern normalised as moby's `ignorefile.ReadAll` does.
fn lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().filter_map(|(index, raw)| {
        // Docker tests for `#` before trimming, so ` # x` is a pattern.
        if raw.starts_with('#') {
            return None;
        }
        let pattern = raw.trim();
        if pattern.is_empty() {
            return None;
        }
        Some((index + 1, normalise(pattern)))
    })
}

fn normalise(pattern: &str) -> String {
    let (bang, body) = match pattern.strip_prefix('!') {
        Some(body) => ("!", body.trim()),
        None => ("", pattern),
    };
    if body.is_empty() {
        return bang.to_owned();
    }
    let cleaned = clean(body);
    let relative = match cleaned.strip_prefix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => &cleaned,
    };
    format!("{bang}{relative}")
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." if kept.last().is_some_and(|last| *last != "..") => {
                kept.pop();
            }
            ".." if rooted => {}
            other => kept.push(other),
        }
    }
    let body = kept.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// A path as the matcher compares it, or `None` for the context root,
/// which Docker never lets a rule exclude.
fn context_path(path: &str) -> Option<Vec<char>> {
    let cleaned = clean(path);
    let relative = cleaned.trim_start_matches('/');
    (!relative.is_empty() && relative != ".").then(|| relative.chars().collect())
}

impl Rule {
    fn compile(pattern: &str) -> Result<Rule, &'static str> {
        let (exception, body) = match pattern.strip_prefix('!') {
            Some("") => return Err("`!` needs a pattern after it"),
            Some(body) => (true, body),
            None => (false, pattern),
        };
        Ok(Rule {
            exception,
            tokens: tokenize(body)?,
        })
    }

    /// moby's `MatchesOrParentMatches`: the path itself or any ancestor.
    fn matches(&self, path: &[char]) -> bool {
        let ancestors = path
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .map(|(end, _)| &path[..end]);
        std::iter::once(path)
            .chain(ancestors)
            .any(|candidate| Matcher::new(&self.tokens, candidate, false).run())
    }

    /// Whether some path starting with `prefix` (which ends in `/`) could
    /// match this rule.
    fn could_match_below(&self, prefix: &[char]) -> bool {
        Matcher::new(&self.tokens, prefix, true).run()
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        at += 1;
        let token = match c {
            '*' if chars.get(at) == Some(&'*') => {
                at += 1;
                double_star(&chars, &mut at)
            }
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '[' => Token::Class(class(&chars, &mut at)?),
            '\\' => Token::Literal(escaped(&chars, &mut at)?),
            other => Token::Literal(other),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// `**` just consumed, `at` after it.
fn double_star(chars: &[char], at: &mut usize) -> Token {
    let starts_pattern = *at == 2;
    let slash = chars.get(*at) == Some(&'/');
    if slash {
        *at += 1;
    }
    let rest = &chars[*at..];
    // moby matches a leading `**` followed by plain text as a suffix test,
    // so `**.log` matches `a/b.log` even though no `/` follows the `**`.
    let suffix_test = starts_pattern && !slash && is_plain(rest);
    if rest.is_empty() || suffix_test {
        Token::AnyAll
    } else {
        Token::AnyDirs
    }
}

fn is_plain(chars: &[char]) -> bool {
    !chars
        .iter()
        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\'))
}

fn escaped(chars: &[char], at: &mut usize) -> Result<char, &'static str> {
    let c = *chars.get(*at).ok_or("trailing `\\` escapes nothing")?;
    *at += 1;
    Ok(c)
}

/// `[` just consumed, `at` after it; Go's `filepath.Match` class syntax.
fn class(chars: &[char], at: &mut usize) -> Result<Class, &'static str> {
    let negated = chars.get(*at) == Some(&'^');
    if negated {
        *at += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(*at) {
            None => return Err("`[` is never closed"),
            Some(']') if !ranges.is_empty() => {
                *at += 1;
                return Ok(Class { negated, ranges });
            }
            Some(_) => ranges.push(range(chars, at)?),
        }
    }
}

fn range(chars: &[char], at: &mut usize) -> Result<(char, char), &'static str> {
    let lo = class_char(chars, at)?;
    if chars.get(*at) != Some(&'-') {
        return Ok((lo, lo));
    }
    *at += 1;
    let hi = class_char(chars, at)?;
    if hi < lo {
        return Err("character range is out of order");
    }
    Ok((lo, hi))
}

fn class_char(chars: &[char], at: &mut usize) -> Result<char, &'static str> {
    match chars.get(*at) {
        None => Err("`[` is never closed"),
        Some('-' | ']') => Err("`-` or `]` must be escaped inside `[...]`"),
        Some('\\') => {
            *at += 1;
            escaped(chars, at)
        }
        Some(&c) => {
            *at += 1;
            Ok(c)
        }
    }
}

impl Class {
    fn contains(&self, c: char) -> bool {
        let listed = self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c));
        listed != self.negated
    }
}

/// Backtracking matcher, memoised so `*` and `**` stay polynomial.
struct Matcher<'a> {
    tokens: &'a [Token],
    path: &'a [char],
    /// Succeed as soon as the whole path is consumed, whatever tokens remain:
    /// "could a longer path starting with this one match?".
    prefix: bool,
    memo: Vec<Option<bool>>,
}

impl<'a> Matcher<'a> {
    fn new(tokens: &'a [Token], path: &'a [char], prefix: bool) -> Self {
        let memo = vec![None; (tokens.len() + 1) * (path.len() + 1)];
        Matcher {
            tokens,
            path,
            prefix,
            memo,
        }
    }

    fn run(&mut self) -> bool {
        self.at(0, 0)
    }

    fn at(&mut self, token: usize, pos: usize) -> bool {
        if self.prefix && pos == self.path.len() {
            return true;
        }
        let key = token * (self.path.len() + 1) + pos;
        if let Some(known) = self.memo[key] {
            return known;
        }
        let tokens = self.tokens;
        let result = match tokens.get(token) {
            None => pos == self.path.len(),
            Some(current) => self.step(current, token, pos),
        };
        self.memo[key] = Some(result);
        result
    }

    fn step(&mut self, current: &Token, token: usize, pos: usize) -> bool {
        let path = self.path;
        let next = path.get(pos).copied();
        let in_segment = next.is_some_and(|c| c != '/');
        match current {
            Token::Literal(expected) => next == Some(*expected) && self.at(token + 1, pos + 1),
            Token::AnyChar => in_segment && self.at(token + 1, pos + 1),
            Token::Class(class) => {
                in_segment && next.is_some_and(|c| class.contains(c)) && self.at(token + 1, pos + 1)
            }
            Token::Star => self.at(token + 1, pos) || (in_segment && self.at(token, pos + 1)),
            Token::AnyAll => self.at(token + 1, pos) || (next.is_some() && self.at(token, pos + 1)),
            Token::AnyDirs => {
                self.at(token + 1, pos)
                    || (pos..path.len()).any(|end| path[end] == '/' && self.at(token + 1, end + 1))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// (`.dockerignore` text, path, excluded?)
    const CASES: &[(&str, &str, bool)] = &[
        // The examples of Docker's "Dockerignore file" documentation.
        ("# comment\n*/temp*", "somedir/temporary.txt", true),
        ("*/temp*", "somedir/temp", true),
        ("*/temp*", "temp", false),
        ("*/temp*", "a/b/temporary.txt", false),
        ("*/*/temp*", "somedir/subdir/temporary.txt", true),
        ("*/*/temp*", "somedir/temporary.txt", false),
        ("temp?", "tempa", true),
        ("temp?", "tempb", true),
        ("temp?", "temp", false),
        ("temp?", "dir/tempa", false),
        ("**/*.go", "main.go", true),
        ("**/*.go", "a/b/c.go", true),
        ("**/*.go", "a/b/c.gox", false),
        ("*.md\n!README.md", "README.md", false),
        ("*.md\n!README.md", "CHANGES.md", true),
        ("*.md\n!README.md", "docs/guide.md", false),
        (
            "*.md\n!README*.md\nREADME-secret.md",
            "README-secret.md",
            true,
        ),
        ("*.md\n!README*.md\nREADME-secret.md", "README-a.md", false),
        (
            "*.md\nREADME-secret.md\n!README*.md",
            "README-secret.md",
            false,
        ),
        // A directory rule covers everything below it.
        ("node_modules", "node_modules", true),
        ("node_modules", "node_modules/a/b", true),
        ("node_modules", "src/node_modules", false),
        ("**/node_modules", "src/node_modules/x", true),
        ("*", "a/b/c", true),
        (
            "node_modules\n!node_modules/keep",
            "node_modules/keep/x",
            false,
        ),
        (
            "node_modules\n!node_modules/keep",
            "node_modules/other",
            true,
        ),
        (
            "!node_modules/keep\nnode_modules",
            "node_modules/keep/x",
            true,
        ),
        // Cleaning: leading `/` and `./`, trailing `/`, `..`, doubled `/`.
        ("/foo", "foo", true),
        ("./bar/", "bar/baz", true),
        ("a/../b", "b", true),
        ("a//b", "a/b", true),
        ("foo\n! /foo", "foo", false),
        // `#` only starts a comment in the first column.
        ("  #x", "#x", true),
        ("#x", "#x", false),
        // `**` flavours.
        ("**", "a/b", true),
        ("a/**", "a/x/y", true),
        ("a/**", "ab", false),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/y/b", true),
        ("**.log", "x/y.log", true),
        // One segment only for `*`, `?` and classes.
        ("a*b", "a/b", false),
        ("a?b", "a/b", false),
        ("a[/]b", "a/b", false),
        ("[a-c].txt", "b.txt", true),
        ("[a-c].txt", "d.txt", false),
        ("[^a].txt", "a.txt", false),
        ("[^a].txt", "b.txt", true),
        ("[\\]].txt", "].txt", true),
        ("foo\\*", "foo*", true),
        ("foo\\*", "foox", false),
        // File format details.
        ("\u{feff}foo", "foo", true),
        ("foo\r\nbar\r\n", "bar", true),
        ("\n\n   \n", "anything", false),
        ("!", "x", false),
        // Paths are cleaned too, and the root is never excluded.
        ("foo", "./foo", true),
        ("*", ".", false),
        ("*", "", false),
    ];

    #[test]
    fn matches_dockers_rules() {
        for (text, path, excluded) in CASES {
            let ignore = DockerIgnore::parse(text);
            assert_eq!(ignore.is_excluded(path), *excluded, "{text:?} on {path:?}");
        }
    }

    /// (`.dockerignore` text, directory, must the walker descend?)
    const DESCEND: &[(&str, &str, bool)] = &[
        ("node_modules\n!node_modules/keep", "node_modules", true),
        (
            "node_modules\n!node_modules/keep",
            "node_modules/other",
            false,
        ),
        ("node_modules", "node_modules", false),
        ("!node_modules/keep\nnode_modules", "node_modules", false),
        ("vendor\n!**/LICENSE", "vendor", true),
        ("vendor\n!*.md", "vendor", false),
        ("vendor\n!vendor/*/keep", "vendor", true),
        ("vendor\n!vendor/*/keep", "vendor/a", true),
        ("vendor\n!vendor/a*", "vendor/b", false),
        ("*.md", "docs", true),
        ("!docs\ndocs", "docs", false),
    ];

    #[test]
    fn says_when_an_excluded_directory_must_still_be_walked() {
        for (text, dir, descend) in DESCEND {
            let ignore = DockerIgnore::parse(text);
            assert_eq!(
                ignore.may_reinclude_below(dir),
                *descend,
                "{text:?} on {dir:?}"
            );
        }
    }

    #[test]
    fn keep_reincludes_a_literal_path_below_excluded_directories() {
        let mut ignore = DockerIgnore::parse("*\nops/docker/[a]*");
        ignore.keep("ops/docker/[a]/Dockerfile");
        assert!(!ignore.is_excluded("ops/docker/[a]/Dockerfile"));
        assert!(ignore.is_excluded("ops/docker/[a]/other"));
        assert!(ignore.is_excluded("ops/docker/a/Dockerfile"));
        assert!(ignore.may_reinclude_below("ops"));
        assert!(ignore.may_reinclude_below("ops/docker/[a]"));
        assert!(!ignore.may_reinclude_below("src"));
    }

    #[test]
    fn try_parse_rejects_what_docker_rejects() {
        for bad in ["[", "[]", "[^]", "a\\", "[z-a]", "[a-]", "[-a]", "!"] {
            let error = DockerIgnore::try_parse(&format!("ok\n{bad}")).unwrap_err();
            assert_eq!(error.line, 2, "{bad:?}");
        }
        assert!(DockerIgnore::try_parse("# c\n*.md\n!README.md\n[a-c]\\]").is_ok());
    }

    #[test]
    fn parse_drops_bad_lines_and_keeps_the_rest() {
        let ignore = DockerIgnore::parse("[\nfoo");
        assert!(ignore.is_excluded("foo"));
        assert!(!ignore.is_excluded("["));
    }

    #[test]
    fn clean_follows_go() {
        for (input, cleaned) in [
            ("", "."),
            ("./", "."),
            ("a/./b/", "a/b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("/", "/"),
        ] {
            assert_eq!(clean(input), cleaned, "{input:?}");
        }
    }
}
