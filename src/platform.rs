//! Platforms (pure): the `platforms` input, the platform an image config
//! declares, and which platform an image serves (an index's child is picked
//! by it, in `oci`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An OS's architectures, each with its variants.
type Architectures = &'static [(&'static str, &'static [&'static str])];

/// The OS/architecture pairs Go builds container images for (`go tool dist
/// list`), each with the variants BuildKit and containerd know: GOAMD64
/// levels, GOARM versions, arm64's v8 and v9.
const KNOWN: &[(&str, Architectures)] = &[
    (
        "linux",
        &[
            ("386", &[]),
            ("amd64", &["v1", "v2", "v3", "v4"]),
            ("arm", &["v5", "v6", "v7"]),
            ("arm64", &["v8", "v9"]),
            ("loong64", &[]),
            ("mips", &[]),
            ("mipsle", &[]),
            ("mips64", &[]),
            ("mips64le", &[]),
            ("ppc64", &[]),
            ("ppc64le", &[]),
            ("riscv64", &[]),
            ("s390x", &[]),
        ],
    ),
    (
        "windows",
        &[("386", &[]), ("amd64", &[]), ("arm", &[]), ("arm64", &[])],
    ),
    (
        "freebsd",
        &[
            ("386", &[]),
            ("amd64", &[]),
            ("arm", &["v6", "v7"]),
            ("arm64", &[]),
            ("riscv64", &[]),
        ],
    ),
];

/// Architectures as `uname -m` or distributions spell them, and what images
/// call them.
const ALIASES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("x86-64", "amd64"),
    ("aarch64", "arm64"),
    ("i386", "386"),
    ("i686", "386"),
    ("x86", "386"),
    ("armhf", "arm/v7"),
    ("armv7", "arm/v7"),
    ("armv7l", "arm/v7"),
    ("armel", "arm/v6"),
    ("armv6", "arm/v6"),
    ("armv6l", "arm/v6"),
];

/// `os/architecture[/variant]`, as `docker build --platform` and an index
/// entry's `platform` spell it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// `linux/arm64`, `linux/arm/v7`; lower-cased as the engine does. The
    /// error says what is wrong with `text`, for the caller to name its input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(format!(
                "{text:?} is not a platform; write os/architecture[/variant], e.g. linux/amd64 or linux/arm/v7"
            ));
        }
        let platform = Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        };
        platform
            .known()
            .map_err(|why| format!("{text:?} is not a platform: {why}"))?;
        Ok(platform)
    }

    /// Whether Go and BuildKit build for this OS, architecture and variant;
    /// if not, why, with what to write instead.
    fn known(&self) -> Result<(), String> {
        let Some((_, architectures)) = KNOWN.iter().find(|(os, _)| *os == self.os) else {
            let oses: Vec<&str> = KNOWN.iter().map(|(os, _)| *os).collect();
            return Err(format!(
                "images are built for {}, not {:?}; e.g. linux/amd64",
                oses.join(", "),
                self.os
            ));
        };
        let Some((_, variants)) = architectures.iter().find(|(a, _)| *a == self.architecture)
        else {
            let names: Vec<&str> = architectures.iter().map(|(a, _)| *a).collect();
            let fix = ALIASES
                .iter()
                .find(|(alias, _)| *alias == self.architecture)
                .map(|(_, meant)| format!("; write {}/{meant}", self.os))
                .unwrap_or_default();
            return Err(format!(
                "{} images have the architectures {}, not {:?}{fix}",
                self.os,
                names.join(", "),
                self.architecture
            ));
        };
        match &self.variant {
            Some(variant) if !variants.contains(&variant.as_str()) => {
                let base = format!("{}/{}", self.os, self.architecture);
                Err(match variants {
                    [] => format!("{base} has no variants; write {base}"),
                    _ => format!(
                        "{base} has the variants {}, not {variant:?}",
                        variants.join(", ")
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The platform an image config declares (`os`, `architecture`,
    /// `variant`); `None` when it is not an image config.
    pub fn of_config(config: &[u8]) -> Option<Self> {
        let platform: Platform = serde_json::from_slice(config).ok()?;
        (!platform.os.is_empty() && !platform.architecture.is_empty()).then_some(platform)
    }

    /// A name fit for a file or a local tag: `linux-arm-v7`.
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "-")
    }

    /// Whether an image made for `self` serves a request for `wanted`. A
    /// missing variant matches any: engines write arm64 configs without
    /// one (and `linux/arm64` means `v8`).
    pub fn serves(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && match (&self.variant, &wanted.variant) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            }
    }
}

/// The `platforms` input: comma- and/or newline-separated, duplicates
/// dropped, in the order given.
pub fn list(raw: &str) -> Result<Vec<Platform>, String> {
    let mut platforms: Vec<Platform> = Vec::new();
    for item in raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let platform = Platform::parse(item)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// The platform of the machine this runs on, as images name it: the
/// child `scan image=` reads from an index.
pub fn host() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn the_input_takes_commas_and_lines_and_drops_repeats() {
        let parsed = list("linux/amd64, linux/arm64\nlinux/arm/v7\n\nLINUX/AMD64").unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert_eq!(parsed[2].slug(), "linux-arm-v7");
        assert_eq!(list(" \n ").unwrap(), []);
    }

    #[test]
    fn a_bad_platform_is_named_with_the_form_to_write() {
        for bad in [
            "amd64",
            "linux/",
            "linux/arm/v7/x",
            "linux/amd 64",
            "/arm64",
        ] {
            let err = list(&format!("linux/amd64,{bad}")).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{err}");
            assert!(err.contains("os/architecture[/variant]"), "{err}");
        }
    }

    #[test]
    fn only_platforms_images_are_built_for_are_taken() {
        for good in [
            "linux/amd64",
            "linux/amd64/v3",
            "linux/arm64",
            "linux/arm64/v8",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
            "linux/riscv64",
            "windows/amd64",
            "freebsd/amd64",
        ] {
            assert_eq!(p(good).to_string(), good);
        }
        for (bad, why) in [
            (
                "linux/foo",
                "\"linux/foo\" is not a platform: linux images have the architectures 386, amd64, arm, arm64,",
            ),
            ("linux/x86_64", "not \"x86_64\"; write linux/amd64"),
            ("linux/armhf", "write linux/arm/v7"),
            (
                "darwin/arm64",
                "images are built for linux, windows, freebsd, not \"darwin\"",
            ),
            (
                "linux/arm/v8",
                "linux/arm has the variants v5, v6, v7, not \"v8\"",
            ),
            (
                "linux/s390x/v1",
                "linux/s390x has no variants; write linux/s390x",
            ),
            (
                "windows/riscv64",
                "windows images have the architectures 386, amd64, arm, arm64, not",
            ),
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_config_declares_its_platform() {
        let config = br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{}}"#;
        assert_eq!(Platform::of_config(config), Some(p("linux/arm/v7")));
        let arm64 = br#"{"architecture":"arm64","os":"linux","config":{}}"#;
        assert_eq!(Platform::of_config(arm64), Some(p("linux/arm64")));
        assert_eq!(Platform::of_config(br#"{"os":"linux"}"#), None);
        assert_eq!(Platform::of_config(b"[]"), None);
    }
}
