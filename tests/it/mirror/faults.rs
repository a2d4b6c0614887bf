//! What can go wrong mid-copy: a source sending bytes that don't match
//! their digest, and a target that dies halfway through.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::support::own_registry::OwnRegistry;
use crate::support::proxy::{Fault, Proxy};

#[tokio::test]
async fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let s = services();
    let good = random_layer(31, 200_000);
    let mut bad = good.clone();
    bad[150_000] ^= 1;
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let (layer, config_digest) = (sha256_digest(&good), sha256_digest(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": good.len()}],
    }))
    .unwrap();
    let source = MockServer::start().await;
    let serve = |at: String, body: Vec<u8>, media_type: &str| {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, media_type))
    };
    serve("/v2/evil/app/manifests/v1".into(), manifest, OCI_MANIFEST)
        .mount(&source)
        .await;
    serve(
        format!("/v2/evil/app/blobs/{config_digest}"),
        config,
        "application/octet-stream",
    )
    .mount(&source)
    .await;
    serve(
        format!("/v2/evil/app/blobs/{layer}"),
        bad.clone(),
        "application/octet-stream",
    )
    .mount(&source)
    .await;

    let target = unique("mismatch");
    let ran = run(&[
        ("command", "mirror"),
        (
            "from",
            &format!("127.0.0.1:{}/evil/app:v1", source.address().port()),
        ),
        ("to", &format!("{}/{target}", s.registry_open)),
    ])
    .await;
    ran.assert_failed(&format!(
        "whose digest is {}, not {layer}; refusing it",
        sha256_digest(&bad)
    ));
    let registry = open();
    assert!(
        !registry.has_blob(&target, &layer).await.unwrap(),
        "the bad bytes were kept"
    );
    assert!(registry.manifest(&target, "v1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_target_that_dies_midway_keeps_only_whole_blobs_and_a_rerun_completes() {
    let s = services();
    let from = open();
    let source = unique("dies-src");
    let layers: Vec<Vec<u8>> = (0..6).map(|i| random_layer(40 + i, 2 << 20)).collect();
    let image = push_image(&from, &source, "v1", "amd64", &layers).await;
    let own = OwnRegistry::start(true);
    let dying = Proxy::start(&own.address, Fault::DieAfter(5 << 20));
    let target = unique("dies-dst");
    let inputs = |to: &str| {
        vec![
            ("command", "mirror".to_owned()),
            ("from", format!("{}/{source}:v1", s.registry_open)),
            ("to", format!("{to}/{target}")),
            ("concurrency", "1".to_owned()),
        ]
    };

    let ran = run_owned(&inputs(&dying.address)).await;
    assert!(dying.dead(), "the target never died\n{ran}");
    ran.assert_failed("a re-run copies only what is missing");

    let to = Registry::new(&own.address, None).unwrap();
    assert!(
        to.manifest(&target, "v1").await.unwrap().is_none(),
        "a manifest went up without its blobs"
    );
    let value: serde_json::Value = serde_json::from_slice(&image.bytes).unwrap();
    let blobs: Vec<(&str, u64)> = value["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&value["config"]])
        .map(|b| (b["digest"].as_str().unwrap(), b["size"].as_u64().unwrap()))
        .collect();
    let mut whole = 0;
    for &(digest, size) in &blobs {
        if to.has_blob(&target, digest).await.unwrap() {
            assert_eq!(
                to.blob(&target, digest, size).await.unwrap(),
                from.blob(&source, digest, size).await.unwrap(),
                "a corrupt blob was kept"
            );
            whole += 1;
        }
    }
    assert!(
        (1..7).contains(&whole),
        "{whole} of 7 blobs arrived before the cut"
    );

    let ran = run_owned(&inputs(&own.address)).await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["v1"], image.digest.as_str());
    assert_eq!(output(&ran, "blobs-present"), whole, "{ran}");
    assert_eq!(output(&ran, "blobs-sent"), 7 - whole, "{ran}");
    assert_same_tree((&from, &source), (&to, &target), "v1").await;
}
