//! The bot's own `rate_limits` on a call.

use std::sync::Arc;

use slackgate_policy::{Bot, EgressLimitKey};

use crate::ratelimit::{BucketKey, RateLimiter, Take};

/// Takes one token from each of `bot`'s rate limits for a call to `method` naming
/// `channel` ("" for none); the first exhausted one's Retry-After and label.
pub(super) fn take_limits(
    bot: &Bot,
    method: &str,
    channel: &str,
    limiter: &RateLimiter,
    now: f64,
) -> Option<(u32, Arc<str>)> {
    for (i, rule) in bot.rate_limits.iter().enumerate() {
        let value = match rule.per {
            EgressLimitKey::Bot => "",
            EgressLimitKey::Method => method,
            EgressLimitKey::Channel => channel,
        };
        let key = BucketKey {
            route: &bot.name,
            rule: i,
            per: match rule.per {
                EgressLimitKey::Bot => "egress.bot",
                EgressLimitKey::Method => "egress.method",
                EgressLimitKey::Channel => "egress.channel",
            },
            value,
        };
        if let Take::Limited { retry_after_secs } =
            limiter.take(&key, rule.rate.tokens_per_sec, rule.burst.get(), now)
        {
            return Some((retry_after_secs, Arc::clone(&rule.label)));
        }
    }
    None
}
