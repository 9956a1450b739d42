//! Bot tokens that Slack said are gone: a verified `app_uninstalled`, or a verified
//! `tokens_revoked` listing bot tokens, for a bot's app and team.
//!
//! A revoked token is remembered by its bot's name and its token's fingerprint
//! ([`Credential::fingerprint`](slackgate_policy::Credential::fingerprint): where the token
//! is read from and its value), so a policy reload that keeps the token keeps the
//! revocation, and one that points the bot at another token (new value or new source)
//! starts clean with no code to clear anything. The set outlives reloads because the
//! [`Guard`](crate::Guard) holds it.
//!
//! This is the replica's own set. With the Redis backend the proxy shares it: a
//! revocation is written to Redis and every replica reads its bots' revocations there
//! about once a second ([`Guard::revoke_shared`](crate::Guard::revoke_shared)).

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slackgate_policy::{Bot, Policy};
use slackgate_slack::Lifecycle;

use crate::decision::Decision;
use crate::reason::Reason;

/// The most revocations remembered; beyond it the oldest is forgotten. Each one takes a
/// verified request from Slack and a bot, so the bound is reached only by a very long
/// history of token changes, whose old entries can no longer match a bot.
const MAX_REVOKED: usize = 10_000;

/// A bot by name and its token's fingerprint.
type TokenKey = (Arc<str>, [u8; 32]);

/// One revocation.
#[derive(Debug, Clone, Copy)]
struct Revocation {
    /// What Slack sent.
    by: Lifecycle,
    /// When (unix seconds), for dropping the oldest beyond the bound.
    at: i64,
}

/// The revoked bot tokens.
#[derive(Debug, Default)]
pub struct RevokedTokens {
    map: Mutex<HashMap<TokenKey, Revocation>>,
    /// Set once anything was revoked: until then, an egress call takes no lock.
    any: AtomicBool,
}

impl RevokedTokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<TokenKey, Revocation>> {
        self.map.lock()
    }

    /// Marks `bot`'s current token revoked by `by` at `now`; true when it was not yet.
    pub fn revoke(&self, bot: &Bot, by: Lifecycle, now: i64) -> bool {
        let mut map = self.lock();
        let key = (Arc::clone(&bot.name), *bot.token.fingerprint());
        if map.contains_key(&key) {
            return false;
        }
        if map.len() >= MAX_REVOKED {
            if let Some(oldest) = map.iter().min_by_key(|(_, r)| r.at).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(key, Revocation { by, at: now });
        self.any.store(true, Ordering::Release);
        true
    }

    /// What revoked `bot`'s current token, if it is revoked.
    pub fn revoked_by(&self, bot: &Bot) -> Option<Lifecycle> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let key = (Arc::clone(&bot.name), *bot.token.fingerprint());
        self.lock().get(&key).map(|r| r.by)
    }

    /// The number of revocations remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing was revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `d` is the decision on a request whose signature was verified and that was
/// not a replay: only such a request may revoke. Its facts are attached only after both
/// checks passed; `app_mismatch` names another app than the route's, so it revokes
/// nothing either.
pub(crate) fn verified(d: &Decision<'_>) -> bool {
    d.facts.is_some() && d.secret_id.is_some() && d.reason != Reason::AppMismatch
}

/// The bots of `policy` whose token the request decided by `d` on a route of app `app`
/// revokes: a verified lifecycle request that ends the bot token
/// ([`Lifecycle::revokes_bot_token`]), for bots whose `app` is `app`, and whose `team`
/// pin, when set, is the request's `team_id`.
pub(crate) fn revoked_bots<'p>(
    policy: &'p Policy,
    app: &str,
    d: &Decision<'_>,
    body: &[u8],
) -> Option<(Lifecycle, Vec<&'p Arc<Bot>>)> {
    if !verified(d) {
        return None;
    }
    let facts = d.facts.as_ref()?;
    let kind = facts.lifecycle?;
    if !kind.revokes_bot_token(body) {
        return None;
    }
    let team = facts.team_id.as_deref();
    let bots: Vec<&Arc<Bot>> = policy
        .bots
        .iter()
        .filter(|b| b.app.as_ref().is_some_and(|a| &*a.name == app))
        .filter(|b| match &b.team {
            Some(pin) => team == Some(&**pin),
            None => true,
        })
        .collect();
    Some((kind, bots))
}
