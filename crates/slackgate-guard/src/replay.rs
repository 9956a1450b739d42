//! The replay cache: every verified signature is remembered until its timestamp
//! leaves the clock-skew window, after which the timestamp check rejects it anyway.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
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
    hasher: RandomState,
    evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    expiry_by_sig: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
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
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            shards,
            per_shard,
            hasher: RandomState::new(),
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
        let idx = (self.hasher.hash_one(signature) as usize) % self.shards.len();
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
        let idx = (self.hasher.hash_one(key) as usize) % self.shards.len();
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
