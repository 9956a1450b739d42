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
//! JSON bodies are read by a scanner of this module rather than by `serde_json`, because
//! stripping the token needs the byte spans of the top-level members. The scanner accepts
//! exactly the documents `serde_json::from_slice::<serde_json::Value>` accepts as an object
//! (same grammar, same nesting limit of 128, same number range: a number with a fraction or
//! an exponent is range-checked by `serde_json` itself), which the tests and the
//! `egress_args` fuzz target hold it to.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use crate::methods::{conversation_use, is_list_argument, CHANNEL_ARGUMENTS};

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

// === CallEncoding ===

/// How a call's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallEncoding {
    /// The body is empty; only the query string carries arguments.
    None,
    /// `application/x-www-form-urlencoded`, or no Content-Type at all.
    Form,
    /// `application/json`.
    Json,
}

impl CallEncoding {
    /// The encoding of `body` by its Content-Type value: parameters such as `charset` are
    /// ignored and the media type's case too. An empty body is [`CallEncoding::None`]
    /// whatever the header says; a non-empty body of any type but a form or JSON
    /// (`multipart/form-data`, `text/plain`, an empty or non-UTF-8 header value) is
    /// [`CallError::UnsupportedEncoding`].
    pub fn detect(content_type: Option<&[u8]>, body: &[u8]) -> Result<Self, CallError> {
        if body.is_empty() {
            return Ok(CallEncoding::None);
        }
        let Some(value) = content_type else {
            return Ok(CallEncoding::Form);
        };
        if simdutf8::basic::from_utf8(value).is_err() {
            return Err(CallError::UnsupportedEncoding);
        }
        let essence = value.split(|&b| b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Ok(CallEncoding::Form)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Ok(CallEncoding::Json)
        } else {
            Err(CallError::UnsupportedEncoding)
        }
    }
}

// === CallArgs ===

/// What the gateway decides on, read from a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallArgs {
    /// A `token` argument appeared in the query string (refused upstream: `token_in_url`).
    pub token_in_query: bool,
    /// The `token` argument of the body (form field or top-level JSON string member), if any.
    pub body_token: Option<String>,
    /// Channels named by every channel-naming argument ([`crate::CHANNEL_ARGUMENTS`]:
    /// `channel`, `channel_id`, `context_channel_id`, and the lists `channels` and
    /// `channel_ids`, comma-separated, items trimmed, empty items dropped), from query and
    /// body, deduplicated, in order of appearance. Single-channel values are taken as they
    /// are, even when empty. A JSON list argument may be an array; its items are comma lists
    /// too. At most [`CallLimits::max_channels`] of them.
    pub channels: Vec<String>,
    /// For each channel-naming argument given, the first channel it names (a list's first
    /// item), in order of appearance; see [`CallArgs::acted_on`].
    pub by_argument: Vec<(&'static str, String)>,
    /// The `team_id` argument, if any.
    pub team_id: Option<String>,
    /// Every argument name, query and body, deduplicated, in order of appearance (for
    /// `deny_args`). A form name that Slack's form parser may file under another name
    /// (`user.name` as `user_name`, `icon_url[]` as `icon_url`) is listed under both.
    pub names: Vec<String>,
    /// The body encoding that was read.
    pub encoding: CallEncoding,
}

impl CallArgs {
    fn new(encoding: CallEncoding) -> Self {
        CallArgs {
            token_in_query: false,
            body_token: None,
            channels: Vec::new(),
            by_argument: Vec::new(),
            team_id: None,
            names: Vec::new(),
            encoding,
        }
    }

    /// The first channel the call names by `argument`, if it names one by it.
    pub fn named_by(&self, argument: &str) -> Option<&str> {
        self.by_argument
            .iter()
            .find(|(a, _)| *a == argument)
            .map(|(_, c)| c.as_str())
    }

    /// The channel a call of `method` (in Slack's spelling) acts on: the first of the
    /// method's own arguments ([`crate::conversation_use`]) that the call gives. For a
    /// method the table ties to no conversation, the first channel the call names. `None`
    /// when the call does not name the conversation the method acts on.
    pub fn acted_on(&self, method: &str) -> Option<&str> {
        match conversation_use(method) {
            Some(u) => u.targets.iter().find_map(|t| self.named_by(t)),
            None => self.channels.first().map(String::as_str),
        }
    }
}

// === CallLimits ===

/// Bounds on what one call may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The most distinct channels a call may name, all channel-naming arguments together
    /// (`limits.max_call_channels`); one more is [`CallError::TooManyChannels`].
    pub max_channels: usize,
}

// === CallError ===

/// Why a call cannot be read; each maps to the reason `malformed_call`. Display texts name
/// the problem and at most an argument name, never a value or body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// A non-empty body of a type other than a form or JSON (multipart, text, ...).
    #[error("the call's body is neither a form nor JSON")]
    UnsupportedEncoding,
    /// A JSON body that is not valid JSON, or nests deeper than 128 levels.
    #[error("the call's JSON body is not valid JSON")]
    BadJson,
    /// A JSON body that is valid JSON but not an object.
    #[error("the call's JSON body is not an object")]
    NotAnObject,
    /// A body or query argument that is not UTF-8 text once decoded.
    #[error("an argument of the call is not valid UTF-8")]
    BadUtf8,
    /// An argument given more than once with different values.
    #[error("the argument {} is given more than once with different values", Shown(.name))]
    Ambiguous {
        /// The argument's name.
        name: String,
    },
    /// A channel-naming argument with a JSON value that is not a string (or, for a list
    /// argument, an array of strings).
    #[error("the argument `{name}` is not a string")]
    ChannelNotString {
        /// The argument's name.
        name: &'static str,
    },
    /// `token` or `team_id` with a JSON value that is not a string.
    #[error("the argument `{name}` is not a string")]
    NotAString {
        /// The argument's name.
        name: &'static str,
    },
    /// More distinct channels than [`CallLimits::max_channels`], all channel-naming
    /// arguments together.
    #[error("the call names more than {max} channels (limits.max_call_channels)")]
    TooManyChannels {
        /// The cap.
        max: usize,
    },
    /// A form argument whose name Slack's form parser may file under a watched name
    /// (`channel[]`, `team.id`, ` token`): its meaning is not certain, so it is refused.
    #[error("an argument's name may be read as `{name}`")]
    AliasedName {
        /// The watched name it may be read as.
        name: &'static str,
    },
}

impl CallError {
    /// What went wrong, without any name or number: one of [`CallError::KINDS`]. The
    /// audit record of a caller no key identified carries this rather than the
    /// [`Display`](std::fmt::Display) text, so nothing it wrote (an argument's name) is
    /// recorded.
    pub const fn kind(&self) -> &'static str {
        match self {
            CallError::UnsupportedEncoding => Self::KINDS[0],
            CallError::BadJson => Self::KINDS[1],
            CallError::NotAnObject => Self::KINDS[2],
            CallError::BadUtf8 => Self::KINDS[3],
            CallError::Ambiguous { .. } => Self::KINDS[4],
            CallError::ChannelNotString { .. } | CallError::NotAString { .. } => Self::KINDS[5],
            CallError::TooManyChannels { .. } => Self::KINDS[6],
            CallError::AliasedName { .. } => Self::KINDS[7],
        }
    }

    /// Every [`CallError::kind`].
    pub const KINDS: [&'static str; 8] = [
        "the call's body is neither a form nor JSON",
        "the call's JSON body is not valid JSON",
        "the call's JSON body is not an object",
        "an argument of the call is not valid UTF-8",
        "an argument is given more than once with different values",
        "an argument that must be a string is not one",
        "the call names more channels than limits.max_call_channels",
        "an argument's name may be read as one the gateway checks",
    ];
}

/// An argument name as error texts show it: only when it looks like a Slack argument name
/// (lowercase ASCII letters and `_`, at most 40 bytes), so that a secret sent as a name is
/// never echoed.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && self.0.len() <= 40
            && self.0.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if plain {
            write!(f, "`{}`", self.0)
        } else {
            f.write_str("(name not shown)")
        }
    }
}

// === read_call ===

/// The argument names the gateway reads values of: `token`, `team_id` and the
/// channel-naming ones.
const WATCHED: [&str; 7] = [
    "token",
    "team_id",
    CHANNEL_ARGUMENTS[0],
    CHANNEL_ARGUMENTS[1],
    CHANNEL_ARGUMENTS[2],
    CHANNEL_ARGUMENTS[3],
    CHANNEL_ARGUMENTS[4],
];

/// Reads a call: `query` is the raw query string (without `?`), `content_type` the raw
/// Content-Type value and `body` the raw body; `limits` bounds what it may name.
///
/// Query and body arguments are read together: a name given twice with different values,
/// in either or across both, is [`CallError::Ambiguous`], whatever the argument; the same
/// value repeated is fine. A query value and a JSON value are the same only when the JSON
/// value is a string with the same text; two JSON values are compared as `serde_json`
/// values. Never panics, whatever the input, and takes time linear in its size.
pub fn read_call(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
    limits: &CallLimits,
) -> Result<CallArgs, CallError> {
    let encoding = CallEncoding::detect(content_type, body)?;
    let mut reader = Reader::new(encoding, limits);
    if let Some(query) = query {
        reader.form(query, Source::Query)?;
    }
    match encoding {
        CallEncoding::None => {}
        CallEncoding::Form => reader.form(body, Source::Body)?,
        CallEncoding::Json => {
            for member in scan_object(body)? {
                let value = body.get(member.value).ok_or(CallError::BadJson)?;
                reader.add(member.key, Given::Json(value), Source::Body)?;
            }
        }
    }
    Ok(reader.args)
}

/// Where an argument was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Query,
    Body,
}

/// A value an argument was given, kept to compare repeats.
#[derive(Debug)]
enum Given<'a> {
    /// A decoded query or form value.
    Text(Cow<'a, str>),
    /// The bytes of a JSON value the scanner validated.
    Json(&'a [u8]),
}

impl Given<'_> {
    /// The value as text: a form value, or a JSON string; `None` for other JSON values.
    fn text(&self) -> Result<Option<Cow<'_, str>>, CallError> {
        match self {
            Given::Text(text) => Ok(Some(Cow::Borrowed(text.as_ref()))),
            Given::Json(raw) => json_string(raw),
        }
    }
}

/// The first value of an argument, kept to compare its repeats with.
#[derive(Debug)]
struct First<'a> {
    given: Given<'a>,
    /// The JSON value as `serde_json` reads it, once a repeat needed it: parsed once, so
    /// that many small repeats of one large value cost their own size only.
    parsed: Option<serde_json::Value>,
}

impl First<'_> {
    /// Whether a repeat is the same value.
    fn same_as(&mut self, repeat: &Given<'_>) -> Result<bool, CallError> {
        match (&self.given, repeat) {
            (Given::Text(a), Given::Text(b)) => Ok(a == b),
            (Given::Text(text), json @ Given::Json(_))
            | (json @ Given::Json(_), Given::Text(text)) => {
                Ok(json.text()?.is_some_and(|s| s == *text))
            }
            (Given::Json(a), Given::Json(b)) => {
                if a == b {
                    return Ok(true);
                }
                let theirs = json_value(b)?;
                let ours = match &mut self.parsed {
                    Some(v) => v,
                    None => self.parsed.insert(json_value(a)?),
                };
                Ok(*ours == theirs)
            }
        }
    }
}

/// A validated JSON value as `serde_json` reads it.
fn json_value(raw: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(raw).map_err(|_| CallError::BadJson)
}

/// Collects a call's arguments.
struct Reader<'a> {
    /// The first value of each name.
    seen: HashMap<Cow<'a, str>, First<'a>>,
    /// The names in `args.names`.
    listed: HashSet<String>,
    /// The channels in `args.channels`.
    channel_set: HashSet<String>,
    max_channels: usize,
    args: CallArgs,
}

impl<'a> Reader<'a> {
    fn new(encoding: CallEncoding, limits: &CallLimits) -> Self {
        Reader {
            seen: HashMap::new(),
            listed: HashSet::new(),
            channel_set: HashSet::new(),
            max_channels: limits.max_channels,
            args: CallArgs::new(encoding),
        }
    }

    /// Reads the arguments of a query string or form body.
    fn form(&mut self, input: &'a [u8], source: Source) -> Result<(), CallError> {
        for piece in input.split(|&b| b == b'&') {
            if piece.is_empty() {
                continue;
            }
            let (name, value) = form_pair(piece)?;
            let aliases = form_aliases(&name);
            self.add(name, Given::Text(value), source)?;
            for alias in aliases.into_iter().flatten() {
                if let Some(watched) = WATCHED.iter().find(|w| **w == alias) {
                    return Err(CallError::AliasedName { name: watched });
                }
                self.list(&alias);
            }
        }
        Ok(())
    }

    fn list(&mut self, name: &str) {
        if !self.listed.contains(name) {
            self.listed.insert(name.to_owned());
            self.args.names.push(name.to_owned());
        }
    }

    /// Records one argument.
    fn add(
        &mut self,
        name: Cow<'a, str>,
        value: Given<'a>,
        source: Source,
    ) -> Result<(), CallError> {
        self.take(&name, &value, source)?;
        match self.seen.get_mut(name.as_ref()) {
            Some(first) => {
                if !first.same_as(&value)? {
                    return Err(CallError::Ambiguous {
                        name: name.into_owned(),
                    });
                }
            }
            None => {
                self.list(&name);
                self.seen.insert(
                    name,
                    First {
                        given: value,
                        parsed: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Takes what the gateway reads from a watched argument. Repeats have the same value
    /// (else the call is ambiguous), so the first one counts.
    fn take(&mut self, name: &str, value: &Given<'_>, source: Source) -> Result<(), CallError> {
        match name {
            "token" => {
                let token = value
                    .text()?
                    .ok_or(CallError::NotAString { name: "token" })?;
                match source {
                    Source::Query => self.args.token_in_query = true,
                    Source::Body => {
                        if self.args.body_token.is_none() {
                            self.args.body_token = Some(token.into_owned());
                        }
                    }
                }
            }
            "team_id" => {
                let team = value
                    .text()?
                    .ok_or(CallError::NotAString { name: "team_id" })?;
                if self.args.team_id.is_none() {
                    self.args.team_id = Some(team.into_owned());
                }
            }
            _ => {
                let Some(&argument) = CHANNEL_ARGUMENTS.iter().find(|a| **a == name) else {
                    return Ok(());
                };
                let not_string = CallError::ChannelNotString { name: argument };
                if !is_list_argument(argument) {
                    let channel = value.text()?.ok_or(not_string)?;
                    return self.channel(argument, &channel);
                }
                match value {
                    Given::Text(list) => self.channel_list(argument, list)?,
                    Given::Json(raw) => match raw.first() {
                        Some(b'"') => {
                            let list = json_string(raw)?.ok_or(not_string)?;
                            self.channel_list(argument, &list)?;
                        }
                        Some(b'[') => {
                            if !json_string_items(raw, |item| self.channel_list(argument, &item))? {
                                return Err(not_string);
                            }
                        }
                        _ => return Err(not_string),
                    },
                }
            }
        }
        Ok(())
    }

    /// Records a channel named by `argument`: once, and only while under the cap.
    fn channel(&mut self, argument: &'static str, channel: &str) -> Result<(), CallError> {
        if !self.channel_set.contains(channel) {
            if self.args.channels.len() >= self.max_channels {
                return Err(CallError::TooManyChannels {
                    max: self.max_channels,
                });
            }
            self.channel_set.insert(channel.to_owned());
            self.args.channels.push(channel.to_owned());
        }
        // At most one entry per channel-naming argument: a scan of five.
        if self.args.named_by(argument).is_none() {
            self.args.by_argument.push((argument, channel.to_owned()));
        }
        Ok(())
    }

    /// Records a comma list's channels, stopping at the first one past the cap.
    fn channel_list(&mut self, argument: &'static str, list: &str) -> Result<(), CallError> {
        for item in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            self.channel(argument, item)?;
        }
        Ok(())
    }
}

// === Forms ===

/// The decoded name and value of one non-empty `&`-separated piece of a form.
fn form_pair(piece: &[u8]) -> Result<(Cow<'_, str>, Cow<'_, str>), CallError> {
    let (name, value) = match piece.iter().position(|&b| b == b'=') {
        Some(eq) => (&piece[..eq], &piece[eq + 1..]),
        None => (piece, &[][..]),
    };
    Ok((form_decode(name)?, form_decode(value)?))
}

/// Decodes one form name or value as `form_urlencoded` does (`+` is a space, `%XY` a byte, a
/// `%` without two hex digits itself), refusing bytes that are not UTF-8 where
/// `form_urlencoded` would substitute U+FFFD.
fn form_decode(raw: &[u8]) -> Result<Cow<'_, str>, CallError> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return simdutf8::basic::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| CallError::BadUtf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| CallError::BadUtf8)
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The other names a PHP-style form parser (Slack's) may file a form argument under: it
/// stops at a NUL, drops leading spaces, turns ` ` and `.` into `_`, and reads `name[...]`
/// as an array `name`, or, when the bracket is not closed, turns the `[` into `_`. `None`
/// where the name is the only reading.
fn form_aliases(name: &str) -> [Option<String>; 2] {
    let cut = name.split('\0').next().unwrap_or_default();
    let cut = cut.trim_start_matches(' ');
    let (base, bracket) = match cut.find('[') {
        Some(at) => (&cut[..at], Some(&cut[at + 1..])),
        None => (cut, None),
    };
    let base: String = base
        .chars()
        .map(|c| if c == ' ' || c == '.' { '_' } else { c })
        .collect();
    let unclosed = bracket
        .filter(|rest| !rest.contains(']'))
        .map(|rest| format!("{base}_{rest}"));
    let base = (base != name).then_some(base);
    [base, unclosed.filter(|u| u != name)]
}

// === JSON scanner ===

/// The deepest nesting of arrays and objects `serde_json` accepts: its recursion limit of
/// 128 fails on the 128th open bracket.
const MAX_JSON_DEPTH: u32 = 127;

/// One member of a JSON body's top-level object, with byte offsets into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member<'a> {
    /// The decoded key.
    key: Cow<'a, str>,
    /// From the key's opening quote to the value's last byte.
    span: Range<usize>,
    /// The value.
    value: Range<usize>,
    /// The comma after the value, when another member follows.
    comma: Option<usize>,
}

/// The members of a body that must be exactly one JSON object, in order (repeated keys
/// included).
fn scan_object(body: &[u8]) -> Result<Vec<Member<'_>>, CallError> {
    let text = simdutf8::basic::from_utf8(body).map_err(|_| CallError::BadUtf8)?;
    let mut scan = Scanner { text, pos: 0 };
    scan.ws();
    if scan.peek() != Some(b'{') {
        scan.value(0)?;
        scan.ws();
        return Err(if scan.pos == body.len() {
            CallError::NotAnObject
        } else {
            CallError::BadJson
        });
    }
    scan.pos += 1;
    scan.ws();
    let mut members = Vec::new();
    if scan.peek() == Some(b'}') {
        scan.pos += 1;
    } else {
        loop {
            let start = scan.pos;
            let key = scan.key()?;
            scan.ws();
            let value_start = scan.pos;
            scan.value(1)?;
            let value = value_start..scan.pos;
            scan.ws();
            let comma = match scan.next()? {
                b',' => Some(scan.pos - 1),
                b'}' => None,
                _ => return Err(CallError::BadJson),
            };
            members.push(Member {
                key,
                span: start..value.end,
                value,
                comma,
            });
            if comma.is_none() {
                break;
            }
            scan.ws();
        }
    }
    scan.ws();
    if scan.pos != body.len() {
        return Err(CallError::BadJson);
    }
    Ok(members)
}

/// A JSON value's text when it is a string; `None` for any other value.
fn json_string(raw: &[u8]) -> Result<Option<Cow<'_, str>>, CallError> {
    if raw.first() != Some(&b'"') {
        return Ok(None);
    }
    let text = std::str::from_utf8(raw).map_err(|_| CallError::BadJson)?;
    let mut scan = Scanner { text, pos: 0 };
    scan.string().map(Some)
}

/// Hands each item of a JSON array of strings to `each`, in order, stopping at its first
/// error; `false` when the value is not an array or an item is not a string (items before
/// it were handed over).
fn json_string_items(
    raw: &[u8],
    mut each: impl FnMut(Cow<'_, str>) -> Result<(), CallError>,
) -> Result<bool, CallError> {
    let text = std::str::from_utf8(raw).map_err(|_| CallError::BadJson)?;
    let mut scan = Scanner { text, pos: 0 };
    if scan.next()? != b'[' {
        return Ok(false);
    }
    scan.ws();
    if scan.peek() == Some(b']') {
        return Ok(true);
    }
    loop {
        scan.ws();
        if scan.peek() != Some(b'"') {
            return Ok(false);
        }
        each(scan.string()?)?;
        scan.ws();
        match scan.next()? {
            b',' => {}
            b']' => return Ok(true),
            _ => return Err(CallError::BadJson),
        }
    }
}

/// A cursor over UTF-8 text that validates JSON by `serde_json`'s grammar.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, CallError> {
        let b = self.peek().ok_or(CallError::BadJson)?;
        self.pos += 1;
        Ok(b)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// An object key and the `:` after it, whitespace around the colon included.
    fn key(&mut self) -> Result<Cow<'a, str>, CallError> {
        if self.peek() != Some(b'"') {
            return Err(CallError::BadJson);
        }
        let key = self.string()?;
        self.ws();
        if self.next()? != b':' {
            return Err(CallError::BadJson);
        }
        Ok(key)
    }

    /// Skips one value (leading whitespace included) with `outer` containers open around it.
    /// Iterative, so hostile nesting cannot exhaust the stack; bit `i` of `objects` says
    /// whether the `i`-th container this value opened is an object.
    fn value(&mut self, outer: u32) -> Result<(), CallError> {
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            self.ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if outer + depth + 1 > MAX_JSON_DEPTH {
                        return Err(CallError::BadJson);
                    }
                    self.pos += 1;
                    let object = open == b'{';
                    if object {
                        objects |= 1 << depth;
                    } else {
                        objects &= !(1 << depth);
                    }
                    depth += 1;
                    self.ws();
                    if self.peek() == Some(if object { b'}' } else { b']' }) {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.skip_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(CallError::BadJson),
            }
            // After a value: close containers until one continues with a comma.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let object = (objects >> (depth - 1)) & 1 == 1;
                match (self.next()?, object) {
                    (b',', _) => {
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (b'}', true) | (b']', false) => depth -= 1,
                    _ => return Err(CallError::BadJson),
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), CallError> {
        match self.bytes().get(self.pos..self.pos + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(CallError::BadJson),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number by JSON's grammar. One with a fraction, an exponent or very many digits is
    /// also read by `serde_json`, which refuses numbers out of `f64`'s range.
    fn number(&mut self) -> Result<(), CallError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(CallError::BadJson),
        }
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            plain = false;
            if self.digits() == 0 {
                return Err(CallError::BadJson);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            plain = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(CallError::BadJson);
            }
        }
        // An integer of up to 300 digits is far inside f64's range (about 1.8e308).
        if !plain || self.pos - start > 300 {
            let token = self
                .bytes()
                .get(start..self.pos)
                .ok_or(CallError::BadJson)?;
            serde_json::from_slice::<serde_json::Number>(token).map_err(|_| CallError::BadJson)?;
        }
        Ok(())
    }

    /// Skips a string starting at its opening quote; returns whether it has escapes.
    fn skip_string(&mut self) -> Result<bool, CallError> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            let rest = self.bytes().get(self.pos..).unwrap_or_default();
            let at = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or(CallError::BadJson)?;
            self.pos += at;
            match self.next()? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(CallError::BadJson),
            }
        }
    }

    /// Checks an escape after its backslash; returns the code unit of a `\u` escape.
    fn escape(&mut self) -> Result<Option<u32>, CallError> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(None),
            b'u' => {
                let unit = self.hex4()?;
                if (0xDC00..=0xDFFF).contains(&unit) {
                    return Err(CallError::BadJson);
                }
                if !(0xD800..=0xDBFF).contains(&unit) {
                    return Ok(Some(unit));
                }
                // A leading surrogate must be followed by a trailing one.
                if self.next()? != b'\\' || self.next()? != b'u' {
                    return Err(CallError::BadJson);
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(CallError::BadJson);
                }
                Ok(Some(0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
            }
            _ => Err(CallError::BadJson),
        }
    }

    fn hex4(&mut self) -> Result<u32, CallError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = hex(self.bytes().get(self.pos)).ok_or(CallError::BadJson)?;
            self.pos += 1;
            unit = unit << 4 | u32::from(digit);
        }
        Ok(unit)
    }

    /// A string starting at its opening quote, decoded; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, CallError> {
        let start = self.pos;
        let escaped = self.skip_string()?;
        let inner = self
            .text
            .get(start + 1..self.pos - 1)
            .ok_or(CallError::BadJson)?;
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = String::with_capacity(inner.len());
        let mut unescape = Scanner {
            text: inner,
            pos: 0,
        };
        while let Some(at) = unescape.text.get(unescape.pos..).and_then(|r| r.find('\\')) {
            out.push_str(
                unescape
                    .text
                    .get(unescape.pos..unescape.pos + at)
                    .ok_or(CallError::BadJson)?,
            );
            unescape.pos += at + 1;
            let letter = unescape.peek();
            match unescape.escape()? {
                Some(unit) => out.push(char::from_u32(unit).ok_or(CallError::BadJson)?),
                None => out.push(match letter {
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(other) => char::from(other),
                    None => return Err(CallError::BadJson),
                }),
            }
        }
        out.push_str(unescape.text.get(unescape.pos..).unwrap_or_default());
        Ok(Cow::Owned(out))
    }
}

// === strip_body_token ===

/// The body with its `token` argument removed and every other byte unchanged.
///
/// Form: each `token` piece goes with one adjacent `&` (the one after it, or before it for
/// the last piece). JSON: each top-level `token` member goes with one adjacent comma;
/// whitespace around it may stay. Borrowed when the body has no token. Precondition:
/// [`read_call`] accepted the same body with this encoding; else the answer may be an error.
pub fn strip_body_token(encoding: CallEncoding, body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    match encoding {
        CallEncoding::None => Ok(Cow::Borrowed(body)),
        CallEncoding::Form => strip_form_token(body),
        CallEncoding::Json => strip_json_token(body),
    }
}

fn strip_form_token(body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut stripped = false;
    for piece in body.split(|&b| b == b'&') {
        if !piece.is_empty() && form_pair(piece)?.0 == "token" {
            stripped = true;
        } else {
            kept.push(piece);
        }
    }
    if !stripped {
        return Ok(Cow::Borrowed(body));
    }
    Ok(Cow::Owned(kept.join(&b'&')))
}

fn strip_json_token(body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    let members = scan_object(body)?;
    if !members.iter().any(|m| m.key == "token") {
        return Ok(Cow::Borrowed(body));
    }
    // A removed member takes the comma after it. When the last member goes, the comma
    // after the last member that stays goes too.
    let mut cuts: Vec<Range<usize>> = Vec::new();
    for member in members.iter().filter(|m| m.key == "token") {
        cuts.push(member.span.clone());
        if let Some(comma) = member.comma {
            cuts.push(comma..comma + 1);
        }
    }
    if members.last().is_some_and(|m| m.key == "token") {
        if let Some(comma) = members
            .iter()
            .rev()
            .find(|m| m.key != "token")
            .and_then(|m| m.comma)
        {
            cuts.push(comma..comma + 1);
        }
    }
    cuts.sort_by_key(|cut| cut.start);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for cut in cuts {
        out.extend_from_slice(body.get(at..cut.start).ok_or(CallError::BadJson)?);
        at = cut.end;
    }
    out.extend_from_slice(body.get(at..).ok_or(CallError::BadJson)?);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
