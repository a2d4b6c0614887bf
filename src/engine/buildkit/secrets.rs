//! Build secrets as the session hands them to `RUN --mount=type=secret`.
//!
//! The values are wiped from memory when dropped and never printed: `Debug`
//! shows the ids only, so a stray `{:?}` in a log or an error cannot leak one.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

/// One secret's bytes. Cloning copies into another wiped buffer.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretValue(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The secrets of one build, by id (the `id=` of `--mount=type=secret`).
#[derive(Clone, Default)]
pub struct BuildSecrets(HashMap<String, SecretValue>);

impl BuildSecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the secret `id`.
    pub fn insert(&mut self, id: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.insert(id.into(), SecretValue::new(value));
    }

    pub fn get(&self, id: &str) -> Option<&SecretValue> {
        self.0.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, sorted (safe to show: an id is a name, not a value).
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.0.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

impl fmt::Debug for BuildSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSecrets")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl<I: Into<String>, V: Into<Vec<u8>>> FromIterator<(I, V)> for BuildSecrets {
    fn from_iter<T: IntoIterator<Item = (I, V)>>(iter: T) -> Self {
        let mut secrets = BuildSecrets::new();
        for (id, value) in iter {
            secrets.insert(id, value);
        }
        secrets
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_ids_never_values() {
        let secrets: BuildSecrets = [("token", "s3cr3t-value"), ("npmrc", "other-value")]
            .into_iter()
            .collect();
        let shown = format!("{secrets:?} {:?}", secrets.get("token"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("other-value"), "{shown}");
        assert!(shown.contains("\"npmrc\", \"token\""), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn insert_replaces_and_exposes_bytes() {
        let mut secrets = BuildSecrets::new();
        assert!(secrets.is_empty());
        secrets.insert("token", "old");
        secrets.insert("token", b"new".to_vec());
        assert_eq!(
            secrets.get("token").map(SecretValue::expose),
            Some(&b"new"[..])
        );
        assert!(secrets.get("other").is_none());
    }
}
