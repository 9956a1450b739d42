//! Bots' calls to the Slack Web API (the egress door), read the way Slack reads them.
//!
//! A call is `POST /api/<method>` with its arguments in the query string and in a form or
//! JSON body. [`method_from_path`] names the method (which [`crate::canonical_method`] then
//! spells as Slack does), [`is_privileged_method`] says whether it must be listed by its
//! exact name, [`read_call`] reads the arguments policy decides on ([`CallArgs`]) and
//! [`strip_body_token`] removes the bot's `token` argument from the body before it is
//! forwarded, leaving every other byte as it was.
//!
//! Reading fails closed: an argument repeated with different values, a body that is not
//! exactly one JSON object or a form of UTF-8 text, a channel that is not a string, more
//! channels than [`CallLimits::max_channels`], and a form argument whose name Slack's form
//! parser may file under a watched name (`channel[]`, `team.id`) are all errors
//! ([`CallError`], reason `malformed_call`), never a best guess.
//!
//! Reading is linear in the call's size: channels are deduplicated through a hash set, a
//! repeated JSON argument is compared with its first value parsed once, and a channel list
//! is read item by item and left as soon as it passes the cap. The caller is not known yet
//! when a call is read (its key may be in the body), so nothing here may cost more than
//! reading the bytes.
//!
//! JSON bodies are read by a scanner of this module (`webapi/json.rs`) rather than by `serde_json`, because
//! stripping the token needs the byte spans of the top-level members. The scanner accepts
//! exactly the documents `serde_json::from_slice::<serde_json::Value>` accepts as an object
//! (same grammar, same nesting limit of 128, same number range: a number with a fraction or
//! an exponent is range-checked by `serde_json` itself), which the tests and the
//! `egress_args` fuzz target hold it to.
//!
//! | file | what |
//! |---|---|
//! | `webapi.rs` | the method of a path: [`method_from_path`], [`is_privileged_method`] |
//! | `webapi/read.rs` | [`read_call`]: the call reader |
//! | `webapi/args.rs` | [`CallArgs`], what a call is read into, and [`CallLimits`] |
//! | `webapi/encoding.rs` | [`CallEncoding`] |
//! | `webapi/error.rs` | [`CallError`] |
//! | `webapi/form.rs` | form pieces decoded, and the other names Slack's form parser may read |
//! | `webapi/json.rs` | the JSON scanner: top-level members with their byte spans |
//! | `webapi/strip.rs` | [`strip_body_token`] |
//! | `webapi/tests.rs` | the unit and property tests |

mod args;
mod encoding;
mod error;
mod form;
mod json;
mod read;
mod strip;

pub use args::{CallArgs, CallLimits};
pub use encoding::CallEncoding;
pub use error::CallError;
pub use read::read_call;
pub use strip::strip_body_token;

// === Methods ===

/// The prefix of every Web API path.
const API_PREFIX: &str = "/api/";

/// The longest method name accepted, in bytes.
const MAX_METHOD_LEN: usize = 100;

/// The method named by a Web API path: the last segment after an `/api/` prefix.
///
/// `"/api/chat.postMessage"` gives `Some("chat.postMessage")`. Anything else gives `None`:
/// no `/api/` prefix, an empty method, characters outside `[A-Za-z0-9._]`, a method starting
/// or ending with `.` or containing `..`, further slashes after the method, more than 100
/// bytes. `path` is the request target's path without its query (the caller splits at `?`);
/// percent-encoded bytes are not decoded, so a path holding any gives `None`.
pub fn method_from_path(path: &str) -> Option<&str> {
    let method = path.strip_prefix(API_PREFIX)?;
    let well_formed = !method.is_empty()
        && method.len() <= MAX_METHOD_LEN
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        && !method.starts_with('.')
        && !method.ends_with('.')
        && !method.contains("..");
    well_formed.then_some(method)
}

/// Method families that mint, revoke or widen access: the name itself and every
/// `<family>.<more>`.
/// Beyond the contract's list (docs/policy.md, `bots`): `apps.permissions.*` (requests
/// wider scopes), `openid.*` (mints tokens for Sign in with Slack) and `tooling.tokens.*`
/// (rotates configuration tokens).
const PRIVILEGED_FAMILIES: [&str; 7] = [
    "admin",
    "apps.manifest",
    "apps.permissions",
    "oauth",
    "openid",
    "tooling.tokens",
    "users.admin",
];

/// Single methods that mint, revoke or widen access.
/// `migration.exchange` is beyond the contract's list (docs/policy.md): it maps ids across
/// an Enterprise Grid migration with the org's authority.
const PRIVILEGED_METHODS: [&str; 5] = [
    "auth.revoke",
    "migration.exchange",
    "apps.uninstall",
    "apps.connections.open",
    "files.sharedPublicURL",
];

/// Whether a method mints, revokes or widens access and therefore must be listed by its exact
/// name to be allowed: `admin.*`, `auth.revoke`, `apps.uninstall`, `apps.manifest.*`,
/// `oauth.*` (including `oauth.v2.*`), `apps.connections.open`, `files.sharedPublicURL` and
/// `users.admin.*`; and, beyond the contract's list (docs/policy.md), `apps.permissions.*`,
/// `openid.*`, `tooling.tokens.*` and `migration.exchange`.
///
/// Slack compares method names case-sensitively, but this test ignores ASCII case so that it
/// fails closed: `Admin.users.list` is privileged too. A family's bare name (`oauth`) counts
/// as a member of it.
pub fn is_privileged_method(method: &str) -> bool {
    PRIVILEGED_METHODS
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
        || PRIVILEGED_FAMILIES
            .iter()
            .any(|family| in_family(method, family))
}

/// Whether `method` is `family` or starts with `family.`, ignoring ASCII case.
fn in_family(method: &str, family: &str) -> bool {
    let method = method.as_bytes();
    match method.get(..family.len()) {
        Some(head) if head.eq_ignore_ascii_case(family.as_bytes()) => {
            matches!(method.get(family.len()), None | Some(b'.'))
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
