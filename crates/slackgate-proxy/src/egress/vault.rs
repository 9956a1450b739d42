//! The token vault: the rotating bots' current pairs, outliving reloads, read by every
//! call of such a bot (and by the group reads), written by the refresher.

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use slackgate_guard::unix_secs;
use slackgate_policy::{Bot, BotToken};

use super::seal::Pair;
use crate::core::labels::TokenRefreshResult as RefreshResult;

/// The token a call is sent with.
#[derive(Debug)]
pub(crate) enum CallToken<'a> {
    /// A token from the policy's reference.
    Static(&'a str),
    /// A rotated token: the current pair, shared (no copy per call).
    Rotated(Arc<Pair>),
    /// None: the audit `rule` says why (`rotation.pending`, `rotation.expired`).
    Unavailable(&'static str),
}

/// The state of a bot's token as `/status` and `slackgate_egress_token_state` show it
/// (besides `revoked`, which the guard knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Calls are sent with it.
    Active,
    /// Rotation has not minted the first token yet.
    Pending,
    /// The rotated token expired before a new one was minted.
    Expired,
}

impl TokenState {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Pending => "pending",
            TokenState::Expired => "expired",
        }
    }
}

/// What the refresher knows of one rotating bot.
#[derive(Debug)]
pub(super) struct Slot {
    /// The `rotation:` the slot belongs to; another one starts a new slot.
    pub(super) fingerprint: [u8; 32],
    /// Whether the store was read for this slot.
    pub(super) loaded: bool,
    /// The pair calls use.
    pub(super) pair: Option<Arc<Pair>>,
    /// A minted pair not yet written to the store (it is not used until it is).
    pub(super) unsaved: Option<Pair>,
    /// Failed attempts in a row.
    pub(super) failures: u32,
    /// No attempt before this (unix seconds).
    pub(super) next_attempt: i64,
    /// Set when a refresh is not retried: the result that stopped it.
    pub(super) stuck: Option<RefreshResult>,
    pub(super) last_result: Option<RefreshResult>,
    pub(super) last_attempt: Option<i64>,
}

impl Slot {
    pub(super) fn new(fingerprint: [u8; 32]) -> Self {
        Self {
            fingerprint,
            loaded: false,
            pair: None,
            unsaved: None,
            failures: 0,
            next_attempt: 0,
            stuck: None,
            last_result: None,
            last_attempt: None,
        }
    }
}

/// What `/status` shows of a rotating bot's token (never a token).
#[derive(Debug, Clone, Serialize)]
pub struct RotationStatus {
    /// RFC 3339 expiry of the current token.
    pub expires_at: Option<String>,
    /// RFC 3339 time the current token was minted.
    pub obtained_at: Option<String>,
    /// RFC 3339 time of the next refresh (or retry).
    pub next_refresh: Option<String>,
    /// The last attempt's result.
    pub last_result: Option<&'static str>,
    /// RFC 3339 time of the last attempt.
    pub last_attempt: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Set when refreshing stopped for good: fix `rotation:` (a new refresh token from
    /// reinstalling the app) and reload.
    pub stuck: Option<&'static str>,
}

/// The rotating bots' current pairs, outliving reloads; read by every call of such a bot.
#[derive(Debug, Default)]
pub struct TokenVault {
    slots: Mutex<HashMap<Arc<str>, Slot>>,
}

pub(super) fn rfc3339(secs: i64) -> String {
    crate::core::audit::rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

impl TokenVault {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Slot>> {
        self.slots.lock()
    }

    /// The token to send `bot`'s call with at `now`.
    pub(crate) fn token<'b>(&self, bot: &'b Bot, now: SystemTime) -> CallToken<'b> {
        if let BotToken::Static(c) = &bot.token {
            return CallToken::Static(c.expose());
        }
        let slots = self.lock();
        let pair = slots
            .get(&bot.name)
            .filter(|s| s.fingerprint == *bot.token.fingerprint())
            .and_then(|s| s.pair.clone());
        match pair {
            None => CallToken::Unavailable("rotation.pending"),
            Some(p) if unix_secs(now) >= p.expires_at => CallToken::Unavailable("rotation.expired"),
            Some(p) => CallToken::Rotated(p),
        }
    }

    /// The state of `bot`'s token at `now` (revocation aside).
    pub fn state(&self, bot: &Bot, now: SystemTime) -> TokenState {
        match self.token(bot, now) {
            CallToken::Static(_) | CallToken::Rotated(_) => TokenState::Active,
            CallToken::Unavailable("rotation.expired") => TokenState::Expired,
            CallToken::Unavailable(_) => TokenState::Pending,
        }
    }

    /// `/status` for a rotating bot; `None` for a bot without rotation.
    pub fn status(&self, bot: &Bot) -> Option<RotationStatus> {
        bot.token.rotation()?;
        let slots = self.lock();
        let slot = slots
            .get(&bot.name)
            .filter(|s| s.fingerprint == *bot.token.fingerprint());
        let pair = slot.and_then(|s| s.pair.as_deref());
        Some(RotationStatus {
            expires_at: pair.map(|p| rfc3339(p.expires_at)),
            obtained_at: pair.map(|p| rfc3339(p.obtained_at)),
            next_refresh: slot.filter(|s| s.stuck.is_none()).map(|s| {
                rfc3339(pair.map_or(s.next_attempt, |p| p.refresh_at().max(s.next_attempt)))
            }),
            last_result: slot.and_then(|s| s.last_result).map(RefreshResult::as_str),
            last_attempt: slot.and_then(|s| s.last_attempt).map(rfc3339),
            failures: slot.map_or(0, |s| s.failures),
            stuck: slot.and_then(|s| s.stuck).map(RefreshResult::as_str),
        })
    }

    /// Unix expiry of `bot`'s current rotated token, for the metric.
    pub fn expires_at(&self, bot: &Bot) -> Option<i64> {
        let slots = self.lock();
        slots
            .get(&bot.name)
            .filter(|s| s.fingerprint == *bot.token.fingerprint())
            .and_then(|s| s.pair.as_ref().map(|p| p.expires_at))
    }

    /// Whether `bot`'s refresh stopped for good.
    pub fn is_stuck(&self, bot: &Bot) -> bool {
        let slots = self.lock();
        slots
            .get(&bot.name)
            .filter(|s| s.fingerprint == *bot.token.fingerprint())
            .is_some_and(|s| s.stuck.is_some())
    }

    /// Runs `f` on `bot`'s slot, made afresh when its `rotation:` changed.
    pub(super) fn with_slot<T>(&self, bot: &Bot, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slots = self.lock();
        let fp = *bot.token.fingerprint();
        let slot = slots
            .entry(Arc::clone(&bot.name))
            .or_insert_with(|| Slot::new(fp));
        if slot.fingerprint != fp {
            *slot = Slot::new(fp);
        }
        f(slot)
    }

    /// Forgets the bots no longer rotating in the running policy.
    pub(super) fn retain(&self, rotating: &[&Arc<Bot>]) {
        self.lock()
            .retain(|name, _| rotating.iter().any(|b| b.name == *name));
    }
}
