//! What can go wrong mid-copy: a source sending bytes that don't match
//! their digest, and a target that dies halfway through.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::support::own_registry::OwnRegistry;

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

/// A loopback TCP proxy that forwards until `limit` bytes went to the
/// upstream, then drops every connection and every later one: to a client,
/// a registry that died.
struct Dying {
    address: String,
    dead: Arc<AtomicBool>,
}

impl Dying {
    fn start(upstream: &str, limit: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let dead = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (upstream, flag) = (upstream.to_owned(), dead.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                if flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                open.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (sent, flag, open) = (sent.clone(), flag.clone(), open.clone());
                std::thread::spawn(move || {
                    pipe(client, server, |n| {
                        if sent.fetch_add(n, Ordering::SeqCst) + n > limit
                            && !flag.swap(true, Ordering::SeqCst)
                        {
                            for stream in open.lock().unwrap().iter() {
                                let _ = stream.shutdown(Shutdown::Both);
                            }
                        }
                        !flag.load(Ordering::SeqCst)
                    })
                });
                std::thread::spawn(move || pipe(s2, c2, |_| true));
            }
        });
        Dying { address, dead }
    }
}

/// Copies while `go(bytes)` says so.
fn pipe(mut from: TcpStream, mut to: TcpStream, go: impl Fn(u64) -> bool) {
    let mut buf = vec![0; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || !go(n as u64) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[tokio::test]
async fn a_target_that_dies_midway_keeps_only_whole_blobs_and_a_rerun_completes() {
    let s = services();
    let from = open();
    let source = unique("dies-src");
    let layers: Vec<Vec<u8>> = (0..6).map(|i| random_layer(40 + i, 2 << 20)).collect();
    let image = push_image(&from, &source, "v1", "amd64", &layers).await;
    let own = OwnRegistry::start(true);
    let dying = Dying::start(&own.address, 5 << 20);
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
    assert!(
        dying.dead.load(Ordering::SeqCst),
        "the target never died\n{ran}"
    );
    ran.assert_failed("a re-run copies only what is missing");

    let to = Registry::new(&own.address, None).unwrap();
    assert!(
        to.manifest(&target, "v1").await.unwrap().is_none(),
        "a manifest went up without its blobs"
    );
    let value: serde_json::Value = serde_json::from_slice(&image.bytes).unwrap();
    let blobs: Vec<&str> = value["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&value["config"]])
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    let mut whole = 0;
    for digest in &blobs {
        if to.has_blob(&target, digest).await.unwrap() {
            assert_eq!(
                to.blob(&target, digest).await.unwrap(),
                from.blob(&source, digest).await.unwrap(),
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
