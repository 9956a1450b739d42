//! Custody capabilities shared by the replicas through Redis: a response URL or a
//! workflow key minted by the inbound door of one replica works at the egress door of
//! every replica.
//!
//! - **Mint**: what the inbound door took into custody ([`Minted`]) is written to Redis
//!   before the request is forwarded ([`share`]), with its end as the key's expiry. A
//!   failure follows the route's `state_failure`: forwarded with capabilities that work on
//!   this replica only (`fail_open`, counted), or refused (`fail_closed`).
//! - **Use**: a capability this replica does not hold is looked up ([`adopt`], one read
//!   bounded by `state.redis.timeout`) and, when some replica shared it, held here too
//!   until its end. A capability Redis cannot vouch for (Redis down, unknown, ended) is
//!   refused: a held URL or token is never used on a guess.
//! - **Count**: a response URL's five uses are spent in Redis, in the egress gate's
//!   script (`crate::core::redis::HeldKey`), and a function execution ended on one replica
//!   is ended on all.
//!
//! What Redis holds is as secret as the held URL or token itself, which the record
//! carries: the same trust as the rest of the gateway's state in Redis (TLS and an ACL
//! user in production). Nothing here logs a record, a URL or a token.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slackgate_guard::{
    Custody, ResponseUrl, StateError, WorkflowToken, RESPONSE_URL_USES, WORKFLOW_KEY_PREFIX,
};

use crate::core::capability::is_capability;
use crate::core::redis::RedisState;

/// A capability the inbound door just minted, with what it stands for and its end.
#[derive(Debug, Clone)]
pub enum Minted {
    /// A response URL, under its capability.
    Response {
        /// The capability (40 hex digits).
        cap: String,
        /// What it stands for.
        held: ResponseUrl,
        /// Its end, in unix seconds.
        until: f64,
    },
    /// A workflow token, under its key (`sgw-` and a capability).
    Workflow {
        /// The key.
        key: String,
        /// What it stands for.
        held: WorkflowToken,
        /// Its end, in unix seconds.
        until: f64,
    },
}

/// What Redis holds for one capability (JSON). `secret` is Slack's URL or token.
#[derive(Serialize, Deserialize)]
struct Record {
    kind: Kind,
    bot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution: Option<String>,
    secret: String,
    until: f64,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    ResponseUrl,
    WorkflowToken,
}

impl Minted {
    fn record(&self) -> Record {
        match self {
            Minted::Response { held, until, .. } => Record {
                kind: Kind::ResponseUrl,
                bot: held.bot.to_string(),
                channel: held.channel.as_deref().map(str::to_owned),
                team: held.team.as_deref().map(str::to_owned),
                execution: None,
                secret: held.url.to_string(),
                until: *until,
            },
            Minted::Workflow { held, until, .. } => Record {
                kind: Kind::WorkflowToken,
                bot: held.bot.to_string(),
                channel: None,
                team: None,
                execution: Some(held.function_execution_id.to_string()),
                secret: held.token.to_string(),
                until: *until,
            },
        }
    }

    /// Writes it to Redis, expiring at its end (`now` the guard clock's).
    async fn share(&self, redis: &RedisState, now: f64) -> Result<(), StateError> {
        let record = serde_json::to_vec(&self.record()).map_err(|_| StateError::Failed)?;
        let (cap, until, uses) = match self {
            Minted::Response { cap, held, until } => {
                (cap, until, Some((&*held.bot, RESPONSE_URL_USES)))
            }
            Minted::Workflow { key, until, .. } => (key, until, None),
        };
        let ttl = Duration::try_from_secs_f64((until - now).clamp(0.001, 86_400.0))
            .map_err(|_| StateError::Failed)?;
        redis.share_capability(cap, &record, ttl, uses).await
    }
}

/// Writes every capability of one request to Redis, all at once.
pub(crate) async fn share(
    redis: &RedisState,
    minted: &[Minted],
    now: f64,
) -> Result<(), StateError> {
    let writes = minted.iter().map(|m| m.share(redis, now));
    futures_util::future::try_join_all(writes).await.map(|_| ())
}

/// Whether `cap` (a response URL's capability, or a workflow key) may be looked up: of
/// the shape the gateway mints, and not held here already.
fn worth_a_lookup(custody: &Custody, cap: &str, now: f64) -> bool {
    match cap.strip_prefix(WORKFLOW_KEY_PREFIX) {
        Some(rest) => is_capability(rest) && custody.workflow_token(cap, now).is_none(),
        None => is_capability(cap) && custody.held_response_url(cap, now).is_none(),
    }
}

/// Looks `cap` up in Redis when this replica does not hold it, and holds what some
/// replica shared under it here until its end. `Ok(true)`: adopted (deciding again finds
/// it); `Ok(false)`: nothing to adopt (held here already, or unknown, ended, not of the
/// kind its shape says). A failure of Redis is the caller's to count: the capability
/// stays unknown here.
pub(crate) async fn adopt(
    redis: &RedisState,
    custody: &Custody,
    cap: &str,
    now: f64,
) -> Result<bool, StateError> {
    if !worth_a_lookup(custody, cap, now) {
        return Ok(false);
    }
    let Some(bytes) = redis.shared_capability(cap).await? else {
        return Ok(false);
    };
    let Ok(r) = serde_json::from_slice::<Record>(&bytes) else {
        log::warn!("custody: a capability shared in Redis cannot be read; refused");
        return Ok(false);
    };
    let workflow = cap.starts_with(WORKFLOW_KEY_PREFIX);
    if r.until <= now || workflow != (r.kind == Kind::WorkflowToken) {
        return Ok(false);
    }
    let bot: Arc<str> = Arc::from(r.bot);
    match r.kind {
        Kind::ResponseUrl => {
            let held = ResponseUrl {
                bot,
                channel: r.channel.map(Arc::from),
                team: r.team.map(Arc::from),
                url: Arc::from(r.secret),
            };
            custody.adopt_response_url(cap, held, r.until, RESPONSE_URL_USES);
        }
        Kind::WorkflowToken => {
            let held = WorkflowToken {
                bot,
                function_execution_id: Arc::from(r.execution.unwrap_or_default()),
                token: Arc::from(r.secret),
            };
            custody.hold_workflow_token(cap, held, r.until);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_its_debug_hides_the_secret() {
        let m = Minted::Response {
            cap: "c".repeat(40),
            held: ResponseUrl {
                bot: Arc::from("helpdesk"),
                channel: Some(Arc::from("C0HELP")),
                team: None,
                url: Arc::from("https://hooks.slack.com/commands/T0/1/secret"),
            },
            until: 1800.5,
        };
        assert!(!format!("{m:?}").contains("secret"));
        let bytes = serde_json::to_vec(&m.record()).unwrap();
        let r: Record = serde_json::from_slice(&bytes).unwrap();
        assert!(r.kind == Kind::ResponseUrl && r.until == 1800.5);
        assert_eq!(r.channel.as_deref(), Some("C0HELP"));
        assert_eq!(r.team, None);
        let custody = Custody::default();
        assert!(worth_a_lookup(&custody, &"a".repeat(40), 0.0));
        assert!(worth_a_lookup(
            &custody,
            &format!("sgw-{}", "a".repeat(40)),
            0.0
        ));
        assert!(!worth_a_lookup(&custody, "sgw-short", 0.0));
        assert!(!worth_a_lookup(&custody, "gk_some_bot_key", 0.0));
    }
}
