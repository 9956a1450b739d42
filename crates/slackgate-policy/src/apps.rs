//! Slack apps as the policy names them ([`App`]): the app id a payload must carry, and the
//! signing secrets its requests are verified with ([`AppSecret`]), each with its expiry.
//! Routes and bots both refer to an app, so it stands apart from both; compiled in
//! `compile/apps.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use slackgate_slack::SigningKey;

use crate::credential::Credential;
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
    /// `socket_mode`: the gateway holds the app's Socket Mode connections itself.
    pub socket_mode: Option<SocketMode>,
}

/// `apps.<app>.socket_mode`: the gateway opens the app's Socket Mode WebSockets with the
/// app token and delivers each envelope to the route at the path for its type.
#[derive(Debug, Clone)]
pub struct SocketMode {
    /// The `xapp-` app token: sent only in `apps.connections.open`'s `Authorization`.
    pub app_token: Credential,
    /// Parallel WebSocket connections, 1 to [`MAX_SOCKET_CONNECTIONS`] (default 1).
    pub connections: u8,
    /// The route path of each envelope type (each is a path of a route of this app).
    pub paths: SocketPaths,
    /// Where `socket_mode:` stands in the policy file: 1-based line and column.
    pub at: (usize, usize),
}

/// Slack allows at most 10 Socket Mode connections per app.
pub const MAX_SOCKET_CONNECTIONS: u8 = 10;

/// The route path each Socket Mode envelope type is delivered to; `None`: envelopes of
/// that type are acked without payload and counted, never delivered.
#[derive(Debug, Clone, Default)]
pub struct SocketPaths {
    /// `events_api` envelopes (the JSON an Events API Request URL gets).
    pub events_api: Option<Arc<str>>,
    /// `slash_commands` envelopes (the form a slash command's Request URL gets).
    pub slash_commands: Option<Arc<str>>,
    /// `interactive` envelopes (the `payload=` form of the Interactivity Request URL).
    pub interactive: Option<Arc<str>>,
}

impl SocketPaths {
    /// The path for an envelope `type`, if it is one of the three and has a path.
    pub fn for_type(&self, kind: &str) -> Option<&Arc<str>> {
        match kind {
            "events_api" => self.events_api.as_ref(),
            "slash_commands" => self.slash_commands.as_ref(),
            "interactive" => self.interactive.as_ref(),
            _ => None,
        }
    }

    /// Each envelope type with its path, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Arc<str>)> {
        [
            ("events_api", &self.events_api),
            ("slash_commands", &self.slash_commands),
            ("interactive", &self.interactive),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_ref().map(|p| (k, p)))
    }
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
