//! Slack apps as the policy names them ([`App`]): the app id a payload must carry, and the
//! signing secrets its requests are verified with ([`AppSecret`]), each with its expiry.
//! Routes and bots both refer to an app, so it stands apart from both; compiled in
//! `compile/apps.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use slackgate_slack::SigningKey;

use crate::secrets::SecretRef;

/// A Slack app: its optional app id pin and its signing secrets.
#[derive(Debug)]
pub struct App {
    /// The app's name in the policy.
    pub name: Arc<str>,
    /// When set, a verified payload's `api_app_id` must equal it.
    pub api_app_id: Option<Arc<str>>,
    /// The signing secrets, in policy order. Never empty; each is non-empty.
    pub secrets: Arc<[AppSecret]>,
}

impl App {
    /// The keys that have not expired at `now`, in policy order.
    pub fn live_keys(&self, now: SystemTime) -> impl Iterator<Item = &SigningKey> {
        self.secrets
            .iter()
            .filter(move |s| s.is_live(now))
            .map(|s| &s.key)
    }
}

/// One signing secret of an app.
#[derive(Debug, Clone)]
pub struct AppSecret {
    /// The prepared HMAC key; its id is the secret's `id` in the policy.
    pub key: SigningKey,
    /// After this instant the secret is no longer accepted.
    pub expires: Option<SystemTime>,
    /// Where the value was read from.
    pub source: SecretRef,
}

impl AppSecret {
    /// True when the secret has no expiry or expires after `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}
