//! action.yml, the clap definitions and the README tables name the same
//! inputs, so no face of the tool drifts from the others.

use std::collections::BTreeSet;

use clap::CommandFactory;
use registry_action::cli::Cli;

fn clap_inputs() -> BTreeSet<String> {
    let cli = Cli::command();
    let mut names: BTreeSet<String> = cli
        .get_subcommands()
        .flat_map(|sub| {
            sub.get_arguments()
                .filter_map(|a| a.get_long())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| name != "help")
        .collect();
    names.insert("command".into());
    names
}

fn action_yml() -> serde_yaml::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn action_yml_declares_exactly_the_cli_options() {
    let yml = action_yml();
    let declared: BTreeSet<String> = yml["inputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(declared, clap_inputs());
    assert_eq!(yml["runs"]["using"].as_str(), Some("docker"));
    assert!(
        yml["runs"].get("args").is_none(),
        "inputs travel as INPUT_* env, not args"
    );
    for (name, input) in yml["inputs"].as_mapping().unwrap() {
        let description = input["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "input {name:?} has no description");
    }
    assert_eq!(
        yml["inputs"]["github-token"]["default"].as_str(),
        Some("${{ github.token }}")
    );
}

#[test]
fn the_readme_tables_document_every_input() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    let undocumented: Vec<String> = clap_inputs()
        .into_iter()
        .filter(|name| !rows.iter().any(|row| row.contains(&format!("`{name}`"))))
        .collect();
    assert!(
        undocumented.is_empty(),
        "inputs missing from the README tables: {undocumented:?}"
    );
}

/// A tier with no job in the example would leave its images unbuilt while
/// the run looks green: the example a user copies builds every tier `plan`
/// fills.
#[test]
fn the_tiers_example_has_a_job_for_every_tier_plan_fills() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/workflows/images-tiers.yml"
    ))
    .unwrap();
    let yml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let jobs = yml["jobs"].as_mapping().unwrap();
    let passed_on = jobs["plan"]["outputs"].as_mapping().unwrap();
    for n in 0..registry_action::plan::matrix::TIER_OUTPUTS {
        let output = format!("${{{{ steps.plan.outputs.matrix-tier-{n} }}}}");
        let (key, _) = passed_on
            .iter()
            .find(|(_, value)| value.as_str() == Some(output.as_str()))
            .unwrap_or_else(|| panic!("the plan job doesn't pass on matrix-tier-{n}"));
        let include = format!(
            "${{{{ fromJSON(needs.plan.outputs.{}) }}}}",
            key.as_str().unwrap()
        );
        assert!(
            jobs.values()
                .any(|job| job["strategy"]["matrix"]["include"].as_str() == Some(include.as_str())),
            "no job builds matrix-tier-{n}"
        );
    }
}
