//! Rotated token pairs at rest: sealed with `state.encryption_key` (ChaCha20-Poly1305,
//! a fresh nonce per write, the bot and client id as associated data).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use slackgate_policy::StateKey;

/// The header of a sealed pair: a name and a format version.
const MAGIC: &[u8; 4] = b"SGT1";

/// Seals and opens stored pairs with `state.encryption_key`.
pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(key not shown)")
    }
}

/// The associated data of a bot's pair: a pair sealed for one bot and app does not open
/// as another's.
pub(super) fn aad(bot: &str, client_id: &str) -> Vec<u8> {
    let mut a = b"slackgate/token/v1\0".to_vec();
    a.extend_from_slice(bot.as_bytes());
    a.push(0);
    a.extend_from_slice(client_id.as_bytes());
    a
}

/// Why a pair could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SealError {
    /// No nonce could be drawn.
    #[error("the system random source failed")]
    Random,
    /// ring refused to seal.
    #[error("sealing failed")]
    Seal,
}

impl Sealer {
    pub(crate) fn new(key: &StateKey) -> Self {
        // A 32-byte key is what ChaCha20-Poly1305 takes; `new` fails only on another length.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key.expose())
            .expect("a 32-byte key is a ChaCha20-Poly1305 key");
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// `MAGIC || nonce || ciphertext || tag`, with a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// The plaintext, or `None` when the bytes are not a pair sealed with this key for
    /// this associated data.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(MAGIC)?;
        let (nonce, ct) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A token pair as stored (sealed). `Debug` shows no token.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Pair {
    pub(super) access_token: String,
    pub(super) refresh_token: String,
    /// Unix seconds.
    pub(super) obtained_at: i64,
    /// Unix seconds.
    pub(super) expires_at: i64,
    /// Hex of the `rotation:` fingerprint the pair descends from: a new first refresh
    /// token (or client id) in the policy starts over from it.
    pub(super) origin: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// The access token calls are sent with.
    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    /// When the refresher trades it in: half-way through its life.
    pub(super) fn refresh_at(&self) -> i64 {
        self.obtained_at + (self.expires_at - self.obtained_at).max(0) / 2
    }

    /// True when `other` was minted after this one.
    pub(super) fn is_older_than(&self, other: &Pair) -> bool {
        other.refresh_token != self.refresh_token && other.obtained_at >= self.obtained_at
    }
}
