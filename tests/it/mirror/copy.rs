//! Copies between the three registries, through the binary.

use super::*;
use crate::support::proxy::{Fault, Proxy};

/// An index of two platforms sharing a base layer, and a plain image.
async fn seed(registry: &Registry, repository: &str) -> (Manifest, Manifest) {
    let base = random_layer(1, 300_000);
    let amd64 = push_image(
        registry,
        repository,
        "1.0-amd64",
        "amd64",
        &[base.clone(), random_layer(2, 200_000)],
    )
    .await;
    let arm64 = push_image(
        registry,
        repository,
        "1.0-arm64",
        "arm64",
        &[base, random_layer(3, 100_000)],
    )
    .await;
    let index = push_index(
        registry,
        repository,
        "1.0",
        &[(&amd64, "amd64"), (&arm64, "arm64")],
    )
    .await;
    let plain = push_image(
        registry,
        repository,
        "tool",
        "amd64",
        &[random_layer(4, 50_000)],
    )
    .await;
    (index, plain)
}

#[tokio::test]
async fn an_index_and_its_children_arrive_byte_for_byte_then_only_what_is_new() {
    let s = services();
    let (from, to) = (open(), basic());
    let (source, target) = (unique("src"), unique("dst"));
    let (index, plain) = seed(&from, &source).await;
    let from_ref = format!("{}/{source}", s.registry_open);
    let to_ref = format!("{}/{target}", s.registry_basic);
    let login = [
        ("command", "mirror"),
        ("from", from_ref.as_str()),
        ("to", to_ref.as_str()),
        ("username", s.basic_user.as_str()),
        ("password", s.basic_password.as_str()),
    ];

    let ran = run(&[&login[..], &[("tags", "1.0\ntool")]].concat()).await;
    ran.assert_ok();
    let first = copied(&ran);
    assert_eq!(first["1.0"], index.digest.as_str());
    assert_eq!(first["tool"], plain.digest.as_str());
    assert_same_tree((&from, &source), (&to, &target), "1.0").await;
    assert_same_tree((&from, &source), (&to, &target), "tool").await;
    // 4 layers (the base once) + 2 configs (`tool` shares amd64's); the
    // child tags were not asked for.
    assert_eq!(output(&ran, "blobs-sent"), 6, "{ran}");
    assert_eq!(output(&ran, "blobs-mounted"), 0);
    assert!(to.manifest(&target, "1.0-amd64").await.unwrap().is_none());
    assert!(
        ran.summary.contains("| `1.0` |") && ran.summary.contains("copied"),
        "{ran}"
    );
    ran.assert_secret_masked_only(&s.basic_password);

    // A new tag sharing the base layer: the re-run copies it and nothing else.
    let newer = push_image(
        &from,
        &source,
        "2.0",
        "amd64",
        &[random_layer(1, 300_000), random_layer(5, 10_000)],
    )
    .await;
    let ran = run(&[&login[..], &[("tags", "1.0\n2.*")]].concat()).await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["2.0"], newer.digest.as_str());
    assert_eq!(output(&ran, "blobs-sent"), 1, "the new layer\n{ran}");
    assert_eq!(
        output(&ran, "blobs-present"),
        2,
        "the base and the config\n{ran}"
    );
    assert!(ran.summary.contains("up to date"), "{ran}");
    assert_same_tree((&from, &source), (&to, &target), "2.0").await;

    // Everything: the child tags too, all blobs already there.
    let ran = run(&login).await;
    ran.assert_ok();
    let all: Vec<String> = copied(&ran).keys().cloned().collect();
    assert_eq!(all, ["1.0", "1.0-amd64", "1.0-arm64", "2.0", "tool"]);
    assert_eq!(output(&ran, "bytes-sent"), 0, "{ran}");
    assert_eq!(
        to.tags(&target).await.unwrap(),
        from.tags(&source).await.unwrap()
    );
}

#[tokio::test]
async fn within_one_registry_blobs_are_mounted_not_sent() {
    let s = services();
    let registry = open();
    let (source, target) = (unique("mount-src"), unique("mount-dst"));
    let (index, _) = seed(&registry, &source).await;
    let ran = run(&[
        ("command", "mirror"),
        ("from", &format!("{}/{source}:1.0", s.registry_open)),
        ("to", &format!("{}/{target}", s.registry_open)),
    ])
    .await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["1.0"], index.digest.as_str());
    assert_eq!(output(&ran, "blobs-mounted"), 5, "{ran}");
    assert_eq!(output(&ran, "bytes-sent"), 0, "{ran}");
    assert_same_tree((&registry, &source), (&registry, &target), "1.0").await;
}

#[tokio::test]
async fn each_manifest_is_read_once_from_the_source_its_signature_found_too() {
    let s = services();
    let registry = open();
    let (source, target) = (unique("once-src"), unique("once-dst"));
    let (index, _) = seed(&registry, &source).await;
    // A signature tag in the source: choosing the tags reads `1.0` to
    // find it, and the copy must not read `1.0` again.
    let signed = format!("{}.sig", index.digest.replacen(':', "-", 1));
    let signature = push_image(&registry, &source, &signed, "amd64", &[random_layer(6, 99)]).await;
    let counted = Proxy::start(&s.registry_open, Fault::None);
    let ran = run_owned(&[
        ("command", "mirror".into()),
        ("from", format!("{}/{source}", counted.address)),
        ("to", format!("{}/{target}", s.registry_open)),
        ("tags", "1.0".into()),
    ])
    .await;
    ran.assert_ok();
    let copied = copied(&ran);
    assert_eq!(copied["1.0"], index.digest.as_str());
    assert_eq!(copied[&signed], signature.digest.as_str(), "{ran}");
    assert_same_tree((&registry, &source), (&registry, &target), "1.0").await;
    let reads: Vec<String> = counted
        .requests()
        .into_iter()
        .filter(|r| r.starts_with(&format!("GET /v2/{source}/manifests/")))
        .collect();
    let mut distinct = reads.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), reads.len(), "one read each: {reads:#?}");
    // `1.0`, its two platform images, the signature.
    assert_eq!(reads.len(), 4, "{reads:#?}");
    assert!(
        reads.contains(&format!("GET /v2/{source}/manifests/1.0")),
        "{reads:#?}"
    );
}

#[tokio::test]
async fn a_dry_run_to_a_token_registry_writes_nothing_then_the_copy_does() {
    let s = services();
    let (from, to) = (open(), token());
    let (source, target) = (unique("dry-src"), unique("dry-dst"));
    let image = push_image(&from, &source, "v1", "amd64", &[random_layer(9, 64_000)]).await;
    let inputs = [
        ("command", "mirror"),
        ("from", &*format!("{}/{source}", s.registry_open)),
        ("to", &*format!("{}/{target}", s.registry_token)),
        ("username", s.token_user.as_str()),
        ("password", s.token_password.as_str()),
    ];
    let ran = run(&[&inputs[..], &[("dry-run", "true")]].concat()).await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["v1"], image.digest.as_str());
    assert_eq!(
        output(&ran, "blobs-sent"),
        2,
        "would send layer and config\n{ran}"
    );
    assert!(
        ran.summary.contains("(dry run)") && ran.summary.contains("would copy"),
        "{ran}"
    );
    assert!(
        to.manifest(&target, "v1").await.unwrap().is_none(),
        "a dry run wrote a manifest"
    );
    assert!(
        !to.has_blob(&target, &image_layer(&image)).await.unwrap(),
        "a dry run wrote a blob"
    );

    run(&inputs).await.assert_ok();
    assert_same_tree((&from, &source), (&to, &target), "v1").await;
}

fn image_layer(manifest: &Manifest) -> String {
    let value: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    value["layers"][0]["digest"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refused_credentials_on_either_side_fail_before_anything_is_written() {
    let s = services();
    let source = unique("auth-src");
    push_image(&open(), &source, "v1", "amd64", &[random_layer(11, 1000)]).await;
    let target = unique("auth-dst");
    let basic_proxy = Proxy::start(&s.registry_basic, Fault::None);
    let open_proxy = Proxy::start(&s.registry_open, Fault::None);

    let ran = run(&[
        ("command", "mirror"),
        ("from", &format!("{}/{source}", s.registry_open)),
        ("to", &format!("{}/{target}", basic_proxy.address)),
        ("username", &s.basic_user),
        ("password", "not-the-password"),
    ])
    .await;
    ran.assert_failed("refused the credentials");
    ran.assert_secret_masked_only("not-the-password");
    assert!(basic().manifest(&target, "v1").await.unwrap().is_none());
    assert_eq!(basic_proxy.writes(), Vec::<String>::new());
    assert!(
        !basic_proxy.requests().is_empty(),
        "the proxy sees the login"
    );

    // The token registry as the source, with a wrong password for its issuer.
    let ran = run(&[
        ("command", "mirror"),
        ("from", &format!("{}/{source}", s.registry_token)),
        ("from-username", &s.token_user),
        ("from-password", "wrong-token-password"),
        ("to", &format!("{}/{target}", open_proxy.address)),
        ("tags", "v1"),
    ])
    .await;
    ran.assert_failed("refused the credentials");
    ran.assert_secret_masked_only("wrong-token-password");
    assert!(open().manifest(&target, "v1").await.unwrap().is_none());
    assert_eq!(open_proxy.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_token_registry_mounts_with_a_token_naming_both_repositories() {
    let s = services();
    let registry = token();
    let (source, target) = (unique("token-mount-src"), unique("token-mount-dst"));
    let image = push_image(
        &registry,
        &source,
        "v1",
        "amd64",
        &[random_layer(51, 30_000)],
    )
    .await;
    let ran = run(&[
        ("command", "mirror"),
        ("from", &format!("{}/{source}", s.registry_token)),
        ("from-username", &s.token_user),
        ("from-password", &s.token_password),
        ("to", &format!("{}/{target}", s.registry_token)),
        ("username", &s.token_user),
        ("password", &s.token_password),
    ])
    .await;
    ran.assert_ok();
    assert_eq!(copied(&ran)["v1"], image.digest.as_str());
    // One token with push on the target and pull on the source: layer and
    // config are linked, not sent.
    assert_eq!(output(&ran, "blobs-mounted"), 2, "{ran}");
    assert_eq!(output(&ran, "blobs-sent"), 0, "{ran}");
    assert_same_tree((&registry, &source), (&registry, &target), "v1").await;
}

#[tokio::test]
async fn upper_case_repository_names_are_refused_before_anything_is_read() {
    let counted = Proxy::start(&services().registry_open, Fault::DieAfter(u64::MAX));
    let registry = &counted.address;
    for (command, inputs, input) in [
        ("mirror", [("from", "Team/App"), ("to", "team/app")], "from"),
        ("mirror", [("from", "team/app"), ("to", "UPPER/x")], "to"),
        (
            "backup",
            [("from", "UPPER/x"), ("archive", "b.tar")],
            "from",
        ),
        ("restore", [("archive", "b.tar"), ("to", "UPPER/x")], "to"),
    ] {
        let mut owned: Vec<(&str, String)> = vec![("command", command.into())];
        for (name, value) in inputs {
            let value = match name {
                "from" | "to" => format!("{registry}/{value}"),
                _ => value.into(),
            };
            owned.push((name, value));
        }
        let ran = run_owned(&owned).await;
        ran.assert_failed(&format!("`{input}`: \"{registry}/"));
        ran.assert_failed("has upper-case letters, and OCI repository names are lower-case; write");
    }
    assert_eq!(counted.connections(), 0, "no request reached the registry");

    // The count sees a copy that does read the registry.
    let source = unique("upper-control");
    push_image(&open(), &source, "v1", "amd64", &[random_layer(61, 1000)]).await;
    run_owned(&[
        ("command", "mirror".into()),
        ("from", format!("{registry}/{source}")),
        ("to", format!("{registry}/{}", unique("upper-control-dst"))),
    ])
    .await
    .assert_ok();
    assert!(counted.connections() > 0, "the proxy counts connections");
}
