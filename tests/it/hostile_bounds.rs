//! What a registry sends is bounded in size and time, held by the real
//! binary against a hostile one (support::hostile): a manifest that never
//! ends or declares 200 MB, a 200 MB tag list, a config far past its
//! descriptor, 64 tags of 30 MiB configs, a manifest at a byte a second, a
//! blob that stops midway, a server that stops reading an upload or never
//! answers one it took, a server that never answers.
//! Every run fails (exit 1) with an error naming the URL and the limit or
//! `request-timeout`, within its timeout and a few seconds, its own peak
//! memory under 256 MiB.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use registry_action::layout::Layout;
use registry_action::registry::stream::verified;
use registry_action::registry::{Manifest, sha256_digest};

use crate::support::hostile::{self, Hostile, Measured, Misbehaviour, REPOSITORY, run_measured};
use crate::support::run::Action;
use crate::support::services::services;

/// The most a run may hold at its peak: a body that never ends costs its
/// limit, not the machine.
const MAX_RSS_KIB: u64 = 256 << 10;
/// How far past its bound a run may go: starting up, reporting, exiting.
const GRACE: Duration = Duration::from_secs(5);
/// A bound for the runs that aren't about time: any hang fails them too.
const TIMEOUT: &str = "10s";
/// Bytes a refused body may still have cost the server: the kernel's
/// socket buffers, filled before the client hung up.
const MAX_SENT: u64 = 64 << 20;

fn seconds(timeout: &str) -> Duration {
    Duration::from_secs(timeout.trim_end_matches('s').parse().unwrap())
}

fn command(workspace: &Path, command: &str, registry: &str, timeout: &str) -> Action {
    let action = Action::github(workspace)
        .input("command", command)
        .input("request-timeout", timeout);
    match command {
        "mirror" => {
            let target = format!(
                "{}/hostile-{}/app",
                services().registry_open,
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            action
                .input("from", &format!("{registry}/{REPOSITORY}"))
                .input("to", &target)
        }
        "restore" => {
            write_layout(&workspace.join("backup"));
            action
                .input("archive", "backup")
                .input("to", &format!("{registry}/{REPOSITORY}"))
        }
        "cleanup" => action
            .input("registry", registry)
            .input("images", REPOSITORY)
            .input("dry-run", "true"),
        "monitor" => action
            .input("registry", registry)
            .input("images", REPOSITORY)
            .input("scanner", "none")
            .input("report-file", "report.json"),
        _ => action
            .input("registry", registry)
            .input("images", REPOSITORY),
    }
}

/// `command` against a fresh server misbehaving as asked, measured and
/// checked: exit 1, `needle` in the log, within `bound`, memory bounded.
/// The server's count of bytes sent comes back with the run.
fn run(
    misbehaviour: Misbehaviour,
    name: &str,
    timeout: &str,
    bound: Duration,
    needle: impl Fn(&Hostile) -> String,
) -> (Measured, u64) {
    let (measured, server) = run_bounded(misbehaviour, name, timeout, bound, |a| a);
    let ran = &measured.ran;
    let needle = needle(&server);
    assert!(
        ran.stdout.contains(&needle) || ran.stderr.contains(&needle),
        "{name}: expected {needle:?} in the log\n{ran}"
    );
    let sent = server.sent();
    (measured, sent)
}

/// `command`, changed by `adjust`, against a fresh server misbehaving as
/// asked: it fails (exit 1) within `bound` and under [`MAX_RSS_KIB`]. The
/// server comes back for what it saw.
fn run_bounded(
    misbehaviour: Misbehaviour,
    name: &str,
    timeout: &str,
    bound: Duration,
    adjust: impl FnOnce(Action) -> Action,
) -> (Measured, Hostile) {
    let server = Hostile::start(misbehaviour);
    let workspace = tempfile::tempdir().unwrap();
    let action = adjust(command(workspace.path(), name, &server.address, timeout));
    let measured = run_measured(&action, bound + Duration::from_secs(60));
    let ran = &measured.ran;
    eprintln!(
        "{misbehaviour:?} × {name} (request-timeout {timeout}): exit {}, {:.1} s, max RSS {:.1} MiB, {:.1} MiB sent by the server",
        ran.code,
        measured.elapsed.as_secs_f64(),
        measured.max_rss_kib as f64 / 1024.0,
        server.sent() as f64 / f64::from(1 << 20)
    );
    assert_eq!(ran.code, 1, "{name} should fail\n{ran}");
    assert!(
        measured.elapsed <= bound,
        "{name} ran {:?}, past its bound of {bound:?}\n{ran}",
        measured.elapsed
    );
    assert!(
        measured.max_rss_kib < MAX_RSS_KIB,
        "{name} peaked at {} KiB\n{ran}",
        measured.max_rss_kib
    );
    (measured, server)
}

/// The size of the layer [`write_layout`] writes: more than loopback's
/// socket buffers take, so that a server that stops reading stalls it.
const BIG_LAYER: usize = 24 << 20;

/// An OCI layout at `root` holding `1.0`: a small config and a
/// [`BIG_LAYER`] layer.
fn write_layout(root: &Path) {
    let layout = Layout::create(root).unwrap();
    let config = hostile::config();
    let layer: Vec<u8> = (0..BIG_LAYER).map(|i| (i % 251) as u8).collect();
    let blobs = [(config, "config"), (layer, "layer")].map(|(bytes, what)| {
        let (digest, size) = (sha256_digest(&bytes), bytes.len() as u64);
        let chunks = futures_util::stream::iter([Ok(Bytes::from(bytes))]);
        let stream = verified(chunks, &digest, size, "test", what.to_owned());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        assert_eq!(
            runtime
                .block_on(layout.write_blob(&digest, stream))
                .unwrap(),
            size
        );
        (digest, size)
    });
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blobs[0].0, "size": blobs[0].1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blobs[1].0, "size": blobs[1].1}],
    }))
    .unwrap();
    let manifest = Manifest {
        digest: sha256_digest(&body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: body,
    };
    layout.put_manifest("1.0", &manifest).unwrap();
    layout.save_index().unwrap();
}

fn manifest_too_large(server: &Hostile) -> String {
    format!(
        "{} sent more than 4.0 MiB, the limit for a manifest; refusing to read further",
        server.url("manifests/latest")
    )
}

#[test]
fn an_endless_manifest_is_cut_at_its_limit_by_usage_mirror_and_monitor() {
    let bound = seconds(TIMEOUT) + GRACE;
    for name in ["usage", "mirror", "monitor"] {
        let (_, sent) = run(
            Misbehaviour::EndlessManifest,
            name,
            TIMEOUT,
            bound,
            manifest_too_large,
        );
        assert!(
            sent < hostile::MAX_BODY,
            "{name} read the body to the server's end"
        );
    }
}

/// Each of `commands`, against `misbehaviour`, fails saying `needle`
/// within the timeout, having let the server send less than [`MAX_SENT`].
fn assert_cut_short(
    misbehaviour: Misbehaviour,
    commands: &[&str],
    needle: impl Fn(&Hostile) -> String,
) {
    let bound = seconds(TIMEOUT) + GRACE;
    for name in commands {
        let (_, sent) = run(misbehaviour, name, TIMEOUT, bound, &needle);
        assert!(sent < MAX_SENT, "{name} let the server send {sent} bytes");
    }
}

#[test]
fn a_manifest_declaring_200_mb_is_refused_unread() {
    assert_cut_short(
        Misbehaviour::HugeManifest,
        &["usage", "monitor"],
        manifest_too_large,
    );
}

#[test]
fn a_200_mb_tag_list_is_cut_at_its_page_limit_by_usage_and_cleanup() {
    assert_cut_short(Misbehaviour::HugeTagList, &["usage", "cleanup"], |server| {
        format!(
            "{} sent more than 4.0 MiB, the limit for a page of a tag list",
            server.url("tags/list")
        )
    });
}

#[test]
fn a_config_far_bigger_than_its_descriptor_is_cut_at_the_declared_size() {
    let config = hostile::config();
    let (size, digest) = (config.len(), sha256_digest(&config));
    assert_cut_short(
        Misbehaviour::OversizedConfig,
        &["monitor", "usage"],
        |server| {
            format!(
                "{} sent more than {size} bytes for blob {digest} of {REPOSITORY}, not the {size} bytes its descriptor declares; refusing it",
                server.address
            )
        },
    );
}

/// [`hostile::FAN_OUT`] configs of 30 MiB, read `concurrency` (64) at a
/// time, would be 1.9 GiB at once (the server holds each one's last byte
/// until all are that far): the configs in flight are bounded by their
/// declared sizes. The first config read whole fails (its digest is not
/// the one declared). Without the bound this run peaked at 690 MiB.
#[test]
fn many_large_configs_are_not_all_held_at_once() {
    let bound = seconds(TIMEOUT) + GRACE;
    let (measured, _server) = run_bounded(Misbehaviour::FanOut, "usage", TIMEOUT, bound, |a| {
        a.input("concurrency", "64")
    });
    let ran = &measured.ran;
    let declared: Vec<String> = (0..hostile::FAN_OUT)
        .map(|i| hostile::fan_out_tag(i).1)
        .collect();
    let log = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        log.contains("whose digest is")
            && declared
                .iter()
                .any(|d| log.contains(&format!("not {d}; refusing it"))),
        "expected a config's digest mismatch in the log\n{ran}"
    );
}

#[test]
fn a_manifest_sent_a_byte_a_second_fails_at_request_timeout() {
    let late = |timeout: &'static str| {
        move |server: &Hostile| {
            format!(
                "{} didn't answer in full within {timeout} for {} (`request-timeout`)",
                server.address,
                server.url("manifests/latest")
            )
        }
    };
    // One trickled request: the manifest.
    run(
        Misbehaviour::TrickledManifest,
        "usage",
        "3s",
        seconds("3s") + GRACE,
        late("3s"),
    );
    // Two: the pull's manifest, then the storage check's.
    run(
        Misbehaviour::TrickledManifest,
        "monitor",
        "5s",
        2 * seconds("5s") + GRACE,
        late("5s"),
    );
}

#[test]
fn a_blob_that_stops_midway_fails_after_request_timeout_without_a_byte() {
    let config = hostile::config();
    let stalled = |server: &Hostile| {
        format!(
            "{} moved no byte for 3s for {} (`request-timeout`)",
            server.address,
            server.url(&format!("blobs/{}", sha256_digest(&config)))
        )
    };
    // The storage check reads the config.
    run(
        Misbehaviour::StalledConfig,
        "usage",
        "3s",
        seconds("3s") + GRACE,
        stalled,
    );
    // The pull streams it, then the storage check reads it.
    run(
        Misbehaviour::StalledConfig,
        "monitor",
        "3s",
        2 * seconds("3s") + GRACE,
        stalled,
    );
}

/// Without a bound on stalls the upload would wait out its whole
/// transfer time: `request-timeout` and a second per 32 KiB, here 771 s.
#[test]
fn an_upload_the_registry_stops_reading_fails_after_request_timeout_without_progress() {
    run(
        Misbehaviour::StalledUpload,
        "restore",
        "3s",
        seconds("3s") + GRACE,
        |server| {
            format!(
                "{} moved no byte for 3s for {} (`request-timeout`)",
                server.address,
                server.url("blobs/uploads/")
            )
        },
    );
}

/// Once the last byte is taken, the wait is for the answer, not a stall:
/// it has to come within `request-timeout` too, and is named as such.
#[test]
fn an_upload_taken_whole_but_never_answered_fails_after_request_timeout() {
    let (measured, _) = run(
        Misbehaviour::UnansweredUpload,
        "restore",
        "3s",
        seconds("3s") + GRACE,
        |server| {
            format!(
                "{} didn't answer in full within 3s for {} (`request-timeout`)",
                server.address,
                server.url("blobs/uploads/")
            )
        },
    );
    let ran = &measured.ran;
    assert!(
        !ran.stderr.contains("moved no byte") && !ran.stdout.contains("moved no byte"),
        "the body was taken whole: no stall\n{ran}"
    );
}

#[test]
fn a_registry_that_never_answers_fails_at_request_timeout() {
    for name in ["usage", "mirror", "cleanup"] {
        run(
            Misbehaviour::Silent,
            name,
            "3s",
            seconds("3s") + GRACE,
            |server| {
                format!(
                    "{} didn't answer in full within 3s for {} (`request-timeout`)",
                    server.address,
                    server.url("tags/list")
                )
            },
        );
    }
}
