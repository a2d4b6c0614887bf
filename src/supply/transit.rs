//! OpenBao / HashiCorp Vault Transit as the signer (`sign-key:
//! hashivault://<key>`), the way cosign's hashivault KMS uses it: the key's
//! public half from `GET /v1/<mount>/keys/<key>`, signatures from
//! `POST /v1/<mount>/sign/<key>/sha2-256` with the SHA-256 of the message
//! (`prehashed`), answered as `vault:v<N>:<base64 DER>`. The private key
//! never leaves Transit.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::VerifyingKey;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::key;
use crate::limits::{self, Cut, TooLarge};

/// The `sign-key` scheme cosign uses for Vault Transit.
pub const SCHEME: &str = "hashivault://";

/// Where Transit is and who may use it. The token is a secret: masked by
/// the caller, never in an error.
pub struct Vault {
    pub addr: String,
    pub token: String,
    /// The Transit mount (cosign's TRANSIT_SECRET_ENGINE_PATH), `transit`
    /// by default.
    pub mount: String,
}

pub struct Transit {
    client: Client,
    key: String,
    public: VerifyingKey,
}

/// Authenticated requests to one Transit mount.
struct Client {
    http: reqwest::Client,
    vault: Vault,
}

#[derive(Deserialize)]
struct Answer<T> {
    data: T,
}

#[derive(Deserialize)]
struct KeyInfo {
    latest_version: u64,
    keys: std::collections::HashMap<String, KeyVersion>,
}

#[derive(Deserialize)]
struct KeyVersion {
    public_key: Option<String>,
}

#[derive(Deserialize)]
struct Signed {
    signature: String,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

impl Transit {
    /// Reads the key's latest public half, proving address, token and key
    /// name before anything is built.
    pub async fn connect(vault: Vault, key: &str) -> anyhow::Result<Transit> {
        // No redirects: the token travels in a header of its own, which a
        // redirect to another host would carry along.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        let client = Client { http, vault };
        let info: KeyInfo = client
            .call(reqwest::Method::GET, &format!("keys/{key}"), None)
            .await?;
        let pem = info
            .keys
            .get(&info.latest_version.to_string())
            .and_then(|v| v.public_key.as_deref())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "Transit key `{key}` has no public key for version {}; create it with `type=ecdsa-p256`",
                    info.latest_version
                )
            })?;
        let public = key::verifying_key(pem)
            .map_err(|e| anyhow::anyhow!("Transit key `{key}`'s public key: {e}"))?;
        Ok(Transit {
            client,
            key: key.to_owned(),
            public,
        })
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// The DER signature of SHA-256(`message`).
    pub async fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let body = serde_json::json!({
            "input": B64.encode(Sha256::digest(message)),
            "prehashed": true,
            "marshaling_algorithm": "asn1",
        });
        let signed: Signed = self
            .client
            .call(
                reqwest::Method::POST,
                &format!("sign/{}/sha2-256", self.key),
                Some(body),
            )
            .await?;
        parse_signature(&signed.signature)
    }
}

impl Client {
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let url = format!(
            "{}/v1/{}/{path}",
            self.vault.addr.trim_end_matches('/'),
            self.vault.mount.trim_matches('/')
        );
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", &self.vault.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "couldn't reach Vault Transit at {url} ({}); check VAULT_ADDR",
                e.without_url()
            )
        })?;
        let status = response.status();
        let bytes = limits::response(response, limits::API_ANSWER)
            .await
            .map_err(|cut| match cut {
                Cut::Over => anyhow::anyhow!(TooLarge {
                    url: url.clone(),
                    what: "an answer of Vault Transit",
                    limit: limits::API_ANSWER,
                }),
                Cut::Failed(e) => anyhow::anyhow!(
                    "couldn't read Vault Transit's answer to {method} {url} ({}); check VAULT_ADDR",
                    e.without_url()
                ),
            })?;
        if !status.is_success() {
            let said = serde_json::from_slice::<Errors>(&bytes)
                .map(|e| e.errors.join("; "))
                .unwrap_or_default();
            anyhow::bail!(
                "Vault Transit answered {method} {url} with {status}{}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                },
                match status.as_u16() {
                    401 | 403 => "; check VAULT_TOKEN and that its policy allows this path",
                    404 =>
                        "; check the key name and the Transit mount (TRANSIT_SECRET_ENGINE_PATH)",
                    _ => "",
                }
            );
        }
        serde_json::from_slice::<Answer<T>>(&bytes)
            .map(|a| a.data)
            .map_err(|e| {
                anyhow::anyhow!("Vault Transit sent an answer this can't read from {url}: {e}")
            })
    }
}

/// `vault:v<N>:<base64 DER>` → the DER.
fn parse_signature(answer: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = answer
        .strip_prefix("vault:v")
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, b64)| b64)
        .ok_or_else(|| anyhow::anyhow!("Vault Transit's signature is not `vault:v<N>:<base64>`"))?;
    B64.decode(encoded)
        .map_err(|_| anyhow::anyhow!("Vault Transit's signature is not base64"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_read_from_vaults_form() {
        assert_eq!(parse_signature("vault:v1:AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_signature("vault:v12:AQID").unwrap(), vec![1, 2, 3]);
        assert!(parse_signature("AQID").is_err());
        assert!(parse_signature("vault:v1:***").is_err());
    }
}
