//! The egress model: bots that call the Slack Web API through the gateway, each with the
//! gateway key it presents, the real token the gateway sends in its place, and what it
//! may call ([`Bot`]); and the table that finds a bot by its key in constant time
//! ([`BotTable`]).
//!
//! Keys and tokens are held as [`Credential`]s: their `Debug` never shows the value, and
//! the only way to read one is [`Credential::expose`], which the proxy calls where it
//! writes the token to Slack.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::apps::App;
pub use crate::credential::Credential;
use crate::matcher::{GlobSet, IdSet};
use crate::mode::Mode;
use crate::units::Rate;

/// Where an entry stands in the policy file (1-based), for the errors that are found
/// only where config and policy meet, after compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The Slack token the gateway sends for a bot.
#[derive(Debug, Clone)]
pub enum BotToken {
    /// A token read from its reference on every load (a bot token that does not expire).
    Static(Credential),
    /// A token the gateway mints itself with Slack token rotation: 12-hour access tokens,
    /// each refresh token good once. The proxy holds the current pair.
    Rotating(Arc<Rotation>),
}

impl BotToken {
    /// A SHA-256 that changes when the token's reference or value does (for rotation:
    /// the client id or the first refresh token), and shows nothing of either. State
    /// that belongs to one token (its revocation, a rotated pair) is keyed on it.
    pub fn fingerprint(&self) -> &[u8; 32] {
        match self {
            BotToken::Static(c) => c.fingerprint(),
            BotToken::Rotating(r) => &r.fingerprint,
        }
    }

    /// The rotation settings, for a rotating token.
    pub fn rotation(&self) -> Option<&Arc<Rotation>> {
        match self {
            BotToken::Static(_) => None,
            BotToken::Rotating(r) => Some(r),
        }
    }
}

/// Slack token rotation for one bot: what `oauth.v2.access` with
/// `grant_type=refresh_token` needs.
#[derive(Debug)]
pub struct Rotation {
    /// The app's client id (not a secret).
    pub client_id: Arc<str>,
    /// The app's client secret.
    pub client_secret: Credential,
    /// The first refresh token; the ones after it live in the gateway's state store.
    pub refresh_token: Credential,
    /// Where `rotation:` stands in the policy.
    pub at: Location,
    /// See [`BotToken::fingerprint`].
    fingerprint: [u8; 32],
}

impl Rotation {
    pub(crate) fn new(
        client_id: &str,
        client_secret: Credential,
        refresh_token: Credential,
        at: Location,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"rotation:");
        h.update(client_id.as_bytes());
        h.update([0u8]);
        h.update(refresh_token.fingerprint());
        Self {
            client_id: Arc::from(client_id),
            client_secret,
            refresh_token,
            at,
            fingerprint: h.finalize().into(),
        }
    }
}

/// The method a post to a response URL the gateway holds is decided as (secret
/// custody): a bot's `methods` list it by this name to allow such posts. Not a Web API
/// method, and no pattern matches it (`*` does not allow it).
pub const RESPONSE_URL_METHOD: &str = "response_url";

/// Which Web API methods a bot may call.
///
/// A method is allowed when it is listed by its exact name, or when it matches a `*`
/// pattern and is not privileged (the caller tells: `slackgate_slack::is_privileged_method`
/// knows the families that mint, revoke or widen access).
#[derive(Debug, Clone, Default)]
pub struct MethodRule {
    /// Methods listed by their exact name.
    pub exact: IdSet,
    /// Every entry, patterns included.
    pub patterns: GlobSet,
}

impl MethodRule {
    /// Whether `method` may be called; `privileged` is whether it belongs to a family
    /// that must be named exactly.
    pub fn permits(&self, method: &str, privileged: bool) -> bool {
        self.exact.contains(method) || (!privileged && self.patterns.matches(method))
    }
}

/// What an egress rate limit bucket is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EgressLimitKey {
    /// The bot (one bucket per bot).
    Bot,
    /// The method called.
    Method,
    /// The channel named by the call ("" when none).
    Channel,
}

impl EgressLimitKey {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressLimitKey::Bot => "bot",
            EgressLimitKey::Method => "method",
            EgressLimitKey::Channel => "channel",
        }
    }
}

/// One token-bucket rate limit of a bot.
#[derive(Debug, Clone)]
pub struct EgressLimitRule {
    /// What the buckets are keyed on.
    pub per: EgressLimitKey,
    /// The refill rate.
    pub rate: Rate,
    /// The bucket size.
    pub burst: NonZeroU32,
    /// A stable description for audit `rule`, e.g. `rate_limits[0] per method 1/s burst 5`.
    pub label: Arc<str>,
}

/// A bot that calls the Slack Web API through the egress door.
#[derive(Debug)]
pub struct Bot {
    /// The bot's name in the policy (audit field and metric label).
    pub name: Arc<str>,
    /// The bot's inbound app, when named.
    pub app: Option<Arc<App>>,
    /// What the bot presents as its token: worth nothing outside the gateway.
    pub key: Credential,
    /// The real Slack token the gateway sends instead (read from a reference, or minted
    /// by rotation).
    pub token: BotToken,
    /// When set, a call naming another `team_id` is denied.
    pub team: Option<Arc<str>>,
    /// The methods the bot may call.
    pub methods: MethodRule,
    /// When set, a call naming any other channel is denied.
    pub channels: Option<IdSet>,
    /// Arguments the bot may not send.
    pub deny_args: IdSet,
    /// Rate limits, in policy order.
    pub rate_limits: Arc<[EgressLimitRule]>,
    /// When set, writes into a conversation (every method that writes into one) go only
    /// to channels that sent the bot's `app` a verified inbound request, forwarded to the
    /// bot, within this window (the bot then has an `app`).
    pub reply_scope: Option<std::time::Duration>,
    /// `enforce` (the default), or `shadow`: a would-be denial of a call is forwarded with
    /// the real token and audited with `"shadow": true`, except what stays enforced (an
    /// unlisted privileged method, a method Slack does not document, and every refusal
    /// before or outside the bot's own rules).
    pub mode: Mode,
}

/// The bots of a policy, by name and by key.
#[derive(Debug, Default)]
pub struct BotTable {
    by_name: BTreeMap<Arc<str>, Arc<Bot>>,
    /// (SHA-256 of the key, bot), in name order.
    keys: Box<[([u8; 32], Arc<Bot>)]>,
}

impl BotTable {
    pub(crate) fn new(bots: Vec<Arc<Bot>>) -> Self {
        let keys = bots
            .iter()
            .map(|b| (b.key.digest(), Arc::clone(b)))
            .collect();
        let by_name = bots.into_iter().map(|b| (Arc::clone(&b.name), b)).collect();
        Self { by_name, keys }
    }

    /// The bot whose key is `presented`. Every key is compared, each in constant time,
    /// by the SHA-256 of both sides, so neither the time taken nor an early exit tells
    /// how much of a key matched, how long it is, or which bot it belongs to.
    pub fn by_key(&self, presented: &[u8]) -> Option<&Arc<Bot>> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (k, bot) in self.keys.iter() {
            if bool::from(k.ct_eq(&digest)) {
                found = Some(bot);
            }
        }
        found
    }

    /// The bot with this name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Bot>> {
        self.by_name.get(name)
    }

    /// Every bot, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Bot>> {
        self.by_name.values()
    }

    /// The number of bots.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when the policy has no bot.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
