//! `backup` and `restore`, with the real skopeo reading what `backup` wrote
//! and writing what `restore` reads.

use std::path::Path;
use std::process::Command;

use super::*;

/// skopeo with the loopback registries' plain HTTP allowed and no host
/// signature policy needed.
fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo runs (Debian package skopeo; scripts/test installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn seed(repository: &str) -> (Manifest, Manifest) {
    let registry = open();
    let a = push_image(
        &registry,
        repository,
        "a",
        "amd64",
        &[random_layer(21, 120_000), random_layer(22, 5_000)],
    )
    .await;
    let b = push_image(
        &registry,
        repository,
        "b",
        "arm64",
        &[random_layer(21, 120_000)],
    )
    .await;
    let index = push_index(
        &registry,
        repository,
        "1.0",
        &[(&a, "amd64"), (&b, "arm64")],
    )
    .await;
    (index, a)
}

fn backup(source: &str, archive: &Path, tags: &str) -> [(&'static str, String); 4] {
    [
        ("command", "backup".into()),
        ("from", format!("{}/{source}", services().registry_open)),
        ("archive", archive.display().to_string()),
        ("tags", tags.into()),
    ]
}

#[tokio::test]
async fn skopeo_reads_backups_as_oci_directories_and_archives() {
    let s = services();
    let source = unique("backup");
    let (index, a) = seed(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let tar = dir.path().join("backup.tar");

    let ran = run_owned_in(dir.path(), &backup(&source, &layout, "1.0\na")).await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["1.0"], index.digest.as_str());
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:1.0", layout.display())]);
    assert_eq!(raw, index.bytes, "skopeo sees the index bytes unchanged");
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:a", layout.display())]);
    assert_eq!(raw, a.bytes);

    run_owned_in(dir.path(), &backup(&source, &tar, "1.0"))
        .await
        .assert_ok();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:1.0", tar.display()),
    ]);
    assert_eq!(raw, index.bytes);
    // skopeo pushes the whole archive back: every blob was there and whole.
    let copy = unique("skopeo-from-archive");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}:1.0", tar.display()),
        &format!("docker://{}/{copy}:1.0", s.registry_open),
    ]);
    assert_same_tree((&open(), &source), (&open(), &copy), "1.0").await;
}

#[tokio::test]
async fn restore_pushes_our_archives_and_skopeo_layouts_with_digests_unchanged() {
    let s = services();
    let source = unique("restore-src");
    let (index, _) = seed(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("offline.tar");
    run_owned_in(dir.path(), &backup(&source, &tar, "1.0"))
        .await
        .assert_ok();

    let target = unique("restored");
    let ran = run_in(
        dir.path(),
        &[
            ("command", "restore"),
            ("archive", &tar.display().to_string()),
            ("to", &format!("{}/{target}", s.registry_basic)),
            ("username", &s.basic_user),
            ("password", &s.basic_password),
        ],
    )
    .await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["1.0"], index.digest.as_str());
    assert_same_tree((&open(), &source), (&basic(), &target), "1.0").await;

    // A layout skopeo wrote, restored to the token registry.
    let skopeo_layout = dir.path().join("by-skopeo");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/{source}:1.0", s.registry_open),
        &format!("oci:{}:1.0", skopeo_layout.display()),
    ]);
    let target = unique("restored-skopeo");
    let ran = run_in(
        dir.path(),
        &[
            ("command", "restore"),
            ("archive", &skopeo_layout.display().to_string()),
            ("to", &format!("{}/{target}", s.registry_token)),
            ("username", &s.token_user),
            ("password", &s.token_password),
        ],
    )
    .await;
    ran.assert_ok();
    assert_same_tree((&open(), &source), (&token(), &target), "1.0").await;
}

#[tokio::test]
async fn a_tampered_blob_in_a_layout_is_refused_and_its_image_not_pushed() {
    let s = services();
    let source = unique("tamper-src");
    let (_, a) = seed(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    run_owned_in(dir.path(), &backup(&source, &layout, "a"))
        .await
        .assert_ok();
    let value: serde_json::Value = serde_json::from_slice(&a.bytes).unwrap();
    let layer = value["layers"][1]["digest"].as_str().unwrap();
    let file = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let target = unique("tamper-dst");
    let ran = run_in(
        dir.path(),
        &[
            ("command", "restore"),
            ("archive", &layout.display().to_string()),
            ("to", &format!("{}/{target}", s.registry_open)),
        ],
    )
    .await;
    ran.assert_failed(&format!("not {layer}"));
    assert!(
        !open().has_blob(&target, layer).await.unwrap(),
        "the bad blob reached the registry"
    );
    assert!(
        open().manifest(&target, "a").await.unwrap().is_none(),
        "a manifest went up without its blobs"
    );
}

#[tokio::test]
async fn a_dry_run_backup_writes_nothing_and_a_second_backup_only_what_is_new() {
    let source = unique("backup-dry");
    let (index, _) = seed(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let dry = [
        &backup(&source, &layout, "1.0")[..],
        &[("dry-run", "true".into())],
    ]
    .concat();

    let ran = run_owned_in(dir.path(), &dry).await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["1.0"], index.digest.as_str());
    // The shared layer, `a`'s own one and the two configs.
    assert_eq!(output(&ran, "blobs-sent"), 4, "{ran}");
    assert!(!layout.exists(), "a dry run wrote the layout");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left beside it"
    );

    run_owned_in(dir.path(), &backup(&source, &layout, "1.0"))
        .await
        .assert_ok();
    let ran = run_owned_in(dir.path(), &dry).await;
    ran.assert_ok();
    assert!(ran.summary.contains("up to date"), "{ran}");
    assert_eq!(output(&ran, "blobs-sent"), 0, "{ran}");

    // A new tag into the same layout: its one new layer is all that is fetched.
    push_image(
        &open(),
        &source,
        "c",
        "amd64",
        &[random_layer(21, 120_000), random_layer(23, 7_000)],
    )
    .await;
    let ran = run_owned_in(dir.path(), &backup(&source, &layout, "c")).await;
    ran.assert_ok();
    assert_eq!(output(&ran, "blobs-sent"), 1, "{ran}");
    assert_eq!(output(&ran, "blobs-present"), 2, "{ran}");
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:1.0", layout.display())]);
    assert_eq!(raw, index.bytes, "the earlier tag is still in the index");
}
