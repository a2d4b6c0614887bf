//! How `@actions/toolkit` reads inputs, mirrored so that `with:` values mean
//! the same here as in any JavaScript action. Pure: the caller reads the env.

/// The variable the runner puts an input in. Hyphens survive, so the result
/// is not a valid shell name; read it with `std::env::var`.
pub fn env_name(input: &str) -> String {
    format!("INPUT_{}", input.replace(' ', "_").to_uppercase())
}

/// The toolkit's `getBooleanInput`: only the YAML 1.2 core-schema spellings,
/// so a typo such as `ture` or `yes` fails loudly instead of meaning `false`.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(format!("{other:?} is not a boolean: use `true` or `false`")),
    }
}

/// The toolkit's `getMultilineInput`, except that whitespace-only lines are
/// dropped too (the toolkit keeps them as `""`, which no list here wants).
pub fn split_list(raw: &str) -> Vec<String> {
    raw.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The runner sets every declared input, using `""` when there is no value
/// and no default, so an empty input has to count as unset.
pub fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_name_follows_the_runner() {
        for (input, expected) in [
            ("token", "INPUT_TOKEN"),
            ("fail-on", "INPUT_FAIL-ON"),
            ("fail-on-error", "INPUT_FAIL-ON-ERROR"),
            ("dry_run", "INPUT_DRY_RUN"),
            ("my input", "INPUT_MY_INPUT"),
            ("Mixed-Case 2", "INPUT_MIXED-CASE_2"),
            ("", "INPUT_"),
        ] {
            assert_eq!(env_name(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn parse_bool_accepts_the_core_schema_only() {
        for (raw, expected) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("false", false),
            ("False", false),
            ("FALSE", false),
            ("  true\n", true),
            ("\tFALSE ", false),
        ] {
            assert_eq!(parse_bool(raw), Ok(expected), "raw {raw:?}");
        }
    }

    #[test]
    fn parse_bool_rejects_everything_else() {
        for raw in [
            "",
            " ",
            "tRUE",
            "yes",
            "no",
            "on",
            "off",
            "1",
            "0",
            "y",
            "t",
            "ture",
            "true false",
        ] {
            let err = parse_bool(raw).expect_err(raw);
            assert!(err.contains("`true` or `false`"), "{err}");
            assert!(err.contains(&format!("{:?}", raw.trim())), "{err}");
        }
    }

    #[test]
    fn parse_bool_error_names_the_value() {
        assert_eq!(
            parse_bool(" yes "),
            Err(r#""yes" is not a boolean: use `true` or `false`"#.to_owned())
        );
    }

    #[test]
    fn parse_bool_is_a_clap_value_parser() {
        let parser: fn(&str) -> Result<bool, String> = parse_bool;
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("flag")
                .long("flag")
                .value_parser(parser)
                .action(clap::ArgAction::Set),
        );
        let matches = cmd.clone().try_get_matches_from(["t", "--flag", "TRUE"]);
        assert_eq!(
            matches
                .ok()
                .and_then(|m| m.get_one::<bool>("flag").copied()),
            Some(true)
        );
        let err = cmd
            .try_get_matches_from(["t", "--flag", "maybe"])
            .expect_err("maybe is not a boolean");
        assert!(err.to_string().contains("use `true` or `false`"), "{err}");
    }

    #[test]
    fn split_list_cases() {
        let cases: [(&str, &[&str]); 9] = [
            ("", &[]),
            ("\n\n", &[]),
            ("   \n\t\n", &[]),
            ("one", &["one"]),
            ("one\ntwo", &["one", "two"]),
            ("one\r\ntwo\r\n", &["one", "two"]),
            ("  one  \n\n  two\t\n", &["one", "two"]),
            ("\nimages/a\n  \nimages/b c\n", &["images/a", "images/b c"]),
            ("a,b\nc", &["a,b", "c"]),
        ];
        for (raw, expected) in cases {
            assert_eq!(split_list(raw), expected, "raw {raw:?}");
        }
    }

    #[test]
    fn normalize_cases() {
        for (raw, expected) in [
            ("", None),
            ("   ", None),
            ("\n\t\r\n", None),
            ("x", Some("x")),
            ("  ghcr.io/org  ", Some("ghcr.io/org")),
            ("a b\n", Some("a b")),
            ("line1\nline2\n", Some("line1\nline2")),
        ] {
            assert_eq!(normalize(raw).as_deref(), expected, "raw {raw:?}");
        }
    }
}
