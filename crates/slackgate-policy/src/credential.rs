//! A credential value read from a reference ([`Credential`]): a gateway key, a bot token,
//! an app token. Its `Debug` never shows the value; [`Credential::expose`] is the one way
//! to read it, called where the value is written to its one destination. Bots (`bots.rs`)
//! and apps (`apps.rs`, the Socket Mode app token) both hold them.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::secrets::SecretRef;

/// A credential value (a gateway key or a Slack token) read from a reference.
#[derive(Clone)]
pub struct Credential {
    value: Arc<str>,
    /// Where the value was read from.
    pub source: SecretRef,
    /// See [`Credential::fingerprint`]; computed once, at load.
    fingerprint: [u8; 32],
}

impl Credential {
    pub(crate) fn new(value: String, source: SecretRef) -> Self {
        let fingerprint = fingerprint(&source, &value);
        Self {
            value: Arc::from(value),
            source,
            fingerprint,
        }
    }

    /// The value. Call it only where the value is written to its one destination.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A SHA-256 over where the value is read from and the value itself: it changes
    /// when either does, and shows nothing of the value. The gateway keys state that
    /// belongs to one token (its revocation) on it, so a new token starts clean.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// The SHA-256 of the value (what keys are compared by).
    pub(crate) fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.value.as_bytes()).into()
    }
}

/// See [`Credential::fingerprint`].
fn fingerprint(source: &SecretRef, value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    match source {
        SecretRef::Env(name) => {
            h.update(b"env:");
            h.update(name.as_bytes());
        }
        SecretRef::File(path) => {
            h.update(b"file:");
            h.update(path.as_os_str().as_encoded_bytes());
        }
    }
    // Neither an env name nor a path holds a NUL byte: the two parts cannot run together.
    h.update([0u8]);
    h.update(value.as_bytes());
    h.finalize().into()
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("value", &"(not shown)")
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_changes_with_the_value_or_the_source() {
        let env = |n: &str| SecretRef::Env(n.to_owned());
        let a = Credential::new("xoxb-1".to_owned(), env("TOKEN"));
        let same = Credential::new("xoxb-1".to_owned(), env("TOKEN"));
        let new_value = Credential::new("xoxb-2".to_owned(), env("TOKEN"));
        let new_source = Credential::new("xoxb-1".to_owned(), env("OTHER"));
        let file = Credential::new("xoxb-1".to_owned(), SecretRef::File("TOKEN".into()));
        assert_eq!(a.fingerprint(), same.fingerprint());
        assert_ne!(a.fingerprint(), new_value.fingerprint());
        assert_ne!(a.fingerprint(), new_source.fingerprint());
        assert_ne!(a.fingerprint(), file.fingerprint());
        assert_ne!(*a.fingerprint(), a.digest());
    }
}
