//! Raw serde shapes of the config and policy files (`*Spec`).
//!
//! These mirror the YAML exactly: unknown keys are errors, every value a later
//! check may complain about keeps its position (`Spanned`), and nothing here is
//! validated. `config.rs` and `compile.rs` turn them into the compiled types,
//! destructuring every field so that a new key cannot be forgotten.

use marked_yaml::Spanned;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::yaml::NamedMap;

/// A list of scalars with the list's own position (for "empty list" errors).
pub(crate) type SpannedList = Spanned<Vec<Spanned<String>>>;

// === config ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigSpec {
    pub(crate) listen: Spanned<Vec<ListenerSpec>>,
    pub(crate) admin: Option<AdminSpec>,
    pub(crate) trusted_proxies: Option<SpannedList>,
    pub(crate) limits: Option<LimitsSpec>,
    pub(crate) audit: Option<AuditSpec>,
    pub(crate) policy: Spanned<String>,
    pub(crate) state: Option<StateSpec>,
    pub(crate) egress: Option<EgressSpec>,
    pub(crate) tls: Option<SharedTlsSpec>,
}

/// `tls:` at the top level: what every TLS connection shares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SharedTlsSpec {
    pub(crate) key_exchange: Option<SpannedList>,
}

/// `egress:`: the listener bots call the Web API on, and where allowed calls go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EgressSpec {
    pub(crate) listen: ListenerSpec,
    pub(crate) slack_api: Option<Spanned<String>>,
    pub(crate) hooks_base: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) public_url: Option<Spanned<String>>,
    pub(crate) pacing: Option<PacingSpec>,
}

/// `egress.pacing`: Slack's documented per-method rate tiers applied before Slack does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PacingSpec {
    pub(crate) max_wait: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSpec {
    pub(crate) backend: Option<Spanned<BackendSpec>>,
    pub(crate) redis: Option<RedisSpec>,
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) encryption_key: Option<Spanned<CredentialSpec>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendSpec {
    Local,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSpec {
    pub(crate) url: Spanned<String>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) mode: Option<Spanned<RedisModeSpec>>,
    pub(crate) sentinel: Option<SentinelSpec>,
    pub(crate) key_prefix: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) username_env: Option<Spanned<String>>,
    pub(crate) password_env: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RedisModeSpec {
    Standalone,
    Cluster,
    Sentinel,
}

/// `state.redis.sentinel`: the master's name and the other sentinels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SentinelSpec {
    pub(crate) master: Spanned<String>,
    #[serde(default)]
    pub(crate) addrs: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerSpec {
    pub(crate) addr: Spanned<String>,
    pub(crate) tls: Option<TlsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSpec {
    pub(crate) cert: Spanned<String>,
    pub(crate) key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSpec {
    pub(crate) addr: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSpec {
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    pub(crate) body_read_timeout: Option<Spanned<String>>,
    pub(crate) upstream_timeout: Option<Spanned<String>>,
    pub(crate) max_clock_skew: Option<Spanned<String>>,
    pub(crate) max_rate_limit_keys: Option<Spanned<u64>>,
    pub(crate) max_replay_entries: Option<Spanned<u64>>,
    pub(crate) shutdown_grace: Option<Spanned<String>>,
    pub(crate) max_head_bytes: Option<Spanned<u64>>,
    pub(crate) head_read_timeout: Option<Spanned<String>>,
    pub(crate) max_connections: Option<Spanned<u64>>,
    pub(crate) max_call_channels: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditSpec {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) max_queue_bytes: Option<Spanned<u64>>,
}

// === policy ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySpec {
    pub(crate) version: Spanned<u32>,
    #[serde(default)]
    pub(crate) apps: NamedMap<AppSpec>,
    #[serde(default)]
    pub(crate) upstreams: NamedMap<UpstreamSpec>,
    #[serde(default)]
    pub(crate) groups: NamedMap<Spanned<GroupSpec>>,
    pub(crate) routes: Spanned<Vec<RouteSpec>>,
    #[serde(default)]
    pub(crate) bots: NamedMap<BotSpec>,
    #[serde(default)]
    pub(crate) webhooks: NamedMap<WebhookSpec>,
}

/// A group: a list of user ids, or a Slack user group whose members the gateway reads.
#[derive(Debug)]
pub(crate) enum GroupSpec {
    /// `oncall: [U0111, U0222]`.
    Members(Vec<Spanned<String>>),
    /// `oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }`.
    Usergroup(Box<UsergroupSpec>),
}

impl<'de> Deserialize<'de> for GroupSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = GroupSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of user ids or a mapping with usergroup, bot and refresh")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<GroupSpec, A::Error> {
                Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(GroupSpec::Members)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<GroupSpec, A::Error> {
                Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|spec| GroupSpec::Usergroup(Box::new(spec)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A group whose members are a Slack user group's, read with a bot's token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsergroupSpec {
    pub(crate) usergroup: Spanned<String>,
    pub(crate) bot: Spanned<String>,
    pub(crate) refresh: Option<Spanned<String>>,
}

/// An incoming-webhook URL the gateway holds for the bots it lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookSpec {
    pub(crate) url: Spanned<CredentialSpec>,
    pub(crate) bots: SpannedList,
}

/// A bot that calls the Slack Web API through the egress door.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BotSpec {
    pub(crate) app: Option<Spanned<String>>,
    pub(crate) key: Spanned<CredentialSpec>,
    pub(crate) token: Spanned<CredentialSpec>,
    pub(crate) team: Option<Spanned<String>>,
    pub(crate) methods: SpannedList,
    pub(crate) channels: Option<SpannedList>,
    pub(crate) deny_args: Option<SpannedList>,
    pub(crate) rate_limits: Option<Vec<EgressLimitSpec>>,
    pub(crate) reply_scope: Option<Spanned<String>>,
    pub(crate) mode: Option<Spanned<ModeSpec>>,
}

/// A reference to a credential (a gateway key or a token): `env:` or `file:`. As with
/// signing secrets, the literal-value keys exist only to get their own error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialSpec {
    pub(crate) env: Option<Spanned<String>>,
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) secret: Option<Spanned<IgnoredAny>>,
    pub(crate) value: Option<Spanned<IgnoredAny>>,
    pub(crate) token: Option<Spanned<IgnoredAny>>,
    pub(crate) key: Option<Spanned<IgnoredAny>>,
    pub(crate) password: Option<Spanned<IgnoredAny>>,
    /// Only a bot's `token` may be `rotation:` (Slack token rotation); anywhere else it
    /// is an error.
    pub(crate) rotation: Option<Box<Spanned<RotationSpec>>>,
}

impl CredentialSpec {
    /// The literal-value keys written (each a pasted secret), in field order.
    pub(crate) fn literals(&self) -> impl Iterator<Item = &Spanned<IgnoredAny>> {
        let CredentialSpec {
            env: _,
            file: _,
            secret,
            value,
            token,
            key,
            password,
            rotation: _,
        } = self;
        [secret, value, token, key, password].into_iter().flatten()
    }
}

/// Slack token rotation for a bot's token: the app's client id and secret and the first
/// refresh token (later ones live in the state store).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotationSpec {
    pub(crate) client_id: Spanned<String>,
    pub(crate) client_secret: Spanned<CredentialSpec>,
    pub(crate) refresh_token: Spanned<CredentialSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EgressLimitSpec {
    pub(crate) per: Spanned<EgressLimitKeySpec>,
    pub(crate) rate: Spanned<String>,
    pub(crate) burst: Spanned<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EgressLimitKeySpec {
    Bot,
    Method,
    Channel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppSpec {
    pub(crate) api_app_id: Option<Spanned<String>>,
    pub(crate) signing_secrets: Spanned<Vec<SecretRefSpec>>,
    pub(crate) socket_mode: Option<Spanned<SocketModeSpec>>,
}

/// `apps.<app>.socket_mode`: the app token (a reference), how many connections, and the
/// route path each envelope type is delivered to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketModeSpec {
    pub(crate) app_token: Spanned<CredentialSpec>,
    pub(crate) connections: Option<Spanned<i64>>,
    pub(crate) paths: Spanned<SocketPathsSpec>,
}

/// `socket_mode.paths`: a route path per envelope type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketPathsSpec {
    pub(crate) events_api: Option<Spanned<String>>,
    pub(crate) slash_commands: Option<Spanned<String>>,
    pub(crate) interactive: Option<Spanned<String>>,
}

/// A secret reference. The literal-secret keys exist only so that a pasted
/// secret gets its own error message; their values are never kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretRefSpec {
    pub(crate) id: Option<Spanned<String>>,
    pub(crate) env: Option<Spanned<String>>,
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) expires: Option<Spanned<String>>,
    pub(crate) secret: Option<Spanned<IgnoredAny>>,
    pub(crate) value: Option<Spanned<IgnoredAny>>,
    pub(crate) signing_secret: Option<Spanned<IgnoredAny>>,
    pub(crate) token: Option<Spanned<IgnoredAny>>,
    pub(crate) password: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamSpec {
    pub(crate) targets: SpannedList,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub(crate) name: Spanned<String>,
    pub(crate) path: Spanned<String>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) app: Spanned<String>,
    pub(crate) upstream: Spanned<String>,
    pub(crate) mode: Option<Spanned<ModeSpec>>,
    pub(crate) on_deny: Option<Spanned<OnDenySpec>>,
    pub(crate) allow_unverified_shadow: Option<Spanned<bool>>,
    pub(crate) source_ips: Option<SourceIpsSpec>,
    pub(crate) allow: Option<ScopeSpec>,
    pub(crate) deny: Option<ScopeSpec>,
    pub(crate) rate_limits: Option<Vec<RateLimitSpec>>,
    pub(crate) dedupe: Option<Spanned<DedupeSpec>>,
    pub(crate) state_failure: Option<Spanned<StateFailureSpec>>,
    /// The secret the bot verifies with; the gateway re-signs what it forwards.
    pub(crate) resign: Option<Spanned<CredentialSpec>>,
    /// The bot under `bots:` that answers this route.
    pub(crate) bot: Option<Spanned<String>>,
    pub(crate) response_urls: Option<Spanned<CustodySpec>>,
    pub(crate) workflow_tokens: Option<Spanned<CustodySpec>>,
}

/// `off` or `custody`, for `response_urls` and `workflow_tokens`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CustodySpec {
    Off,
    Custody,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DedupeSpec {
    EventId,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StateFailureSpec {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ModeSpec {
    Enforce,
    Shadow,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnDenySpec {
    Reject,
    Ack,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceIpsSpec {
    pub(crate) allow: Option<SpannedList>,
    pub(crate) deny: Option<SpannedList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeSpec {
    pub(crate) enterprises: Option<SpannedList>,
    pub(crate) teams: Option<SpannedList>,
    pub(crate) channels: Option<SpannedList>,
    pub(crate) users: Option<SpannedList>,
    pub(crate) events: Option<SpannedList>,
    pub(crate) commands: Option<SpannedList>,
    pub(crate) actions: Option<SpannedList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitSpec {
    pub(crate) per: Spanned<LimitKeySpec>,
    pub(crate) rate: Spanned<String>,
    pub(crate) burst: Spanned<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LimitKeySpec {
    Team,
    Enterprise,
    User,
    Channel,
    App,
    Ip,
    Route,
}
