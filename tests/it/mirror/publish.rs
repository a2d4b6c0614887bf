//! `publish` with `mirror-to`: the release lands on further registries
//! under the same digest; a failing mirror is reported, and fails the job
//! only when `mirror-required`.

use super::*;
use crate::publish::{publish, scoped};
use crate::support::git::Repo;

fn image_repo() -> Repo {
    let repo = Repo::new();
    repo.write(
        "ops/docker/app/Dockerfile",
        "FROM scratch\nCOPY app.conf /etc/app.conf\n",
    )
    .write("ops/docker/app/app.conf", "mirrored=1\n");
    repo.commit("app");
    repo
}

#[tokio::test]
async fn a_release_reaches_its_mirrors_and_a_dead_one_is_only_a_warning() {
    let s = services();
    let repo = image_repo();
    let sha = repo.head();
    let repository = scoped("t-mirror-to/app");
    let ran = publish(&repo, "t-mirror-to", "refs/heads/main", &sha)
        .input("mirror-to", &format!("{}\n127.0.0.1:9", s.registry_basic))
        .input("mirror-username", &s.basic_user)
        .input("mirror-password", &s.basic_password)
        .run_async()
        .await;
    ran.assert_ok();
    let digest = ran.outputs["digest"].clone();
    let results: serde_json::Value = serde_json::from_str(&ran.outputs["mirrors"]).unwrap();
    assert_eq!(
        results[format!("{}/{repository}", s.registry_basic)],
        "ok",
        "{ran}"
    );
    assert_eq!(
        results[format!("127.0.0.1:9/{repository}")],
        "failed",
        "{ran}"
    );
    assert!(
        ran.stdout.contains("::warning::mirroring to 127.0.0.1:9/"),
        "{ran}"
    );
    assert!(
        ran.summary.contains("#### Mirrors") && ran.summary.contains("**failed**"),
        "{ran}"
    );
    ran.assert_secret_masked_only(&s.basic_password);
    for tag in [sha.as_str(), "latest"] {
        assert_eq!(
            basic()
                .manifest_digest(&repository, tag)
                .await
                .unwrap()
                .as_deref(),
            Some(digest.as_str()),
            "{tag} on the mirror"
        );
        assert_same_tree((&open(), &repository), (&basic(), &repository), tag).await;
    }

    let ran = publish(&repo, "t-mirror-to", "refs/heads/main", &sha)
        .input("mirror-to", "127.0.0.1:9")
        .input("mirror-required", "true")
        .run_async()
        .await;
    ran.assert_failed("`mirror-required` is set");
    ran.assert_failed("failed: couldn't reach 127.0.0.1:9");
    assert_eq!(
        open()
            .manifest_digest(&repository, &sha)
            .await
            .unwrap()
            .as_deref(),
        Some(digest.as_str()),
        "the release itself stays"
    );
}
