//! `publish`'s layer analysis through the binary, on the real engine and
//! registry: the summary's and outputs' figures are dive's on the image
//! pulled back from the registry, the bounds warn on the Dockerfile line
//! to blame, `size-policy: fail` tags nothing, and a second publish shows
//! the growth against `latest`.

use crate::layers::{BUSYBOX, WASTEFUL, dive, docker, efficiency_score};
use crate::publish::{publish, scoped, tags};
use crate::support::git::Repo;
use crate::support::services::services;

const DOCKERFILE: &str = "ops/docker/app/Dockerfile";

/// The image directory with Debian's static busybox and `steps` after
/// [`BUSYBOX`] (whose `COPY` is line 2; `steps` start on line 4).
fn app(steps: &str) -> Repo {
    let repo = Repo::new();
    repo.write(DOCKERFILE, &format!("{BUSYBOX}{steps}"));
    std::fs::copy("/bin/busybox", repo.join("ops/docker/app/busybox"))
        .expect("Debian's busybox-static provides /bin/busybox");
    repo.commit("app");
    repo
}

/// The image `reference` pulled from the registry and saved: dive's report
/// on it, and its score as dive wrote it.
fn dive_on_pushed(reference: &str) -> (serde_json::Value, f64) {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("pushed.tar");
    docker(&["pull", "-q", reference]);
    docker(&["save", "-o", saved.to_str().unwrap(), reference]);
    docker(&["rmi", "--no-prune", reference]);
    let report = dive(&saved, dir.path());
    (report, efficiency_score(dir.path()))
}

/// `publish` of `repo` on main; `RUN` steps need `network: none` (the
/// test engines have no bridge).
fn publish_on_main(repo: &Repo, ns: &str, sha: &str) -> crate::support::run::Action {
    publish(repo, ns, "refs/heads/main", sha).input("network", "none")
}

fn output<'a>(ran: &'a crate::support::run::Ran, name: &str) -> &'a str {
    ran.outputs
        .get(name)
        .unwrap_or_else(|| panic!("no output {name}\n{ran}"))
}

#[tokio::test]
async fn the_figures_are_dives_and_a_second_publish_shows_the_growth_against_latest() {
    let s = services();
    let repo = app(WASTEFUL);
    let ran = publish_on_main(&repo, "l-figures", &repo.head())
        .input("max-image-size", "1MB")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains(&format!(
            "::warning file={DOCKERFILE},line=2,title=image size::{}: the image is 2.3 MiB uncompressed, over `max-image-size` (976.6 KiB); its largest layer (1.9 MiB) comes from `COPY busybox /bin/busybox`",
            output(&ran, "platform")
        )),
        "the largest layer's line\n{ran}"
    );
    let reference = format!(
        "{}/{}:{}",
        s.registry_open,
        scoped("l-figures/app"),
        repo.head()
    );
    let (theirs, score) = tokio::task::spawn_blocking(move || dive_on_pushed(&reference))
        .await
        .unwrap();
    let image = &theirs["image"];
    assert_eq!(
        (
            output(&ran, "size").parse::<u64>().ok(),
            output(&ran, "wasted-bytes").parse::<u64>().ok(),
            output(&ran, "efficiency").parse::<f64>().ok(),
        ),
        (
            image["sizeBytes"].as_u64(),
            image["inefficientBytes"].as_u64(),
            Some(score)
        ),
        "ours, then dive's: {theirs}"
    );
    assert_eq!(output(&ran, "wasted-bytes"), "421000");
    assert!(
        ran.summary.contains("wasted 411.1 KiB (efficiency"),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary.contains(&format!(
            "| 1 | `COPY busybox /bin/busybox` | `{DOCKERFILE}` 2 |"
        )),
        "each layer with its Dockerfile line\n{}",
        ran.summary
    );
    assert!(
        ran.summary.contains("| `/cache` | 2 | 202.1 KiB |"),
        "the largest wasted files\n{}",
        ran.summary
    );
    assert!(!ran.summary.contains("Against `latest`"), "{}", ran.summary);

    // The next commit adds 300 kB in one `RUN` (line 9): the summary shows
    // it against `latest`, and `max-growth` warns on that line.
    repo.write(
        DOCKERFILE,
        &format!(
            "{BUSYBOX}{WASTEFUL}RUN /bin/busybox dd if=/dev/urandom of=/grown bs=1000 count=300\n"
        ),
    );
    let sha = repo.commit("grow");
    let ran = publish_on_main(&repo, "l-figures", &sha)
        .input("max-growth", "100kB")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary.contains("(+293.0 KiB, uncompressed)"),
        "the change against latest\n{}",
        ran.summary
    );
    assert!(
        ran.summary.contains(
            "| `RUN /bin/busybox sh -c /bin/busybox dd if=/dev/urandom of=/grown bs=1000 count=300` | 0 B | 293.0 KiB | +293.0 KiB |"
        ),
        "{}",
        ran.summary
    );
    assert!(
        ran.stdout.contains(&format!(
            "::warning file={DOCKERFILE},line=9,title=image size::"
        )),
        "the growth is annotated on the RUN that made it\n{ran}"
    );
    assert!(
        tags(&s.registry_open, "l-figures/app", None)
            .await
            .contains(&sha),
        "warn publishes"
    );

    // A pull request's build (`push: false`) reads `latest` to compare too.
    repo.write(
        DOCKERFILE,
        &format!("{BUSYBOX}{WASTEFUL}RUN /bin/busybox dd if=/dev/urandom of=/pr bs=1000 count=5\n"),
    );
    let sha = repo.commit("pull request");
    let ran = publish_on_main(&repo, "l-figures", &sha)
        .input("push", "false")
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary.contains("| `RUN /bin/busybox sh -c /bin/busybox dd if=/dev/urandom of=/grown bs=1000 count=300` | 293.0 KiB | 0 B | -293.0 KiB |"),
        "{}",
        ran.summary
    );
    assert_eq!(output(&ran, "pushed"), "false");
}

#[tokio::test]
async fn size_policy_fail_tags_nothing_and_names_the_line_most_to_blame() {
    let s = services();
    let repo = app(WASTEFUL);
    let ran = publish_on_main(&repo, "l-fail", &repo.head())
        .input("min-efficiency", "0.99")
        .input("size-policy", "fail")
        .run_async()
        .await;
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stdout.contains("nothing was tagged"), "{ran}");
    // Most of the waste is counted where `rm -rf /cache` removes 207 kB.
    assert!(
        ran.stdout.contains(&format!(
            "::warning file={DOCKERFILE},line=8,title=image size::"
        )),
        "{ran}"
    );
    assert!(
        ran.stdout.contains("is under `min-efficiency` (0.99)"),
        "{ran}"
    );
    assert_eq!(
        tags(&s.registry_open, "l-fail/app", None).await,
        Default::default(),
        "nothing is tagged"
    );
    assert_eq!(output(&ran, "pushed"), "false");
    assert_eq!(output(&ran, "wasted-bytes"), "421000");
    assert!(
        ran.summary.contains("nothing was tagged"),
        "{}",
        ran.summary
    );
}

#[test]
fn bad_bounds_are_refused_by_input_name_before_building() {
    let repo = app("");
    for (input, value, expected) in [
        (
            "max-image-size",
            "50 parsecs",
            "input `max-image-size`: \"50 parsecs\" is not accepted; \"50 parsecs\" is not a size",
        ),
        (
            "min-efficiency",
            "1.5",
            "input `min-efficiency`: \"1.5\" is not accepted; \"1.5\" would be 150%",
        ),
        (
            "max-growth",
            "lots",
            "input `max-growth`: \"lots\" is not accepted; \"lots\" is neither a size nor a percentage",
        ),
        (
            "size-policy",
            "maybe",
            "input `size-policy`: \"maybe\" is not accepted; use one of: warn, fail",
        ),
    ] {
        let ran = publish_on_main(&repo, "l-bad", &repo.head())
            .input(input, value)
            .run();
        ran.assert_failed(expected);
    }
}

/// File names are the image's: a wasted file named with a table's pipe,
/// backticks, HTML and a line break stays one escaped cell.
#[tokio::test]
async fn wasted_file_names_are_escaped_in_the_summary() {
    let repo = app(
        "RUN /bin/busybox dd if=/dev/zero of='/w|`x`<b>' bs=1000 count=3 && /bin/busybox touch \"$(/bin/busybox printf 'n\\nl')\"
RUN /bin/busybox rm '/w|`x`<b>' \"$(/bin/busybox printf 'n\\nl')\"
",
    );
    let ran = publish_on_main(&repo, "l-names", &repo.head())
        .run_async()
        .await;
    ran.assert_ok();
    assert!(
        ran.summary
            .contains("| <code>/w\\|\\`x\\`&lt;b&gt;</code> | 2 | 2.9 KiB |"),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary.contains("| <code>/n l</code> | 2 | 0 B |"),
        "{}",
        ran.summary
    );
    assert!(!ran.summary.contains("<b>"), "{}", ran.summary);
}

#[tokio::test]
async fn each_platform_has_its_section_and_the_outputs_name_the_largest() {
    // COPY only: no step runs, so no emulation is needed for arm64.
    let repo = Repo::new();
    repo.write(
        DOCKERFILE,
        "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.bin /data\n",
    )
    .write("ops/docker/app/amd64.bin", &"a".repeat(10_000))
    .write("ops/docker/app/arm64.bin", &"b".repeat(30_000));
    let sha = repo.commit("app");
    let ran = publish_on_main(&repo, "l-platforms", &sha)
        .input("platforms", "linux/amd64,linux/arm64")
        .run_async()
        .await;
    ran.assert_ok();
    for (platform, size) in [("linux/amd64", "9.8 KiB"), ("linux/arm64", "29.3 KiB")] {
        let section = ran
            .summary
            .split(&format!("#### Layers of `{platform}`"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {platform}\n{}", ran.summary));
        let section = section.split("#### ").next().unwrap();
        assert!(
            section.contains(&format!("{size} uncompressed; wasted 0 B")),
            "{platform}: {section}"
        );
    }
    // The worst of the two: the largest size, no waste in either.
    assert_eq!(output(&ran, "size"), "30000", "{ran}");
    assert_eq!(output(&ran, "wasted-bytes"), "0", "{ran}");
    assert_eq!(output(&ran, "efficiency"), "1", "{ran}");
}
