//! The SBOM as a JSON value (Trivy writes CycloneDX 1.6, which no Rust
//! model covers; like cosign, we keep it opaque): naming its subject, and
//! what a summary says of it.

use super::cosign::Predicate;

/// The Trivy JSON report with `ArtifactName` set to `name`: `trivy convert`
/// names the SBOM's component after it (the scan saw only an archive path).
pub fn named_report(report: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    let mut json: serde_json::Value = serde_json::from_slice(report)
        .map_err(|e| anyhow::anyhow!("the scanner's report is not JSON: {e}"))?;
    let Some(fields) = json.as_object_mut() else {
        anyhow::bail!("the scanner's report is not a JSON object");
    };
    fields.insert("ArtifactName".into(), name.into());
    Ok(serde_json::to_vec(&json)?)
}

/// The file name of the SBOM in the workspace.
pub fn file_name(image: &str, sha: &str, predicate: Predicate) -> String {
    let base = image.rsplit('/').next().unwrap_or(image);
    let short = &sha[..sha.len().min(12)];
    let extension = match predicate {
        Predicate::CycloneDx => "cdx.json",
        Predicate::Spdx => "spdx.json",
    };
    format!("sbom-{base}-{short}.{extension}")
}

/// Components (CycloneDX) or packages (SPDX) listed at the top level.
pub fn components(predicate: Predicate, sbom: &serde_json::Value) -> usize {
    let field = match predicate {
        Predicate::CycloneDx => "components",
        Predicate::Spdx => "packages",
    };
    sbom[field].as_array().map_or(0, Vec::len)
}

pub fn spec_version(predicate: Predicate, sbom: &serde_json::Value) -> Option<String> {
    let field = match predicate {
        Predicate::CycloneDx => "specVersion",
        Predicate::Spdx => "spdxVersion",
    };
    sbom[field].as_str().map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_is_named_after_the_image() {
        let named = named_report(
            br#"{"SchemaVersion":2,"ArtifactName":"/tmp/x/image.tar","Results":[]}"#,
            "r/ns/app@sha256:ab",
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&named).unwrap();
        assert_eq!(json["ArtifactName"], "r/ns/app@sha256:ab");
        assert_eq!(json["SchemaVersion"], 2);
        assert!(named_report(b"[]", "x").is_err());
    }

    #[test]
    fn counts_and_versions_per_format() {
        let cdx = json!({"specVersion": "1.6", "components": [{}, {}, {}]});
        assert_eq!(components(Predicate::CycloneDx, &cdx), 3);
        assert_eq!(
            spec_version(Predicate::CycloneDx, &cdx).as_deref(),
            Some("1.6")
        );
        let spdx = json!({"spdxVersion": "SPDX-2.3", "packages": [{}]});
        assert_eq!(components(Predicate::Spdx, &spdx), 1);
        assert_eq!(
            spec_version(Predicate::Spdx, &spdx).as_deref(),
            Some("SPDX-2.3")
        );
        assert_eq!(components(Predicate::Spdx, &cdx), 0);
        assert_eq!(
            file_name(
                "127.0.0.1:5000/ns/app",
                "0123456789abcdef0123",
                Predicate::CycloneDx
            ),
            "sbom-app-0123456789ab.cdx.json"
        );
    }
}
