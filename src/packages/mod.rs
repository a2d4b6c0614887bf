//! GitHub's Packages REST API for container packages: GHCR (and GitHub
//! Enterprise Server's container registry) has no manifest `DELETE`, so
//! `cleanup` lists a package's versions and deletes them by id here.
//!
//! Routes (GitHub's REST API description, version 2022-11-28):
//! - `GET /{orgs|users}/{owner}/packages/container/{name}/versions`, paged
//!   by `Link: rel="next"`; each version is a manifest digest (`name`) with
//!   its tags (`metadata.container.tags`).
//! - `DELETE /{orgs|users}/{owner}/packages/container/{name}/versions/{id}`.
//!
//! The owner is tried as an organization, then as a user. Every request
//! is bounded (`request-timeout`) and retried on 5xx and on a spent rate
//! limit when the wait GitHub asks for (`retry-after`, `x-ratelimit-reset`)
//! fits; a longer one is an error saying when to run again.

pub mod plan;

use std::time::Duration;

use anyhow::{Context as _, bail};
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use reqwest::Url;
use serde::Deserialize;

use crate::github::{self, Answer};
use crate::inventory::Inventory;
use crate::names;
use crate::registry::{Registry, retry};

/// The most GitHub serves per page.
const PER_PAGE: u32 = 100;
/// 100,000 versions: far beyond any package, and still a bound.
const MAX_PAGES: usize = 1_000;
/// A rate limit that resets later than this is not waited for.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// The permission fix every refusal names.
const PERMISSION_FIX: &str = "the job needs `packages: write` in its `permissions:` (a classic personal access token needs `read:packages` and `delete:packages`); with `GITHUB_TOKEN` the package must also grant this repository the Admin role (the package's settings → Manage Actions access)";

/// Whose package: the two route prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Org,
    User,
}

impl Owner {
    fn prefix(self) -> &'static str {
        match self {
            Owner::Org => "orgs",
            Owner::User => "users",
        }
    }
}

/// One package version: a manifest, by digest, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: u64,
    /// `sha256:…`, lower case.
    pub digest: String,
    pub tags: Vec<String>,
    /// Unix seconds of `created_at`.
    pub created: Option<i64>,
}

/// A package's versions, and whose package it is (for the deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub owner: Owner,
    pub versions: Vec<Version>,
}

/// What a delete did; a rerun after a partial cleanup sees `AlreadyGone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    AlreadyGone,
}

#[derive(Deserialize)]
struct RawVersion {
    id: u64,
    name: String,
    created_at: Option<String>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
struct RawMetadata {
    container: Option<RawContainer>,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(default)]
    tags: Vec<String>,
}

pub struct PackagesApi {
    crab: Octocrab,
    api: Url,
    /// `request-timeout`: one request, its retries and pauses included.
    bound: Duration,
}

impl std::fmt::Debug for PackagesApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackagesApi")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

impl PackagesApi {
    /// A client of the API at `api_url` (`github-api-url`) with `token`.
    pub fn new(api_url: &str, token: &str, bound: Duration) -> anyhow::Result<Self> {
        let api = crate::web_api::base_url(api_url).map_err(|reason| {
            anyhow::anyhow!(
                "`github-api-url`: {} is not a GitHub API root ({reason}); give the API root, e.g. https://api.github.com or https://github.example/api/v3",
                crate::web_api::shown(api_url)
            )
        })?;
        let crab = github::client(api_url, Some(token), RetryConfig::None, bound)?;
        Ok(PackagesApi { crab, api, bound })
    }

    /// Every version of the container package `name` of `owner`, or
    /// `None` when GitHub knows no such package the token can see.
    pub async fn versions(&self, owner: &str, name: &str) -> anyhow::Result<Option<Listing>> {
        for kind in [Owner::Org, Owner::User] {
            if let Some(versions) = self.versions_of(kind, owner, name).await? {
                return Ok(Some(Listing {
                    owner: kind,
                    versions,
                }));
            }
        }
        Ok(None)
    }

    /// The versions of a package whose owner's kind is known (from an
    /// earlier [`PackagesApi::versions`]); `None` on a 404.
    pub async fn versions_of(
        &self,
        kind: Owner,
        owner: &str,
        name: &str,
    ) -> anyhow::Result<Option<Vec<Version>>> {
        let what = format!("the versions of the container package `{name}` of `{owner}`");
        let mut route = format!("{}?per_page={PER_PAGE}", package_route(kind, owner, name));
        let mut listed = names::ListedNames::new(format!("GitHub's package {owner}/{name}"));
        let mut versions = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(http::Method::GET, &route, &what).await?;
            match answer.status {
                200..=299 => {}
                404 => return Ok(None),
                _ => bail!(refusal(&answer, &format!("listing {what}"))),
            }
            let page: Vec<RawVersion> = answer.json(&what).map_err(anyhow::Error::msg)?;
            versions.extend(page.into_iter().filter_map(|raw| version(raw, &mut listed)));
            match &answer.next_page {
                Some(next) => route = self.same_origin(next, &what)?,
                None => return Ok(Some(versions)),
            }
        }
        bail!("GitHub kept paging {what} past {MAX_PAGES} pages; stopping")
    }

    /// Deletes one version; one already gone is not an error, so a rerun
    /// converges.
    pub async fn delete(
        &self,
        kind: Owner,
        owner: &str,
        name: &str,
        version: &Version,
    ) -> anyhow::Result<Deleted> {
        let what = format!(
            "deleting version {} ({}) of the container package `{name}` of `{owner}`",
            version.id, version.digest
        );
        let route = format!("{}/{}", package_route(kind, owner, name), version.id);
        let answer = self.send(http::Method::DELETE, &route, &what).await?;
        match answer.status {
            200..=299 => Ok(Deleted::Now),
            404 => Ok(Deleted::AlreadyGone),
            _ => bail!(refusal(&answer, &what)),
        }
    }

    /// Sends with bounded retries: 5xx with back-off, a spent rate limit
    /// after the wait GitHub asks for, when that fits.
    async fn send(&self, method: http::Method, route: &str, what: &str) -> anyhow::Result<Answer> {
        let mut attempt = 0;
        loop {
            let answer = github::send(&self.crab, method.clone(), route, None, self.bound)
                .await
                .map_err(|e| anyhow::anyhow!("{e}; check `github-api-url` and the network"))?;
            let limited = answer.rate_limited() && !answer.succeeded();
            let retryable = limited || answer.status >= 500;
            if !retryable || attempt + 1 >= retry::ATTEMPTS {
                return Ok(answer);
            }
            let pause = match (limited, answer.wait) {
                (true, Some(wait)) if wait <= LONGEST_WAIT => wait,
                // Secondary limits without `retry-after` ask for a minute.
                (true, _) => return Ok(answer),
                (false, asked) => retry::after(attempt, asked),
            };
            tracing::warn!(
                "the GitHub API answered {} to {what}; asking again in {}",
                answer.status,
                crate::units::duration(pause)
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// The path and query of a `next` page on the API's own origin: the
    /// token goes nowhere else.
    fn same_origin(&self, next: &str, what: &str) -> anyhow::Result<String> {
        let url = self
            .api
            .join(next)
            .ok()
            .filter(|u| u.origin() == self.api.origin())
            .with_context(|| {
                format!("GitHub sent the next page of {what} to {next:?}, away from {}; refusing to follow it with the token", self.api.origin().ascii_serialization())
            })?;
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }
}

/// A package as `cleanup`, `usage` and `monitor` read it: its versions
/// (through the API) and the manifests they are (through the registry).
#[derive(Debug)]
pub struct Package {
    pub listing: Listing,
    /// With `untagged` listed.
    pub inventory: Inventory,
}

/// Reads `repository` (`owner/name`): `None` for a package never pushed;
/// one the registry has but the API won't show is an error naming the
/// grant. A tag whose image dates nothing (no config `created`, or the
/// epoch of a reproducible build) gets its version's `created_at`: when
/// GitHub first stored that manifest.
pub async fn read(
    api: &PackagesApi,
    registry: &Registry,
    repository: &str,
    concurrency: usize,
) -> anyhow::Result<Option<Package>> {
    let (owner, name) = owner_and_name(repository)?;
    let Some(listing) = api.versions(owner, name).await? else {
        if registry.tags(repository).await?.is_empty() {
            return Ok(None);
        }
        bail!(not_found(owner, name));
    };
    let untagged: Vec<String> = listing
        .versions
        .iter()
        .filter(|v| v.tags.is_empty())
        .map(|v| v.digest.clone())
        .collect();
    let mut inventory = Inventory::read_digests(
        registry,
        repository,
        concurrency,
        tagged(&listing.versions),
        &untagged,
    )
    .await?;
    for tag in inventory.tags.iter_mut().filter(|t| t.pushed.is_none()) {
        tag.pushed = listing
            .versions
            .iter()
            .find(|v| v.digest == tag.digest)
            .and_then(|v| v.created);
    }
    inventory.untagged = Some(untagged);
    Ok(Some(Package { listing, inventory }))
}

/// A repository's `owner/package`, split at its first `/` (a package name
/// may hold more).
pub fn owner_and_name(repository: &str) -> anyhow::Result<(&str, &str)> {
    repository.split_once('/').with_context(|| {
        format!("{repository:?} is not `owner/package`; GitHub packages have both")
    })
}

/// Each tag with the digest its version is.
pub fn tagged(versions: &[Version]) -> Vec<(String, String)> {
    versions
        .iter()
        .flat_map(|v| v.tags.iter().map(|t| (t.clone(), v.digest.clone())))
        .collect()
}

/// `/{orgs|users}/{owner}/packages/container/{name}/versions`; a name with
/// `/` (`team/api`) is one path segment, escaped.
fn package_route(kind: Owner, owner: &str, name: &str) -> String {
    format!(
        "/{}/{owner}/packages/container/{}/versions",
        kind.prefix(),
        name.replace('/', "%2F")
    )
}

/// A listed version, if its digest is one; tags that aren't are skipped.
fn version(raw: RawVersion, listed: &mut names::ListedNames) -> Option<Version> {
    let digest = raw.name.to_ascii_lowercase();
    if !names::is_digest(&digest) {
        tracing::warn!(
            "GitHub lists package version {} named {:?}, which is not a manifest digest; left alone",
            raw.id,
            raw.name
        );
        return None;
    }
    let tags = raw
        .metadata
        .and_then(|m| m.container)
        .map(|c| c.tags)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| listed.is_tag(t))
        .collect();
    Some(Version {
        id: raw.id,
        digest,
        tags,
        created: raw
            .created_at
            .as_deref()
            .and_then(crate::time::unix_seconds),
    })
}

/// The error for a refused request: which permission is missing, and how
/// to grant it.
fn refusal(answer: &Answer, what: &str) -> String {
    let said = github::quoted(&answer.message());
    match answer.status {
        401 => format!(
            "the GitHub API rejected the token for {what} (401){said}; set `password` to a token GitHub accepts, e.g. `${{{{ secrets.GITHUB_TOKEN }}}}`"
        ),
        _ if answer.rate_limited() => format!(
            "the GitHub API's rate limit is spent ({}){said} for {what}{}; run again after it resets: nothing kept was deleted, and a rerun finishes the job",
            answer.status,
            answer
                .wait
                .map(|w| format!(", for another {}", crate::units::duration(w)))
                .unwrap_or_default()
        ),
        403 | 404 => format!(
            "GitHub refused {what} ({}){said}: the token lacks the permission; {PERMISSION_FIX}",
            answer.status
        ),
        status => format!("the GitHub API answered {what} with {status}{said}"),
    }
}

/// Why no package was found, with the fix.
fn not_found(owner: &str, name: &str) -> String {
    format!(
        "GitHub knows no container package `{name}` of `{owner}` that this token can see (404 as an organization's and as a user's); check `namespace` and `images`, and {PERMISSION_FIX}"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn githubs_example_listing_reads_as_versions() {
        let text = String::from_utf8(crate::fixtures::fixture_bytes(
            "github-api/package-versions-container.rest-api-description-example.json",
        ))
        .unwrap();
        let raw: Vec<RawVersion> = serde_json::from_str(&text).unwrap();
        let mut listed = names::ListedNames::new("test");
        let versions: Vec<Version> = raw
            .into_iter()
            .filter_map(|r| version(r, &mut listed))
            .collect();
        assert_eq!(
            versions,
            [
                Version {
                    id: 45763,
                    digest:
                        "sha256:08a44bab0bddaddd8837a8b381aebc2e4b933768b981685a9e088360af0d3dd9"
                            .into(),
                    tags: vec!["latest".into()],
                    // 2020-09-11T21:56:40Z
                    created: Some(1_599_861_400),
                },
                Version {
                    id: 881,
                    digest:
                        "sha256:b3d3e366b55f9a54599220198b3db5da8f53592acbbb7dc7e4e9878762fc5344"
                            .into(),
                    tags: Vec::new(),
                    // 2020-05-21T22:22:20Z
                    created: Some(1_590_099_740),
                },
            ]
        );
    }

    #[test]
    fn names_with_slashes_are_one_segment_and_bad_versions_are_left_alone() {
        assert_eq!(
            package_route(Owner::Org, "acme", "team/api"),
            "/orgs/acme/packages/container/team%2Fapi/versions"
        );
        let mut listed = names::ListedNames::new("test");
        let raw = |name: &str, tags: &[&str]| RawVersion {
            id: 1,
            name: name.into(),
            created_at: None,
            metadata: Some(RawMetadata {
                container: Some(RawContainer {
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                }),
            }),
        };
        assert!(version(raw("1.0.4", &[]), &mut listed).is_none());
        let digest = format!("sha256:{}", "A".repeat(64));
        let kept = version(raw(&digest, &["ok", "../x"]), &mut listed).unwrap();
        assert_eq!(kept.digest, digest.to_ascii_lowercase());
        assert_eq!(kept.tags, ["ok"]);
    }

    fn answer(status: u16, spent: bool, message: &str) -> Answer {
        Answer {
            status,
            rate_limit_spent: spent,
            has_next: false,
            next_page: None,
            wait: spent.then_some(Duration::from_secs(600)),
            text: serde_json::json!({ "message": message }).to_string(),
        }
    }

    #[test]
    fn refusals_name_the_permission_and_the_fix() {
        let denied = refusal(
            &answer(403, false, "Must have admin rights to Repository."),
            "deleting x",
        );
        assert!(denied.contains("`packages: write`"), "{denied}");
        assert!(denied.contains("Admin role"), "{denied}");
        assert!(
            denied.contains("\"Must have admin rights to Repository.\""),
            "{denied}"
        );
        let limited = refusal(&answer(403, true, "API rate limit exceeded"), "listing x");
        assert!(limited.contains("rate limit is spent"), "{limited}");
        assert!(limited.contains("10m"), "{limited}");
        assert!(!limited.contains("packages: write"), "{limited}");
        let token = refusal(&answer(401, false, "Bad credentials"), "listing x");
        assert!(token.contains("`password`"), "{token}");
    }
}
