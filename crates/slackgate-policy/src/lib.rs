//! slackgate-policy: the config and policy model of slackgate.
//!
//! It turns the two YAML files an operator writes (the server config and the
//! hot-reloaded policy) into validated, compiled, immutable values that the
//! guard evaluates per request without allocating.
//!
//! It must not depend on pingora, tokio or any other I/O runtime: it reads
//! files and environment variables only through [`load_config`],
//! [`load_policy`] and a [`SecretSource`], so it builds fast, fuzzes easily and
//! is testable with an in-memory secret source and an explicit `now`.
//! Dependency direction: `slackgate-slack <- slackgate-policy <- slackgate-guard`.
//!
//! # Pipeline
//!
//! ```text
//! file -> marked-yaml nodes (positions) -> *Spec (serde, deny_unknown_fields, Spanned)
//!      -> validate + compile (all errors collected, each with file:line:column and a fix)
//!      -> Config / Policy
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
//! | `webhooks` | incoming webhooks the gateway holds: [`Webhook`] (its URL a [`Credential`]), [`WebhookTable`], [`check_webhooks`] (URLs under `egress.hooks_base`, where config and policy meet); compiled in `compile/webhooks.rs` |
//! | `groups` | groups whose members Slack holds: [`UserGroup`], [`UserSet`] (a scope's users), [`check_groups`] (they need `egress`); compiled in `compile/groups.rs` |
//! | `model` | the compiled policy: [`Policy`], [`App`], [`Route`], [`RouteTable`], [`strip_port`], ... |
//! | `compile` | spec -> [`Policy`]: [`load_policy`], [`compile_policy`]; `compile/apps.rs` (apps, secrets), `compile/routes.rs` (routes, scopes, rate limits) |
//! | `config` | the server config, its types and its compiler: [`Config`], [`load_config`] |
//! | `matcher` | the compiled matchers [`IdSet`], [`GlobSet`], [`IpSet`] |
//! | `secrets` | [`SecretSource`] and what a secret may look like |
//! | `units` | durations and rates ([`parse_duration`], [`Rate`]) |
//! | `error` | [`LoadError`], [`LoadErrors`]: every error with its position and fix |

#![warn(missing_docs)]

mod bots;
mod compile;
mod config;
mod error;
mod groups;
mod matcher;
mod model;
mod secrets;
mod spec;
mod units;
mod webhooks;
mod yaml;

use std::path::Path;

pub use bots::{
    check_rotation, Bot, BotTable, BotToken, Credential, EgressLimitKey, EgressLimitRule, Location,
    MethodRule, Rotation,
};
pub use compile::{compile_policy, load_policy, policy_hash, POLICY_KEYS};
pub use config::{
    compile_config, load_config, read_state_key, Admin, Audit, AuditPath, Config, Egress, Limits,
    Listener, RedisSettings, SlackApi, State, StateBackend, StateKey, StateKeyRef, TlsFiles,
    CONFIG_KEYS, DEFAULT_AUDIT_QUEUE_BYTES,
};
pub use error::{LoadError, LoadErrors};
pub use groups::{check_groups, UserGroup, UserGroups, UserSet, MIN_GROUP_REFRESH};
pub use matcher::{GlobSet, IdSet, IpSet, LookupHasher};
pub use model::{
    strip_port, App, AppSecret, Dedupe, LimitKey, Mode, OnDeny, Policy, RateLimitRule, Route,
    RouteTable, Scope, SourceIpRule, StateFailure, Upstream,
};
pub use secrets::{SecretRef, SecretSource, SystemSecrets};
pub use units::{parse_duration, DurationError, Rate, RateError};
pub use webhooks::{check_webhooks, Webhook, WebhookTable};

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
