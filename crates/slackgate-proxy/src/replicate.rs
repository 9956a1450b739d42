//! With the Redis backend, what one replica learns on the inbound door reaches the egress
//! door of every replica:
//!
//! - **Reply windows**: a verified request naming a channel (for an app some bot's
//!   `reply_scope` reads) is written as `reply:<app>:<channel>` = its time. A replica that
//!   would deny a `chat.*` write by `reply_scope` reads that key first; a time within the
//!   window is adopted and the call decided again. A Redis failure keeps the denial (fail
//!   closed).
//! - **Revocations**: a verified `app_uninstalled` / `tokens_revoked` is written as
//!   `revoked:<bot>:<token fingerprint>` = the lifecycle kind; every replica reads its bots'
//!   keys every [`SYNC_INTERVAL`] and revokes the same tokens. The fingerprint changes with
//!   the token (or its reference), so a new token is not revoked by an old key.
//!
//! The writes are sent in the background: the inbound request does not wait for Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use slackgate_policy::Bot;
use slackgate_slack::Lifecycle;

use crate::core::redis::RedisState;
use crate::core::state::Shared;

/// How often every replica reads the shared revocations of its bots.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long a reply window entry is kept in Redis: longer than any sensible `reply_scope`.
const REPLY_TTL: Duration = Duration::from_secs(86_400);
/// How long a revocation is kept in Redis (a token that old was long replaced).
const REVOKED_TTL: Duration = Duration::from_secs(90 * 86_400);

/// The last part of a bot's revocation key: its token's fingerprint, in hex.
fn token_part(bot: &Bot) -> String {
    hex::encode(bot.token.fingerprint())
}

/// Shares that `channel` sent `app` a verified request at `at` (unix seconds).
pub(crate) fn publish_reply(redis: &Arc<RedisState>, app: &str, channel: &str, at: f64) {
    let redis = Arc::clone(redis);
    let (app, channel) = (app.to_owned(), channel.to_owned());
    tokio::spawn(async move {
        let value = format!("{at:.3}");
        if let Err(e) = redis
            .set_px(&["reply", &app, &channel], value.as_bytes(), REPLY_TTL)
            .await
        {
            log::warn!("reply_scope: sharing channel {channel} of app {app} through Redis failed ({e}); other replicas may deny replies there");
        }
    });
}

/// Shares that `bot`'s current token was revoked by `by`.
pub(crate) fn publish_revocation(redis: &Arc<RedisState>, bot: &Bot, by: Lifecycle) {
    let redis = Arc::clone(redis);
    let (name, token) = (Arc::clone(&bot.name), token_part(bot));
    tokio::spawn(async move {
        if let Err(e) = redis
            .set_px(
                &["revoked", &name, &token],
                by.as_str().as_bytes(),
                REVOKED_TTL,
            )
            .await
        {
            log::error!("bot {name}: sharing its token revocation through Redis failed ({e}); other replicas keep sending its calls until they receive the event themselves");
        }
    });
}

/// When another replica last saw `channel` send `app` a verified request, if it did.
pub(crate) async fn reply_seen(redis: &RedisState, app: &str, channel: &str) -> Option<f64> {
    let value = redis.get(&["reply", app, channel]).await.ok()??;
    std::str::from_utf8(&value).ok()?.parse::<f64>().ok()
}

/// Reads the shared revocations of the running policy's bots, every [`SYNC_INTERVAL`].
pub(crate) struct RevocationSync {
    pub(crate) shared: Arc<Shared>,
    pub(crate) redis: Arc<RedisState>,
}

impl RevocationSync {
    async fn once(&self) {
        let snap = self.shared.current();
        for bot in snap.policy.bots.iter().filter(|b| b.app.is_some()) {
            if self.shared.guard.token_revoked_by(bot).is_some() {
                continue;
            }
            let token = token_part(bot);
            let Ok(Some(value)) = self.redis.get(&["revoked", &bot.name, &token]).await else {
                continue;
            };
            let by = std::str::from_utf8(&value)
                .ok()
                .and_then(Lifecycle::from_name);
            if let Some(by) = by {
                if self.shared.guard.revoke_shared(bot, by) {
                    log::warn!(
                        "bot {}: token revoked by a verified {by} another replica received: its calls are answered token_revoked until its token reference changes",
                        bot.name
                    );
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RevocationSync {
    async fn start(&self, shutdown: ShutdownWatch) {
        every(SYNC_INTERVAL, shutdown, || self.once()).await;
    }
}

/// Runs `once` now and then every `interval`, until the server shuts down.
pub(crate) async fn every<F: std::future::Future<Output = ()>>(
    interval: Duration,
    mut shutdown: ShutdownWatch,
    mut once: impl FnMut() -> F,
) {
    loop {
        once().await;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
