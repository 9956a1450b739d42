//! The replay cache: every verified signature is remembered until its timestamp
//! leaves the clock-skew window, after which the timestamp check rejects it anyway.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// A bounded, sharded set of recently seen signatures.
///
/// Memory is bounded by `capacity` entries. Expired entries are purged first; only
/// when every entry is still live is the oldest one evicted, and that is counted in
/// [`ReplayCache::evictions`] because it re-opens a replay window for that request.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: KeyHash,
    evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    expiry_by_sig: HashMap<[u8; 32], i64, KeyHash>,
    order: VecDeque<([u8; 32], i64)>,
}

/// Hashing for the cache's keys. Keys are verified HMAC-SHA256 signatures or keyed
/// (`RandomState`) hashes of event ids, i.e. bytes nobody without a secret can choose,
/// so a seeded mix of the 32 bytes is enough (no SipHash needed against flooding): it is
/// computed three times per fresh request (shard, lookup, insert) plus once per eviction.
#[derive(Debug, Clone, Copy)]
struct KeyHash {
    seed: u64,
}

impl Default for KeyHash {
    fn default() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u8),
        }
    }
}

impl KeyHash {
    fn of(&self, key: &[u8; 32]) -> u64 {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&key[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let mut x = self.seed
            ^ word(0)
            ^ word(1).rotate_left(16)
            ^ word(2).rotate_left(32)
            ^ word(3).rotate_left(48);
        // splitmix64's finalizer: every input bit moves every output bit.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            hash: *self,
            value: 0,
        }
    }
}

/// Hashes one `[u8; 32]` key (the only type the cache stores).
#[derive(Debug)]
struct KeyHasher {
    hash: KeyHash,
    value: u64,
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        match <&[u8; 32]>::try_from(bytes) {
            Ok(key) => self.value = self.hash.of(key),
            // Not reached for [u8; 32] keys; anything else still hashes, just slower.
            Err(_) => {
                for &b in bytes {
                    self.value = (self.value ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
    }

    fn write_usize(&mut self, _len: usize) {
        // The slice length prefix of an array key is always 32.
    }

    fn finish(&self) -> u64 {
        self.value
    }
}

/// What the replay cache said about a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// First sighting within the window; it is now remembered.
    Fresh,
    /// Already seen within the window.
    Replayed,
}

impl ReplayCache {
    /// A cache holding at most `capacity` signatures (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let hasher = KeyHash::default();
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    expiry_by_sig: HashMap::with_hasher(hasher),
                    order: VecDeque::new(),
                })
            })
            .collect();
        Self {
            shards,
            per_shard,
            hasher,
            evictions: AtomicU64::new(0),
        }
    }

    /// Records `signature`, valid until `expires_unix`, unless it was already seen.
    ///
    /// `now_unix` drives purging of expired entries.
    pub fn check_and_insert(
        &self,
        signature: &[u8; 32],
        expires_unix: i64,
        now_unix: i64,
    ) -> ReplayCheck {
        let idx = self.shard_of(signature);
        let Some(shard) = self.shards.get(idx) else {
            return ReplayCheck::Fresh;
        };
        let mut shard = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(&expiry) = shard.expiry_by_sig.get(signature) {
            if expiry >= now_unix {
                return ReplayCheck::Replayed;
            }
        }
        shard.purge_expired(now_unix);
        while shard.expiry_by_sig.len() >= self.per_shard {
            if shard.evict_oldest() {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            } else {
                break;
            }
        }
        shard.expiry_by_sig.insert(*signature, expires_unix);
        shard.order.push_back((*signature, expires_unix));
        ReplayCheck::Fresh
    }

    /// Whether `key` is remembered and still live at `now_unix`, without recording it.
    pub fn contains(&self, key: &[u8; 32], now_unix: i64) -> bool {
        let idx = self.shard_of(key);
        let Some(shard) = self.shards.get(idx) else {
            return false;
        };
        let shard = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard
            .expiry_by_sig
            .get(key)
            .is_some_and(|&expiry| expiry >= now_unix)
    }

    /// Bits 32..36 of the key's hash: apart from the bits the shard's table uses (its
    /// index from the low bits, its tags from the top seven).
    fn shard_of(&self, key: &[u8; 32]) -> usize {
        ((self.hasher.of(key) >> 32) as usize) % self.shards.len()
    }

    /// How many live entries were evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// How many signatures are remembered now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.expiry_by_sig.len(),
                Err(p) => p.into_inner().expiry_by_sig.len(),
            })
            .sum()
    }

    /// Whether no signature is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Drops entries whose window has closed. Entries are pushed in arrival order,
    /// which is close to expiry order; stale ones behind a fresh head go later.
    fn purge_expired(&mut self, now_unix: i64) {
        while let Some(&(sig, expiry)) = self.order.front() {
            if expiry >= now_unix {
                break;
            }
            self.order.pop_front();
            if self.expiry_by_sig.get(&sig) == Some(&expiry) {
                self.expiry_by_sig.remove(&sig);
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((sig, expiry)) = self.order.pop_front() {
            if self.expiry_by_sig.get(&sig) == Some(&expiry) {
                self.expiry_by_sig.remove(&sig);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u32) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[..4].copy_from_slice(&n.to_be_bytes());
        s
    }

    #[test]
    fn second_sighting_is_a_replay() {
        let c = ReplayCache::new(100);
        assert_eq!(c.check_and_insert(&sig(1), 400, 100), ReplayCheck::Fresh);
        assert_eq!(c.check_and_insert(&sig(1), 400, 399), ReplayCheck::Replayed);
    }

    #[test]
    fn entries_expire_with_the_window() {
        let c = ReplayCache::new(100);
        c.check_and_insert(&sig(1), 400, 100);
        assert_eq!(c.check_and_insert(&sig(1), 800, 401), ReplayCheck::Fresh);
    }

    #[test]
    fn memory_is_bounded_and_evictions_counted() {
        let c = ReplayCache::new(32);
        for n in 0..1000 {
            c.check_and_insert(&sig(n), 10_000, 100);
        }
        assert!(c.len() <= 32 + SHARDS);
        assert!(c.evictions() > 0);
    }

    #[test]
    fn keys_differing_in_any_byte_spread_over_shards_and_hash_differently() {
        let c = ReplayCache::new(1 << 16);
        for byte in 0..32 {
            let mut shards = std::collections::HashSet::new();
            let mut hashes = std::collections::HashSet::new();
            for v in 0..=255u8 {
                let mut k = [7u8; 32];
                k[byte] = v;
                shards.insert(c.shard_of(&k));
                hashes.insert(c.hasher.of(&k));
            }
            assert_eq!(shards.len(), SHARDS, "byte {byte}");
            assert_eq!(hashes.len(), 256, "byte {byte}");
        }
    }

    #[test]
    fn expired_entries_are_purged_before_evicting() {
        let c = ReplayCache::new(1024);
        for n in 0..300 {
            c.check_and_insert(&sig(n), 150, 100);
        }
        for n in 1000..1300 {
            c.check_and_insert(&sig(n), 500, 200);
        }
        assert_eq!(c.evictions(), 0);
    }
}
