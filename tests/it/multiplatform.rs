//! Multi-platform images on the real engine with QEMU: one job building
//! every platform into one index, and the children it lists.

use serde_json::Value;

use crate::buildkit::{config_of, image_files, text};
use crate::publish::{publish, scoped, set, tags};
use crate::support::engine_proxy::EngineProxy;
use crate::support::git::Repo;
use crate::support::run::Action;
use crate::support::services::services;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The amd64 and arm64 busybox the test images run: the machine's own
/// and the one `scripts/qemu` downloads; arm64 runs under QEMU, which
/// `scripts/qemu` registers. Missing either is a failure saying so.
pub fn busyboxes(repo: &Repo, dir: &str) {
    let tools = std::env::var_os("REGISTRY_ACTION_TOOLS").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
        std::path::PathBuf::from,
    );
    let check = std::process::Command::new("scripts/qemu")
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("REGISTRY_ACTION_TOOLS", &tools)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "no arm64 emulation here: {} (run `scripts/qemu` as root, or the tests through `scripts/test`)",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    std::fs::create_dir_all(repo.join(dir)).unwrap();
    std::fs::copy("/bin/busybox", repo.join(&format!("{dir}/busybox-amd64"))).unwrap();
    std::fs::copy(
        tools.join("busybox-arm64"),
        repo.join(&format!("{dir}/busybox-arm64")),
    )
    .unwrap();
}

/// Runs the platform's own busybox (under QEMU for arm64) to record what
/// the build ran on; `nonce` keeps a warm engine cache from answering.
fn uname_dockerfile(nonce: &str) -> String {
    format!(
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${{TARGETARCH}} /bin/busybox\nCOPY shared.txt /shared.txt\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {nonce} >/nonce; /bin/busybox uname -m >/arch\"]\n"
    )
}

/// `repository:reference` as an index-aware client reads it: media type,
/// digest, body.
pub async fn manifest(
    repository: &str,
    reference: &str,
) -> (Option<String>, Option<String>, Value) {
    let url = format!(
        "{}/v2/{}/manifests/{reference}",
        services().open_url(),
        scoped(repository)
    );
    let response = reqwest::Client::new()
        .get(url)
        .header(
            "accept",
            format!("{INDEX}, application/vnd.oci.image.manifest.v1+json"),
        )
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (media_type, digest) = (header("content-type"), header("docker-content-digest"));
    (
        media_type,
        digest,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The index's children as (platform, digest).
pub fn children(index: &Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut platform = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                platform = format!("{platform}/{v}");
            }
            (platform, m["digest"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// arm64 first, then amd64 from the same directory: the order in which
/// the legacy builder's cache hands the second platform the first one's
/// image. Each child must be its own architecture, with its own content.
#[tokio::test]
async fn two_platforms_make_one_index_whose_children_are_each_their_own_architecture() {
    let s = services();
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/app");
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    repo.write("ops/docker/app/Dockerfile", &uname_dockerfile(&nonce))
        .write("ops/docker/app/shared.txt", "same on every platform\n");
    let sha = repo.commit("app");
    let ran = publish(&repo, "t-multi", "refs/heads/main", &sha)
        .input("platforms", "linux/arm64,\nlinux/amd64")
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_ok();

    assert_eq!(
        tags(&s.registry_open, "t-multi/app", None).await,
        set(&[&sha, "latest"])
    );
    let digest = ran.outputs["digest"].clone();
    assert_eq!(
        manifest("t-multi/app", "latest").await.1,
        Some(digest.clone())
    );
    let (media_type, at_sha, index) = manifest("t-multi/app", &sha).await;
    assert_eq!(at_sha, Some(digest.clone()));
    assert_eq!(media_type.as_deref(), Some(INDEX), "{index}");
    assert_eq!(index["mediaType"], INDEX);
    let children = children(&index);
    let platforms: Vec<&str> = children.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms, ["linux/arm64", "linux/amd64"]);
    assert_eq!(ran.outputs["platform"], "linux/arm64,linux/amd64");

    for ((platform, child), uname) in children.iter().zip(["aarch64", "x86_64"]) {
        let arch = platform.rsplit('/').next().unwrap();
        let config = config_of("t-multi/app", child).await;
        assert_eq!(config["architecture"], arch, "{platform}: {config}");
        assert_eq!(config["os"], "linux");
        let files = image_files("t-multi/app", child).await;
        assert_eq!(text(&files, "arch"), format!("{uname}\n"), "{platform}");
        assert_eq!(text(&files, "shared.txt"), "same on every platform\n");
        let busybox = std::fs::read(repo.join(&format!("ops/docker/app/busybox-{arch}"))).unwrap();
        assert_eq!(
            files["bin/busybox"].1, busybox,
            "{platform} carries its own busybox"
        );
    }
    assert!(ran.summary.contains(&digest), "{}", ran.summary);
}

/// On the containerd store, all platforms are one solve of BuildKit's
/// control API (`POST /grpc`): the context goes over our session's file
/// sync, each byte of it at most once, and no `/build` (with its context
/// tar per platform) is sent. The other stores build each platform
/// through `/build`, the whole context tarred each time.
#[tokio::test]
async fn two_platforms_are_one_solve_that_sends_the_context_once() {
    let s = services();
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/app");
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    // 4 MiB no step reads, as a context's bulk often is.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let payload: Vec<u8> = (0..4 << 20)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(repo.join("ops/docker/app/payload.bin"), &payload).unwrap();
    repo.write("ops/docker/app/Dockerfile", &uname_dockerfile(&nonce))
        .write("ops/docker/app/shared.txt", "same on every platform\n");
    let sha = repo.commit("app");
    let context: u64 = std::fs::read_dir(repo.join("ops/docker/app"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    let engine = EngineProxy::start(&s.docker_socket);
    let ran = publish(&repo, "t-solve", "refs/heads/main", &sha)
        .input("platforms", "linux/arm64,linux/amd64")
        .input("network", "none")
        .env("DOCKER_HOST", &engine.docker_host())
        .run_async()
        .await;
    ran.assert_ok();
    let (_, _, index) = manifest("t-solve/app", &sha).await;
    let platforms: Vec<String> = children(&index).into_iter().map(|(p, _)| p).collect();
    assert_eq!(platforms, ["linux/arm64", "linux/amd64"]);

    let requests = engine.requests();
    let count = |wanted: &str| requests.iter().filter(|r| *r == wanted).count();
    // Connections are counted as they close, just after the run.
    let session = "POST /session";
    for _ in 0..50 {
        if engine.bytes_sent_on(session) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (grpc, build) = (count("POST /grpc"), count("POST /build"));
    if s.engine.containerd_store() {
        assert_eq!((grpc, build, count(session)), (1, 0, 1), "{requests:?}");
        let synced = engine.bytes_sent_on(session);
        let busyboxes: u64 = ["amd64", "arm64"]
            .iter()
            .map(|arch| {
                let path = repo.join(&format!("ops/docker/app/busybox-{arch}"));
                std::fs::metadata(path).unwrap().len()
            })
            .sum();
        // Each copied file once for both platforms, and the file no step
        // reads not at all: BuildKit asks only for what COPY names.
        assert!(
            synced >= busyboxes && synced < busyboxes + payload.len() as u64 / 4,
            "{synced} bytes over the session for a context of {context} whose copied files are {busyboxes}"
        );
        assert!(
            ran.summary
                .contains("BuildKit (linux/arm64, linux/amd64): "),
            "{}",
            ran.summary
        );
    } else {
        assert_eq!((grpc, build), (0, 2), "{requests:?}");
        assert!(engine.bytes_sent_on("POST /build") >= 2 * context);
    }
}

/// An engine whose control API can't be reached (a proxy refusing
/// `POST /grpc`) still publishes both platforms: each through `/build`,
/// as before there was a solve. Only the containerd store asks for it.
#[tokio::test]
async fn without_the_control_api_each_platform_goes_through_build() {
    let s = services();
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/app");
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    repo.write("ops/docker/app/Dockerfile", &uname_dockerfile(&nonce))
        .write("ops/docker/app/shared.txt", "same on every platform\n");
    let sha = repo.commit("app");
    let engine = EngineProxy::refusing_control_api(&s.docker_socket);
    let ran = publish(&repo, "t-nogrpc", "refs/heads/main", &sha)
        .input("platforms", "linux/arm64,linux/amd64")
        .input("network", "none")
        .env("DOCKER_HOST", &engine.docker_host())
        .run_async()
        .await;
    ran.assert_ok();
    let (_, _, index) = manifest("t-nogrpc/app", &sha).await;
    let children = children(&index);
    let platforms: Vec<&str> = children.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms, ["linux/arm64", "linux/amd64"]);
    for ((_, child), uname) in children.iter().zip(["aarch64", "x86_64"]) {
        let files = image_files("t-nogrpc/app", child).await;
        assert_eq!(text(&files, "arch"), format!("{uname}\n"));
    }
    let requests = engine.requests();
    let count = |wanted: &str| requests.iter().filter(|r| *r == wanted).count();
    let asked_grpc = usize::from(s.engine.containerd_store());
    assert_eq!(
        (count("POST /grpc"), count("POST /build")),
        (asked_grpc, 2),
        "{requests:?}"
    );
}

#[tokio::test]
async fn several_platforms_refuse_the_legacy_builder_and_a_bad_platform_before_building() {
    let repo = Repo::new();
    repo.write("ops/docker/app/Dockerfile", "FROM scratch\nCOPY f /f\n")
        .write("ops/docker/app/f", "x\n");
    let sha = repo.commit("app");
    // Every run goes to the engine through a counter: a build asks it.
    let engine = EngineProxy::start(&services().docker_socket);
    let counted = |action: Action| action.env("DOCKER_HOST", &engine.docker_host());
    let ran = counted(both(&repo, "t-multi-bad", "refs/heads/main", &sha))
        .input("builder", "legacy")
        .run_async()
        .await;
    ran.assert_failed("`platforms`: linux/amd64, linux/arm64 with `builder: legacy`");
    ran.assert_failed("set `builder: auto`");

    let ran = counted(publish(&repo, "t-multi-bad", "refs/heads/main", &sha))
        .input("platforms", "linux/amd64,arm64")
        .run_async()
        .await;
    ran.assert_failed("`platforms`: \"arm64\" is not a platform; write os/architecture[/variant]");

    let ran = counted(both(&repo, "t-multi-bad", "refs/heads/main", &sha))
        .input("push-by-digest", "true")
        .run_async()
        .await;
    ran.assert_failed("`push-by-digest` pushes one platform's image for `merge`");
    assert_eq!(
        engine.requests(),
        Vec::<String>::new(),
        "the engine was never asked"
    );
    let s = services();
    assert!(
        tags(&s.registry_open, "t-multi-bad/app", None)
            .await
            .is_empty()
    );

    // The count sees a run that does build.
    counted(publish(&repo, "t-multi-bad", "refs/heads/main", &sha))
        .run_async()
        .await
        .assert_ok();
    assert!(!engine.requests().is_empty(), "the proxy notes requests");
}

/// A program of a platform no emulator is registered for (an s390x ELF
/// header: `scripts/qemu` registers arm64 only) fails as a runner without
/// QEMU fails, and the error says what to add.
#[tokio::test]
async fn a_run_without_emulation_names_qemu_and_the_cross_build() {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY --chmod=755 program /program\nRUN [\"/program\"]\n",
    );
    std::fs::write(repo.join("ops/docker/app/program"), s390x_elf()).unwrap();
    let sha = repo.commit("app");
    let ran = publish(&repo, "t-multi-noemu", "refs/heads/main", &sha)
        .input("platforms", "linux/s390x")
        .input("network", "none")
        .run_async()
        .await;
    ran.assert_failed("failed building for linux/s390x: exec format error");
    ran.assert_failed("QEMU is not registered in binfmt_misc");
    ran.assert_failed("docker/setup-qemu-action");
    ran.assert_failed("update-binfmts --enable qemu-s390x");
    ran.assert_failed("FROM --platform=$BUILDPLATFORM");
    let s = services();
    assert!(
        tags(&s.registry_open, "t-multi-noemu/app", None)
            .await
            .is_empty()
    );
}

/// An ELF64 big-endian executable header for s390x (EM_S390 = 22) and
/// nothing else: enough for the kernel to look for its emulator.
fn s390x_elf() -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 2; // big-endian
    elf[6] = 1; // ELF version
    elf[16..18].copy_from_slice(&2u16.to_be_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&22u16.to_be_bytes()); // EM_S390
    elf[20..24].copy_from_slice(&1u32.to_be_bytes());
    elf[52..54].copy_from_slice(&64u16.to_be_bytes()); // header size
    elf
}

/// One job per platform, as a matrix on native runners would run them.
/// `publish` of both platforms in one job.
fn both(repo: &Repo, ns: &str, git_ref: &str, sha: &str) -> Action {
    publish(repo, ns, git_ref, sha).input("platforms", "linux/amd64,linux/arm64")
}

pub fn per_platform_repo() -> (Repo, String) {
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/app");
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n",
    );
    let sha = repo.commit("app");
    (repo, sha)
}

pub fn merge(repo: &Repo, ns: &str, git_ref: &str, sha: &str, digests: &[&str]) -> Action {
    publish(repo, ns, git_ref, sha)
        .input("command", "merge")
        .input("digests", &digests.join("\n"))
}

/// One `push-by-digest` job per platform, as a matrix runs them; each
/// pushes untagged and outputs its platform. Their digests, in order.
pub async fn push_each(
    repo: &Repo,
    ns: &str,
    git_ref: &str,
    sha: &str,
    platforms: &[&str],
) -> Vec<String> {
    let mut pushed = Vec::new();
    for platform in platforms {
        let ran = publish(repo, ns, git_ref, sha)
            .input("platforms", platform)
            .input("push-by-digest", "true")
            .run_async()
            .await;
        ran.assert_ok();
        assert_eq!(ran.outputs["platform"], *platform);
        assert_eq!(ran.outputs["tags"], "");
        assert!(!ran.outputs.contains_key("sha-tag"), "{ran}");
        pushed.push(ran.outputs["digest"].clone());
    }
    pushed
}

#[tokio::test]
async fn jobs_push_by_digest_untagged_then_merge_writes_one_index_with_publish_tags() {
    let s = services();
    let (repo, sha) = per_platform_repo();
    let platforms = ["linux/arm64", "linux/amd64"];
    let pushed = push_each(&repo, "t-merge", "refs/heads/main", &sha, &platforms).await;
    for (platform, digest) in platforms.iter().zip(&pushed) {
        let (_, found, child) = manifest("t-merge/app", digest).await;
        assert_eq!(found.as_deref(), Some(digest.as_str()), "pushed by digest");
        let config = config_of("t-merge/app", digest).await;
        assert_eq!(config["architecture"], platform.rsplit('/').next().unwrap());
        assert!(child["config"].is_object());
    }
    assert!(
        tags(&s.registry_open, "t-merge/app", None).await.is_empty(),
        "untagged"
    );

    let digests: Vec<&str> = pushed.iter().map(String::as_str).collect();
    let ran = merge(&repo, "t-merge", "refs/heads/main", &sha, &digests)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-merge/app", None).await,
        set(&[&sha, "latest"])
    );
    let index_digest = ran.outputs["digest"].clone();
    let (media_type, at_latest, index) = manifest("t-merge/app", "latest").await;
    assert_eq!(media_type.as_deref(), Some(INDEX));
    assert_eq!(at_latest.as_deref(), Some(index_digest.as_str()));
    // Sorted by platform, whatever order the jobs finished in.
    assert_eq!(
        children(&index),
        [
            ("linux/amd64".to_owned(), pushed[1].clone()),
            ("linux/arm64".to_owned(), pushed[0].clone())
        ]
    );
    assert_eq!(ran.outputs["platform"], "linux/amd64,linux/arm64");

    // A re-run, digests in the other order: the same index, nothing moved.
    let ran = merge(
        &repo,
        "t-merge",
        "refs/heads/main",
        &sha,
        &[&pushed[1], &pushed[0]],
    )
    .run_async()
    .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["digest"], index_digest);
    assert!(
        ran.summary.contains("already names this index"),
        "{}",
        ran.summary
    );
    // Another set of digests for the same commit never replaces it.
    merge(&repo, "t-merge", "refs/heads/main", &sha, &[&pushed[0]])
        .run_async()
        .await
        .assert_failed(&format!("already names {index_digest} and this run made"));

    // A re-run of a platform job after the merge builds nothing new: its
    // digest is the merged index's child.
    let ran = publish(&repo, "t-merge", "refs/heads/main", &sha)
        .input("platforms", "linux/arm64")
        .input("push-by-digest", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["digest"], pushed[0]);
    // Without `platforms` (a native runner), the runner's platform: here
    // amd64.
    let ran = publish(&repo, "t-merge", "refs/heads/main", &sha)
        .input("push-by-digest", "true")
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["digest"], pushed[1]);
    assert_eq!(ran.outputs["platform"], "linux/amd64");
    // `rebuild` pushes a new untagged image; the merged tags don't move.
    publish(&repo, "t-merge", "refs/heads/main", &sha)
        .input("platforms", "linux/arm64")
        .input("push-by-digest", "true")
        .input("rebuild", "true")
        .run_async()
        .await
        .assert_ok();
    assert_eq!(
        manifest("t-merge/app", &sha).await.1,
        Some(index_digest.clone())
    );
    assert_eq!(
        manifest("t-merge/app", "latest").await.1,
        Some(index_digest)
    );
}

#[tokio::test]
async fn a_merged_prerelease_gets_only_its_version_tag() {
    let s = services();
    let (repo, sha) = per_platform_repo();
    let platforms = ["linux/amd64", "linux/arm64"];
    let pushed = push_each(
        &repo,
        "t-merge-rc",
        "refs/tags/app-v2.0.0-rc.1",
        &sha,
        &platforms,
    )
    .await;
    let digests: Vec<&str> = pushed.iter().map(String::as_str).collect();
    let ran = merge(
        &repo,
        "t-merge-rc",
        "refs/tags/app-v2.0.0-rc.1",
        &sha,
        &digests,
    )
    .run_async()
    .await;
    ran.assert_ok();
    assert_eq!(
        tags(&s.registry_open, "t-merge-rc/app", None).await,
        set(&[&sha, "2.0.0-rc.1"])
    );
}

#[tokio::test]
async fn merge_refuses_what_is_not_one_platform_image_of_this_repository() {
    let s = services();
    let (repo, sha) = per_platform_repo();
    let ran = merge(&repo, "t-merge-bad", "refs/heads/main", &sha, &["latest"])
        .run_async()
        .await;
    ran.assert_failed("`digests`: \"latest\" is not a digest; give the `digest` output of each `push-by-digest` job");

    let absent = format!("sha256:{}", "ab".repeat(32));
    let ran = merge(&repo, "t-merge-bad", "refs/heads/main", &sha, &[&absent])
        .run_async()
        .await;
    ran.assert_failed(&format!("`digests`: {absent} is not in"));

    // An index (a one-job multi-platform publish) is not one platform.
    let ran = both(&repo, "t-merge-bad", "refs/heads/feature", &sha)
        .run_async()
        .await;
    ran.assert_ok();
    let index = ran.outputs["digest"].clone();
    let ran = merge(&repo, "t-merge-bad", "refs/heads/main", &sha, &[&index])
        .run_async()
        .await;
    ran.assert_failed("is a multi-platform index, not one platform's image");
    assert_eq!(
        tags(&s.registry_open, "t-merge-bad/app", None).await,
        set(&[&sha]),
        "nothing but the one-job publish's SHA tag"
    );
}

/// A monorepo image `FROM` a sibling that is itself an index: each
/// platform's build starts from the sibling's child of that platform.
#[tokio::test]
async fn an_image_from_a_multi_platform_sibling_builds_on_each_platforms_child() {
    let s = services();
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/base");
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let base = format!("{}/{}", s.registry_open, scoped("t-multi-from/base"));
    repo.write("ops/docker/base/Dockerfile", &uname_dockerfile(&nonce))
        .write("ops/docker/base/shared.txt", "base\n")
        .write(
            "ops/docker/app/Dockerfile",
            &format!("FROM {base}:latest\nCOPY note /note\n"),
        )
        .write("ops/docker/app/note", "app on base\n");
    let sha = repo.commit("base and app");
    for path in ["ops/docker/base", "ops/docker/app"] {
        publish(&repo, "t-multi-from", "refs/heads/main", &sha)
            .input("path", path)
            .input("platforms", "linux/amd64,linux/arm64")
            .input("network", "none")
            .run_async()
            .await
            .assert_ok();
    }
    let (_, _, index) = manifest("t-multi-from/app", "latest").await;
    let children = children(&index);
    assert_eq!(children.len(), 2, "{index}");
    for ((platform, child), uname) in children.iter().zip(["x86_64", "aarch64"]) {
        let files = image_files("t-multi-from/app", child).await;
        assert_eq!(text(&files, "arch"), format!("{uname}\n"), "{platform}");
        assert_eq!(text(&files, "note"), "app on base\n");
        let config = config_of("t-multi-from/app", child).await;
        assert_eq!(config["architecture"], platform.rsplit('/').next().unwrap());
    }
}

/// Each platform's export is scanned; the verdict grades the union (a
/// package both carry counts once) and the summary has a row each.
#[tokio::test]
async fn the_gate_scans_every_platform_and_grades_the_union() {
    use crate::support::trivy::{alpine_rootfs, trivy};
    let s = services();
    let repo = Repo::new();
    alpine_rootfs(&repo, "ops/docker/app/amd64", &[("libcrypto3", "3.1.4-r0")]);
    alpine_rootfs(
        &repo,
        "ops/docker/app/arm64",
        &[("libcrypto3", "3.1.4-r0"), ("zlib", "1.3.1-r0")],
    );
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}/rootfs/ /\n",
    );
    let sha = repo.commit("app");
    let ran = trivy()
        .around(
            publish(&repo, "t-multi-scan", "refs/heads/main", &sha)
                .input("scanner", "trivy")
                .input("platforms", "linux/amd64,linux/arm64"),
        )
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(ran.outputs["scan-result"], "warn");
    assert_eq!(
        (ran.outputs["high"].as_str(), ran.outputs["medium"].as_str()),
        ("1", "1"),
        "libcrypto3 once, zlib from arm64"
    );
    for row in [
        "| `linux/amd64` | 0 | 1 | 0 | 0 | 0 |",
        "| `linux/arm64` | 0 | 1 | 1 | 0 | 0 |",
    ] {
        assert!(ran.summary.contains(row), "{row}\n{}", ran.summary);
    }
    assert_eq!(
        tags(&s.registry_open, "t-multi-scan/app", None).await,
        set(&[&sha, "latest"])
    );

    // `scan image=` of the index scans the runner's platform: the amd64
    // child, which has no zlib.
    let reference = format!("{}/{}:latest", s.registry_open, scoped("t-multi-scan/app"));
    let ran = trivy()
        .around(Action::github(repo.path()))
        .env("DOCKER_HOST", &s.docker_host)
        .input("command", "scan")
        .input("image", &reference)
        .run_async()
        .await;
    ran.assert_ok();
    assert_eq!(
        (ran.outputs["high"].as_str(), ran.outputs["medium"].as_str()),
        ("1", "0"),
        "{ran}"
    );
}

/// Two commits' indexes; `cleanup` keeping one deletes the older index and
/// its untagged children, and leaves the kept index whole.
#[tokio::test]
async fn cleanup_deletes_an_old_index_with_its_children_and_keeps_the_new_one_whole() {
    use registry_action::registry::Registry;
    let s = services();
    let (repo, first) = per_platform_repo();
    let mut indexes = Vec::new();
    for sha in [first.clone(), String::new()] {
        let sha = if sha.is_empty() {
            repo.write(
                "ops/docker/app/Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/sh\n",
            );
            repo.commit("second")
        } else {
            sha
        };
        let ran = both(&repo, "t-multi-clean", "refs/heads/main", &sha)
            .run_async()
            .await;
        ran.assert_ok();
        let (_, _, index) = manifest("t-multi-clean/app", &sha).await;
        indexes.push((sha, ran.outputs["digest"].clone(), children(&index)));
    }
    let workspace = tempfile::tempdir().unwrap();
    let cleaned = Action::github(workspace.path())
        .input("command", "cleanup")
        .input("registry", &s.registry_open)
        .input("namespace", &crate::publish::unique("t-multi-clean"))
        .input("images", "app")
        .input("keep", "1")
        .run_async()
        .await;
    cleaned.assert_ok();

    assert_eq!(
        tags(&s.registry_open, "t-multi-clean/app", None).await,
        set(&[&indexes[1].0, "latest"])
    );
    let registry = Registry::new(&s.registry_open, None).unwrap();
    let repository = scoped("t-multi-clean/app");
    let present = |digest: String| {
        let (registry, repository) = (&registry, &repository);
        async move {
            registry
                .manifest(repository, &digest)
                .await
                .unwrap()
                .is_some()
        }
    };
    let (_, old, old_children) = &indexes[0];
    assert!(!present(old.clone()).await, "the old index is deleted");
    for (platform, child) in old_children {
        assert!(!present(child.clone()).await, "its {platform} child too");
    }
    let (_, new, new_children) = &indexes[1];
    assert!(present(new.clone()).await);
    for (platform, child) in new_children {
        assert!(
            present(child.clone()).await,
            "the kept index's {platform} child stays"
        );
    }
}

/// `mirror-to` copies the index and every child, digests unchanged.
#[tokio::test]
async fn a_multi_platform_release_reaches_its_mirror_whole() {
    let s = services();
    let (repo, sha) = per_platform_repo();
    let ran = both(&repo, "t-multi-mirror", "refs/heads/main", &sha)
        .input("mirror-to", &s.registry_basic)
        .input("mirror-username", &s.basic_user)
        .input("mirror-password", &s.basic_password)
        .input("mirror-required", "true")
        .run_async()
        .await;
    ran.assert_ok();
    let (_, _, index) = manifest("t-multi-mirror/app", &sha).await;
    let mirror = crate::mirror::basic();
    let repository = scoped("t-multi-mirror/app");
    for tag in [sha.as_str(), "latest"] {
        let copied = mirror.manifest(&repository, tag).await.unwrap().unwrap();
        assert_eq!(copied.digest, ran.outputs["digest"], "{tag}");
    }
    for (platform, child) in children(&index) {
        let copied = mirror.manifest(&repository, &child).await.unwrap();
        assert!(
            copied.is_some(),
            "{platform} child {child} is on the mirror"
        );
    }
}

/// `usage` of a multi-platform image counts the layer both platforms
/// share once, with the index and both children.
#[tokio::test]
async fn usage_counts_a_layer_the_platforms_share_once() {
    let s = services();
    let repo = Repo::new();
    busyboxes(&repo, "ops/docker/app");
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY shared.txt /shared.txt\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n",
    )
    .write("ops/docker/app/shared.txt", &"shared by both platforms\n".repeat(4096));
    let sha = repo.commit("app");
    both(&repo, "t-multi-usage", "refs/heads/main", &sha)
        .run_async()
        .await
        .assert_ok();

    let (_, _, index) = manifest("t-multi-usage/app", &sha).await;
    let index_size = raw_manifest("t-multi-usage/app", &sha).await.len() as u64;
    let mut stored = 0;
    let mut blobs = std::collections::BTreeMap::new();
    let mut listed = 0;
    for (_, child) in children(&index) {
        let (_, _, image) = manifest("t-multi-usage/app", &child).await;
        let layers = image["layers"].as_array().unwrap();
        for blob in layers.iter().chain([&image["config"]]) {
            let size = blob["size"].as_u64().unwrap();
            listed += size;
            blobs.insert(blob["digest"].as_str().unwrap().to_owned(), size);
        }
        stored += index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == child.as_str())
            .unwrap()["size"]
            .as_u64()
            .unwrap();
    }
    let unique: u64 = blobs.values().sum();
    assert!(
        unique < listed,
        "the shared.txt layer is one blob in both children"
    );

    let workspace = tempfile::tempdir().unwrap();
    let ran = Action::github(workspace.path())
        .input("command", "usage")
        .input("registry", &s.registry_open)
        .input("images", &scoped("t-multi-usage/app"))
        .input("report-file", "usage.json")
        .run_async()
        .await;
    ran.assert_ok();
    let report: Value = serde_json::from_str(&ran.outputs["report"]).unwrap();
    assert_eq!(
        report["repositories"][0]["bytes"].as_u64(),
        Some(index_size + stored + unique),
        "the index, its two children, each blob once"
    );
}

async fn raw_manifest(repository: &str, reference: &str) -> Vec<u8> {
    let url = format!(
        "{}/v2/{}/manifests/{reference}",
        services().open_url(),
        scoped(repository)
    );
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", INDEX)
        .send()
        .await
        .unwrap();
    response.bytes().await.unwrap().to_vec()
}
