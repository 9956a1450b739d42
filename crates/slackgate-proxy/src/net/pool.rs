//! The idle keep-alive connections of one destination, for both HTTP clients: a bot's
//! target (`inbound::upstream::Target`) and Slack (`net::slack_client::SlackClient`).
//!
//! Most recently used first. A connection is handed out only when it has been idle no
//! longer than the caller allows and is clean ([`Pooled::is_clean`]: nothing unread
//! arrived on it and the peer did not close it); anything else is dropped on the way. At
//! most `max` connections wait; one more is closed instead.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::net::client::Conn;

/// What the pool asks of a connection.
pub(crate) trait Pooled {
    /// Whether it can carry a request (see [`Conn::is_clean`]).
    fn is_clean(&self) -> bool;
    /// Whether, idle since it was last marked, it is idle longer than `max` at `now`.
    fn idle_longer_than(&self, max: Duration, now: Instant) -> bool;
    /// Marks it idle from `since` on.
    fn mark_idle(&mut self, since: Instant);
}

impl Pooled for Conn {
    #[inline]
    fn is_clean(&self) -> bool {
        Conn::is_clean(self)
    }

    #[inline]
    fn idle_longer_than(&self, max: Duration, now: Instant) -> bool {
        Conn::idle_longer_than(self, max, now)
    }

    #[inline]
    fn mark_idle(&mut self, since: Instant) {
        Conn::mark_idle(self, since);
    }
}

/// The idle connections of one destination.
#[derive(Debug)]
pub(crate) struct IdlePool<C = Conn> {
    idle: Mutex<Vec<C>>,
    max: usize,
}

impl<C: Pooled> IdlePool<C> {
    /// An empty pool keeping at most `max` idle connections.
    pub(crate) const fn new(max: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max,
        }
    }

    /// The most recently used connection that is idle at most `max_idle` at `now` and
    /// clean. The check runs outside the lock: an expired connection, or one the peer
    /// closed or wrote to while it was idle, is dropped, never used.
    #[inline]
    pub(crate) fn checkout(&self, max_idle: Duration, now: Instant) -> Option<C> {
        loop {
            let conn = self.idle.lock().pop()?;
            if !conn.idle_longer_than(max_idle, now) && conn.is_clean() {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection that can carry another request, idle from `since` (a time the
    /// caller already read, at or before the end of its last exchange); closes it when
    /// the pool is full.
    #[inline]
    pub(crate) fn checkin(&self, mut conn: C, since: Instant) {
        conn.mark_idle(since);
        let mut idle = self.idle.lock();
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Fake {
        id: u32,
        clean: bool,
        since: Option<Instant>,
    }

    impl Pooled for Fake {
        fn is_clean(&self) -> bool {
            self.clean
        }

        fn idle_longer_than(&self, max: Duration, now: Instant) -> bool {
            self.since
                .is_some_and(|s| now.saturating_duration_since(s) > max)
        }

        fn mark_idle(&mut self, since: Instant) {
            self.since = Some(since);
        }
    }

    fn fake(id: u32, clean: bool) -> Fake {
        Fake {
            id,
            clean,
            since: None,
        }
    }

    #[test]
    fn the_most_recent_clean_fresh_connection_comes_out_and_the_rest_is_dropped() {
        let pool = IdlePool::new(8);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        pool.checkin(fake(1, true), t0);
        pool.checkin(fake(2, true), later);
        pool.checkin(fake(3, false), later);
        // 3 is not clean (dropped), 2 is the most recent clean one.
        let max = Duration::from_secs(5);
        let at = later + Duration::from_secs(1);
        assert_eq!(pool.checkout(max, at).map(|c| c.id), Some(2));
        // 1 has been idle 11 s, over the 5 allowed: dropped, and the pool is empty.
        assert!(pool.checkout(max, at).is_none());
        assert!(pool.idle.lock().is_empty());
    }

    #[test]
    fn a_full_pool_closes_what_comes_back() {
        let pool = IdlePool::new(2);
        let now = Instant::now();
        for id in 1..=3 {
            pool.checkin(fake(id, true), now);
        }
        let kept: Vec<u32> = pool.idle.lock().iter().map(|c| c.id).collect();
        assert_eq!(kept, [1, 2]);
        assert_eq!(
            pool.checkout(Duration::from_secs(1), now).map(|c| c.since),
            Some(Some(now)),
            "marked idle from the time given"
        );
    }
}
