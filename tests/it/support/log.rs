//! The log as the GitHub runner reads it: which lines it takes for
//! workflow commands (`ActionCommandManager`).

/// The commands the runner knows (`IActionCommandExtension`s and
/// `stop-commands`), matched without regard to case as it does.
const REGISTERED: [&str; 16] = [
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "internal-set-repo-path",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
];

/// Commands a run means to write: annotations, log groups, debug lines.
const OURS: [&str; 6] = ["debug", "endgroup", "error", "group", "notice", "warning"];

/// One command the runner would act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub data: String,
    pub line: String,
}

/// Characters a culture-sensitive (ICU) match skips: controls and the
/// default-ignorable code points. Dropping them before matching finds
/// everything the runner could.
fn significant(line: &str) -> String {
    line.chars()
        .filter(|c| {
            !(c.is_control()
                || matches!(u32::from(*c), 0xAD | 0x34F | 0x61C | 0x115F..=0x1160
                    | 0x17B4..=0x17B5 | 0x180B..=0x180F | 0x200B..=0x200F | 0x202A..=0x202E
                    | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0
                    | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF))
        })
        .collect()
}

/// `ActionCommand.TryParseV2` (`::name props::data` after leading white
/// space), then `ActionCommand.TryParse` (the legacy `##[name props]data`,
/// anywhere in the line).
fn parse(line: &str, known: &[String]) -> Option<(String, String)> {
    let text = significant(line);
    let is_known = |name: &str| known.iter().any(|k| k.eq_ignore_ascii_case(name));
    let name_of = |info: &str| info.split(' ').next().unwrap_or(info).to_owned();
    let v2 = text.trim_start().strip_prefix("::").and_then(|rest| {
        let (info, data) = rest.split_once("::")?;
        let name = name_of(info);
        is_known(&name).then(|| (name, data.to_owned()))
    });
    v2.or_else(|| {
        let start = text.find("##[")? + 3;
        let (info, data) = text[start..].split_once(']')?;
        let name = name_of(info);
        is_known(&name).then(|| (name, data.to_owned()))
    })
}

/// The commands the runner acts on in one stream, lines split where it
/// splits them (CR, LF). After `::stop-commands::<token>` nothing but
/// `::<token>::` is a command until that line comes.
pub fn commands(stream: &str) -> Vec<Command> {
    let mut known: Vec<String> = REGISTERED.iter().map(|s| s.to_string()).collect();
    let mut stopped: Option<String> = None;
    let mut found = Vec::new();
    for line in stream.split(['\r', '\n']) {
        let Some((name, data)) = parse(line, &known) else {
            continue;
        };
        if let Some(token) = &stopped {
            if name.eq_ignore_ascii_case(token) {
                known.retain(|k| k != token);
                stopped = None;
                found.push(Command {
                    name,
                    data,
                    line: line.to_owned(),
                });
            }
            continue;
        }
        if name.eq_ignore_ascii_case("stop-commands") {
            stopped = Some(data.clone());
            known.push(data.clone());
        }
        found.push(Command {
            name,
            data,
            line: line.to_owned(),
        });
    }
    found
}

/// Fails unless every command the runner would act on is one the run
/// means: an annotation, a group or a debug line written at the start of a
/// stdout line, or the pause around a build log with its random token (and
/// the resume that ends it). Nothing on stderr is a command.
pub fn assert_no_forged_commands(stdout: &str, stderr: &str) {
    let on_stderr = commands(stderr);
    assert!(
        on_stderr.is_empty(),
        "stderr carries commands: {on_stderr:?}\n--- stderr\n{stderr}"
    );
    let mut tokens = Vec::new();
    for command in commands(stdout) {
        let ours = OURS.contains(&command.name.as_str())
            && command.line.starts_with(&format!("::{}", command.name));
        let pause = command.name == "stop-commands"
            && command.data.len() == 32
            && command.data.chars().all(|c| c.is_ascii_hexdigit())
            && command.line == format!("::stop-commands::{}", command.data);
        let resume =
            tokens.contains(&command.name) && command.line == format!("::{}::", command.name);
        assert!(
            ours || pause || resume,
            "a command the run didn't mean: {command:?}\n--- stdout\n{stdout}"
        );
        if pause {
            tokens.push(command.data);
        }
    }
}

#[test]
fn the_runner_model_finds_what_the_runner_would() {
    let token = "0123456789abcdef0123456789abcdef";
    let stdout = format!(
        "::group::build\n::stop-commands::{token}\n::add-mask::inside\n::{token}::\n::endgroup::\n x ##[add-mask]legacy\n  ::set-output name=a::b\r::warning::w"
    );
    let names: Vec<String> = commands(&stdout).into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "group",
            "stop-commands",
            token,
            "endgroup",
            "add-mask",
            "set-output",
            "warning"
        ]
    );
    for hidden in ["#\u{AD}#[stop-commands]pwn", "\u{200B}::echo::on"] {
        assert_eq!(commands(hidden).len(), 1, "{hidden:?}");
    }
    // Paused by a forged token, the runner ignores what follows.
    assert_eq!(commands("::stop-commands::pwn\n::warning::w").len(), 1);
}
