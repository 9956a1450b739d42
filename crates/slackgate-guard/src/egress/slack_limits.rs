//! [`SlackLimits`]: Slack's own 429s, remembered per bot and method.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The most (bot, method) pairs remembered as limited by Slack; the oldest deadline is
/// dropped first beyond it. Bots x methods is small in practice.
const MAX_SLACK_LIMITS: usize = 10_000;

/// Per bot, per method: until when (seconds) Slack's 429 holds.
type Deadlines = HashMap<Arc<str>, HashMap<Box<str>, f64>>;

/// Slack's 429s, per bot and method: until when calls are answered locally.
///
/// Nested by bot, then method, so a lookup borrows the names and allocates nothing; until
/// Slack first answers 429, a call takes no lock at all.
#[derive(Debug, Default)]
pub struct SlackLimits {
    until: Mutex<Deadlines>,
    /// Set once any deadline was recorded.
    any: std::sync::atomic::AtomicBool,
}

impl SlackLimits {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Deadlines> {
        self.until.lock()
    }

    /// Records that Slack answered `bot`'s call to `method` 429 with `retry_after_secs`
    /// at `now` (seconds).
    pub fn note(&self, bot: &Arc<str>, method: &str, retry_after_secs: u32, now: f64) {
        let mut map = self.lock();
        let count: usize = map.values().map(HashMap::len).sum();
        if count >= MAX_SLACK_LIMITS {
            for methods in map.values_mut() {
                methods.retain(|_, until| *until > now);
            }
            map.retain(|_, methods| !methods.is_empty());
            let count: usize = map.values().map(HashMap::len).sum();
            if count >= MAX_SLACK_LIMITS {
                let oldest = map
                    .iter()
                    .flat_map(|(b, ms)| ms.iter().map(move |(m, u)| (b, m, *u)))
                    .min_by(|a, b| a.2.total_cmp(&b.2))
                    .map(|(b, m, _)| (Arc::clone(b), m.clone()));
                if let Some((b, m)) = oldest {
                    if let Some(ms) = map.get_mut(&b) {
                        ms.remove(&m);
                    }
                }
            }
        }
        let until = now + f64::from(retry_after_secs.max(1));
        let entry = map
            .entry(Arc::clone(bot))
            .or_default()
            .entry(Box::from(method))
            .or_insert(until);
        *entry = entry.max(until);
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Seconds left (rounded up, at least 1) while `bot`'s calls to `method` are limited.
    pub fn remaining(&self, bot: &Arc<str>, method: &str, now: f64) -> Option<u32> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let mut map = self.lock();
        let methods = map.get_mut(&**bot)?;
        let until = *methods.get(method)?;
        if until <= now {
            methods.remove(method);
            return None;
        }
        Some(((until - now).ceil() as u32).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_limits_stay_bounded() {
        let s = SlackLimits::default();
        let bot: Arc<str> = Arc::from("b");
        for i in 0..=MAX_SLACK_LIMITS {
            s.note(&bot, &format!("m{i}"), 30, 100.0 + i as f64);
        }
        let count: usize = s.lock().values().map(HashMap::len).sum();
        assert!(count <= MAX_SLACK_LIMITS, "{count}");
        // The oldest went first; the newest is remembered.
        assert_eq!(s.remaining(&bot, "m0", 101.0), None);
        let last = format!("m{MAX_SLACK_LIMITS}");
        assert!(s
            .remaining(&bot, &last, 100.0 + MAX_SLACK_LIMITS as f64)
            .is_some());
    }

    #[test]
    fn slack_limits_expire() {
        let s = SlackLimits::default();
        let bot: Arc<str> = Arc::from("b");
        s.note(&bot, "chat.postMessage", 30, 100.0);
        assert_eq!(s.remaining(&bot, "chat.postMessage", 100.5), Some(30));
        assert_eq!(s.remaining(&bot, "chat.update", 100.5), None);
        assert_eq!(s.remaining(&bot, "chat.postMessage", 130.0), None);
    }
}
