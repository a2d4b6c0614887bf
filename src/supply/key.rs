//! Signing and verification keys from PEM: cosign's encrypted private key
//! (as `cosign generate-key-pair` writes it), plain PKCS#8 or SEC1 EC
//! private keys, and SubjectPublicKeyInfo public keys. P-256 only: that is
//! what cosign generates and what OpenBao/Vault Transit's `ecdsa-p256` is.

use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde::Deserialize;
use zeroize::Zeroizing;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// The labels cosign has written on its encrypted keys (the second by
/// releases before 2.0).
const ENCRYPTED_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// What went wrong reading a key. Never carries key material: the messages
/// name the PEM label at most.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("it is not PEM (a `-----BEGIN …-----` block)")]
    NotPem,
    #[error(
        "its PEM label is `{0}`; give cosign's `ENCRYPTED SIGSTORE PRIVATE KEY`, a PKCS#8 `PRIVATE KEY` or an `EC PRIVATE KEY`"
    )]
    UnknownLabel(String),
    #[error("the key is not an ECDSA P-256 key (cosign's default; other curves aren't supported)")]
    NotP256,
    #[error("the encrypted key is malformed ({0})")]
    Malformed(String),
    #[error("the password doesn't open the key (or the key is damaged)")]
    WrongPassword,
    #[error(
        "its PEM label is `{0}`, not `PUBLIC KEY`; give the public key (`cosign.pub`), not the private one"
    )]
    NotPublic(String),
}

/// cosign's encrypted key: scrypt derives a NaCl secretbox key from the
/// password; the box holds the PKCS#8 DER.
#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The private key in `pem`; `password` opens cosign's encrypted form and
/// is ignored otherwise.
pub fn signing_key(pem_text: &str, password: &str) -> Result<SigningKey, KeyError> {
    let (label, der) = decode(pem_text)?;
    let der = Zeroizing::new(der);
    match label.as_str() {
        l if ENCRYPTED_LABELS.contains(&l) => {
            let plain = decrypt(&der, password)?;
            SigningKey::from_pkcs8_der(&plain).map_err(|_| KeyError::NotP256)
        }
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&der).map_err(|_| KeyError::NotP256),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
            .map(SigningKey::from)
            .map_err(|_| KeyError::NotP256),
        other => Err(KeyError::UnknownLabel(other.to_owned())),
    }
}

/// The public key in `pem` (`-----BEGIN PUBLIC KEY-----`, as `cosign.pub`).
pub fn verifying_key(pem_text: &str) -> Result<VerifyingKey, KeyError> {
    let (label, der) = decode(pem_text)?;
    if label != "PUBLIC KEY" {
        return Err(KeyError::NotPublic(label));
    }
    VerifyingKey::from_public_key_der(&der).map_err(|_| KeyError::NotP256)
}

/// Who `verify` says verified: `sha256:` of the key's SubjectPublicKeyInfo
/// DER, the hex `openssl pkey -pubin -outform DER | sha256sum` prints for
/// `cosign.pub`; the same key gives the same identity however its PEM was
/// wrapped or encoded.
pub fn fingerprint(key: &VerifyingKey) -> String {
    // A P-256 point always encodes; an empty DER would only show as a
    // fingerprint nobody has.
    let der = key
        .to_public_key_der()
        .map(|d| d.into_vec())
        .unwrap_or_default();
    crate::registry::sha256_digest(&der)
}

/// The key hint of a Sigstore bundle: base64 of the SHA-256 of the
/// SubjectPublicKeyInfo DER (the raw bytes of [`fingerprint`]'s hash).
pub fn hint(key: &VerifyingKey) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let der = key
        .to_public_key_der()
        .map(|d| d.into_vec())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&der))
}

fn decode(pem_text: &str) -> Result<(String, Vec<u8>), KeyError> {
    // Secrets pasted into CI settings often gain indentation or CRLFs.
    let normalized: String = pem_text
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n");
    let (label, der) = pem::decode_vec(normalized.as_bytes()).map_err(|_| KeyError::NotPem)?;
    Ok((label.to_owned(), der))
}

fn decrypt(json: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let malformed = |what: &str| KeyError::Malformed(what.to_owned());
    let sealed: Encrypted =
        serde_json::from_slice(json).map_err(|_| malformed("not cosign's JSON"))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(KeyError::Malformed(format!(
            "kdf {} with cipher {}; cosign writes scrypt with nacl/secretbox",
            sealed.kdf.name, sealed.cipher.name
        )));
    }
    let p = &sealed.kdf.params;
    if !p.n.is_power_of_two() || p.n < 2 {
        return Err(malformed("scrypt N is not a power of two"));
    }
    let params = scrypt::Params::new(p.n.trailing_zeros() as u8, p.r, p.p, 32)
        .map_err(|_| malformed("scrypt parameters out of range"))?;
    let salt = B64
        .decode(&sealed.kdf.salt)
        .map_err(|_| malformed("salt"))?;
    let nonce = B64
        .decode(&sealed.cipher.nonce)
        .map_err(|_| malformed("nonce"))?;
    let ciphertext = B64
        .decode(&sealed.ciphertext)
        .map_err(|_| malformed("ciphertext"))?;
    if nonce.len() != 24 {
        return Err(malformed("the nonce is not 24 bytes"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), &salt, &params, key.as_mut())
        .map_err(|_| malformed("scrypt"))?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    /// Seals `key` the way cosign does, with small scrypt parameters.
    fn sealed(key: &SigningKey, password: &str) -> String {
        let der = key.to_pkcs8_der().unwrap();
        let salt = [1u8; 32];
        let nonce = [2u8; 24];
        let mut box_key = [0u8; 32];
        scrypt::scrypt(
            password.as_bytes(),
            &salt,
            &scrypt::Params::new(10, 8, 1, 32).unwrap(),
            &mut box_key,
        )
        .unwrap();
        let ciphertext = XSalsa20Poly1305::new(&box_key.into())
            .encrypt(Nonce::from_slice(&nonce), der.as_bytes())
            .unwrap();
        let json = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1024, "r": 8, "p": 1}, "salt": B64.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": B64.encode(nonce)},
            "ciphertext": B64.encode(ciphertext),
        });
        pem::encode_string(
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            LineEnding::LF,
            json.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn reads_cosign_encrypted_pkcs8_and_sec1_keys() {
        let key = key();
        let encrypted = sealed(&key, "hunter2");
        assert_eq!(signing_key(&encrypted, "hunter2").unwrap(), key);
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(signing_key(&pkcs8, "").unwrap(), key);
        let sec1 = p256::SecretKey::from(&key)
            .to_sec1_pem(LineEnding::CRLF)
            .unwrap();
        let indented: String = sec1.lines().map(|l| format!("    {l}\n")).collect();
        assert_eq!(signing_key(&indented, "").unwrap(), key);
    }

    #[test]
    fn a_wrong_password_or_label_is_named_without_the_key() {
        let encrypted = sealed(&key(), "hunter2");
        let err = signing_key(&encrypted, "nope").unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword), "{err}");
        let public = key()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let err = signing_key(&public, "").unwrap_err().to_string();
        assert!(
            err.contains("`PUBLIC KEY`") && err.contains("ENCRYPTED SIGSTORE"),
            "{err}"
        );
        assert!(matches!(signing_key("hunter2", ""), Err(KeyError::NotPem)));
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_public_key_der() {
        // `openssl ec -pubout -outform DER | sha256sum` of the key whose
        // scalar is 32 bytes of 7, made from its SEC1 DER by hand.
        assert_eq!(
            fingerprint(key().verifying_key()),
            "sha256:ce97ec20d43661a19b215cb2e376a698d0b4aa2aa5b4c7854e916bd05082fcee"
        );
        assert_ne!(
            fingerprint(key().verifying_key()),
            fingerprint(SigningKey::from_slice(&[8u8; 32]).unwrap().verifying_key())
        );
    }

    #[test]
    fn public_keys_only_from_public_pem() {
        let public = key()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(&verifying_key(&public).unwrap(), key().verifying_key());
        let private = key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let err = verifying_key(&private).unwrap_err().to_string();
        assert!(
            err.contains("`PRIVATE KEY`") && err.contains("cosign.pub"),
            "{err}"
        );
    }
}
