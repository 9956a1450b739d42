//! With the Redis backend, the egress door's state is every replica's:
//!
//! - **One gate per call**: a call this replica's guard allows then passes, in one
//!   script on one cluster slot, Slack's 429 deadline for its bot and method as any
//!   replica saw it (`slack_rate_limited`) and the bot's `rate_limits` buckets shared by
//!   every replica (`rate_limited`), all or nothing. A Redis failure leaves this replica's
//!   own decision (its own buckets and deadlines still hold), counted in
//!   `slackgate_state_fallbacks_total{op="rate_limit"}`.
//! - **Slack's pacing** (`egress.pacing`, `pacing.rs`): the call's tier bucket is taken in
//!   the same script, so that every replica together keeps to Slack's documented rate.
//! - **Custody capabilities** (`crate::core::held`): a post to a response URL spends one of
//!   its uses in the same script (five across replicas), and a workflow key's call is
//!   refused there once its function execution ended on any replica.
//! - **Slack's 429s**: written for every replica (`SET … PX retry_after`) when Slack
//!   answers one, before the bot has the answer.
//! - **The scope ledger**: every answer's scope headers are noted for every replica, in
//!   the background; [`ScopeSync`] reads the shared view of each bot every second, so
//!   that `/status` and `slackgate_egress_unused_scopes` agree on every replica.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use slackgate_guard::{EgressDecision, EgressReason, StateOp};
use slackgate_policy::{Bot, EgressLimitKey};

use super::pacing::Paced;
use super::scopes::{accepted_granted, ScopeLedger};
use crate::core::redis::{Gate, GateBucket, HeldKey, RedisState};
use crate::core::state::Shared;

/// How often every replica reads the shared scope ledger.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The buckets of `bot`'s `rate_limits` for a call to `method` charged to `channel`,
/// keyed as the guard keys them.
fn rate_limit_buckets(bot: &Bot, method: &str, channel: &str) -> Vec<GateBucket> {
    bot.rate_limits
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let (per, value) = match rule.per {
                EgressLimitKey::Bot => ("bot", ""),
                EgressLimitKey::Method => ("method", method),
                EgressLimitKey::Channel => ("channel", channel),
            };
            GateBucket {
                parts: vec!["rl".into(), i.to_string(), per.into(), value.into()],
                rate: rule.rate.tokens_per_sec,
                burst: rule.burst.get(),
                max_wait: Duration::ZERO,
            }
        })
        .collect()
}

/// A call the shared gate let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Passed {
    /// How long to wait before sending it (zero but for pacing).
    pub(crate) wait: Duration,
    /// Whether the response URL it goes with had a use spent in Redis (else this
    /// replica's own count decides).
    pub(crate) counted: bool,
}

/// Passes an allowed call `d` through the gate every replica shares, with its pacing
/// bucket and most wait when Slack's pacing applies, and the response URL `respond` it
/// posts to (a use is spent with the buckets) or the function execution of its workflow
/// key (refused once ended on any replica). `d` becomes the refusal when the gate
/// refuses. `None`: there is no Redis, or it failed (counted as a fallback), and this
/// replica's own decision stands.
pub(crate) async fn gate(
    shared: &Shared,
    d: &mut EgressDecision,
    paced: Option<(&Paced, Duration)>,
    respond: Option<&str>,
) -> Option<Passed> {
    let redis = shared.remote.as_deref()?;
    let go = Passed {
        wait: Duration::ZERO,
        counted: false,
    };
    let (Some(bot), Some(method)) = (d.bot.clone(), d.method.clone()) else {
        return Some(go);
    };
    if d.reason != EgressReason::Allowed {
        return Some(go);
    }
    let channel = d.channel_id.as_deref().unwrap_or("");
    let mut buckets = rate_limit_buckets(&bot, &method, channel);
    if let Some((p, max_wait)) = paced {
        buckets.push(p.bucket(max_wait));
    }
    let execution = d
        .workflow
        .as_ref()
        .map(|w| Arc::clone(&w.function_execution_id));
    let held = match (respond, &execution) {
        (Some(cap), _) => Some(HeldKey::Response(cap)),
        (None, Some(id)) => Some(HeldKey::Execution(id)),
        (None, None) => None,
    };
    match redis.egress_gate(&bot.name, &method, &buckets, held).await {
        Ok(Gate::Go(wait, counted)) => Some(Passed { wait, counted }),
        Ok(Gate::Spent) => {
            if let Some(id) = &execution {
                // Ended on another replica: ended here too, and the key names nobody.
                shared.guard.custody().end_function_execution(id);
                d.bot = None;
                d.workflow = None;
                d.reason = EgressReason::UnknownBot;
                d.rule = Some(Arc::from("key"));
            } else {
                d.reason = EgressReason::ResponseUrlInvalid;
                d.rule = Some(Arc::from("capability"));
            }
            Some(go)
        }
        Ok(Gate::SlackLimited(secs)) => {
            shared.guard.note_slack_rate_limit(&bot.name, &method, secs);
            refuse_slack(d, secs, "slack retry_after");
            Some(go)
        }
        Ok(Gate::Limited {
            index,
            retry_after_secs,
        }) => {
            match bot.rate_limits.get(index) {
                Some(rule) => {
                    d.reason = EgressReason::RateLimited;
                    d.retry_after_secs = Some(retry_after_secs);
                    d.rule = Some(Arc::clone(&rule.label));
                }
                None => {
                    let rule = paced.map_or_else(|| "slack pacing".to_owned(), |(p, _)| p.rule());
                    refuse_slack(d, retry_after_secs, &rule);
                }
            }
            Some(go)
        }
        Err(_) => {
            shared.metrics.count_fallback(StateOp::RateLimit);
            None
        }
    }
}

/// `d` answered `slack_rate_limited` for `secs`, by `rule`.
pub(crate) fn refuse_slack(d: &mut EgressDecision, secs: u32, rule: &str) {
    d.reason = EgressReason::SlackRateLimited;
    d.retry_after_secs = Some(secs);
    d.rule = Some(Arc::from(rule));
}

/// Shares that Slack answered `bot`'s call to `method` 429 for `secs`, before the bot has
/// the answer: once it does, every replica answers that method `slack_rate_limited`.
pub(crate) async fn publish_429(redis: &RedisState, bot: &str, method: &str, secs: u32) {
    let until = Duration::from_secs(u64::from(secs.max(1)));
    if let Err(e) = redis.note_slack_429(bot, method, until).await {
        log::warn!("bot {bot}: sharing Slack's 429 on {method} through Redis failed ({e}); other replicas learn it from Slack");
    }
}

/// Shares the scope headers of one answer to `bot`'s call.
pub(crate) fn publish_scopes(
    redis: &Arc<RedisState>,
    bot: &str,
    granted: Option<&[u8]>,
    accepted: Option<&[u8]>,
) {
    let Some(granted) = granted else {
        return;
    };
    let needed = accepted_granted(granted, accepted);
    let (redis, bot, granted) = (Arc::clone(redis), bot.to_owned(), granted.to_vec());
    tokio::spawn(async move {
        let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
        if let Err(e) = redis.note_scopes(&bot, &granted, &needed).await {
            log::debug!("bot {bot}: sharing its scopes through Redis failed ({e})");
        }
    });
}

/// Reads every replica's view of the running policy's bots' scopes, every
/// [`SYNC_INTERVAL`], into this replica's ledger.
pub(crate) struct ScopeSync {
    pub(crate) shared: Arc<Shared>,
    pub(crate) redis: Arc<RedisState>,
    pub(crate) ledger: Arc<ScopeLedger>,
}

impl ScopeSync {
    async fn once(&self) {
        let snap = self.shared.current();
        for bot in snap.policy.bots.iter() {
            if let Ok(Some(view)) = self.redis.shared_scopes(&bot.name).await {
                let unused = self.ledger.adopt(&bot.name, &view);
                self.shared
                    .metrics
                    .egress
                    .show_unused_scopes(&bot.name, unused);
            }
        }
    }
}

#[async_trait]
impl BackgroundService for ScopeSync {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::replicate::every(SYNC_INTERVAL, shutdown, || self.once()).await;
    }
}
