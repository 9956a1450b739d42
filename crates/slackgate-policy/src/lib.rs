//! slackgate-policy: the config and policy model of slackgate.
//!
//! It turns the two YAML files an operator writes (the server config and the
//! hot-reloaded policy) into validated, compiled, immutable values that the
//! guard evaluates per request without allocating.
//!
//! It must not depend on pingora, tokio or any other I/O runtime: it reads
//! files and environment variables only through [`load`] and a [`SecretSource`], so
//! it builds fast, fuzzes easily and is testable with an in-memory secret source and
//! an explicit `now`.
//!
//! [`load`] is the one entry point: `run`, every reload, `check`, `explain` and `test`
//! call it, so no command accepts a config another refuses. It compiles the config, the
//! policy and the state key, and runs every check where config and policy meet.
//! Compilers on text ([`compile_config`], [`compile_policy`]) and [`Loaded::join`] exist
//! for tests and tools.
//! Dependency direction: `slackgate-slack <- slackgate-policy <- slackgate-guard`.
//!
//! # Pipeline
//!
//! ```text
//! file -> marked-yaml nodes (positions) -> *Spec (serde, deny_unknown_fields, Spanned)
//!      -> validate + compile (all errors collected, each with file:line:column and a fix)
//!      -> Config / Policy
//!      -> state key, the checks where config and policy meet (all errors collected)
//!      -> Loaded
//! ```
//!
//! * Parsing keeps a position for every value; duplicate keys are errors.
//! * `*Spec` structs in `spec` mirror the YAML exactly. When serde rejects the
//!   document, each section and entry is deserialized again on its own so
//!   every structural error is reported, not just the first.
//! * Validation destructures every spec struct, so a new key cannot be added
//!   without being handled. It resolves references (route -> app, upstream,
//!   `@group`), reads secrets through the [`SecretSource`], and compiles
//!   matchers ([`IdSet`], [`GlobSet`], [`IpSet`]).
//! * Errors never contain a secret: secret values are only ever read from env
//!   or files, scalars that fail a type check are described by kind, and a
//!   secret pasted into the policy is reported without its value.
//!
//! # Where things are
//!
//! | module | what |
//! |---|---|
//! | `yaml` | YAML text -> positioned nodes; probing a broken document entry by entry |
//! | `spec` | the `*Spec` structs, the YAML shape of both files ([`POLICY_KEYS`], [`CONFIG_KEYS`]) |
//! | `bots` | the egress model: [`Bot`], [`BotTable`] (by key, constant time), [`Credential`], [`MethodRule`]; compiled in `compile/bots.rs` |
//! | `webhooks` | incoming webhooks the gateway holds: [`Webhook`] (its URL a [`Credential`]), [`WebhookTable`]; compiled in `compile/webhooks.rs` |
//! | `groups` | groups whose members Slack holds: [`UserGroup`], [`UserSet`] (a scope's users); compiled in `compile/groups.rs` |
//! | `apps` | Slack apps: [`App`] and its signing secrets ([`AppSecret`]), named by routes and bots; compiled in `compile/apps.rs` |
//! | `model` | the compiled policy: [`Policy`], [`Route`], [`RouteTable`], [`strip_port`], ... |
//! | `mode` | [`Mode`]: `enforce` or `shadow`, for routes and bots |
//! | `compile` | spec -> [`Policy`]: [`compile_policy`]; `compile/apps.rs` (apps, secrets), `compile/routes.rs` (routes, scopes, rate limits); the server config: [`compile_config`] and the state key in `compile/config.rs` |
//! | `config` | the server config's types: [`Config`], [`Egress`], [`Limits`], [`StateKey`], ...; compiled in `compile/config.rs` |
//! | `joins` | the checks where config and policy meet, all run by [`load()`]: webhook URLs under `egress.hooks_base`, rotating bots' state, user groups' `egress` |
//! | `load` | the one loader: [`load`] -> [`Loaded`] (config, policy, state key, the checks where they meet) |
//! | `matcher` | the compiled matchers [`IdSet`], [`GlobSet`], [`IpSet`]; `parse_cidrs` (IP/CIDR lists of both files) |
//! | `secrets` | [`SecretSource`] and what a secret may look like |
//! | `units` | durations and rates ([`parse_duration`], [`Rate`]) |
//! | `error` | [`LoadError`], [`LoadErrors`]: every error with its position and fix; [`yaml_errors::Errors`] collects them |
//! | [`yaml_errors`] | the YAML error reporting of `yaml` and `error`, public for other YAML files (`slackgate test`) |

#![warn(missing_docs)]

mod apps;
mod bots;
mod compile;
mod config;
mod credential;
mod error;
mod groups;
mod joins;
mod load;
mod matcher;
mod mode;
mod model;
mod secrets;
mod spec;
mod units;
mod webhooks;
mod yaml;

use std::path::Path;

pub use apps::{App, AppSecret, SocketMode, SocketPaths, MAX_SOCKET_CONNECTIONS};
pub use bots::{
    Bot, BotTable, BotToken, Credential, EgressLimitKey, EgressLimitRule, Location, MethodRule,
    Rotation, RESPONSE_URL_METHOD,
};
pub use compile::{compile_config, compile_policy, policy_hash, POLICY_KEYS};
pub use config::{
    Admin, Audit, AuditPath, Config, Egress, KeyExchange, Limits, Listener, Pacing, RedisMode,
    RedisSettings, SlackApi, State, StateBackend, StateKey, StateKeyRef, Tls, TlsFiles,
    CONFIG_KEYS, DEFAULT_AUDIT_QUEUE_BYTES, DEFAULT_KEY_EXCHANGE,
};
pub use error::{LoadError, LoadErrors};

/// The loaders' YAML error reporting, for other YAML files that want the same positions and
/// texts as `slackgate check` (the tests files of `slackgate test`).
///
/// [`parse`](yaml_errors::parse) reads the text into `marked-yaml` nodes (duplicate keys,
/// a second document, anchors and tags refused), [`report_from_node`](yaml_errors::report_from_node)
/// turns a serde error of `marked_yaml::from_node` into a positioned error with its key path
/// and fix, [`check_top_level`](yaml_errors::check_top_level) reports unknown keys with the
/// keys allowed there and missing required ones. They record into an [`Errors`](yaml_errors::Errors),
/// which [`Errors::finish`](yaml_errors::Errors::finish) turns into [`LoadErrors`].
pub mod yaml_errors {
    pub use crate::error::{span_pos, Errors};
    pub use crate::yaml::{check_top_level, parse, report_from_node};
}
pub use groups::{UserGroup, UserGroups, UserSet, MIN_GROUP_REFRESH};
pub use load::{load, looks_like_policy, Loaded};
pub use matcher::{GlobSet, IdSet, IpSet, LookupHasher};
pub use model::{
    strip_port, Custody, Dedupe, LimitKey, Mode, OnDeny, Policy, RateLimitRule, Resign, Route,
    RouteTable, Scope, SourceIpRule, StateFailure, Upstream,
};
pub use secrets::{SecretRef, SecretSource, SystemSecrets};
pub use units::{parse_duration, DurationError, Rate, RateError};
pub use webhooks::{Webhook, WebhookTable};

/// Reads a whole file as UTF-8, mapping failures to a positionless [`LoadError`].
fn read_text(path: &Path) -> Result<String, LoadErrors> {
    let bytes = std::fs::read(path).map_err(|e| compile::unreadable(path, &e))?;
    String::from_utf8(bytes).map_err(|_| {
        LoadError::whole_file(
            path,
            "the file is not valid UTF-8",
            "save the file as UTF-8 text",
        )
        .into()
    })
}
