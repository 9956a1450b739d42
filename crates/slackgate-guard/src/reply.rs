//! `reply_scope`: the channels that sent an app a verified inbound request, and when.
//!
//! A bot with `reply_scope: 10m` may write into a conversation (every method that writes
//! into one: `slackgate_slack::conversation_use`) only when that channel sent its app a
//! verified request within the last 10 minutes that the gateway forwarded to the bot. Every
//! such inbound request that names a channel is recorded here, for apps that some bot's
//! `reply_scope` reads; a denied one is not (it reached no bot, so nothing is a reply to it).
//!
//! This is the replica's own record. With the Redis backend the proxy shares it: each
//! recorded channel is written to Redis, and a replica that would deny a reply by
//! `reply_scope` first reads the channel there and adopts what another replica saw
//! ([`Guard::note_reply_seen`](crate::Guard::note_reply_seen)).

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;

/// The most (app, channel) pairs remembered; beyond it expired ones go first, then the
/// oldest.
const MAX_CHANNELS: usize = 100_000;

/// The longest `reply_scope` is not known here, so the pairs a full map drops first are
/// those older than this (a day).
const STALE_SECS: f64 = 86_400.0;

/// An app by name and a channel id.
type AppChannel = (Arc<str>, Box<str>);

/// Last verified inbound request per (app, channel), in seconds.
#[derive(Debug, Default)]
pub struct ReplyChannels {
    seen: Mutex<HashMap<AppChannel, f64>>,
}

impl ReplyChannels {
    fn lock(&self) -> MutexGuard<'_, HashMap<AppChannel, f64>> {
        self.seen.lock()
    }

    /// Records that `channel` sent `app` a verified request at `now`.
    pub fn note(&self, app: &Arc<str>, channel: &str, now: f64) {
        let mut map = self.lock();
        if map.len() >= MAX_CHANNELS {
            map.retain(|_, at| now - *at < STALE_SECS);
            if map.len() >= MAX_CHANNELS {
                if let Some(k) = map
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&k);
                }
            }
        }
        let at = map
            .entry((Arc::clone(app), Box::from(channel)))
            .or_insert(now);
        *at = at.max(now);
    }

    /// Whether `channel` sent `app` a verified request within `window_secs` before `now`.
    pub fn seen_within(&self, app: &Arc<str>, channel: &str, window_secs: f64, now: f64) -> bool {
        let key = (Arc::clone(app), Box::from(channel));
        self.lock()
            .get(&key)
            .is_some_and(|at| now - *at <= window_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_in_scope_within_the_window_only() {
        let r = ReplyChannels::default();
        let app: Arc<str> = Arc::from("helpdesk");
        let other: Arc<str> = Arc::from("reports");
        r.note(&app, "C0HELP", 1000.0);
        assert!(r.seen_within(&app, "C0HELP", 600.0, 1599.0));
        assert!(!r.seen_within(&app, "C0HELP", 600.0, 1601.0));
        assert!(!r.seen_within(&app, "C0OPS", 600.0, 1001.0));
        assert!(!r.seen_within(&other, "C0HELP", 600.0, 1001.0));
        // A later request moves the window; an older one does not move it back.
        r.note(&app, "C0HELP", 1500.0);
        r.note(&app, "C0HELP", 1200.0);
        assert!(r.seen_within(&app, "C0HELP", 600.0, 2000.0));
    }
}
