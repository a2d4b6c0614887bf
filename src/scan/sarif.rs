//! SARIF 2.1.0 for GitHub code scanning, from a [`Verdict`].
//!
//! Every counted finding is a result, whatever its severity: the gate decides
//! the release, code scanning is where all of them are tracked. Ignored
//! findings are left out: the ignore file is their record, and uploading them
//! would reopen alerts someone already accepted. All results point at the
//! image's `FROM` line, since that is the line a fix (a new base image or an
//! upgrade in the Dockerfile) changes.

use std::collections::HashMap;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Finding, Severity, Verdict};
use crate::markdown::{cell, link};

const SCHEMA: &str = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json";

/// Longest `shortDescription`: Grype's titles are whole advisory paragraphs,
/// and this text is the alert's one-line title on GitHub.
const SHORT: usize = 200;

pub fn render(verdict: &Verdict, tool: &str, artifact: &str, line: usize) -> Value {
    // SARIF lines start at 1; 0 would make GitHub reject the upload.
    let line = line.max(1);
    // One pass groups findings by id in first-seen order: reports carry
    // tens of thousands of findings, so no per-id rescans.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<&Finding>> = Vec::new();
    let mut rule_of = Vec::with_capacity(verdict.findings.len());
    for finding in &verdict.findings {
        let i = *index.entry(finding.id.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(finding);
        rule_of.push(i);
    }
    let rules: Vec<Value> = groups.iter().map(|group| rule(group)).collect();
    let results: Vec<Value> = verdict
        .findings
        .iter()
        .zip(rule_of)
        .map(|(f, i)| result(f, i, artifact, line))
        .collect();

    let (name, uri) = match tool {
        "trivy" => ("Trivy", Some("https://github.com/aquasecurity/trivy")),
        "grype" => ("Grype", Some("https://github.com/anchore/grype")),
        other => (other, None),
    };
    let mut driver = json!({ "name": name, "rules": rules });
    if let Some(uri) = uri {
        driver["informationUri"] = json!(uri);
    }
    json!({
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [{
            "tool": { "driver": driver },
            "results": results,
            "columnKind": "utf16CodeUnits",
        }],
    })
}

/// GitHub ranks alerts by `security-severity` (a number as a string): above
/// 9.0 critical, 7.0–8.9 high, 4.0–6.9 medium, below 4.0 low. The values sit
/// inside those bands so GitHub shows the severity that gated the release,
/// not a CVSS score the scanner's vendor rating may disagree with (Grype's
/// fixture rates a CVSS 8.2 finding Low). GitHub has no "unknown" band; 0.0
/// is the least claim we can make.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "2.0",
        Severity::Unknown => "0.0",
    }
}

/// Critical and high are what the gate fails or warns on by default.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// One rule per vulnerability id; `group` is every finding with that id,
/// most severe first (the verdict's order), so `group[0]` rates the rule.
fn rule(group: &[&Finding]) -> Value {
    let Some(first) = group.first() else {
        return Value::Null;
    };
    let url = group.iter().find_map(|f| f.url.as_deref());
    let severity = first.severity;

    let mut text = format!("Vulnerability {}\nSeverity: {severity}\n", first.id);
    let mut markdown = format!(
        "**Vulnerability {}** ({severity})\n\n| Package | Installed | Fixed | Target |\n| --- | --- | --- | --- |\n",
        cell(&first.id)
    );
    for f in group {
        let fixed = f.fixed.as_deref().unwrap_or("no fix yet");
        text.push_str(&format!(
            "Package: {}, installed {} → fixed {fixed}\n",
            f.package, f.installed
        ));
        markdown.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&f.package),
            cell(&f.installed),
            cell(fixed),
            cell(&f.target)
        ));
    }
    if let Some(url) = url {
        text.push_str(&format!("Link: {url}\n"));
        markdown.push_str(&format!("\n{}\n", link(&first.id, url)));
    }

    let mut rule = json!({
        "id": first.id,
        "shortDescription": { "text": truncate(&first.title, SHORT) },
        "fullDescription": { "text": first.title },
        "defaultConfiguration": { "level": level(severity) },
        "help": { "text": text.trim_end(), "markdown": markdown.trim_end() },
        "properties": {
            "security-severity": security_severity(severity),
            "tags": ["vulnerability", "security", severity.as_str()],
        },
    });
    if let Some(url) = url {
        rule["helpUri"] = json!(url);
    }
    rule
}

fn result(f: &Finding, rule_index: usize, artifact: &str, line: usize) -> Value {
    let fixed = match &f.fixed {
        Some(fixed) => format!("fixed in {fixed}"),
        None => "no fixed version yet".to_owned(),
    };
    let mut message = format!(
        "{} {} in {} {}; {fixed}.\nTarget: {}",
        f.severity, f.id, f.package, f.installed, f.target
    );
    if let Some(path) = &f.path {
        message.push_str(&format!("\nPath: {path}"));
    }
    if let Some(url) = &f.url {
        message.push_str(&format!("\nLink: {url}"));
    }
    json!({
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": artifact },
                "region": { "startLine": line, "startColumn": 1, "endLine": line, "endColumn": 1 },
            },
            "message": { "text": format!("{}: {}@{}", f.target, f.package, f.installed) },
        }],
        "partialFingerprints": { "primaryLocationLineHash": fingerprint(f) },
    })
}

/// Every result sits on the same `FROM` line, so GitHub's own line hash would
/// merge them into one alert (and a moved `FROM` would reopen them all).
/// Keying on what the finding is keeps one alert per vulnerable package
/// version across commits; an upgrade closes it. The `:1` suffix is the
/// occurrence count GitHub's own hashes carry, as Grype writes it too.
fn fingerprint(f: &Finding) -> String {
    let digest = Sha256::digest(format!("{}\0{}\0{}", f.id, f.package, f.installed).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}:1")
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", text[..end].trim_end()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scan::tests::fixture;
    use crate::scan::{Policy, detect_and_parse, evaluate};

    fn sarif(report: &str, tool: &str) -> Value {
        let findings = detect_and_parse(&fixture(report)).unwrap().1;
        let verdict = evaluate(findings, &Policy::default(), None, 0);
        render(&verdict, tool, "images/app/Dockerfile", 3)
    }

    fn levels(doc: &Value) -> Vec<&str> {
        doc["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["level"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn alpine_39_keeps_every_severity() {
        let doc = sarif("trivy/alpine-39.json", "trivy");
        let run = &doc["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        let rule_ids: Vec<_> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(
            rule_ids,
            ["CVE-2019-14697", "CVE-2019-1549", "CVE-2019-1551"]
        );
        assert_eq!(
            levels(&doc),
            ["error", "error", "warning", "warning", "warning", "warning"]
        );
        assert_eq!(run["tool"]["driver"]["name"], "Trivy");

        let musl = &rules[0];
        assert_eq!(musl["properties"]["security-severity"], "9.5");
        assert_eq!(
            musl["properties"]["tags"],
            json!(["vulnerability", "security", "CRITICAL"])
        );
        assert_eq!(
            musl["helpUri"],
            "https://avd.aquasec.com/nvd/cve-2019-14697"
        );
        assert_eq!(musl["defaultConfiguration"]["level"], "error");
        assert_eq!(
            musl["help"]["text"],
            "Vulnerability CVE-2019-14697\nSeverity: CRITICAL\n\
             Package: musl, installed 1.1.20-r4 → fixed 1.1.20-r5\n\
             Package: musl-utils, installed 1.1.20-r4 → fixed 1.1.20-r5\n\
             Link: https://avd.aquasec.com/nvd/cve-2019-14697"
        );
        assert!(
            musl["help"]["markdown"]
                .as_str()
                .unwrap()
                .contains("| musl-utils | 1.1.20-r4 | 1.1.20-r5 | testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4) |"),
        );
        assert_eq!(rules[1]["properties"]["security-severity"], "5.5");
        assert_eq!(
            rules[1]["shortDescription"]["text"],
            "openssl: information disclosure in fork()"
        );

        let first = &run["results"][0];
        assert_eq!(first["ruleId"], "CVE-2019-14697");
        assert_eq!(first["ruleIndex"], 0);
        assert_eq!(run["results"][5]["ruleIndex"], 2);
        let location = &first["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "images/app/Dockerfile");
        assert_eq!(location["region"]["startLine"], 3);
        assert_eq!(
            first["message"]["text"],
            "CRITICAL CVE-2019-14697 in musl 1.1.20-r4; fixed in 1.1.20-r5.\n\
             Target: testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)\n\
             Link: https://avd.aquasec.com/nvd/cve-2019-14697"
        );
    }

    #[test]
    fn levels_for_low_and_unknown_are_notes() {
        let doc = sarif("trivy/ubuntu-1804.json", "trivy");
        assert_eq!(
            levels(&doc),
            ["warning", "warning", "warning", "warning", "note"]
        );
        assert_eq!(
            doc["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        let doc = sarif("grype/grype-image-low-critical.json", "grype");
        assert_eq!(levels(&doc), ["error", "note"]);
        let rules = &doc["runs"][0]["tool"]["driver"]["rules"];
        // No url anywhere in the report: no helpUri, no link.
        assert!(rules[0].get("helpUri").is_none());
        assert_eq!(rules[1]["properties"]["security-severity"], "2.0");
        assert_eq!(doc["runs"][0]["tool"]["driver"]["name"], "Grype");
        assert!(
            doc["runs"][0]["results"][0]["message"]["text"]
                .as_str()
                .unwrap()
                .contains("no fixed version yet")
        );
    }

    #[test]
    fn fingerprints_are_stable_per_id_package_and_version() {
        let doc = sarif("trivy/photon-30.json", "trivy");
        let prints: Vec<_> = doc["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["partialFingerprints"]["primaryLocationLineHash"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(prints.len(), 3);
        assert!(prints[0] != prints[1] && prints[1] != prints[2]);
        assert!(prints.iter().all(|p| p.len() == 66 && p.ends_with(":1")));
        // Same finding elsewhere (another target, another line): same print.
        let findings = detect_and_parse(&fixture("trivy/photon-30.json"))
            .unwrap()
            .1;
        let mut moved = evaluate(findings, &Policy::default(), None, 0);
        for f in &mut moved.findings {
            f.target = "elsewhere".into();
        }
        let again = render(&moved, "trivy", "other/Dockerfile", 40);
        assert_eq!(
            again["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"],
            prints[0].as_str()
        );
    }

    #[test]
    fn shape_matches_uploaded_fixtures() {
        let ours = sarif("grype/grype-chainguard-ruby-wolfi.json", "grype");
        for name in ["sarif/trivy-alpine-310.sarif", "sarif/grype-image.sarif"] {
            let theirs: Value = serde_json::from_slice(&fixture(name)).unwrap();
            assert_eq!(ours["version"], theirs["version"], "{name}");
            let keys = |v: &Value| -> Vec<String> {
                let mut k: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
                k.sort();
                k
            };
            let (our_result, their_result) = (
                &ours["runs"][0]["results"][0],
                &theirs["runs"][0]["results"][0],
            );
            for key in keys(their_result) {
                assert!(our_result.get(&key).is_some(), "{name}: result lacks {key}");
            }
            let (our_rule, their_rule) = (
                &ours["runs"][0]["tool"]["driver"]["rules"][0],
                &theirs["runs"][0]["tool"]["driver"]["rules"][0],
            );
            // `name` is optional in SARIF and would only repeat the id here.
            for key in keys(their_rule) {
                if key != "name" {
                    assert!(our_rule.get(&key).is_some(), "{name}: rule lacks {key}");
                }
            }
            let region = |v: &Value| keys(&v["locations"][0]["physicalLocation"]["region"]);
            assert_eq!(region(our_result), region(their_result), "{name}");
        }
        // Three High findings, two ids: two rules, three error results.
        assert_eq!(levels(&ours), ["error", "error", "error"]);
        let rules = ours["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["id"], "CVE-2023-28755");
        assert_eq!(rules[0]["properties"]["security-severity"], "8.0");
        let short = rules[0]["shortDescription"]["text"].as_str().unwrap();
        assert!(
            short.chars().count() <= SHORT + 1 && short.ends_with('…'),
            "{short}"
        );
    }

    #[test]
    fn empty_verdict_renders_an_empty_run() {
        let doc = sarif("trivy/sl-micro-rancher5.4.json", "trivy");
        assert_eq!(doc["runs"][0]["results"], json!([]));
        assert_eq!(doc["runs"][0]["tool"]["driver"]["rules"], json!([]));
        let doc = render(
            &evaluate(Vec::new(), &Policy::default(), None, 0),
            "scout",
            "Dockerfile",
            0,
        );
        assert_eq!(doc["runs"][0]["tool"]["driver"]["name"], "scout");
        assert!(
            doc["runs"][0]["tool"]["driver"]
                .get("informationUri")
                .is_none()
        );
    }
}
