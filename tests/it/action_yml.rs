//! action.yml, the clap definitions and the reference pages' tables in
//! docs/ name the same inputs, so no face of the tool drifts from the others.

use std::collections::BTreeSet;

use clap::CommandFactory;
use registry_action::cli::Cli;

use crate::support::markdown;

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

/// The pages of docs/ and what they hold, read once.
fn doc_pages() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");
    let mut pages: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            )
        })
        .collect();
    pages.sort();
    pages
}

/// The names in the first column of the reference tables whose first
/// header cell ends with `heading` (`input`, `` `merge` input ``, `output`),
/// each with the page it is on.
fn reference_rows(heading: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (page, text) in doc_pages() {
        for table in markdown::tables(&text) {
            let Some((header, body)) = table.split_first() else {
                continue;
            };
            if !header.first().is_some_and(|c| c.text.ends_with(heading)) {
                continue;
            }
            for row in body {
                rows.extend(row[0].code.iter().map(|name| (name.clone(), page.clone())));
            }
        }
    }
    rows
}

/// Every input of the CLI has a row in a reference page's inputs table,
/// and every row there names an input that exists.
#[test]
fn the_reference_pages_document_exactly_the_inputs() {
    let rows = reference_rows("input");
    let documented: BTreeSet<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    let inputs = clap_inputs();
    let missing: Vec<&String> = inputs.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "inputs missing from the inputs tables of docs/: {missing:?}"
    );
    let extra: Vec<&(String, String)> = rows
        .iter()
        .filter(|(name, _)| !inputs.contains(name))
        .collect();
    assert!(
        extra.is_empty(),
        "rows of docs/'s inputs tables that name no input (name, page): {extra:?}"
    );
}

/// Every row of a reference page's outputs table names an output that
/// action.yml declares.
#[test]
fn the_reference_pages_name_only_declared_outputs() {
    let yml = action_yml();
    let declared: BTreeSet<String> = yml["outputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let rows = reference_rows("output");
    assert!(
        rows.iter().any(|(name, _)| name == "digest"),
        "no outputs table found in docs/: {rows:?}"
    );
    let extra: Vec<&(String, String)> = rows
        .iter()
        .filter(|(name, _)| !declared.contains(name))
        .collect();
    assert!(
        extra.is_empty(),
        "rows of docs/'s outputs tables that action.yml doesn't declare (name, page): {extra:?}"
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
