//! One set of clap definitions for both faces: CLI flags on a laptop, and the
//! same options from `INPUT_<NAME>` when a runner starts the action.
//!
//! Inputs become flags before clap parses (`--name=value`), so both faces
//! share every default, validation and error message.

use std::collections::HashMap;
use std::ffi::OsString;
use std::marker::PhantomData;

use anyhow::bail;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::actions::inputs;
use crate::gate::{CheckRunMode, Settings};
use crate::registry::auth::{Credentials, Login};

#[derive(Debug, Parser)]
#[command(
    name = "registry-action",
    version,
    about = "Plan, build, scan and push a monorepo's container images",
    long_about = "Plan, build, scan and push a monorepo's container images.\n\n\
        Every option is also read from the GitHub Action input of the same name \
        (INPUT_<NAME>), and the command from the `command` input."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the biggest variant doesn't matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Which images changed: a build matrix from the event or two commits.
    Plan(PlanArgs),
    /// Build one image directory and push it with its SHA, latest and semver tags.
    Publish(PublishArgs),
    /// List images pushed by digest (one job per platform) in one index, with publish's tags.
    Merge(MergeArgs),
    /// Scan an image archive, or grade a scanner report, against the policy.
    Scan(ScanCommandArgs),
    /// Delete old commit-SHA tags, keeping the newest `keep` and every protected tag.
    Cleanup(CleanupArgs),
    /// Report tags and stored bytes per repository, and growth since a previous report.
    Usage(UsageArgs),
    /// Copy tags of a repository to another registry (or repository), digests unchanged.
    Mirror(MirrorArgs),
    /// Write tags of a repository to an OCI image layout (a directory or a .tar).
    Backup(BackupArgs),
    /// Push the tags of an OCI image layout (a directory or a .tar) to a repository.
    Restore(RestoreArgs),
    /// Check an image's cosign signature (and attestation) with a public key.
    Verify(VerifyArgs),
    /// Health checks for a scheduled run: pulls, logins, storage, rescans → alerts.
    Monitor(MonitorArgs),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan(_) => "plan",
            Command::Publish(_) => "publish",
            Command::Merge(_) => "merge",
            Command::Scan(_) => "scan",
            Command::Cleanup(_) => "cleanup",
            Command::Usage(_) => "usage",
            Command::Mirror(_) => "mirror",
            Command::Backup(_) => "backup",
            Command::Restore(_) => "restore",
            Command::Verify(_) => "verify",
            Command::Monitor(_) => "monitor",
        }
    }

    /// Every secret given to this command, for masking before anything runs.
    pub fn secrets(&self) -> Vec<&str> {
        let all: Vec<&String> = match self {
            Command::Plan(args) => args.github_token.iter().collect(),
            Command::Publish(args) => {
                return args
                    .location
                    .login
                    .password
                    .iter()
                    .chain(&args.tagging.github_token)
                    .chain(&args.mirror_login.password)
                    .chain(args.supply.signing.secrets())
                    .map(String::as_str)
                    .chain(secret_values(&args.secrets))
                    .collect();
            }
            Command::Merge(args) => args
                .location
                .login
                .password
                .iter()
                .chain(&args.tagging.github_token)
                .chain(args.signing.secrets())
                .collect(),
            Command::Scan(args) => args.github_token.iter().collect(),
            Command::Cleanup(args) => args.repositories.login.password.iter().collect(),
            Command::Usage(args) => args.repositories.login.password.iter().collect(),
            Command::Mirror(args) => args
                .from
                .login
                .password
                .iter()
                .chain(&args.to.login.password)
                .collect(),
            Command::Backup(args) => args.from.login.password.iter().collect(),
            Command::Restore(args) => args.to.login.password.iter().collect(),
            Command::Verify(args) => args.login.password.iter().collect(),
            Command::Monitor(args) => args.repositories.login.password.iter().collect(),
        };
        all.into_iter().map(String::as_str).collect()
    }
}

/// The values of `id=value` lines (a line without `=` is masked whole: it
/// may be a value pasted without its id).
fn secret_values(lines: &[String]) -> impl Iterator<Item = &str> {
    lines
        .iter()
        .flat_map(|block| block.lines())
        .map(|line| line.split_once('=').map_or(line, |(_, value)| value))
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// A `true`/`false` input (`#[arg(long, default_bool = false)]`): a bare
/// flag means `true`, and a runner's spellings of a boolean are accepted.
trait BoolInput {
    fn default_bool(self, default: bool) -> Self;
}

impl BoolInput for Arg {
    fn default_bool(self, default: bool) -> Self {
        self.value_name("BOOL")
            .num_args(0..=1)
            .default_value(if default { "true" } else { "false" })
            .default_missing_value("true")
            .value_parser(inputs::parse_bool)
    }
}

/// The names and help of one registry login's two inputs.
pub trait LoginInputs {
    /// The inputs as the workflow spells them.
    const LOGIN: Login;
    /// How `--help` shows the user name's and the password's values.
    const VALUE_NAMES: [&'static str; 2];
    /// The user name's and the password's help.
    const HELP: [&'static str; 2];
}

/// `username` and `password`: the registry a command works on.
#[derive(Debug, Clone)]
pub struct RegistryLogin;

impl LoginInputs for RegistryLogin {
    const LOGIN: Login = Login::TARGET;
    const VALUE_NAMES: [&'static str; 2] = ["USERNAME", "PASSWORD"];
    const HELP: [&'static str; 2] = ["Registry user name", "Registry password or access token"];
}

/// `username` and `password`: the `to` registry of a copy.
#[derive(Debug, Clone)]
pub struct DestinationLogin;

impl LoginInputs for DestinationLogin {
    const LOGIN: Login = Login::TARGET;
    const VALUE_NAMES: [&'static str; 2] = ["USERNAME", "PASSWORD"];
    const HELP: [&'static str; 2] = [
        "User name for the `to` registry",
        "Password or access token for the `to` registry",
    ];
}

/// `from-username` and `from-password`: the `from` registry of a copy.
#[derive(Debug, Clone)]
pub struct SourceLogin;

impl LoginInputs for SourceLogin {
    const LOGIN: Login = Login::SOURCE;
    const VALUE_NAMES: [&'static str; 2] = ["FROM_USERNAME", "FROM_PASSWORD"];
    const HELP: [&'static str; 2] = [
        "User name for the `from` registry",
        "Password or access token for the `from` registry",
    ];
}

/// `mirror-username` and `mirror-password`: `publish`'s `mirror-to`.
#[derive(Debug, Clone)]
pub struct MirrorLogin;

impl LoginInputs for MirrorLogin {
    const LOGIN: Login = Login::MIRROR;
    const VALUE_NAMES: [&'static str; 2] = ["MIRROR_USERNAME", "MIRROR_PASSWORD"];
    const HELP: [&'static str; 2] = [
        "User name for the `mirror-to` registries",
        "Password or access token for the `mirror-to` registries",
    ];
}

/// A registry's user name and password (or token), named by `L`: one
/// struct for every login, flattened where a command takes one.
#[derive(Debug, Clone)]
pub struct LoginArgs<L> {
    pub username: Option<String>,
    pub password: Option<String>,
    inputs: PhantomData<L>,
}

impl<L: LoginInputs> LoginArgs<L> {
    /// Both halves or neither; an error names the inputs.
    pub fn credentials(&self) -> anyhow::Result<Option<Credentials>> {
        let Login {
            username: user_input,
            password: password_input,
            ..
        } = L::LOGIN;
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Ok(Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => bail!(
                "`{user_input}` is set but `{password_input}` is empty; pass the password or token as a secret"
            ),
            (None, Some(_)) => {
                bail!(
                    "`{password_input}` is set but `{user_input}` is empty; set the registry user name"
                )
            }
        }
    }
}

impl<L: LoginInputs> Args for LoginArgs<L> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let [username_value, password_value] = L::VALUE_NAMES;
        let [username_help, password_help] = L::HELP;
        cmd.arg(
            Arg::new(L::LOGIN.username)
                .long(L::LOGIN.username)
                .value_name(username_value)
                .value_parser(clap::value_parser!(String))
                .action(clap::ArgAction::Set)
                .help(username_help),
        )
        .arg(
            Arg::new(L::LOGIN.password)
                .long(L::LOGIN.password)
                .value_name(password_value)
                .value_parser(clap::value_parser!(String))
                .action(clap::ArgAction::Set)
                .help(password_help)
                .hide_env_values(true),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<L: LoginInputs> FromArgMatches for LoginArgs<L> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        Ok(LoginArgs {
            username: matches.remove_one(L::LOGIN.username),
            password: matches.remove_one(L::LOGIN.password),
            inputs: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.update_from_arg_matches_mut(&mut matches.clone())
    }

    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        for (id, value) in [
            (L::LOGIN.username, &mut self.username),
            (L::LOGIN.password, &mut self.password),
        ] {
            if matches.contains_id(id) {
                *value = matches.remove_one(id);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Local git when the commits are in the clone, else the GitHub API.
    Auto,
    Git,
    Github,
}

/// Where the image directories are.
#[derive(Debug, Clone, Args)]
pub struct ImageDirs {
    /// Folder holding one directory per image.
    #[arg(long, default_value = "ops/docker", value_parser = relative_dir)]
    pub context_root: String,

    /// How many levels below the context root an image directory may sit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub max_depth: u8,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub dirs: ImageDirs,

    /// Globs of paths that count as changes (newline-separated; default all).
    #[arg(long, value_name = "GLOBS")]
    pub include: Vec<String>,

    /// Globs of paths that never count as changes (newline-separated).
    #[arg(long, value_name = "GLOBS")]
    pub exclude: Vec<String>,

    /// Globs whose change selects every image (newline-separated).
    #[arg(long, value_name = "GLOBS")]
    pub rebuild_all_on: Vec<String>,

    /// Select every image, whatever changed.
    #[arg(long, default_bool = false)]
    pub all: bool,

    /// Where the changed files come from.
    #[arg(long, value_enum, default_value_t = SourceKind::Auto)]
    pub source: SourceKind,

    /// Token for the GitHub API (falls back to GITHUB_TOKEN).
    #[arg(long, hide_env_values = true, value_name = "TOKEN")]
    pub github_token: Option<String>,

    /// Compare from this commit instead of the event's.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    /// Compare up to this commit instead of the event's.
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,

    /// Registry the images are pushed to (names the `image` field).
    #[arg(long, default_value = "docker.io", value_parser = registry_input)]
    pub registry: String,

    /// Namespace of the images (default: the repository owner, lower-cased).
    #[arg(long, value_parser = namespace_input)]
    pub namespace: Option<String>,

    /// Build arguments, `KEY=VALUE` one per line: they resolve `ARG`s in
    /// `FROM` lines when matching images to their bases.
    #[arg(long, value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,

    #[command(flatten)]
    pub release: ReleaseArgs,
}

/// Which repositories `cleanup` and `usage` read, and how to reach them.
#[derive(Debug, Clone, Args)]
pub struct RepositoryArgs {
    /// Repositories, one per line: `name` (under `namespace`) or
    /// `namespace/name`; default every image directory under `context-root`.
    #[arg(long, value_name = "NAMES")]
    pub images: Vec<String>,

    #[command(flatten)]
    pub dirs: ImageDirs,

    /// Registry holding the images.
    #[arg(long, default_value = "docker.io", value_parser = registry_input)]
    pub registry: String,

    /// Namespace of the images (default: the repository owner, lower-cased).
    #[arg(long, value_parser = namespace_input)]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub login: LoginArgs<RegistryLogin>,

    /// Docker Hub's API, used instead of the registry API when `registry` is Docker Hub.
    #[arg(long, default_value = crate::hub::DEFAULT_API)]
    pub hub_api: String,

    /// GitHub's Packages API, beside the registry API: `auto` (on `ghcr.io`), `github` (any registry, e.g. GitHub Enterprise Server's), `oci` (never).
    #[arg(long, value_enum, default_value_t = PackagesMode::Auto)]
    pub packages_api: PackagesMode,

    /// The GitHub REST API the Packages API is reached at (default GITHUB_API_URL, else https://api.github.com).
    #[arg(long, value_name = "URL")]
    pub github_api_url: Option<String>,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub concurrency: u8,

    #[command(flatten)]
    pub timeout: RequestTimeout,
}

/// How long a registry may take: an input of every command that talks to one.
#[derive(Debug, Clone, Copy, Args)]
pub struct RequestTimeout {
    /// The longest one registry request may take, from connecting to the
    /// last byte of its answer, retries included, e.g. `30s`; in a blob
    /// transfer, the longest wait for the next byte.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = crate::monitor::thresholds::duration)]
    pub request_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub repositories: RepositoryArgs,

    /// Prunable tags kept per repository, newest first.
    #[arg(long, default_value_t = 50)]
    pub keep: usize,

    /// Globs of prunable tags (newline-separated; default full 40-hex commit SHAs).
    #[arg(long, value_name = "GLOBS")]
    pub tag_pattern: Vec<String>,

    /// Globs of tags never deleted (newline-separated); `latest` and semantic versions always are.
    #[arg(long, value_name = "GLOBS")]
    pub protect: Vec<String>,

    /// Only delete tags older than this, e.g. `30d`, `2w`, `720h`.
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,

    /// Report what would be deleted, delete nothing.
    #[arg(long, default_bool = false)]
    pub dry_run: bool,

    /// Packages API: package versions no tag names and nothing kept references: `keep` or `delete`.
    #[arg(long, value_enum, default_value_t = crate::packages::plan::Untagged::Keep)]
    pub untagged: crate::packages::plan::Untagged,

    /// Signatures, attestations and referrers indexes whose image is gone
    /// (left by an earlier tool): `keep` (reported) or `delete`.
    #[arg(long, value_enum, default_value_t = Orphans::Keep)]
    pub orphans: Orphans,

    /// After deleting, read every kept tag's manifests and blobs back; a missing piece fails the run.
    #[arg(long, default_bool = true)]
    pub validate: bool,
}

/// `packages-api`: whether `cleanup`, `usage` and `monitor` read (and
/// `cleanup` deletes) through GitHub's Packages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PackagesMode {
    /// On `ghcr.io`, which has no manifest `DELETE`.
    Auto,
    /// Always, with `github-api-url` (GitHub Enterprise Server).
    Github,
    /// Never: the registry's own `DELETE`.
    Oci,
}

#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub repositories: RepositoryArgs,

    /// A previous `usage` report (JSON file) to measure growth against.
    #[arg(long, value_name = "FILE")]
    pub previous_report: Option<String>,

    /// Also write the report (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub report_file: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub repositories: RepositoryArgs,

    /// Harbor's address (e.g. https://harbor.example.com): pull counts are read from its API, with `username` and `password`.
    #[arg(long, value_name = "URL")]
    pub harbor_api: Option<String>,

    /// The tag each image is checked at: pulled, timed and rescanned.
    #[arg(long, default_value = "latest", value_parser = tag_input)]
    pub tag: String,

    /// A pull slower than this warns, e.g. `30s`, `2m` (default: never).
    #[arg(long, value_name = "DURATION", value_parser = crate::monitor::thresholds::duration)]
    pub max_pull_time: Option<std::time::Duration>,

    /// Also prove the credentials may push (an upload is opened; no blob is written).
    #[arg(long, default_bool = false)]
    pub check_push: bool,

    /// A previous `monitor` or `usage` report (JSON file) to measure growth against.
    #[arg(long, value_name = "FILE")]
    pub previous_report: Option<String>,

    /// Also write the report (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub report_file: Option<String>,

    /// Storage growth per month that warns, e.g. `10%`.
    #[arg(long, default_value = "10%", value_parser = crate::monitor::thresholds::percent)]
    pub max_growth: f64,

    /// Stored bytes, all images together, that are a critical alert, e.g. `50GiB`.
    #[arg(long, value_name = "SIZE", value_parser = crate::monitor::thresholds::size)]
    pub max_storage: Option<u64>,

    /// Commit-SHA tags per image beyond which `cleanup` is due (a warning).
    #[arg(long, default_value_t = 50)]
    pub keep: usize,

    /// Share of images whose rescan finds nothing critical, below which the
    /// run warns, e.g. `95%`.
    #[arg(long, default_value = "95%", value_parser = crate::monitor::thresholds::percent)]
    pub min_pass_rate: f64,

    /// Scanner for the rescan of each image.
    #[arg(long, value_enum, default_value_t = ScannerArg::Trivy)]
    pub scanner: ScannerArg,

    /// Run the scanner as this image through the Docker Engine (see `scan`).
    #[arg(long, value_name = "IMAGE")]
    pub scanner_image: Option<String>,

    /// Leave out findings that have no fixed version yet.
    #[arg(long, default_bool = false)]
    pub ignore_unfixed: bool,

    /// A `.trivyignore.yaml` file (id, paths, purls, expired_at, statement).
    #[arg(long)]
    pub ignore_file: Option<String>,
}

/// Where `mirror` and `backup` read from.
#[derive(Debug, Clone, Args)]
pub struct FromArgs {
    /// The repository copied from, `registry/namespace/name`, e.g.
    /// `docker.io/library/alpine` (a `:tag` selects that tag).
    #[arg(long, value_name = "REPOSITORY")]
    pub from: String,

    #[command(flatten)]
    pub login: LoginArgs<SourceLogin>,
}

/// Where `mirror` and `restore` write to.
#[derive(Debug, Clone, Args)]
pub struct ToArgs {
    /// The repository copied to, `registry/namespace/name`.
    #[arg(long, value_name = "REPOSITORY")]
    pub to: String,

    #[command(flatten)]
    pub login: LoginArgs<DestinationLogin>,
}

/// What a copy takes and how.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// Tags to copy, one per line; globs (`1.*`) allowed; default all.
    #[arg(long, value_name = "TAGS")]
    pub tags: Vec<String>,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub concurrency: u8,

    /// Report what would be copied, write nothing.
    #[arg(long, default_bool = false)]
    pub dry_run: bool,

    #[command(flatten)]
    pub timeout: RequestTimeout,
}

impl CopyArgs {
    /// How the copy runs.
    pub fn options(&self) -> crate::mirror::Options {
        crate::mirror::Options {
            concurrency: usize::from(self.concurrency),
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub from: FromArgs,
    #[command(flatten)]
    pub to: ToArgs,
    #[command(flatten)]
    pub copy: CopyArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub from: FromArgs,

    /// The OCI image layout: a directory, or a file ending in `.tar`.
    #[arg(long, value_name = "PATH")]
    pub archive: String,

    #[command(flatten)]
    pub copy: CopyArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The OCI image layout to push: a directory, or a file ending in `.tar`.
    #[arg(long, value_name = "PATH")]
    pub archive: String,

    #[command(flatten)]
    pub to: ToArgs,

    #[command(flatten)]
    pub copy: CopyArgs,
}

/// Where BuildKit's cache goes besides the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheToArg {
    Inline,
    Registry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderArg {
    /// BuildKit, or the legacy builder when the engine refuses a BuildKit
    /// session and no secrets need mounting.
    Auto,
    Buildkit,
    Legacy,
}

/// Which release a run builds, besides what the event says.
#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// The release to build, on any event (a dispatch, a schedule):
    /// `v<semver>` or `<semver>` (every image) or `<image>-v<semver>` (one image).
    #[arg(long, value_name = "TAG")]
    pub release_tag: Option<String>,

    /// `auto` (a release flagged prerelease, or a version such as
    /// `1.2.0-rc.1`), `true` (only the exact version tag) or `false`.
    #[arg(long, value_enum, default_value_t = PrereleaseArg::Auto)]
    pub prerelease: PrereleaseArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrereleaseArg {
    Auto,
    True,
    False,
}

impl PrereleaseArg {
    /// `None` for `auto`: the release and its version decide.
    pub fn forced(self) -> Option<bool> {
        match self {
            PrereleaseArg::Auto => None,
            PrereleaseArg::True => Some(true),
            PrereleaseArg::False => Some(false),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LatestArg {
    /// The default branch and final releases.
    Auto,
    True,
    False,
}

/// Where an image directory is published: shared by `publish` and
/// `merge`, whose jobs must name the same image.
#[derive(Debug, Clone, Args)]
pub struct ImageLocation {
    /// The image directory (a matrix entry's `path`), e.g. `ops/docker/app`.
    #[arg(long, value_parser = relative_dir)]
    pub path: String,

    /// The image name (default `<namespace>/<directory name>` on `registry`).
    #[arg(long, value_parser = image_input)]
    pub image: Option<String>,

    /// Registry the image is pushed to.
    #[arg(long, default_value = "docker.io", value_parser = registry_input)]
    pub registry: String,

    /// Namespace of the image (default: the repository owner, lower-cased).
    #[arg(long, value_parser = namespace_input)]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub login: LoginArgs<RegistryLogin>,

    #[command(flatten)]
    pub timeout: RequestTimeout,
}

/// Which tags an image gets: shared by `publish` and `merge`, which apply
/// the same rules.
#[derive(Debug, Clone, Args)]
pub struct Tagging {
    /// Extra tags, one per line.
    #[arg(long)]
    pub tags: Vec<String>,

    /// When `latest` moves.
    #[arg(long, value_enum, default_value_t = LatestArg::Auto)]
    pub latest: LatestArg,

    /// The commit built (default: the pull request head, else GITHUB_SHA).
    #[arg(long)]
    pub sha: Option<String>,

    /// The release version (a matrix entry's `version`; default from the
    /// release tag, the release event or the tag pushed).
    #[arg(long)]
    pub version: Option<String>,

    #[command(flatten)]
    pub release: ReleaseArgs,

    /// Token for the GitHub API: tells commit order for the `latest` guard
    /// when the clone is shallow (falls back to GITHUB_TOKEN).
    #[arg(long, hide_env_values = true, value_name = "TOKEN")]
    pub github_token: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub location: ImageLocation,

    /// Dockerfile (default `<path>/Dockerfile`).
    #[arg(long)]
    pub dockerfile: Option<String>,

    /// Build arguments, `KEY=VALUE` one per line.
    #[arg(long, value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,

    /// Extra image labels, `KEY=VALUE` one per line.
    #[arg(long, value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Build stage to stop at.
    #[arg(long)]
    pub target: Option<String>,

    /// Target platforms, comma- or newline-separated, e.g.
    /// `linux/amd64,linux/arm64`: several make one OCI image index.
    #[arg(long)]
    pub platforms: Option<String>,

    /// Network for RUN steps: `default`, `host` or `none` (the legacy
    /// builder also takes a network's name).
    #[arg(long)]
    pub network: Option<String>,

    /// `auto` (BuildKit; the legacy builder only when the engine refuses a
    /// BuildKit session and no `secrets` are given), `buildkit` or `legacy`.
    #[arg(long, value_enum, default_value_t = BuilderArg::Auto)]
    pub builder: BuilderArg,

    /// `true`: the image carries BuildKit's inline cache, and the build
    /// reuses the cache of the images in `cache-from`.
    #[arg(long, default_bool = true)]
    pub cache: bool,

    /// With `cache`: `inline` (the image's own cache record) or `registry`:
    /// also BuildKit's whole cache (`mode=max`, every stage) under the
    /// `buildcache` tag of the image's repository, imported on the next
    /// build. The containerd image store with `scanner: none` only;
    /// elsewhere the summary says why and the inline cache is used.
    #[arg(long, value_enum, default_value_t = CacheToArg::Inline)]
    pub cache_to: CacheToArg,

    /// Secrets for `RUN --mount=type=secret,id=<id>`, `id=value` one per
    /// line; never in the image, the log or an output.
    #[arg(long, hide_env_values = true, value_name = "ID=VALUE")]
    pub secrets: Vec<String>,

    /// Images whose inline cache the build may reuse, one per line
    /// (default: the image's `latest`, and its version tags on releases).
    #[arg(long, value_name = "IMAGES")]
    pub cache_from: Vec<String>,

    /// `false` builds (and checks) without pushing, for pull requests.
    #[arg(long, default_bool = true)]
    pub push: bool,

    /// `true` pushes the image untagged and outputs its `digest` and
    /// `platform`, for a `merge` job to list in one index.
    #[arg(long, default_bool = false)]
    pub push_by_digest: bool,

    /// Build even when the commit's SHA tag, or an image of the same build
    /// inputs, already exists.
    #[arg(long, default_bool = false)]
    pub rebuild: bool,

    #[command(flatten)]
    pub tagging: Tagging,

    /// Further registries that get the same digest under the same tags,
    /// one per line: `registry` (same repository path) or
    /// `registry/namespace/name`.
    #[arg(long, value_name = "REGISTRIES")]
    pub mirror_to: Vec<String>,

    #[command(flatten)]
    pub mirror_login: LoginArgs<MirrorLogin>,

    /// Fail the job when a mirror fails (the release itself stays pushed).
    #[arg(long, default_bool = false)]
    pub mirror_required: bool,

    #[command(flatten)]
    pub scan: ScanArgs,

    /// The images of this repository to wait for (a matrix entry's
    /// `depends-on`: a JSON array, or one per line): the build starts once
    /// each one's image of this commit is in the registry, FROM that digest.
    #[arg(long, value_name = "IMAGES")]
    pub depends_on: Vec<String>,

    /// How long to wait for `depends-on`, e.g. `30m`, `90s`, `1h`.
    #[arg(long, value_name = "DURATION", default_value = "30m",
          value_parser = crate::bases::policy::duration)]
    pub wait_timeout: std::time::Duration,

    #[command(flatten)]
    pub supply: SupplyArgs,

    #[command(flatten)]
    pub size: SizeArgs,
}

/// `publish`'s bounds on the image built, from its layer analysis.
#[derive(Debug, Clone, Args)]
pub struct SizeArgs {
    /// The largest uncompressed image size (each platform's), e.g. `500MB`
    /// or `2GiB` (default: none).
    #[arg(long, value_name = "SIZE", value_parser = crate::monitor::thresholds::size)]
    pub max_image_size: Option<u64>,

    /// The lowest efficiency score, dive's (`0.9` or `90%`; default: none).
    #[arg(long, value_name = "SCORE", value_parser = efficiency)]
    pub min_efficiency: Option<f64>,

    /// The largest growth against the image's `latest`: a size (`100MB`)
    /// or a share of `latest`'s size (`10%`); default: none. (`monitor`
    /// reads this input too, as a share only.)
    #[arg(long, value_name = "SIZE_OR_PERCENT", value_parser = image_growth)]
    pub max_growth: Option<ImageGrowth>,

    /// `warn` (an annotation on the Dockerfile line) or `fail` (nothing is
    /// tagged, the job fails) past one of the bounds above.
    #[arg(long, value_enum, default_value_t = SizePolicy::Warn)]
    pub size_policy: SizePolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizePolicy {
    Warn,
    Fail,
}

/// `max-growth` as `publish` takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageGrowth {
    Bytes(u64),
    /// A fraction of `latest`'s size.
    Share(f64),
}

fn image_growth(raw: &str) -> Result<ImageGrowth, String> {
    if raw.trim_end().ends_with('%') {
        return crate::monitor::thresholds::percent(raw).map(ImageGrowth::Share);
    }
    crate::monitor::thresholds::size(raw)
        .map(ImageGrowth::Bytes)
        .map_err(|_| {
            format!("{raw:?} is neither a size nor a percentage: give a size such as `100MB` or `1GiB`, or a share of `latest`'s size such as `10%`")
        })
}

/// `min-efficiency`: a score between 0 and 1, or a percentage.
fn efficiency(raw: &str) -> Result<f64, String> {
    crate::monitor::thresholds::percent(raw).and_then(|score| {
        (score <= 1.0).then_some(score).ok_or_else(|| {
            format!("{raw:?} is over 100%: give a score from 0 to 1, such as `0.9`, or `90%`")
        })
    })
}

/// `merge`: the images of one release pushed by digest, one job per
/// platform, named by publish's inputs for the image and its tags.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The image the publish jobs pushed by digest.
    #[command(flatten)]
    pub location: ImageLocation,

    /// The `digest` outputs of the `push-by-digest` jobs, one per line.
    #[arg(long, value_name = "DIGESTS")]
    pub digests: Vec<String>,

    /// The tags, as publish would give them.
    #[command(flatten)]
    pub tagging: Tagging,

    /// Signs the index, as publish signs its image.
    #[command(flatten)]
    pub signing: Signing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomArg {
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationArg {
    Cyclonedx,
    Spdx,
}

impl AttestationArg {
    pub fn predicate(self) -> crate::supply::cosign::Predicate {
        match self {
            AttestationArg::Cyclonedx => crate::supply::cosign::Predicate::CycloneDx,
            AttestationArg::Spdx => crate::supply::cosign::Predicate::Spdx,
        }
    }
}

impl SbomArg {
    pub fn predicate(self) -> Option<crate::supply::cosign::Predicate> {
        match self {
            SbomArg::Cyclonedx => Some(crate::supply::cosign::Predicate::CycloneDx),
            SbomArg::Spdx => Some(crate::supply::cosign::Predicate::Spdx),
            SbomArg::None => None,
        }
    }
}

/// `publish`'s supply chain: the SBOM, the signature and the attestation.
#[derive(Debug, Clone, Args)]
pub struct SupplyArgs {
    /// Write an SBOM of the image, converted from the scan's report (needs
    /// `scanner: trivy`); with `sign-key`, also attested in the registry.
    #[arg(long, value_enum, default_value_t = SbomArg::None)]
    pub sbom: SbomArg,

    /// Attest SLSA build provenance v1 of the pushed digest, signed like
    /// the SBOM (default: `true` when `sign-key` is set).
    #[arg(long, value_name = "BOOL", value_parser = inputs::parse_bool)]
    pub provenance: Option<bool>,

    #[command(flatten)]
    pub signing: Signing,
}

/// Who signs the digest pushed: shared by `publish` and `merge`, which
/// sign what they push the same way.
#[derive(Debug, Clone, Args)]
pub struct Signing {
    /// Sign the pushed digest the way `cosign sign --key` does: cosign's
    /// encrypted private key PEM, a PKCS#8 or EC P-256 PEM, or
    /// `hashivault://<key>` (Vault/OpenBao Transit via VAULT_ADDR and VAULT_TOKEN).
    #[arg(
        long,
        hide_env_values = true,
        allow_hyphen_values = true,
        value_name = "KEY"
    )]
    pub sign_key: Option<String>,

    /// The password of an encrypted `sign-key` (COSIGN_PASSWORD).
    #[arg(
        long,
        hide_env_values = true,
        allow_hyphen_values = true,
        value_name = "PASSWORD"
    )]
    pub sign_key_password: Option<String>,

    /// How the signature and attestations are stored: `legacy` (cosign 2's
    /// `.sig`/`.att` tags), `bundle` (cosign 3's Sigstore bundles, as
    /// referrers) or `both`.
    #[arg(long, value_enum, default_value_t = SignatureFormat::Legacy)]
    pub signature_format: SignatureFormat,
}

/// `orphans`: what becomes of signatures whose image is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Orphans {
    Keep,
    Delete,
}

/// Which of cosign's formats `publish` and `merge` sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignatureFormat {
    Legacy,
    Bundle,
    Both,
}

impl SignatureFormat {
    pub fn legacy(self) -> bool {
        self != SignatureFormat::Bundle
    }

    pub fn bundle(self) -> bool {
        self != SignatureFormat::Legacy
    }
}

impl Signing {
    pub fn secrets(&self) -> impl Iterator<Item = &String> {
        self.sign_key.iter().chain(&self.sign_key_password)
    }
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The image, `registry/namespace/name:tag` or `…@sha256:…`.
    #[arg(long)]
    pub image: String,

    /// The public key (`cosign.pub`): its PEM, or a file in the workspace.
    #[arg(long, allow_hyphen_values = true, value_name = "PEM_OR_FILE")]
    pub public_key: String,

    /// Also require an attestation of this SBOM type about the digest.
    #[arg(long, value_enum)]
    pub attestation: Option<AttestationArg>,

    /// Also require an attestation of this predicate type: `cyclonedx`,
    /// `spdx`, `slsaprovenance1` (cosign's `--type` names) or its URI.
    #[arg(long)]
    pub predicate_type: Option<String>,

    #[command(flatten)]
    pub login: LoginArgs<RegistryLogin>,

    #[command(flatten)]
    pub timeout: RequestTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScannerArg {
    Trivy,
    Grype,
    /// Skip the scan.
    None,
}

impl ScannerArg {
    /// `None` for `none`.
    pub fn scanner(self) -> Option<crate::scan::Scanner> {
        match self {
            ScannerArg::Trivy => Some(crate::scan::Scanner::Trivy),
            ScannerArg::Grype => Some(crate::scan::Scanner::Grype),
            ScannerArg::None => None,
        }
    }
}

/// A severity threshold: `critical`…`unknown`, or `none` for never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub Option<crate::scan::Severity>);

fn threshold(raw: &str) -> Result<Threshold, String> {
    crate::scan::threshold(raw.trim()).map(Threshold)
}

/// The scan gate, shared by `publish` and `scan`.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Scanner to run on the built image.
    #[arg(long, value_enum, default_value_t = ScannerArg::Trivy)]
    pub scanner: ScannerArg,

    /// Run the scanner as this image through the Docker Engine, even when
    /// its binary is on PATH. Unset: the binary on PATH, else the pinned
    /// default image (`aquasec/trivy:0.59.1`, `anchore/grype:v0.87.0`).
    /// Pin it by digest (`name@sha256:…`) to be sure what runs.
    #[arg(long, value_name = "IMAGE")]
    pub scanner_image: Option<String>,

    /// Findings at or above this severity block the release (`none`: never).
    #[arg(long, default_value = "critical", value_parser = threshold)]
    pub fail_on: Threshold,

    /// Findings at or above this severity warn but release (`none`: never).
    #[arg(long, default_value = "high", value_parser = threshold)]
    pub warn_on: Threshold,

    /// Leave out findings that have no fixed version yet.
    #[arg(long, default_bool = false)]
    pub ignore_unfixed: bool,

    /// A `.trivyignore.yaml` file (id, paths, purls, expired_at, statement).
    #[arg(long)]
    pub ignore_file: Option<String>,

    /// Write a SARIF report (every severity) to this path.
    #[arg(long)]
    pub sarif: Option<String>,

    /// A GitHub check run with one annotation per finding (needs
    /// `checks: write`): `auto` on GitHub with a token, `true` fails the
    /// step when it can't be made, `false` never.
    #[arg(long, value_enum, ignore_case = true, default_value_t = CheckRunArg::Auto)]
    pub check_run: CheckRunArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckRunArg {
    /// On GitHub Actions, with a token, a repository and a commit.
    Auto,
    True,
    False,
}

impl ScanArgs {
    /// The gate's settings, as given.
    pub fn settings(&self) -> Settings {
        Settings {
            scanner: self.scanner.scanner(),
            scanner_image: self.scanner_image.clone(),
            policy: crate::scan::Policy {
                fail_on: self.fail_on.0,
                warn_on: self.warn_on.0,
                ignore_unfixed: self.ignore_unfixed,
            },
            ignore_file: self.ignore_file.clone(),
            sarif: self.sarif.clone(),
            check_run: match self.check_run {
                CheckRunArg::Auto => CheckRunMode::Auto,
                CheckRunArg::True => CheckRunMode::Required,
                CheckRunArg::False => CheckRunMode::Off,
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScanCommandArgs {
    /// A `docker save` archive to scan.
    #[arg(long, conflicts_with = "report")]
    pub archive: Option<String>,

    /// A Trivy or Grype JSON report made elsewhere, graded instead of scanning.
    #[arg(long)]
    pub report: Option<String>,

    /// An image to scan, by reference (pulled onto the engine when absent);
    /// with `archive` or `report`, only the name shown.
    #[arg(long)]
    pub image: Option<String>,

    /// The image directory; its Dockerfile's final `FROM` line carries the annotations.
    #[arg(long)]
    pub path: Option<String>,

    /// The commit the check run is for (default: the pull request head, else GITHUB_SHA).
    #[arg(long)]
    pub sha: Option<String>,

    /// Token for the check run (falls back to GITHUB_TOKEN).
    #[arg(long, hide_env_values = true, value_name = "TOKEN")]
    pub github_token: Option<String>,

    #[command(flatten)]
    pub scan: ScanArgs,
}

impl PlanArgs {
    /// Multiline inputs arrive as one value; flags may repeat. Both flatten.
    pub fn globs(values: &[String]) -> Vec<String> {
        values.iter().flat_map(|v| inputs::split_list(v)).collect()
    }
}

/// `registry`: a host and optional port, nothing more.
fn registry_input(raw: &str) -> Result<String, String> {
    crate::reference::registry_name(raw)
}

/// `namespace`: OCI path components, exactly as given (never lower-cased:
/// that would name another repository).
fn namespace_input(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    crate::names::check_repository(trimmed).map_err(|e| e.to_string())?;
    Ok(trimmed.to_owned())
}

/// `image`: `name`, `namespace/name` or `registry/namespace/name`, by the
/// same rules as `namespace`, without a tag or digest.
fn image_input(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let reference = crate::reference::Reference::parse_exact(trimmed).map_err(|e| e.to_string())?;
    if reference.tag().is_some() || reference.digest().is_some() {
        return Err(
            "it names a tag or digest; give the name only — tags come from the commit, `latest`, versions and `tags`".into(),
        );
    }
    Ok(trimmed.to_owned())
}

fn tag_input(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if crate::names::is_tag(trimmed) {
        Ok(trimmed.to_owned())
    } else {
        Err(crate::names::TAG_RULE.to_owned())
    }
}

fn relative_dir(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') || trimmed.split('/').any(|c| c == "..") {
        return Err(format!(
            "{raw:?} must be a folder inside the repository, relative to its root, e.g. `ops/docker`"
        ));
    }
    Ok(trimmed.to_owned())
}

/// The argument list clap parses: the command line, with the command taken
/// from the `command` input when none is given, and every option of that
/// command not given on the command line filled from its `INPUT_*` variable.
pub fn with_inputs(args: Vec<OsString>, env: &HashMap<String, String>) -> Vec<OsString> {
    let mut args = args;
    let input = |name: &str| {
        env.get(&inputs::env_name(name))
            .and_then(|v| inputs::normalize(v))
    };
    if args.len() <= 1 {
        if let Some(command) = input("command") {
            args.push(command.into());
        }
    }
    let cli = Cli::command();
    let Some(sub) = args
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|name| cli.find_subcommand(name))
    else {
        return args;
    };
    let given: Vec<String> = args
        .iter()
        .filter_map(|a| a.to_str())
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_owned())
        .collect();
    let mut from_inputs = Vec::new();
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if given.iter().any(|g| g == long) {
            continue;
        }
        if let Some(value) = input(long) {
            from_inputs.push(OsString::from(format!("--{long}={value}")));
        }
    }
    args.extend(from_inputs);
    args
}

/// A parse error in the runner's words: the input as the workflow spells
/// it, the value, and what it accepts. `None` for errors that are not about
/// an input's value (help, version), which keep clap's own text.
pub fn input_error(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ErrorKind};
    let values = |kind| context_values(err, kind);
    let first = |kind| values(kind).into_iter().next();
    match err.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let input = input_name(&first(ContextKind::InvalidArg)?);
            let value = first(ContextKind::InvalidValue).unwrap_or_default();
            let valid = values(ContextKind::ValidValue);
            let why = if !valid.is_empty() {
                format!("use one of: {}", valid.join(", "))
            } else {
                validation_reason(err)
            };
            Some(format!("input `{input}`: {value:?} is not accepted; {why}"))
        }
        ErrorKind::InvalidSubcommand => Some(format!(
            "input `command`: {:?} is not a command; use one of: {}",
            first(ContextKind::InvalidSubcommand).unwrap_or_default(),
            command_names().join(", ")
        )),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Some(format!(
                "input `command` is not set; set it to one of: {}",
                command_names().join(", ")
            ))
        }
        ErrorKind::MissingRequiredArgument => Some(format!(
            "{} must be set for this command",
            inputs_named(&values(ContextKind::InvalidArg))
        )),
        ErrorKind::ArgumentConflict => {
            let mut both = values(ContextKind::InvalidArg);
            both.extend(values(ContextKind::PriorArg));
            Some(format!(
                "{} can't be set together; set one",
                inputs_named(&both)
            ))
        }
        _ => None,
    }
}

fn context_values(err: &clap::Error, kind: clap::error::ContextKind) -> Vec<String> {
    use clap::error::ContextValue;
    match err.get(kind) {
        Some(ContextValue::String(one)) => vec![one.clone()],
        Some(ContextValue::Strings(many)) => many.clone(),
        _ => Vec::new(),
    }
}

/// `--keep <KEEP>` → `keep`.
fn input_name(flag: &str) -> String {
    flag.trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or(flag)
        .to_owned()
}

fn inputs_named(flags: &[String]) -> String {
    let names: Vec<String> = flags
        .iter()
        .map(|f| format!("`{}`", input_name(f)))
        .collect();
    match names.as_slice() {
        [one] => format!("input {one}"),
        many => format!("inputs {}", many.join(", ")),
    }
}

/// What a value parser said; numbers get the accepted form spelled out.
fn validation_reason(err: &clap::Error) -> String {
    use std::error::Error as _;
    match err.source() {
        Some(source) if source.downcast_ref::<std::num::ParseIntError>().is_some() => {
            "give a whole number".into()
        }
        Some(source) => source.to_string(),
        None => "see the input's description in action.yml".into(),
    }
}

fn command_names() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|name| name != "help")
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(argv: &[&str], env: &[(&str, &str)]) -> Result<Cli, clap::Error> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cli::try_parse_from(with_inputs(argv.iter().map(OsString::from).collect(), &env))
    }

    fn plan(cli: Cli) -> PlanArgs {
        match cli.command {
            Command::Plan(args) => args,
            other => panic!("not plan: {other:?}"),
        }
    }

    #[test]
    fn inputs_fill_options_and_the_command() {
        let args = plan(
            parse(
                &["registry-action"],
                &[
                    ("INPUT_COMMAND", "plan"),
                    ("INPUT_CONTEXT-ROOT", "  images/ "),
                    ("INPUT_MAX-DEPTH", "2"),
                    ("INPUT_EXCLUDE", "**/*.md\n\n  docs/**  \n"),
                    ("INPUT_ALL", "True"),
                    ("INPUT_BASE", ""),
                    ("INPUT_SOURCE", "git"),
                ],
            )
            .unwrap(),
        );
        assert_eq!(args.dirs.context_root, "images");
        assert_eq!(args.dirs.max_depth, 2);
        assert_eq!(PlanArgs::globs(&args.exclude), ["**/*.md", "docs/**"]);
        assert!(args.all);
        assert_eq!(args.base, None, "an empty input is unset");
        assert_eq!(args.source, SourceKind::Git);
    }

    #[test]
    fn the_command_line_wins_over_inputs() {
        let args = plan(
            parse(
                &[
                    "registry-action",
                    "plan",
                    "--context-root",
                    "cli/root",
                    "--include",
                    "a/**",
                    "--include",
                    "b/**",
                ],
                &[
                    ("INPUT_CONTEXT-ROOT", "input/root"),
                    ("INPUT_INCLUDE", "c/**"),
                ],
            )
            .unwrap(),
        );
        assert_eq!(args.dirs.context_root, "cli/root");
        assert_eq!(PlanArgs::globs(&args.include), ["a/**", "b/**"]);
    }

    #[test]
    fn defaults() {
        let args = plan(parse(&["registry-action", "plan"], &[]).unwrap());
        assert_eq!(args.dirs.context_root, "ops/docker");
        assert_eq!(args.dirs.max_depth, 1);
        assert!(!args.all);
        assert_eq!(args.source, SourceKind::Auto);
        assert_eq!(args.registry, "docker.io");
    }

    #[test]
    fn bad_values_name_the_option_and_the_value() {
        let err = parse(
            &["registry-action"],
            &[("INPUT_COMMAND", "plan"), ("INPUT_ALL", "yes")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--all") && err.contains("yes"), "{err}");
        let err = parse(
            &["registry-action"],
            &[("INPUT_COMMAND", "plan"), ("INPUT_SOURCE", "svn")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("svn") && err.contains("auto"), "{err}");
        let err = parse(&["registry-action", "plan", "--context-root", "../x"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("inside the repository"), "{err}");
        let err = parse(&["registry-action"], &[("INPUT_COMMAND", "deploy")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("deploy"), "{err}");
    }

    fn input_error_for(env: &[(&str, &str)]) -> String {
        let err = parse(&["registry-action"], env).unwrap_err();
        input_error(&err).unwrap_or_else(|| panic!("no input error for {err}"))
    }

    #[test]
    fn input_errors_name_the_input_the_value_and_the_form() {
        for (env, expected) in [
            (
                vec![("INPUT_COMMAND", "cleanup"), ("INPUT_KEEP", "abc")],
                "input `keep`: \"abc\" is not accepted; give a whole number",
            ),
            (
                vec![("INPUT_COMMAND", "plan"), ("INPUT_SOURCE", "svn")],
                "input `source`: \"svn\" is not accepted; use one of: auto, git, github",
            ),
            (
                vec![("INPUT_COMMAND", "plan"), ("INPUT_ALL", "yes")],
                "input `all`: \"yes\" is not accepted; \"yes\" is not a boolean: use `true` or `false`",
            ),
            (
                vec![("INPUT_COMMAND", "plan"), ("INPUT_MAX-DEPTH", "20")],
                "input `max-depth`: \"20\" is not accepted; 20 is not in 1..=8",
            ),
            (
                vec![
                    ("INPUT_COMMAND", "publish"),
                    ("INPUT_PATH", "ops/docker/app"),
                    ("INPUT_PRERELEASE", "maybe"),
                ],
                "input `prerelease`: \"maybe\" is not accepted; use one of: auto, true, false",
            ),
            (
                vec![("INPUT_COMMAND", "mirror"), ("INPUT_FROM", "a.example/x/y")],
                "input `to` must be set for this command",
            ),
            (
                vec![("INPUT_COMMAND", "usage"), ("INPUT_REGISTRY", "https://x")],
                "input `registry`: \"https://x\" is not accepted; a registry is a host name or IP address with an optional :port, e.g. ghcr.io or localhost:5000, without a scheme; write `registry: x`",
            ),
            (
                vec![("INPUT_COMMAND", "plan"), ("INPUT_NAMESPACE", "Acme")],
                "input `namespace`: \"Acme\" is not accepted; \"Acme\" has upper-case letters, and OCI repository names are lower-case; write \"acme\"",
            ),
            (
                vec![
                    ("INPUT_COMMAND", "cleanup"),
                    ("INPUT_NAMESPACE", "zz/../hp"),
                ],
                "input `namespace`: \"zz/../hp\" is not accepted; \"zz/../hp\" has the path component \"..\"; an OCI repository name is path components of lower-case letters and digits joined by \".\", \"_\", \"__\" or \"-\", separated by \"/\", at most 255 characters",
            ),
            (
                vec![
                    ("INPUT_COMMAND", "publish"),
                    ("INPUT_PATH", "ops/docker/app"),
                    ("INPUT_IMAGE", "Acme/App"),
                ],
                "input `image`: \"Acme/App\" is not accepted; invalid image reference \"Acme/App\": repository \"Acme/App\" has upper-case letters, and OCI repository names are lower-case; write \"acme/app\"",
            ),
            (
                vec![
                    ("INPUT_COMMAND", "merge"),
                    ("INPUT_PATH", "ops/docker/app"),
                    ("INPUT_IMAGE", "acme/app:1.0"),
                ],
                "input `image`: \"acme/app:1.0\" is not accepted; it names a tag or digest; give the name only — tags come from the commit, `latest`, versions and `tags`",
            ),
            (
                vec![("INPUT_COMMAND", "monitor"), ("INPUT_TAG", "../x")],
                "input `tag`: \"../x\" is not accepted; a tag starts with a letter, digit or underscore and has at most 128 of [A-Za-z0-9_.-]",
            ),
            (
                vec![
                    ("INPUT_COMMAND", "scan"),
                    ("INPUT_ARCHIVE", "a.tar"),
                    ("INPUT_REPORT", "r.json"),
                ],
                "inputs `archive`, `report` can't be set together; set one",
            ),
        ] {
            assert_eq!(input_error_for(&env), expected, "{env:?}");
        }
    }

    #[test]
    fn an_unknown_or_missing_command_lists_the_commands() {
        let unknown = input_error_for(&[("INPUT_COMMAND", "deploy")]);
        assert!(
            unknown.starts_with("input `command`: \"deploy\" is not a command; use one of: plan, publish, merge, scan, cleanup"),
            "{unknown}"
        );
        assert!(!unknown.contains("help"), "{unknown}");
        let missing = input_error_for(&[]);
        assert!(
            missing.starts_with("input `command` is not set; set it to one of: plan,"),
            "{missing}"
        );
    }

    #[test]
    fn each_login_reads_its_own_inputs_and_wants_both_halves() {
        let Command::Mirror(args) = parse(
            &["registry-action"],
            &[
                ("INPUT_COMMAND", "mirror"),
                ("INPUT_FROM", "a.example/x/y"),
                ("INPUT_TO", "b.example/x/y"),
                ("INPUT_FROM-USERNAME", "reader"),
                ("INPUT_FROM-PASSWORD", "pull-token"),
                ("INPUT_USERNAME", "writer"),
            ],
        )
        .unwrap()
        .command
        else {
            panic!("not mirror");
        };
        let from = args.from.login.credentials().unwrap().unwrap();
        assert_eq!(
            (from.username.as_str(), from.password.as_str()),
            ("reader", "pull-token")
        );
        assert_eq!(
            args.to.login.credentials().unwrap_err().to_string(),
            "`username` is set but `password` is empty; pass the password or token as a secret"
        );
        let Command::Publish(args) = parse(
            &["registry-action", "publish", "--path", "ops/docker/app"],
            &[("INPUT_MIRROR-PASSWORD", "push-token")],
        )
        .unwrap()
        .command
        else {
            panic!("not publish");
        };
        assert!(args.location.login.credentials().unwrap().is_none());
        assert_eq!(
            args.mirror_login.credentials().unwrap_err().to_string(),
            "`mirror-password` is set but `mirror-username` is empty; set the registry user name"
        );
        assert!(!args.mirror_required && args.push, "boolean defaults");
    }

    #[test]
    fn help_and_version_keep_clap_words() {
        let err = parse(&["registry-action", "--version"], &[]).unwrap_err();
        assert_eq!(input_error(&err), None);
    }
}
