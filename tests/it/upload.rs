//! `publish` through a proxy that cuts blob uploads midway: a cut try
//! starts over in a fresh upload session, four tries in all, and what
//! fails names the registry, repository and blob but no upload URL.

use std::io::Read as _;

use serde_json::Value;

use crate::mirror::{open, random_layer};
use crate::publish::{publish, scoped};
use crate::support::git::Repo;
use crate::support::proxy::{Fault, Proxy};
use crate::support::run::Ran;
use crate::support::services::services;

/// Random bytes, so the gzip layer is about as big; requests other than
/// its upload stay far below `CUT_AFTER`, the upload goes far beyond.
const PAYLOAD: usize = 3 << 20;
const CUT_AFTER: u64 = 1 << 20;

struct Published {
    ran: Ran,
    proxy: Proxy,
    repository: String,
    sha: String,
    payload: Vec<u8>,
}

/// Publishes an image whose one layer holds `PAYLOAD` random bytes through
/// a proxy that cuts the first `cuts` uploads after `CUT_AFTER` bytes.
async fn publish_through_cuts(ns: &str, seed: u64, cuts: u32) -> Published {
    let s = services();
    let repo = Repo::new();
    let payload = random_layer(seed, PAYLOAD);
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY data.bin /data.bin\n",
    );
    std::fs::write(repo.join("ops/docker/app/data.bin"), &payload).unwrap();
    let sha = repo.commit("app");
    let proxy = Proxy::start(
        &s.registry_open,
        Fault::Cut {
            after: CUT_AFTER,
            times: cuts,
        },
    );
    let ran = publish(&repo, ns, "refs/heads/main", &sha)
        .input("registry", &proxy.address)
        .run_async()
        .await;
    Published {
        ran,
        proxy,
        repository: scoped(&format!("{ns}/app")),
        sha,
        payload,
    }
}

/// The digest of `tag`'s manifest and its one layer (descriptor and bytes),
/// fetched from the registry itself, not through the proxy; the client
/// checks both against their digests.
async fn layer(repository: &str, tag: &str) -> (String, Value, Vec<u8>) {
    let registry = open();
    let manifest = registry.manifest(repository, tag).await.unwrap().unwrap();
    let value: Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let layers = value["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{value}");
    let digest = layers[0]["digest"].as_str().unwrap();
    let size = layers[0]["size"].as_u64().unwrap();
    let blob = registry.blob(repository, digest, size).await.unwrap();
    (manifest.digest, layers[0].clone(), blob)
}

/// The bytes of `name` in a gzip tar layer.
fn file_in_layer(layer: &[u8], name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            == name
        {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("no {name} in the layer");
}

/// Neither an upload session's query (`_state=…`) nor its path (the
/// endpoint followed by a session id) shows anywhere in the run's log.
fn assert_no_upload_url(ran: &Ran) {
    for log in [&ran.stdout, &ran.stderr] {
        assert!(!log.contains("_state"), "{ran}");
        for (at, endpoint) in log.match_indices("/blobs/uploads/") {
            let next = log[at + endpoint.len()..].chars().next();
            assert!(
                !next.is_some_and(|c| c.is_ascii_alphanumeric()),
                "a session path in the log\n{ran}"
            );
        }
    }
}

/// Publishes through `cuts` cut uploads and checks that the image arrived
/// whole: tags, manifest, and the layer holding the payload.
async fn published_despite(ns: &str, seed: u64, cuts: u32) {
    let Published {
        ran,
        proxy,
        repository,
        sha,
        payload,
    } = &publish_through_cuts(ns, seed, cuts).await;
    ran.assert_ok();
    if services().engine.containerd_store() {
        // The engine's BuildKit pushes, and starts over by itself.
        assert!(proxy.cuts() <= cuts, "{ran}");
        assert!(!ran.stderr.contains("starting over"), "{ran}");
    } else {
        assert_eq!(proxy.cuts(), cuts, "{ran}");
        assert_eq!(
            ran.stderr.matches("starting over").count(),
            cuts as usize,
            "one retry per cut\n{ran}"
        );
        // The first try sent the layer while it was compressed (one PATCH
        // of unknown length); the tries after it, the sealed file whole.
        let patches = proxy
            .writes()
            .into_iter()
            .filter(|r| r.starts_with("PATCH "))
            .count();
        assert_eq!(patches, 1, "{:?}", proxy.writes());
    }
    assert_no_upload_url(ran);
    let registry = open();
    let mut tags = registry.tags(repository).await.unwrap();
    tags.sort();
    assert_eq!(tags, [sha.as_str(), "latest"]);
    let (manifest, descriptor, blob) = layer(repository, sha).await;
    assert_eq!(ran.outputs["digest"], manifest);
    assert_eq!(descriptor["size"].as_u64(), Some(blob.len() as u64));
    assert_eq!(&file_in_layer(&blob, "data.bin"), payload);
}

#[tokio::test]
async fn an_upload_cut_once_starts_over_and_the_publish_succeeds() {
    published_despite("t-cut-once", 61, 1).await;
}

#[tokio::test]
async fn an_upload_cut_three_times_succeeds_on_its_fourth_session() {
    published_despite("t-cut-thrice", 62, 3).await;
}

#[tokio::test]
async fn an_upload_cut_every_time_fails_naming_the_blob_and_publishes_nothing() {
    let Published {
        ran,
        proxy,
        repository,
        sha,
        ..
    } = publish_through_cuts("t-cut-always", 63, u32::MAX).await;
    let said = format!("{} didn't take blob sha256:", proxy.address);
    ran.assert_failed(&said);
    ran.assert_failed(&format!(
        "for `{repository}` (upload sessions tried: 4): couldn't reach {}",
        proxy.address
    ));
    if services().engine.containerd_store() {
        // The engine's BuildKit tried first, its own retries cut too; then
        // publish exported the image and made its four upload sessions.
        assert!(proxy.cuts() > 4, "{ran}");
    } else {
        assert_eq!(proxy.cuts(), 4, "{ran}");
    }
    assert_no_upload_url(&ran);

    let log = format!("{}{}", ran.stdout, ran.stderr);
    let at = log.find(&said).unwrap() + said.len() - "sha256:".len();
    let digest = &log[at..at + "sha256:".len() + 64];
    let registry = open();
    assert!(
        !registry.has_blob(&repository, digest).await.unwrap(),
        "a cut blob became visible"
    );
    assert!(
        registry
            .manifest(&repository, &sha)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        registry.tags(&repository).await.unwrap(),
        Vec::<String>::new()
    );
}
