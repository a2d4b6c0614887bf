//! `trivy-test-db ADVISORIES.json CACHE_DIR`: an offline Trivy vulnerability
//! database written from made-up advisories, so that the tests, the benches
//! and `scripts/demo` run a real Trivy with no network:
//!
//! ```text
//! trivy image --cache-dir CACHE_DIR --skip-db-update --offline-scan …
//! ```
//!
//! Trivy (checked with 0.59) reads `CACHE_DIR/db/metadata.json`, whose
//! `Version` must be its schema, 2, and `CACHE_DIR/db/trivy.db`, a bbolt file:
//!
//! - one bucket per data source, named `<os> <version>` (`alpine 3.19`,
//!   `debian 12`: the one Trivy picks from the scanned OS), holding a bucket
//!   per package, holding one key per vulnerability id whose value says the
//!   first fixed version (`{"FixedVersion": …}`), or that there is none yet
//!   (`{"Status": 2}`, affected);
//! - `vulnerability`: id → title, description and severity, also per data
//!   source (`VendorSeverity`, 0 UNKNOWN to 4 CRITICAL), which Trivy reports;
//! - `data-source`: each data-source bucket's name → its ID and name.
//!
//! ADVISORIES.json is a list of objects such as
//! `{"source": "alpine 3.19", "package": "busybox", "id": "TEST-2026-0001",
//! "fixed": "1.36.1-r16", "severity": "CRITICAL", "title": "…"}`; `fixed`
//! empty or absent means no fix yet, `description` is optional. They are test
//! data, not security information.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bbolt_rs::{Bolt, BucketRwApi, DbRwAPI, TxRwRefApi};
use serde::Deserialize;
use serde_json::json;

const USAGE: &str = "usage: trivy-test-db ADVISORIES.json CACHE_DIR";
/// The database schema Trivy 0.59 reads.
const SCHEMA_VERSION: u32 = 2;
/// Trivy's status for "affected, no fixed version yet".
const STATUS_AFFECTED: u32 = 2;
/// Advisory files are a few lines; anything far larger is a mistake.
const MAX_ADVISORIES_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advisory {
    source: String,
    package: String,
    id: String,
    #[serde(default)]
    fixed: String,
    severity: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

/// What goes into trivy.db, keys and values as written.
#[derive(Debug, Default, PartialEq)]
struct Layout {
    /// data source → package → vulnerability id → advisory
    advisories: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
    vulnerabilities: BTreeMap<String, Vec<u8>>,
    data_sources: BTreeMap<String, Vec<u8>>,
}

/// A vulnerability's shared record, gathered over its advisories.
struct Vulnerability<'a> {
    title: &'a str,
    description: &'a str,
    severity: &'a str,
    by_source: BTreeMap<&'a str, u8>,
}

fn severity_number(severity: &str) -> Option<u8> {
    ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
        .iter()
        .position(|s| *s == severity)
        .and_then(|n| u8::try_from(n).ok())
}

/// The data source's OS id: `alpine` of `alpine 3.19`.
fn os_id(source: &str) -> Option<&str> {
    match source.split_once(' ') {
        Some((os, version)) if !os.is_empty() && !version.is_empty() && !version.contains(' ') => {
            Some(os)
        }
        _ => None,
    }
}

fn check(n: usize, advisory: &Advisory) -> Result<&str> {
    let what = format!("advisory {n} (`{}`)", advisory.id);
    if advisory.id.is_empty() || advisory.package.is_empty() {
        bail!("advisory {n}: `id` and `package` must not be empty");
    }
    let Some(os) = os_id(&advisory.source) else {
        bail!(
            "{what}: `source` {:?} is not `<os> <version>` (e.g. \"alpine 3.19\")",
            advisory.source
        );
    };
    if severity_number(&advisory.severity).is_none() {
        bail!(
            "{what}: `severity` {:?} is not one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL",
            advisory.severity
        );
    }
    Ok(os)
}

fn layout(advisories: &[Advisory]) -> Result<Layout> {
    let mut out = Layout::default();
    let mut vulnerabilities: BTreeMap<&str, Vulnerability> = BTreeMap::new();
    for (n, advisory) in advisories.iter().enumerate() {
        let os = check(n, advisory)?;
        let detail = if advisory.fixed.is_empty() {
            json!({ "Status": STATUS_AFFECTED })
        } else {
            json!({ "FixedVersion": advisory.fixed })
        };
        let previous = out
            .advisories
            .entry(advisory.source.clone())
            .or_default()
            .entry(advisory.package.clone())
            .or_default()
            .insert(advisory.id.clone(), detail.to_string().into_bytes());
        if previous.is_some() {
            bail!(
                "advisory {n}: `{}` for `{}` in `{}` is listed twice",
                advisory.id,
                advisory.package,
                advisory.source
            );
        }
        out.data_sources.insert(
            advisory.source.clone(),
            json!({ "ID": os, "Name": format!("{os} (test data)"), "URL": "" })
                .to_string()
                .into_bytes(),
        );
        let vulnerability = vulnerabilities
            .entry(&advisory.id)
            .or_insert_with(|| Vulnerability {
                title: &advisory.title,
                description: &advisory.description,
                severity: &advisory.severity,
                by_source: BTreeMap::new(),
            });
        if (
            vulnerability.title,
            vulnerability.description,
            vulnerability.severity,
        ) != (&advisory.title, &advisory.description, &advisory.severity)
        {
            bail!(
                "advisory {n}: `{}` appeared before with another title, description or severity; one id is one vulnerability",
                advisory.id
            );
        }
        let number = severity_number(&advisory.severity).unwrap_or_default();
        vulnerability.by_source.insert(os, number);
    }
    for (id, v) in vulnerabilities {
        let record = json!({
            "Title": v.title,
            "Description": v.description,
            "Severity": v.severity,
            "VendorSeverity": v.by_source,
        });
        out.vulnerabilities
            .insert(id.to_owned(), record.to_string().into_bytes());
    }
    Ok(out)
}

fn read_advisories(path: &Path) -> Result<Vec<Advisory>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_ADVISORIES_BYTES {
        bail!(
            "{} is {size} bytes; an advisories file is at most {MAX_ADVISORIES_BYTES}",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: not a JSON list of advisories ({{\"source\", \"package\", \"id\", \"fixed\", \"severity\", \"title\"}})",
            path.display()
        )
    })
}

fn write_bolt(path: &Path, layout: &Layout) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let mut db = Bolt::open(path).with_context(|| format!("creating {}", path.display()))?;
    db.update(|mut tx| {
        for (source, packages) in &layout.advisories {
            let mut source_bucket = tx.create_bucket(source)?;
            for (package, ids) in packages {
                let mut package_bucket = source_bucket.create_bucket(package)?;
                for (id, detail) in ids {
                    package_bucket.put(id, detail)?;
                }
            }
        }
        let mut vulnerabilities = tx.create_bucket("vulnerability")?;
        for (id, record) in &layout.vulnerabilities {
            vulnerabilities.put(id, record)?;
        }
        let mut data_sources = tx.create_bucket("data-source")?;
        for (source, record) in &layout.data_sources {
            data_sources.put(source, record)?;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))?;
    // bbolt creates it 0600; a scanner container running as another user
    // reads it too (test data: nothing to hide).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} readable", path.display()))
}

fn write_metadata(path: &Path) -> Result<()> {
    // Fixed dates: the same advisories give the same files. NextUpdate far
    // ahead, so nothing reads the database as stale.
    let metadata = json!({
        "Version": SCHEMA_VERSION,
        "NextUpdate": "2099-01-01T00:00:00Z",
        "UpdatedAt": "2026-01-01T00:00:00Z",
        "DownloadedAt": "2026-01-01T00:00:00Z",
    });
    std::fs::write(path, metadata.to_string())
        .with_context(|| format!("writing {}", path.display()))
}

fn run(advisories: &Path, cache: &Path) -> Result<()> {
    let layout = layout(&read_advisories(advisories)?)?;
    let db = cache.join("db");
    std::fs::create_dir_all(&db).with_context(|| format!("creating {}", db.display()))?;
    write_bolt(&db.join("trivy.db"), &layout)?;
    write_metadata(&db.join("metadata.json"))
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [advisories, cache] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(Path::new(advisories), Path::new(cache)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trivy-test-db: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bbolt_rs::{BucketApi, DbApi, TxApi};

    fn advisories(text: &str) -> Vec<Advisory> {
        serde_json::from_str(text).unwrap()
    }

    const TWO: &str = r#"[
      {"source": "alpine 3.19", "package": "busybox", "id": "T-1", "fixed": "1.36.1-r16", "severity": "CRITICAL", "title": "one"},
      {"source": "debian 12", "package": "zlib1g", "id": "T-2", "fixed": "", "severity": "LOW", "title": "two"}
    ]"#;

    #[test]
    fn lays_out_sources_packages_and_vulnerabilities() {
        let out = layout(&advisories(TWO)).unwrap();
        let busybox = &out.advisories["alpine 3.19"]["busybox"]["T-1"];
        assert_eq!(busybox, br#"{"FixedVersion":"1.36.1-r16"}"#);
        assert_eq!(
            &out.advisories["debian 12"]["zlib1g"]["T-2"],
            br#"{"Status":2}"#
        );
        let t1: serde_json::Value = serde_json::from_slice(&out.vulnerabilities["T-1"]).unwrap();
        assert_eq!(t1["Severity"], "CRITICAL");
        assert_eq!(t1["VendorSeverity"], json!({"alpine": 4}));
        let debian: serde_json::Value =
            serde_json::from_slice(&out.data_sources["debian 12"]).unwrap();
        assert_eq!(debian["ID"], "debian");
    }

    #[test]
    fn one_id_in_two_sources_is_one_vulnerability_with_both_severities() {
        let out = layout(&advisories(
            r#"[{"source": "alpine 3.19", "package": "a", "id": "T-1", "severity": "HIGH"},
                {"source": "debian 12", "package": "a", "id": "T-1", "severity": "HIGH"}]"#,
        ))
        .unwrap();
        let t1: serde_json::Value = serde_json::from_slice(&out.vulnerabilities["T-1"]).unwrap();
        assert_eq!(t1["VendorSeverity"], json!({"alpine": 3, "debian": 3}));
    }

    #[test]
    fn refuses_what_trivy_would_misread() {
        let err = |text: &str| layout(&advisories(text)).unwrap_err().to_string();
        assert!(
            err(r#"[{"source": "alpine", "package": "a", "id": "T", "severity": "LOW"}]"#)
                .contains("`source` \"alpine\" is not `<os> <version>`")
        );
        assert!(
            err(r#"[{"source": "alpine 3.19", "package": "a", "id": "T", "severity": "severe"}]"#)
                .contains("`severity` \"severe\" is not one of")
        );
        assert!(
            err(r#"[{"source": "alpine 3.19", "package": "", "id": "T", "severity": "LOW"}]"#)
                .contains("must not be empty")
        );
        let twice = r#"[{"source": "alpine 3.19", "package": "a", "id": "T", "severity": "LOW"},
                        {"source": "alpine 3.19", "package": "a", "id": "T", "severity": "LOW"}]"#;
        assert!(err(twice).contains("listed twice"));
        let differ = r#"[{"source": "alpine 3.19", "package": "a", "id": "T", "severity": "LOW"},
                         {"source": "alpine 3.19", "package": "b", "id": "T", "severity": "HIGH"}]"#;
        assert!(err(differ).contains("one id is one vulnerability"));
        assert!(
            serde_json::from_str::<Vec<Advisory>>(r#"[{"source": "alpine 3.19", "package": "a", "id": "T", "severity": "LOW", "fix": "1"}]"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field `fix`")
        );
    }

    #[test]
    fn writes_a_bolt_file_that_reads_back_and_schema_2_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("advisories.json");
        std::fs::write(&input, TWO).unwrap();
        let cache = dir.path().join("cache");
        run(&input, &cache).unwrap();
        // A second run replaces the file rather than adding to it.
        run(&input, &cache).unwrap();

        let db = Bolt::open_ro(cache.join("db/trivy.db")).unwrap();
        db.view(|tx| {
            let source = tx.bucket("alpine 3.19").unwrap();
            let package = source.bucket("busybox").unwrap();
            assert_eq!(
                package.get("T-1"),
                Some(br#"{"FixedVersion":"1.36.1-r16"}"#.as_slice())
            );
            assert!(tx.bucket("vulnerability").unwrap().get("T-2").is_some());
            assert!(tx.bucket("data-source").unwrap().get("debian 12").is_some());
            Ok(())
        })
        .unwrap();
        let metadata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("db/metadata.json")).unwrap())
                .unwrap();
        assert_eq!(metadata["Version"], 2);
    }
}
