//! This replica's record of delivered events, for `dedupe: event_id`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use crate::replay::ReplayCache;

/// How long a delivered event id is remembered for `dedupe: event_id`: Slack retries
/// within minutes (three times: at once, after 1 and after 5 minutes).
pub const DEDUPE_TTL: Duration = Duration::from_secs(3600);

/// The events of each app delivered with a 2xx within [`DEDUPE_TTL`], bounded like the
/// replay cache. An event is kept as a keyed hash of (app, event id): the ids are chosen
/// by whoever holds a signing secret, the hash key by nobody.
#[derive(Debug)]
pub(crate) struct Delivered {
    seen: ReplayCache,
    keys: RandomState,
}

impl Delivered {
    /// A record of at most `capacity` events.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: ReplayCache::new(capacity),
            keys: RandomState::new(),
        }
    }

    fn key(&self, app: &str, event_id: &str) -> [u8; 32] {
        let mut key = [0u8; 32];
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let h = self.keys.hash_one((app, event_id, i));
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        key
    }

    /// Whether `event_id` of `app` was delivered and is still remembered at `now_unix`.
    pub(crate) fn contains(&self, app: &str, event_id: &str, now_unix: i64) -> bool {
        self.seen.contains(&self.key(app, event_id), now_unix)
    }

    /// Remembers that `event_id` of `app` was delivered at `now_unix`.
    pub(crate) fn insert(&self, app: &str, event_id: &str, now_unix: i64) {
        let ttl = i64::try_from(DEDUPE_TTL.as_secs()).unwrap_or(i64::MAX);
        self.seen.check_and_insert(
            &self.key(app, event_id),
            now_unix.saturating_add(ttl),
            now_unix,
        );
    }
}
