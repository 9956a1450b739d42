//! Slack's pacing (`egress.pacing`): each call of a method in Slack's tier table
//! ([`slack_pace`]) takes from a bucket of its bot and method (for `chat.postMessage`:
//! its bot and channel) that refills at the tier's documented rate. An empty bucket holds
//! the call back until it would refill, up to `max_wait`; past that the call is answered
//! `slack_rate_limited` (rule `slack pacing: <tier>`) before Slack would answer 429.
//!
//! With the Redis backend the bucket is every replica's (taken in the same script as the
//! bot's own buckets, see `shared.rs`); this module is the replica's own, used without
//! Redis or when Redis fails.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use slackgate_slack::{slack_pace, Pace};

use crate::core::redis::GateBucket;

/// The most buckets one replica keeps; full ones are dropped first beyond it.
const MAX_BUCKETS: usize = 10_000;

/// The pacing bucket of a call: Slack's limit for `method`, its key parts, its rate.
pub(crate) struct Paced {
    pub(crate) pace: Pace,
    pub(crate) parts: Vec<String>,
}

impl Paced {
    /// The bucket of `method` (charged to `channel`), when Slack's table knows it.
    pub(crate) fn of(method: &str, channel: &str) -> Option<Self> {
        let pace = slack_pace(method)?;
        let mut parts = vec!["pace".to_owned(), method.to_owned()];
        if pace.per_channel {
            parts.push(channel.to_owned());
        }
        Some(Self { pace, parts })
    }

    fn rate(&self) -> f64 {
        f64::from(self.pace.per_minute) / 60.0
    }

    /// The shared bucket, for the gate.
    pub(crate) fn bucket(&self, max_wait: Duration) -> GateBucket {
        GateBucket {
            parts: self.parts.clone(),
            rate: self.rate(),
            burst: self.pace.burst,
            max_wait,
        }
    }

    /// The audit rule of a call refused by it.
    pub(crate) fn rule(&self) -> String {
        format!("slack pacing: {}", self.pace.tier)
    }
}

/// A bucket's key: the bot and the key parts.
type BucketId = (String, Vec<String>);

/// This replica's own pacing buckets: tokens left and when they were counted.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Mutex<HashMap<BucketId, (f64, Instant)>>,
}

impl Pacer {
    /// Takes from `bot`'s bucket `paced`: the wait before sending, or the seconds until it
    /// could go within `max_wait`.
    pub(crate) fn take(
        &self,
        bot: &str,
        paced: &Paced,
        max_wait: Duration,
    ) -> Result<Duration, u32> {
        let now = Instant::now();
        let (rate, burst) = (paced.rate(), f64::from(paced.pace.burst.max(1)));
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, (tokens, ts)| {
                *tokens + now.duration_since(*ts).as_secs_f64() * rate < burst
            });
        }
        let (tokens, ts) = buckets
            .entry((bot.to_owned(), paced.parts.clone()))
            .or_insert((burst, now));
        let have = (*tokens + now.duration_since(*ts).as_secs_f64() * rate).min(burst);
        let need = (1.0 - have) / rate;
        if have < 1.0 && need > max_wait.as_secs_f64() {
            let secs = (need - max_wait.as_secs_f64()).ceil().max(1.0);
            return Err(secs as u32);
        }
        *tokens = have - 1.0;
        *ts = now;
        Ok(Duration::from_secs_f64(need.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_gets_one_message_a_second_held_back_up_to_the_wait() {
        let p = Pacer::default();
        let post = Paced::of("chat.postMessage", "C1").unwrap_or_else(|| unreachable!());
        let wait = Duration::from_millis(1500);
        assert_eq!(p.take("b", &post, wait), Ok(Duration::ZERO));
        let second = p.take("b", &post, wait).unwrap_or_default();
        assert!(second > Duration::from_millis(900), "{second:?}");
        // The third would wait about two seconds: more than the most wait.
        assert_eq!(p.take("b", &post, wait), Err(1));
        // Another channel is another bucket.
        let other = Paced::of("chat.postMessage", "C2").unwrap_or_else(|| unreachable!());
        assert_eq!(p.take("b", &other, wait), Ok(Duration::ZERO));
        assert!(Paced::of("made.up", "C1").is_none());
    }
}
