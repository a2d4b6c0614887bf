//! `cargo bench --bench scan`: how long the scan gate's pure steps take, and
//! how much memory they need, on a ~50 MB Trivy report: read + parse, the
//! policy (with a small `.trivyignore.yaml`), the job summary, the
//! annotations, and SARIF rendered and serialised as `gate` writes
//! it.
//!
//! The report is generated in Trivy's real schema (`SchemaVersion: 2`, an OS
//! target and several language targets) from the vulnerability objects of the
//! fixtures in `tests/fixtures/trivy`, each copied with its Description,
//! References, CVSS and the rest, under varied ids, packages and severities;
//! as in real reports, one id is often found in several packages.
//!
//! Every run happens in a fresh copy of this bench, so its peak memory
//! (VmHWM, and getrusage `RUSAGE_CHILDREN` in the parent) is that run's alone.
//!
//! Not a test: beyond checking that the parsed findings are the generated
//! ones and that every finding reaches the verdict and SARIF (so a number
//! never describes a run that went wrong), it asserts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::collections::HashSet;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use registry_action::report::scan::{Scanned, annotations, summary};
use registry_action::scan::{
    Counts, Policy, Scanner, Severity, detect_and_parse, evaluate, ignore, sarif, trivy,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The report's size; each target gets its share of it.
const REPORT_BYTES: usize = 50_000_000;
const RUNS: usize = 5;
/// Vulnerability ids drawn from (CVEs); GHSA ids for language packages come
/// from a pool a sixth of this size. Smaller than the number of findings, so
/// an id is usually found in several packages, as in real reports.
const ID_POOL: usize = 6_000;
/// 2024-08-20T00:00:00Z: decides which ignore entries have expired.
const NOW: i64 = 1_724_112_000;
const DOCKERFILE: &str = "ops/docker/big/Dockerfile";
const FROM_LINE: u32 = 12;
/// First argument of the bench re-run as a measuring child (see `measure`).
const MEASURE: &str = "--measure-scan";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(MEASURE) {
        let (report, ignore) = (Path::new(&args[3]), Path::new(&args[4]));
        let sample = match args[2].as_str() {
            "pipeline" => pipeline(report, ignore),
            "detect" => detect(report),
            other => panic!("unknown measuring mode {other}"),
        };
        println!("{}", serde_json::to_string(&sample).unwrap());
        return;
    }

    let report = Report::generate();
    let pipeline: Vec<Sample> = (0..RUNS)
        .map(|_| {
            let sample = measure("pipeline", &report);
            report.check(&sample);
            sample
        })
        .collect();
    // Read now: RUSAGE_CHILDREN keeps the peak of every child ever waited for.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    let detect: Vec<Sample> = (0..RUNS)
        .map(|_| {
            let sample = measure("detect", &report);
            assert_eq!(
                sample.parsed, report.counts,
                "detect_and_parse found other findings than trivy::parse"
            );
            sample
        })
        .collect();
    print_table(&pipeline, peak_kib, &detect);
}

// ---------------------------------------------------------------------------
// The report

/// Critical, high, medium, low, unknown, as in `Counts`.
type BySeverity = [usize; 5];

fn by_severity(counts: &Counts) -> BySeverity {
    [
        counts.critical,
        counts.high,
        counts.medium,
        counts.low,
        counts.unknown,
    ]
}

struct Report {
    file: tempfile::NamedTempFile,
    ignore: tempfile::NamedTempFile,
    counts: BySeverity,
}

impl Report {
    fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    fn generate() -> Self {
        let started = Instant::now();
        let templates = Templates::load();
        let file = tempfile::Builder::new()
            .prefix("trivy-")
            .suffix(".json")
            .tempfile()
            .unwrap();
        let mut out = Out {
            inner: BufWriter::new(file.reopen().unwrap()),
            bytes: 0,
        };
        let mut rng = Rng(0x5ca1_ab1e);
        let mut counts = [0; 5];
        let mut ids = HashSet::new();
        let mut samples = Vec::new();
        let mut index = 0;

        out.put(&templates.header);
        for (t, eco) in Eco::ALL.iter().enumerate() {
            if t > 0 {
                out.put(",\n");
            }
            let head = format!(
                "    {{\n      \"Target\": {},\n      \"Class\": \"{}\",\n      \"Type\": \"{}\"",
                json!(eco.target()),
                eco.class(),
                eco.kind()
            );
            out.put(&head);
            let budget = REPORT_BYTES * eco.permille() / 1000;
            if budget == 0 {
                // Like sl-micro's: a target with nothing found has no key at all.
                out.put("\n    }");
                continue;
            }
            out.put(",\n      \"Vulnerabilities\": [\n");
            let written = out.bytes;
            let mut first = true;
            let mut package = Package::new(*eco, &mut rng);
            while out.bytes - written < budget {
                if package.left == 0 {
                    package = Package::new(*eco, &mut rng);
                }
                package.left -= 1;
                let v = vulnerability(&templates, *eco, &package, &mut rng);
                let id = v["VulnerabilityID"].as_str().unwrap().to_owned();
                let severity: Severity = v["Severity"].as_str().unwrap().parse().unwrap();
                counts[Severity::DESCENDING
                    .iter()
                    .position(|s| *s == severity)
                    .unwrap()] += 1;
                if index % 500 == 250 {
                    samples.push((id.clone(), *eco, package.clone()));
                }
                ids.insert(id);
                index += 1;
                if !first {
                    out.put(",\n");
                }
                first = false;
                for (i, line) in serde_json::to_string_pretty(&v)
                    .unwrap()
                    .lines()
                    .enumerate()
                {
                    if i > 0 {
                        out.put("\n");
                    }
                    out.put("        ");
                    out.put(line);
                }
            }
            out.put("\n      ]\n    }");
        }
        out.put("\n  ]\n}\n");
        out.inner.flush().unwrap();
        let bytes = out.bytes;

        let ignore = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ignore.path(), ignore_file(&samples)).unwrap();
        let report = Report {
            file,
            ignore,
            counts,
        };
        println!(
            "generated a Trivy report of {:.1} MB ({bytes} bytes) in {:.1} s: {} findings \
             ({} critical, {} high, {} medium, {} low, {} unknown) of {} ids in {} targets \
             (one without vulnerabilities); .trivyignore.yaml of 12 entries",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64(),
            report.total(),
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            ids.len(),
            Eco::ALL.len(),
        );
        report
    }

    /// A number never describes a run that lost or invented findings.
    fn check(&self, s: &Sample) {
        assert_eq!(
            s.parsed, self.counts,
            "parsed counts by severity differ from the generated ones"
        );
        assert_eq!(
            s.counted + s.ignored,
            self.total(),
            "the verdict lost findings"
        );
        assert!(
            s.ignored > 0 && s.expired > 0,
            "the ignore file should hide some findings and report expired entries"
        );
        assert_eq!(
            s.sarif_results, s.counted,
            "SARIF results != counted findings"
        );
        assert_eq!(s.sarif_rules, s.counted_ids, "SARIF rules != distinct ids");
        assert_eq!(s.result, "fail", "the generated report has criticals");
    }
}

/// Counts what it writes, so each target stops at its share of the size.
struct Out {
    inner: BufWriter<std::fs::File>,
    bytes: usize,
}

impl Out {
    fn put(&mut self, text: &str) {
        self.inner.write_all(text.as_bytes()).unwrap();
        self.bytes += text.len();
    }
}

/// The fixtures' vulnerability objects, and a report header (everything
/// before `Results`) to write them under.
struct Templates {
    header: String,
    os: Vec<Value>,
    lang: Vec<Value>,
}

impl Templates {
    fn load() -> Self {
        let dir = fixtures::fixture("trivy");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let (mut os, mut lang) = (Vec::new(), Vec::new());
        let mut header = None;
        for path in &paths {
            let report: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            for result in report["Results"].as_array().into_iter().flatten() {
                let pile = if result["Class"] == "lang-pkgs" {
                    &mut lang
                } else {
                    &mut os
                };
                pile.extend(
                    result["Vulnerabilities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            if path.ends_with("fluentd-gems.json") {
                header = Some(report);
            }
        }
        assert!(
            !os.is_empty() && !lang.is_empty(),
            "no templates in {}",
            dir.display()
        );

        let mut header = header.expect("fluentd-gems.json is the header's template");
        let object = header.as_object_mut().unwrap();
        object.remove("Results");
        object.insert(
            "ArtifactName".into(),
            json!("registry.example.com/acme/big:1.0"),
        );
        let mut header = serde_json::to_string_pretty(&header).unwrap();
        let end = header
            .trim_end()
            .strip_suffix('}')
            .unwrap()
            .trim_end()
            .len();
        header.truncate(end);
        header.push_str(",\n  \"Results\": [\n");
        Templates { header, os, lang }
    }
}

/// The targets of one big image: its OS packages, then one per language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eco {
    Debian,
    Gem,
    Python,
    Node,
    Jar,
    GoBinary,
}

impl Eco {
    const ALL: [Eco; 6] = [
        Eco::Debian,
        Eco::Gem,
        Eco::Python,
        Eco::Node,
        Eco::Jar,
        Eco::GoBinary,
    ];

    fn permille(self) -> usize {
        match self {
            Eco::Debian => 550,
            Eco::Gem => 100,
            Eco::Python => 150,
            Eco::Node => 150,
            Eco::Jar => 50,
            Eco::GoBinary => 0,
        }
    }

    fn target(self) -> &'static str {
        match self {
            Eco::Debian => "registry.example.com/acme/big:1.0 (debian 12.5)",
            Eco::Gem => "Ruby",
            Eco::Python => "Python",
            Eco::Node => "Node.js",
            Eco::Jar => "Java",
            Eco::GoBinary => "usr/local/bin/app",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Eco::Debian => "os-pkgs",
            _ => "lang-pkgs",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Eco::Debian => "debian",
            Eco::Gem => "gemspec",
            Eco::Python => "python-pkg",
            Eco::Node => "node-pkg",
            Eco::Jar => "jar",
            Eco::GoBinary => "gobinary",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Eco::Debian => &[
                "libssl3",
                "libcurl4",
                "libxml2",
                "linux-libc-dev",
                "libsqlite3-0",
                "openssh-client",
                "libkrb5-3",
                "libtiff6",
                "imagemagick-6-common",
                "libgnutls30",
                "perl-base",
                "libc6",
                "zlib1g",
                "libexpat1",
                "libpq5",
            ],
            Eco::Gem => &["activesupport", "nokogiri", "rack", "actionpack", "puma"],
            Eco::Python => &[
                "urllib3",
                "requests",
                "setuptools",
                "cryptography",
                "jinja2",
            ],
            Eco::Node => &["lodash", "minimist", "semver", "express", "axios"],
            Eco::Jar => &["jackson-databind", "log4j-core", "netty-codec", "snakeyaml"],
            Eco::GoBinary => &["stdlib"],
        }
    }

    fn purl(self, name: &str, version: &str) -> String {
        match self {
            Eco::Debian => {
                format!("pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12.5")
            }
            Eco::Gem => format!("pkg:gem/{name}@{version}"),
            Eco::Python => format!("pkg:pypi/{name}@{version}"),
            Eco::Node => format!("pkg:npm/{name}@{version}"),
            Eco::Jar => format!("pkg:maven/org.example/{name}@{version}"),
            Eco::GoBinary => format!("pkg:golang/{name}@{version}"),
        }
    }

    fn path(self, name: &str, version: &str) -> Option<String> {
        match self {
            Eco::Debian | Eco::GoBinary => None,
            Eco::Gem => Some(format!(
                "var/lib/gems/3.1.0/specifications/{name}-{version}.gemspec"
            )),
            Eco::Python => Some(format!(
                "usr/local/lib/python3.11/site-packages/{name}-{version}.dist-info/METADATA"
            )),
            Eco::Node => Some(format!("app/node_modules/{name}/package.json")),
            Eco::Jar => Some("app/target/app.jar".to_owned()),
        }
    }
}

/// One installed package and how many more findings it gets.
#[derive(Clone)]
struct Package {
    name: String,
    version: String,
    fixed: String,
    left: usize,
}

impl Package {
    fn new(eco: Eco, rng: &mut Rng) -> Self {
        let names = eco.names();
        let n = rng.below(400);
        let name = format!("{}-{}", names[n % names.len()], n / names.len());
        let (major, minor, patch, rev) = (
            1 + rng.below(9),
            rng.below(30),
            rng.below(20),
            1 + rng.below(5),
        );
        let version = match eco {
            Eco::Debian => format!("{major}.{minor}.{patch}-{rev}"),
            _ => format!("{major}.{minor}.{patch}"),
        };
        let fixed = match eco {
            Eco::Debian => format!("{major}.{minor}.{patch}-{rev}+deb12u{}", 1 + rng.below(4)),
            _ => format!("{major}.{minor}.{}", patch + 1 + rng.below(3)),
        };
        Package {
            name,
            version,
            fixed,
            left: 1 + rng.below(6),
        }
    }
}

/// A fixture's vulnerability object, as found in `package`.
fn vulnerability(templates: &Templates, eco: Eco, package: &Package, rng: &mut Rng) -> Value {
    let pile = if eco == Eco::Debian {
        &templates.os
    } else {
        &templates.lang
    };
    let mut v = pile[rng.below(pile.len())].clone();
    let old_id = v["VulnerabilityID"].as_str().unwrap().to_owned();
    let id = if eco != Eco::Debian && rng.below(10) < 3 {
        ghsa(rng.below(ID_POOL / 6))
    } else {
        cve(rng.below(ID_POOL))
    };
    let severity = match rng.below(100) {
        0..6 => "CRITICAL",
        6..30 => "HIGH",
        30..72 => "MEDIUM",
        72..94 => "LOW",
        _ => "UNKNOWN",
    };
    let object = v.as_object_mut().unwrap();
    object.insert("VulnerabilityID".into(), json!(id));
    object.insert(
        "PkgID".into(),
        json!(format!("{}@{}", package.name, package.version)),
    );
    object.insert("PkgName".into(), json!(package.name));
    match eco.path(&package.name, &package.version) {
        Some(path) => object.insert("PkgPath".into(), json!(path)),
        None => object.remove("PkgPath"),
    };
    object.insert(
        "PkgIdentifier".into(),
        json!({
            "PURL": eco.purl(&package.name, &package.version),
            "UID": format!("{:016x}", rng.next()),
        }),
    );
    object.insert("InstalledVersion".into(), json!(package.version));
    // A fifth are not fixed yet (Status affected or will_not_fix).
    if rng.below(5) == 0 {
        object.remove("FixedVersion");
        let status = if rng.below(2) == 0 {
            "affected"
        } else {
            "will_not_fix"
        };
        object.insert("Status".into(), json!(status));
    } else {
        object.insert("FixedVersion".into(), json!(package.fixed));
        object.insert("Status".into(), json!("fixed"));
    }
    object.insert(
        "PrimaryURL".into(),
        json!(format!("https://avd.aquasec.com/nvd/{}", id.to_lowercase())),
    );
    let print: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
    object.insert("Fingerprint".into(), json!(format!("sha256:{print}")));
    // Alpine's musl advisory has no Title: those stay without one.
    if let Some(title) = object.get("Title").and_then(Value::as_str) {
        let what = title.split_once(": ").map_or(title, |(_, what)| what);
        let title = format!("{}: {what}", package.name);
        object.insert("Title".into(), json!(title));
    }
    object.insert("Severity".into(), json!(severity));
    if let Some(Value::Array(references)) = object.get_mut("References") {
        for reference in references {
            let text = reference.as_str().unwrap().replace(&old_id, &id);
            *reference = json!(text);
        }
    }
    v
}

fn cve(n: usize) -> String {
    format!("CVE-{}-{}", 2014 + n % 11, 1000 + n / 11 * 37)
}

fn ghsa(n: usize) -> String {
    let mut rng = Rng(n as u64);
    let alphabet = b"23456789cfghjmpqrvwx";
    let mut part = || -> String {
        (0..4)
            .map(|_| alphabet[rng.below(alphabet.len())] as char)
            .collect()
    };
    format!("GHSA-{}-{}-{}", part(), part(), part())
}

/// Twelve entries, spread over the report: plain ones, expired ones (their
/// findings count again, and each is reported), ones narrowed by path and
/// by purl.
fn ignore_file(samples: &[(String, Eco, Package)]) -> String {
    assert!(
        samples.len() >= 12,
        "too few findings to sample the ignore file"
    );
    let mut yaml = String::from("vulnerabilities:\n");
    for k in 0..12 {
        let (id, eco, package) = &samples[k * samples.len() / 12];
        yaml.push_str(&format!("  - id: {id}\n"));
        match k % 4 {
            0 => yaml.push_str("    statement: not reachable from the service\n"),
            1 => yaml.push_str(
                "    expired_at: 2024-01-01\n    statement: until the base image moves\n",
            ),
            2 => {
                let glob = match eco.path(&package.name, &package.version) {
                    Some(path) => format!("{}/**", path.rsplit_once('/').unwrap().0),
                    None => "registry.example.com/acme/*".to_owned(),
                };
                yaml.push_str(&format!("    paths: [{}]\n", json!(glob)));
            }
            _ => {
                let purl = eco.purl(&package.name, "");
                let purl = purl.split('@').next().unwrap();
                yaml.push_str(&format!(
                    "    purls: [{}]\n    expired_at: 2030-01-01\n",
                    json!(purl)
                ));
            }
        }
    }
    yaml
}

/// splitmix64: the same report every time, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// Measuring, in a child

#[derive(Serialize, Deserialize)]
struct Step {
    name: String,
    wall: Duration,
    /// How far the step raised the process's peak RSS (VmHWM).
    hwm_rise_kib: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Sample {
    steps: Vec<Step>,
    total: Duration,
    hwm_start_kib: u64,
    hwm_end_kib: u64,
    parsed: BySeverity,
    counted: usize,
    ignored: usize,
    expired: usize,
    result: String,
    counted_ids: usize,
    sarif_results: usize,
    sarif_rules: usize,
    sarif_bytes: usize,
    summary_bytes: usize,
    annotations: usize,
}

/// Runs one measurement in a fresh copy of this bench: VmHWM and
/// `RUSAGE_CHILDREN` then hold that run's peak alone, not the generator's
/// or an earlier run's.
fn measure(mode: &str, report: &Report) -> Sample {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(MEASURE)
        .arg(mode)
        .arg(report.file.path())
        .arg(report.ignore.path())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the measuring child failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

fn step<T>(steps: &mut Vec<Step>, name: &str, work: impl FnOnce() -> T) -> T {
    let hwm = vm_hwm_kib();
    let started = Instant::now();
    let out = black_box(work());
    let wall = started.elapsed();
    steps.push(Step {
        name: name.to_owned(),
        wall,
        hwm_rise_kib: vm_hwm_kib() - hwm,
    });
    out
}

/// The gate as `gate::gate` runs it on a scanner's report.
fn pipeline(report: &Path, ignore_path: &Path) -> Sample {
    let ignore = ignore::parse(&std::fs::read_to_string(ignore_path).unwrap()).unwrap();
    let policy = Policy::default();
    let mut steps = Vec::new();
    let hwm_start_kib = vm_hwm_kib();
    let started = Instant::now();

    let findings = step(&mut steps, "read + scan::trivy::parse", || {
        let bytes = std::fs::read(report).unwrap();
        trivy::parse(&bytes).unwrap()
    });
    let parsed = by_severity(&Counts::from_findings(&findings));
    let verdict = step(&mut steps, "scan::policy::evaluate", || {
        evaluate(findings, &policy, Some(&ignore), NOW)
    });
    let scanned = Scanned {
        image: "acme/big",
        scanner: Scanner::Trivy,
        verdict: &verdict,
        policy: &policy,
    };
    let summary = step(&mut steps, "report::scan::summary", || summary(&scanned));
    let commands = step(&mut steps, "report::scan::annotations + to_command", || {
        annotations(&scanned, DOCKERFILE, FROM_LINE)
            .iter()
            .map(|a| a.to_command())
            .collect::<Vec<_>>()
    });
    let document = step(&mut steps, "scan::sarif::render", || {
        sarif::render(&verdict, "trivy", DOCKERFILE, FROM_LINE as usize)
    });
    let sarif_bytes = step(&mut steps, "serde_json::to_vec_pretty (SARIF)", || {
        serde_json::to_vec_pretty(&document).unwrap()
    });
    let total = started.elapsed();
    let hwm_end_kib = vm_hwm_kib();

    let run = &document["runs"][0];
    Sample {
        steps,
        total,
        hwm_start_kib,
        hwm_end_kib,
        parsed,
        counted: verdict.findings.len(),
        ignored: verdict.ignored.len(),
        expired: verdict.expired.len(),
        result: verdict.result.to_string(),
        counted_ids: verdict
            .findings
            .iter()
            .map(|f| f.id.as_str())
            .collect::<HashSet<_>>()
            .len(),
        sarif_results: run["results"].as_array().unwrap().len(),
        sarif_rules: run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        sarif_bytes: sarif_bytes.len(),
        summary_bytes: summary.len(),
        annotations: commands.len(),
    }
}

/// The `report:` input's path: the report is parsed into a `Value` first to
/// tell Trivy from Grype, then converted.
fn detect(report: &Path) -> Sample {
    let mut steps = Vec::new();
    let hwm_start_kib = vm_hwm_kib();
    let started = Instant::now();
    let (scanner, findings) = step(&mut steps, "read + scan::detect_and_parse", || {
        let bytes = std::fs::read(report).unwrap();
        detect_and_parse(&bytes).unwrap()
    });
    assert_eq!(scanner, Scanner::Trivy);
    Sample {
        steps,
        total: started.elapsed(),
        hwm_start_kib,
        hwm_end_kib: vm_hwm_kib(),
        parsed: by_severity(&Counts::from_findings(&findings)),
        ..Sample::default()
    }
}

// ---------------------------------------------------------------------------
// The report

fn print_table(runs: &[Sample], peak_kib: i64, detect: &[Sample]) {
    let first = &runs[0];
    println!(
        "verdict: {} — {} counted ({} ids), {} ignored, {} expired-entry messages; summary {} B, {} annotations, SARIF {:.1} MB ({} results, {} rules)",
        first.result,
        first.counted,
        first.counted_ids,
        first.ignored,
        first.expired,
        first.summary_bytes,
        first.annotations,
        first.sarif_bytes as f64 / 1e6,
        first.sarif_results,
        first.sarif_rules,
    );
    println!();
    println!("| step | median | min | peak RSS rise (median) |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |name: &str, walls: Vec<Duration>, rises: Vec<u64>| {
        let (median_wall, min_wall) = median_min(walls);
        println!(
            "| {name} | {} | {} | {} |",
            ms(median_wall),
            ms(min_wall),
            mib(median_min(rises).0)
        );
    };
    for (i, step) in first.steps.iter().enumerate() {
        row(
            &step.name,
            runs.iter().map(|r| r.steps[i].wall).collect(),
            runs.iter().map(|r| r.steps[i].hwm_rise_kib).collect(),
        );
    }
    row(
        "**total**",
        runs.iter().map(|r| r.total).collect(),
        runs.iter()
            .map(|r| r.hwm_end_kib - r.hwm_start_kib)
            .collect(),
    );
    row(
        "for comparison: read + scan::detect_and_parse (the `report:` input)",
        detect.iter().map(|r| r.total).collect(),
        detect
            .iter()
            .map(|r| r.hwm_end_kib - r.hwm_start_kib)
            .collect(),
    );
    println!();
    println!(
        "{RUNS} runs, each in a fresh process. Peak RSS rise: how far the step raised the process's VmHWM; \
         total: VmHWM at the end minus at the start ({} at the start). \
         Largest process over the pipeline runs (getrusage RUSAGE_CHILDREN maxrss): {}.",
        mib(median_min(runs.iter().map(|r| r.hwm_start_kib).collect()).0),
        mib(peak_kib as u64),
    );
}

fn median_min<T: Ord + Copy>(mut values: Vec<T>) -> (T, T) {
    values.sort();
    (values[values.len() / 2], values[0])
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
