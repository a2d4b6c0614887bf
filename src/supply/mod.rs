//! The supply chain of a published image: its SBOM (from the scan that
//! already ran), cosign-compatible signatures and attestations beside it
//! in the registry, and their verification.
//!
//! `key` reads keys, `transit` signs through Vault/OpenBao, `cosign` is the
//! legacy on-registry format as bytes, `bundle` cosign 3's, `check` verifies those bytes, `attach`
//! reads and writes them in a registry, `sbom` shapes the SBOM.

pub mod attach;
pub mod bundle;
pub mod check;
pub mod cosign;
pub mod key;
pub mod provenance;
pub mod sbom;
pub mod transit;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

/// Who signs: a key held here, or Vault Transit holding it.
pub enum Signer {
    Key(SigningKey),
    Transit(transit::Transit),
}

impl Signer {
    pub fn public_key(&self) -> &VerifyingKey {
        match self {
            Signer::Key(key) => key.verifying_key(),
            Signer::Transit(transit) => transit.public_key(),
        }
    }

    /// The ASN.1 DER ECDSA P-256 signature of SHA-256(`message`), checked
    /// against the public key before it is used: a key that signs what its
    /// own public half refuses is a misconfiguration caught here.
    pub async fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let der = match self {
            Signer::Key(key) => {
                let signature: Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Signer::Transit(transit) => transit.sign(message).await?,
        };
        if !check::verifies(self.public_key(), message, &der) {
            anyhow::bail!(
                "the signer's signature doesn't verify with its own public key; check that the Transit key is `ecdsa-p256`"
            );
        }
        Ok(der)
    }
}
