//! The replay cache: every verified signature is remembered until its timestamp
//! leaves the clock-skew window, after which the timestamp check rejects it anyway.

use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 16;
/// Slots a shard's table starts with; it doubles whenever it becomes half full.
const MIN_SLOTS: usize = 256;

/// A bounded, sharded set of recently seen signatures.
///
/// Memory is bounded by `capacity` entries. Expired entries are purged first; only
/// when every entry is still live is the oldest one evicted, and that is counted in
/// [`ReplayCache::evictions`] because it re-opens a replay window for that request.
///
/// An entry is the 64-bit seeded hash of its key and an expiry, 16 bytes in an
/// open-addressing table (linear probing, deletion by shifting back, so no tombstones),
/// plus 16 bytes in the arrival queue: a lookup touches one cache line, where a map of
/// 32-byte keys touched several per request and was the gateway's largest own cost after
/// the HMAC. Two different keys share a hash with probability 2^-64 per pair; the seed is
/// secret and the keys are HMAC outputs, so nobody can aim for that.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: KeyHash,
    evictions: AtomicU64,
}

#[derive(Debug)]
struct Shard {
    table: Table,
    order: VecDeque<(u64, i64)>,
}

/// Open addressing over `[hash, expiry]` pairs; hash 0 marks an empty slot.
#[derive(Debug)]
struct Table {
    slots: Box<[[u64; 2]]>,
    len: usize,
}

/// Hashing for the cache's keys. Keys are verified HMAC-SHA256 signatures or keyed
/// (`RandomState`) hashes of event ids, i.e. bytes nobody without a secret can choose,
/// so a seeded mix of the 32 bytes is enough (no SipHash needed against flooding). It is
/// computed once per request: its bits 32.. pick the shard, its low bits the slot.
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
    /// The key's hash, never 0 (the empty-slot mark).
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
        (x ^ (x >> 31)).max(1)
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
                    table: Table::new(),
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
        let hash = self.hasher.of(signature);
        let Some(shard) = self.shards.get(Self::shard_of(hash)) else {
            return ReplayCheck::Fresh;
        };
        let mut shard = shard.lock();
        if shard
            .table
            .get(hash)
            .is_some_and(|expiry| expiry >= now_unix)
        {
            return ReplayCheck::Replayed;
        }
        shard.purge_expired(now_unix);
        while shard.table.len >= self.per_shard {
            if shard.evict_oldest() {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            } else {
                break;
            }
        }
        shard.table.insert(hash, expires_unix);
        shard.order.push_back((hash, expires_unix));
        ReplayCheck::Fresh
    }

    /// Whether `key` is remembered and still live at `now_unix`, without recording it.
    pub fn contains(&self, key: &[u8; 32], now_unix: i64) -> bool {
        let hash = self.hasher.of(key);
        let Some(shard) = self.shards.get(Self::shard_of(hash)) else {
            return false;
        };
        let shard = shard.lock();
        shard
            .table
            .get(hash)
            .is_some_and(|expiry| expiry >= now_unix)
    }

    /// Bits 32..36 of the key's hash: apart from the low bits the shard's table indexes by.
    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) % SHARDS
    }

    /// How many live entries were evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// How many signatures are remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().table.len).sum()
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
        while let Some(&(hash, expiry)) = self.order.front() {
            if expiry >= now_unix {
                break;
            }
            self.order.pop_front();
            self.table.remove_if(hash, expiry);
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((hash, expiry)) = self.order.pop_front() {
            if self.table.remove_if(hash, expiry) {
                return true;
            }
        }
        false
    }
}

impl Table {
    fn new() -> Self {
        Self {
            slots: vec![[0u64; 2]; MIN_SLOTS].into_boxed_slice(),
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `hash`, or the empty slot where the probe for it ends.
    fn probe(&self, hash: u64) -> usize {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        // The table is at most half full, so an empty slot always ends the probe.
        loop {
            match self.slots.get(i) {
                Some(&[h, _]) if h != 0 && h != hash => i = (i + 1) & mask,
                _ => return i,
            }
        }
    }

    fn get(&self, hash: u64) -> Option<i64> {
        match self.slots.get(self.probe(hash)) {
            Some(&[h, expiry]) if h == hash => Some(expiry as i64),
            _ => None,
        }
    }

    /// Sets the expiry of `hash`, adding it if absent.
    fn insert(&mut self, hash: u64, expiry: i64) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.probe(hash);
        if let Some(slot) = self.slots.get_mut(i) {
            if slot[0] == 0 {
                self.len += 1;
            }
            *slot = [hash, expiry as u64];
        }
    }

    /// Removes `hash` if it is held with exactly this expiry (a later sighting re-added it
    /// with another one, which its own queue entry will remove).
    fn remove_if(&mut self, hash: u64, expiry: i64) -> bool {
        let mask = self.mask();
        let mut hole = self.probe(hash);
        match self.slots.get(hole) {
            Some(&[h, e]) if h == hash && e as i64 == expiry => {}
            _ => return false,
        }
        // Shift later members of the cluster back into the hole when their home slot
        // does not lie cyclically between the hole and their own slot.
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let Some(&[h, e]) = self.slots.get(next) else {
                break;
            };
            if h == 0 {
                break;
            }
            let home = h as usize & mask;
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = [h, e];
                }
                hole = next;
            }
        }
        if let Some(slot) = self.slots.get_mut(hole) {
            *slot = [0, 0];
        }
        self.len -= 1;
        true
    }

    fn grow(&mut self) {
        let doubled = vec![[0u64; 2]; self.slots.len() * 2].into_boxed_slice();
        let old = std::mem::replace(&mut self.slots, doubled);
        self.len = 0;
        for [h, e] in old.iter().copied() {
            if h != 0 {
                self.insert(h, e as i64);
            }
        }
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

    /// The cache's rules written plainly over whole keys: the model the table must match.
    #[derive(Default)]
    struct Model {
        expiry_by_key: std::collections::HashMap<[u8; 32], i64>,
        order: VecDeque<([u8; 32], i64)>,
        evictions: u64,
    }

    impl Model {
        fn check_and_insert(
            &mut self,
            per_shard: usize,
            key: [u8; 32],
            expires: i64,
            now: i64,
        ) -> ReplayCheck {
            if self.expiry_by_key.get(&key).is_some_and(|&e| e >= now) {
                return ReplayCheck::Replayed;
            }
            while let Some(&(k, e)) = self.order.front() {
                if e >= now {
                    break;
                }
                self.order.pop_front();
                if self.expiry_by_key.get(&k) == Some(&e) {
                    self.expiry_by_key.remove(&k);
                }
            }
            while self.expiry_by_key.len() >= per_shard {
                let Some((k, e)) = self.order.pop_front() else {
                    break;
                };
                if self.expiry_by_key.get(&k) == Some(&e) {
                    self.expiry_by_key.remove(&k);
                    self.evictions += 1;
                }
            }
            self.expiry_by_key.insert(key, expires);
            self.order.push_back((key, expires));
            ReplayCheck::Fresh
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// One shard's worth of traffic (keys are sorted into shards by the cache, so the
        /// model is kept per shard): answers, sizes and evictions match the plain model,
        /// through growth, clusters, purges and evictions.
        #[test]
        fn the_table_behaves_like_the_plain_model(
            ops in proptest::collection::vec((0u16..4000, 0i64..40, 0i64..3), 1..4000),
            capacity in 16usize..6000,
        ) {
            let cache = ReplayCache::new(capacity);
            let mut models: Vec<Model> = (0..SHARDS).map(|_| Model::default()).collect();
            let mut now = 0;
            for (n, ttl, step) in ops {
                now += step;
                let mut key = [0u8; 32];
                key[..2].copy_from_slice(&n.to_le_bytes());
                let shard = ReplayCache::shard_of(cache.hasher.of(&key));
                let expected = models[shard].check_and_insert(cache.per_shard, key, now + ttl, now);
                proptest::prop_assert_eq!(cache.check_and_insert(&key, now + ttl, now), expected);
                proptest::prop_assert_eq!(cache.contains(&key, now), true);
            }
            let len: usize = models.iter().map(|m| m.expiry_by_key.len()).sum();
            let evictions: u64 = models.iter().map(|m| m.evictions).sum();
            proptest::prop_assert_eq!(cache.len(), len);
            proptest::prop_assert_eq!(cache.evictions(), evictions);
            for (i, m) in models.iter().enumerate() {
                for (key, &e) in &m.expiry_by_key {
                    proptest::prop_assert_eq!(cache.contains(key, now), e >= now, "shard {}", i);
                }
            }
        }
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
                shards.insert(ReplayCache::shard_of(c.hasher.of(&k)));
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
