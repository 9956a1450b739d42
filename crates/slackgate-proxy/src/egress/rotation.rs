//! Slack token rotation: the gateway mints a rotating bot's tokens itself.
//!
//! With token rotation on, Slack's access tokens live 12 hours and each refresh token
//! works once (<https://docs.slack.dev/authentication/using-token-rotation>). The policy
//! holds the app's client id and secret and the *first* refresh token; every pair after
//! it lives in the state store, sealed with `state.encryption_key`:
//!
//! - **Refresh well before expiry**: at half the token's lifetime, `oauth.v2.access`
//!   with `grant_type=refresh_token` trades the current refresh token for a new pair.
//! - **Store before use**: the new pair is sealed (ChaCha20-Poly1305 from `ring`, a fresh
//!   random nonce per write, the bot and client id as associated data) and written to the
//!   store; only then do calls use it. A pair that cannot be written is kept aside and
//!   written again on the next tick, and the current token serves meanwhile.
//! - **Each refresh token once**: one writer refreshes at a time (a lock file under
//!   `state.path`, or a Redis lock with an expiry), and the lock holder re-reads the
//!   store before it refreshes, so a pair another process or replica already minted is
//!   adopted instead of spending its predecessor again. A restart carries on from the
//!   stored pair.
//! - **Failures**: a refresh Slack could not answer (connection, timeout, 5xx, 429) is
//!   retried with backoff while the current token keeps serving until it expires. (A
//!   refresh whose answer was lost after it was sent is retried with the same refresh
//!   token: Slack either grants it, the first never having arrived, or refuses it as
//!   spent, which is the stuck case below; no pair is ever minted twice.) A
//!   refusal (`invalid_refresh_token`, a wrong client secret, ...) is not retried: the
//!   bot's refresh is *stuck* until its `rotation:` changes, which is logged, counted
//!   and alerted on (`slackgate_token_refresh_stuck`).
//! - **Fail closed**: until the first pair is minted, and after the token expires, the
//!   bot's calls are answered `token_unavailable` and nothing reaches Slack. A stored
//!   pair that does not open with the key is a start-up error, never garbage tokens.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Deserialize;
use slackgate_guard::unix_secs;
use slackgate_policy::{Bot, Rotation};

use super::seal::{aad, Pair, Sealer};
use super::store::{Store, StoreError};
use super::vault::{rfc3339, TokenVault};
pub use crate::core::labels::TokenRefreshResult as RefreshResult;
use crate::core::redis::RedisState;
use crate::core::state::Shared;
use crate::net::slack_client::{error_code, retry_after_of, CallFailure, OutHead, SlackClient};

/// How often the refresher looks at every rotating bot.
const TICK: Duration = Duration::from_millis(200);
/// The first retry after a failed refresh; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF_SECS: i64 = 2;
/// The longest wait between retries.
const MAX_BACKOFF_SECS: i64 = 300;

// === the errors ===

/// Why a rotating bot's stored pair stops the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoredPairError {
    /// The pair does not open with `state.encryption_key`.
    #[error("the stored token pair of bot `{bot}` ({at}) cannot be opened with state.encryption_key: it was written with another key, or changed. Restore the key it was written with; or, to start over from the policy's refresh_token (only if that one was never used), remove the stored pair")]
    WrongKey {
        /// The bot.
        bot: Arc<str>,
        /// Where its pair is ([`Store::describe`]).
        at: String,
    },
    /// The pair cannot be read.
    #[error("the stored token pair of bot `{bot}` ({at}): {source}")]
    Unreadable {
        /// The bot.
        bot: Arc<str>,
        /// Where its pair is ([`Store::describe`]).
        at: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// Why a refresh did not leave a new pair in use, for the log (never a token).
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    /// The call to Slack failed.
    #[error("{0}")]
    Call(#[source] CallFailure),
    /// Slack answered 429.
    #[error("Slack answered 429")]
    RateLimited,
    /// Slack answered another status than 200.
    #[error("Slack answered HTTP {0}")]
    Status(u16),
    /// The answer is not JSON.
    #[error("the answer is not JSON")]
    NotJson,
    /// Slack is busy or failed (`ratelimited`, `internal_error`, ...): retried.
    #[error("Slack answered {0}")]
    Busy(String),
    /// Slack refused the refresh: its error code (`unknown` when it is not one).
    #[error("{0}")]
    Refused(String),
    /// A granted answer without a usable pair.
    #[error("the answer lacks access_token, refresh_token or expires_in")]
    Incomplete,
    /// The store failed.
    #[error("{0}")]
    Store(#[source] StoreError),
    /// A minted pair could not be stored, so it is not used yet.
    #[error("the new pair is not used until it is stored: {0}")]
    Unsaved(#[source] StoreError),
}

// === the refresher ===

/// Checks, before the gateway starts, that every rotating bot's stored pair opens with
/// the key: a wrong key is a start-up error naming the file or key, never garbage tokens.
pub(crate) fn check_stored(
    store: &Store,
    sealer: &Sealer,
    bots: &[&Arc<Bot>],
) -> Result<(), StoredPairError> {
    for bot in bots {
        let Some(r) = bot.token.rotation() else {
            continue;
        };
        let loaded = match store {
            Store::Local(path) => Store::load_local(path, &bot.name),
            Store::Redis(redis) => block_on_fresh(redis, &bot.name),
        };
        let where_ = store.describe(&bot.name);
        match loaded {
            Ok(None) => {}
            Ok(Some(sealed)) => {
                if open_pair(sealer, bot, r, &sealed).is_none() {
                    return Err(StoredPairError::WrongKey {
                        bot: Arc::clone(&bot.name),
                        at: where_,
                    });
                }
            }
            // Redis down at start: the refresher reads (and checks) the pair once it is back.
            Err(e) if matches!(store, Store::Redis(_)) => {
                log::warn!(
                    "token rotation: bot `{}`: the stored token pair ({where_}) cannot be read yet: {e}",
                    bot.name
                );
            }
            Err(source) => {
                return Err(StoredPairError::Unreadable {
                    bot: Arc::clone(&bot.name),
                    at: where_,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Reads a Redis value on a runtime of its own (start-up runs before pingora's), with a
/// client of its own so no connection outlives that runtime.
fn block_on_fresh(redis: &RedisState, bot: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::Runtime)?;
    let client = redis.fresh().map_err(StoreError::Client)?;
    rt.block_on(client.get(&["token", bot]))
        .map_err(StoreError::Redis)
}

fn open_pair(sealer: &Sealer, bot: &Bot, r: &Rotation, sealed: &[u8]) -> Option<Pair> {
    let plain = sealer.open(&aad(&bot.name, &r.client_id), sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// What one refresh attempt came to.
enum Attempt {
    Minted(Pair),
    Failed {
        result: RefreshResult,
        /// Seconds Slack asked to wait (429).
        retry_after: Option<i64>,
        why: RefreshError,
    },
}

/// The background service that keeps every rotating bot's token fresh.
pub(crate) struct Refresher {
    shared: Arc<Shared>,
    /// The vault the server owns; the egress door reads it.
    vault: Arc<TokenVault>,
    /// The client for `egress.slack_api`, built by the server at start as the egress door's
    /// and the group reads' are.
    client: Arc<SlackClient>,
    store: Store,
    sealer: Sealer,
    lock_ttl: Duration,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The `oauth.v2.access` answer's fields the refresher reads.
#[derive(Deserialize)]
struct Grant {
    ok: bool,
    error: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

impl Refresher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        vault: Arc<TokenVault>,
        client: Arc<SlackClient>,
        store: Store,
        sealer: Sealer,
        timeout: Duration,
    ) -> Self {
        Self {
            shared,
            vault,
            client,
            store,
            sealer,
            // Longer than one refresh can take, so the lock outlives its holder's call.
            lock_ttl: timeout * 2 + Duration::from_secs(5),
        }
    }

    fn now(&self) -> i64 {
        unix_secs(self.shared.guard.clock().now())
    }

    fn count(&self, bot: &str, result: RefreshResult) {
        self.shared
            .metrics
            .egress
            .token_refreshes
            .with_label_values(&[bot, result.as_str()])
            .inc();
    }

    /// One look at every rotating bot of the running policy.
    pub(crate) async fn tick(&self) {
        let snap = self.shared.current();
        let rotating: Vec<&Arc<Bot>> = snap
            .policy
            .bots
            .iter()
            .filter(|b| b.token.rotation().is_some())
            .collect();
        for bot in &rotating {
            self.step(bot).await;
        }
        self.vault.retain(&rotating);
    }

    /// Reads the stored pair when the slot has not; adopts it when it is newer.
    async fn read_store(&self, bot: &Bot, r: &Rotation) -> Result<(), StoreError> {
        let sealed = self.store.load(&bot.name).await?;
        let pair = match sealed {
            None => None,
            Some(s) => Some(
                open_pair(&self.sealer, bot, r, &s)
                    .ok_or_else(|| StoreError::DoesNotOpen(self.store.describe(&bot.name)))?,
            ),
        };
        let origin = hex::encode(bot.token.fingerprint());
        let pair = pair.filter(|p| p.origin == origin);
        self.vault.with_slot(bot, |slot| {
            slot.loaded = true;
            if let Some(p) = pair {
                let newer = slot
                    .pair
                    .as_deref()
                    .is_none_or(|mine| mine.is_older_than(&p));
                if newer {
                    slot.pair = Some(Arc::new(p));
                }
            }
        });
        Ok(())
    }

    async fn step(&self, bot: &Arc<Bot>) {
        let Some(r) = bot.token.rotation() else {
            return;
        };
        let now = self.now();
        let (loaded, waiting, unsaved, due) = self.vault.with_slot(bot, |s| {
            let due = s.pair.as_deref().is_none_or(|p| now >= p.refresh_at());
            // A stuck slot waits for a new `rotation:`; a failed one for its backoff.
            let waiting = s.stuck.is_some() || now < s.next_attempt;
            (s.loaded, waiting, s.unsaved.clone(), due)
        });
        if waiting {
            return;
        }
        if !loaded {
            if let Err(e) = self.read_store(bot, r).await {
                self.store_failed(bot, e, now);
                return;
            }
        }
        if let Some(pair) = unsaved {
            self.store_and_use(bot, r, pair, now).await;
            return;
        }
        if !due {
            return;
        }
        let held = match self.store.try_lock(&bot.name, self.lock_ttl).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                // Another process or replica is refreshing: take its pair once written.
                if let Err(e) = self.read_store(bot, r).await {
                    log::debug!("token rotation: bot `{}`: {e}", bot.name);
                }
                return;
            }
            Err(e) => {
                self.store_failed(bot, e, now);
                return;
            }
        };
        self.refresh_locked(bot, r, now).await;
        self.store.unlock(&bot.name, held).await;
    }

    /// Under the writer lock: re-reads the store (another writer may have refreshed
    /// already), then refreshes if still due.
    async fn refresh_locked(&self, bot: &Arc<Bot>, r: &Rotation, now: i64) {
        if let Err(e) = self.read_store(bot, r).await {
            self.store_failed(bot, e, now);
            return;
        }
        let current = self.vault.with_slot(bot, |s| s.pair.clone());
        if current.as_deref().is_some_and(|p| now < p.refresh_at()) {
            return;
        }
        let refresh_token = current.as_deref().map_or_else(
            || r.refresh_token.expose().to_owned(),
            |p| p.refresh_token.clone(),
        );
        self.vault.with_slot(bot, |s| s.last_attempt = Some(now));
        match self.exchange(bot, r, &refresh_token, now).await {
            Attempt::Minted(pair) => self.store_and_use(bot, r, pair, now).await,
            Attempt::Failed {
                result,
                retry_after,
                why,
            } => self.fail(bot, result, retry_after, &why, now),
        }
    }

    /// Seals and writes `pair`, then lets calls use it; kept aside when the write fails.
    async fn store_and_use(&self, bot: &Arc<Bot>, r: &Rotation, pair: Pair, now: i64) {
        let written = match serde_json::to_vec(&pair) {
            Ok(plain) => match self.sealer.seal(&aad(&bot.name, &r.client_id), &plain) {
                Ok(sealed) => self.store.save(&bot.name, &sealed).await,
                Err(e) => Err(StoreError::Seal(e)),
            },
            Err(e) => Err(StoreError::Encode(e)),
        };
        match written {
            Ok(()) => {
                let expires = pair.expires_at;
                self.vault.with_slot(bot, |s| {
                    s.pair = Some(Arc::new(pair));
                    s.unsaved = None;
                    s.failures = 0;
                    s.next_attempt = 0;
                    s.last_result = Some(RefreshResult::Ok);
                });
                self.count(&bot.name, RefreshResult::Ok);
                log::info!(
                    "token rotation: bot `{}`: new token stored, expires {}",
                    bot.name,
                    rfc3339(expires)
                );
            }
            Err(e) => {
                self.vault.with_slot(bot, |s| s.unsaved = Some(pair));
                self.fail(
                    bot,
                    RefreshResult::StateError,
                    None,
                    &RefreshError::Unsaved(e),
                    now,
                );
            }
        }
    }

    /// A failed read or lock of the store: `state_error`, retried with backoff.
    fn store_failed(&self, bot: &Bot, e: StoreError, now: i64) {
        self.fail(
            bot,
            RefreshResult::StateError,
            None,
            &RefreshError::Store(e),
            now,
        );
    }

    fn fail(
        &self,
        bot: &Bot,
        result: RefreshResult,
        retry_after: Option<i64>,
        why: &RefreshError,
        now: i64,
    ) {
        let stuck = matches!(
            result,
            RefreshResult::InvalidRefreshToken | RefreshResult::Rejected
        );
        let (failures, next) = self.vault.with_slot(bot, |s| {
            s.failures = s.failures.saturating_add(1);
            s.last_result = Some(result);
            let backoff = FIRST_BACKOFF_SECS
                .saturating_mul(1i64 << s.failures.saturating_sub(1).min(16))
                .min(MAX_BACKOFF_SECS);
            s.next_attempt = now + retry_after.unwrap_or(backoff).max(1);
            if stuck {
                s.stuck = Some(result);
            }
            (s.failures, s.next_attempt)
        });
        self.count(&bot.name, result);
        if stuck {
            log::error!(
                "token rotation: bot `{}`: Slack refused the refresh ({why}); not retried. Reinstall the app to get a new refresh token, point `rotation.refresh_token` at it and reload",
                bot.name
            );
        } else {
            log::warn!(
                "token rotation: bot `{}`: refresh failed ({why}), attempt {failures}; next try at {}",
                bot.name,
                rfc3339(next)
            );
        }
    }

    /// One `oauth.v2.access` call.
    async fn exchange(&self, bot: &Bot, r: &Rotation, refresh_token: &str, now: i64) -> Attempt {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &r.client_id)
            .append_pair("client_secret", r.client_secret.expose())
            .append_pair("refresh_token", refresh_token)
            .finish();
        let head = self.client.head(
            &OutHead {
                http_method: b"POST",
                target: &[self.client.api().path.as_bytes(), b"oauth.v2.access"],
                token: None,
                content_type: Some(b"application/x-www-form-urlencoded"),
                user_agent: Some(b"slackgate token rotation"),
            },
            body.len(),
        );
        let retry = |why: RefreshError, retry_after: Option<i64>| Attempt::Failed {
            result: RefreshResult::Retry,
            retry_after,
            why,
        };
        let resp = match self.client.call(&head, body.as_bytes(), false).await {
            Ok(resp) => resp,
            Err(e) => return retry(RefreshError::Call(e), None),
        };
        if resp.status == 429 {
            let secs = i64::from(retry_after_of(&resp));
            return retry(RefreshError::RateLimited, Some(secs));
        }
        if resp.status != 200 {
            return retry(RefreshError::Status(resp.status), None);
        }
        let Ok(grant) = serde_json::from_slice::<Grant>(&resp.body) else {
            return retry(RefreshError::NotJson, None);
        };
        if !grant.ok {
            let code = grant
                .error
                .as_deref()
                .and_then(error_code)
                .unwrap_or("unknown")
                .to_owned();
            return match code.as_str() {
                "ratelimited"
                | "internal_error"
                | "fatal_error"
                | "service_unavailable"
                | "request_timeout" => retry(RefreshError::Busy(code), None),
                "invalid_refresh_token" => Attempt::Failed {
                    result: RefreshResult::InvalidRefreshToken,
                    retry_after: None,
                    why: RefreshError::Refused(code),
                },
                _ => Attempt::Failed {
                    result: RefreshResult::Rejected,
                    retry_after: None,
                    why: RefreshError::Refused(code),
                },
            };
        }
        match (grant.access_token, grant.refresh_token, grant.expires_in) {
            (Some(access), Some(refresh), Some(expires_in))
                if access.starts_with("xox") && !refresh.is_empty() && expires_in > 0 =>
            {
                Attempt::Minted(Pair {
                    access_token: access,
                    refresh_token: refresh,
                    obtained_at: now,
                    expires_at: now.saturating_add(expires_in),
                    origin: hex::encode(bot.token.fingerprint()),
                })
            }
            _ => retry(RefreshError::Incomplete, None),
        }
    }
}

#[async_trait]
impl BackgroundService for Refresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.tick().await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ring::aead::NONCE_LEN;
    use slackgate_policy::StateKey;

    fn sealer(b: u8) -> Sealer {
        Sealer::new(&StateKey::from_bytes([b; 32]))
    }

    #[test]
    fn a_sealed_pair_opens_only_with_its_key_and_its_bot() {
        let s = sealer(1);
        let sealed = s
            .seal(&aad("helpdesk", "1.2"), b"xoxe.xoxb-secret")
            .unwrap();
        assert!(!sealed.windows(b"xoxb".len()).any(|w| w == b"xoxb"));
        assert_eq!(
            s.open(&aad("helpdesk", "1.2"), &sealed).unwrap(),
            b"xoxe.xoxb-secret"
        );
        assert!(sealer(2).open(&aad("helpdesk", "1.2"), &sealed).is_none());
        assert!(s.open(&aad("other", "1.2"), &sealed).is_none());
        assert!(s.open(&aad("helpdesk", "1.3"), &sealed).is_none());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(s.open(&aad("helpdesk", "1.2"), &flipped).is_none());
        assert!(s.open(&aad("helpdesk", "1.2"), b"SGT1").is_none());
    }

    #[test]
    fn every_write_has_its_own_nonce() {
        let s = sealer(1);
        let a = s.seal(b"x", b"same").unwrap();
        let b = s.seal(b"x", b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[4..4 + NONCE_LEN], b[4..4 + NONCE_LEN]);
    }

    #[test]
    fn a_pair_is_refreshed_half_way() {
        let p = Pair {
            access_token: "xoxe.xoxb-1".into(),
            refresh_token: "xoxe-1-a".into(),
            obtained_at: 1000,
            expires_at: 1000 + 43_200,
            origin: String::new(),
        };
        assert_eq!(p.refresh_at(), 1000 + 21_600);
        assert!(!format!("{p:?}").contains("xox"));
    }
}
