//! The tests file, loaded the way the policy crate loads a policy:
//!
//! ```text
//! file -> marked-yaml nodes (positions, duplicate keys and a second document refused)
//!      -> CaseSpec per case (serde, deny_unknown_fields, Spanned)
//!      -> validated Case (reason known, one body, secret ids resolved against the policy)
//! ```
//!
//! Every case is deserialized on its own, so every broken case is reported, each error with
//! file:line:column and the fix. Errors describe values by kind and never quote them, so a
//! value pasted into the wrong place (a secret) is never echoed. The YAML and structural
//! errors (syntax, duplicate and unknown keys, missing keys, wrong types) are the policy
//! loader's own ([`slackgate_policy::yaml_errors`]): a tests file and a policy name the same
//! problem with the same words.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use marked_yaml::{Node, Span, Spanned};
use serde::Deserialize;
use slackgate_guard::{EgressReason, Reason};
use slackgate_policy::yaml_errors::{self, Errors};
use slackgate_policy::{LoadErrors, Loaded};
use slackgate_slack::RequestKind;

use super::body::{action_kinds, ActionSpec, CommandSpec, EventSpec};
use crate::probe::{self, PipelineHeaders};

/// Where the format is documented, for the fixes.
const FORMAT_DOC: &str = "README.md, section \"Policy tests\"";

// === raw specs ===

/// One `cases:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: Spanned<String>,
    request: Option<RequestSpec>,
    call: Option<Spanned<CallSpec>>,
    expect: ExpectSpec,
}

/// `call:` as written: a bot's Web API call to the egress door.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    bot: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    method: Spanned<String>,
    args: Option<BTreeMap<String, String>>,
    encoding: Option<Spanned<String>>,
    query: Option<String>,
    replied_in: Option<Vec<String>>,
}

/// `request:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    path: String,
    host: Option<String>,
    client_ip: Option<Spanned<String>>,
    headers: Option<BTreeMap<String, String>>,
    body: Option<Spanned<String>>,
    event: Option<Spanned<EventSpec>>,
    command: Option<Spanned<CommandSpec>>,
    action: Option<Spanned<ActionSpec>>,
    signature: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    timestamp: Option<Spanned<String>>,
}

/// `expect:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    reason: Spanned<String>,
    rule: Option<String>,
    shadow: Option<Spanned<bool>>,
    status: Option<u16>,
    route: Option<Spanned<String>>,
    secret_id: Option<Spanned<String>>,
    bot: Option<Spanned<String>>,
}

// === validated model ===

/// A loaded tests file.
#[derive(Debug)]
pub(super) struct TestFile {
    /// Whether the cases share one replay cache and one set of rate-limit buckets.
    pub state: StateScope,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// `state:` what the cases of a file share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StateScope {
    /// `fresh` (default): every case starts with an empty replay cache and full buckets.
    Fresh,
    /// `shared`: the cases run in order on one guard, so replays and rate limits carry over.
    Shared,
}

/// One test case.
#[derive(Debug)]
pub(super) struct Case {
    /// The case's name.
    pub name: String,
    /// 1-based line and column of the case's name.
    pub at: (usize, usize),
    /// The request or call to decide.
    pub input: Input,
    /// The decision expected.
    pub expect: Expect,
}

/// What a case sends.
#[derive(Debug)]
pub(super) enum Input {
    /// `request:` an inbound request from Slack.
    Inbound(Request),
    /// `call:` a bot's Web API call to the egress door.
    Egress(Call),
}

/// A bot's Web API call (`call:`).
#[derive(Debug)]
pub(super) struct Call {
    /// Which key it presents.
    pub key: CallKey,
    /// The Web API method (the path is `/api/<method>`).
    pub method: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The body: `args` encoded as `encoding` says.
    pub body: Vec<u8>,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Channels that sent the bot's app a verified request just now (`reply_scope`).
    pub replied_in: Vec<String>,
}

/// The key a call presents in `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallKey {
    /// The key of the policy's bot of this name (read from its secret, never written in
    /// the tests file).
    Bot(String),
    /// No key at all (`key: none`).
    None,
    /// A key no bot has (`key: wrong`).
    Wrong,
}

/// The request of a case.
#[derive(Debug)]
pub(super) struct Request {
    /// The request path.
    pub path: String,
    /// The Host, when the route table should be asked with one.
    pub host: Option<String>,
    /// The client address (default 127.0.0.1).
    pub client_ip: IpAddr,
    /// Headers sent as given, after the generated ones (so they replace them).
    pub headers: Vec<(String, String)>,
    /// What the body is.
    pub body: Body,
    /// How the request is signed.
    pub signing: Signing,
    /// When it was signed.
    pub timestamp: Timestamp,
}

/// The body of a request.
#[derive(Debug)]
pub(super) enum Body {
    /// `body:` these bytes (none given: empty).
    Literal(Vec<u8>),
    /// `event:`.
    Event(EventSpec),
    /// `command:`.
    Command(CommandSpec),
    /// `action:` with its payload type.
    Action(ActionSpec, RequestKind),
}

/// `signature:` how a request is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signing {
    /// `valid` (default): with the route's app's first live secret, or the one `secret:` names.
    Valid {
        /// `secret:` the id of the app's secret to sign with.
        secret: Option<String>,
    },
    /// `bad`: a well-formed signature that matches no secret.
    Bad,
    /// `none`: neither signature nor timestamp header.
    None,
}

/// `timestamp:` the signing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timestamp {
    /// This many seconds from the run's start (`now`, `-10m`, `+6m`).
    Offset(i64),
    /// This Unix time.
    At(i64),
}

/// The decision a case expects; an unset field is not compared.
#[derive(Debug)]
pub(super) struct Expect {
    /// The reason code: an inbound one for a request, an egress one for a call.
    pub reason: &'static str,
    /// The bot the call was decided for (calls only).
    pub bot: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Whether the decision is a shadowed denial.
    pub shadow: Option<bool>,
    /// The status the client gets (200 for a forwarded request).
    pub status: Option<u16>,
    /// The matched route.
    pub route: Option<String>,
    /// The id of the secret whose signature matched.
    pub secret_id: Option<String>,
}

// === loading ===

/// Loads tests file `file` with text `text`, resolving `secret:` ids against the policy.
///
/// The YAML is read and its structural errors are reported by the policy loader's own
/// reporting ([`slackgate_policy::yaml_errors`]), so both files name the same problem alike.
pub(super) fn load(file: &Path, text: &str, loaded: &Loaded) -> Result<TestFile, LoadErrors> {
    let mut errs = Errors::new(file);
    let Some(root) = yaml_errors::parse(text, &mut errs) else {
        return errs.finish(None);
    };
    let file_spec = top_level(&root, &mut errs);
    let mut cases = Vec::new();
    let mut names = HashSet::new();
    for (i, node) in file_spec.cases.iter().enumerate() {
        let prefix = format!("cases[{i}]");
        match marked_yaml::from_node::<CaseSpec>(node) {
            Ok(spec) => {
                if let Some(case) = validate(spec, &prefix, loaded, &mut names, &mut errs) {
                    cases.push(case);
                }
            }
            Err(e) => yaml_errors::report_from_node(&e, &prefix, &mut errs),
        }
    }
    errs.finish(Some(TestFile {
        state: file_spec.state,
        cases,
    }))
}

/// The top-level keys, checked by hand so that each case can be deserialized on its own.
struct FileSpec<'n> {
    state: StateScope,
    cases: Vec<&'n Node>,
}

fn top_level<'n>(root: &'n Node, errs: &mut Errors) -> FileSpec<'n> {
    let mut spec = FileSpec {
        state: StateScope::Fresh,
        cases: Vec::new(),
    };
    yaml_errors::check_top_level(root, &["state", "cases"], &["cases"], errs);
    let Some(map) = root.as_mapping() else {
        errs.at(
            root.span(),
            "a tests file is a mapping with the keys `cases` and, optionally, `state`",
            format!("start the file with `cases:` (see {FORMAT_DOC})"),
        );
        return spec;
    };
    if let Some(value) = map.get_node("state") {
        match value.as_scalar().map(|s| s.as_str()) {
            Some("fresh") => spec.state = StateScope::Fresh,
            Some("shared") => spec.state = StateScope::Shared,
            _ => errs.at(
                value.span(),
                "invalid value for `state`",
                "use one of: `fresh` (each case on a new guard, the default), `shared` (one guard for the whole file, in order)",
            ),
        }
    }
    if let Some(value) = map.get_node("cases") {
        match value.as_sequence() {
            Some(seq) if !seq.is_empty() => spec.cases = seq.iter().collect(),
            _ => errs.at(
                value.span(),
                "`cases` must be a non-empty list of test cases",
                format!("list the cases as `- name: ...` entries (see {FORMAT_DOC})"),
            ),
        }
    }
    spec
}

/// Validates one deserialized case; `None` when it had errors (recorded in `errs`).
fn validate(
    spec: CaseSpec,
    prefix: &str,
    loaded: &Loaded,
    names: &mut HashSet<String>,
    errs: &mut Errors,
) -> Option<Case> {
    let before = errs.len();
    let CaseSpec {
        name,
        request,
        call,
        expect,
    } = spec;
    if name.trim().is_empty() {
        errs.at(
            name.span(),
            "a case's `name` is empty",
            "name what the case shows",
        );
    } else if !names.insert(name.to_string()) {
        errs.at(
            name.span(),
            format!("a second case is named `{}`", name.as_str()),
            "give every case its own name, so a failure points at one case",
        );
    }
    let is_call = call.is_some();
    let input = match (request, call) {
        (Some(request), None) => {
            validate_request(request, prefix, loaded, errs).map(Input::Inbound)
        }
        (None, Some(call)) => validate_call(&call, prefix, loaded, errs).map(Input::Egress),
        (Some(_), Some(call)) => {
            errs.at(
                call.span(),
                format!("`{prefix}` has both `request` and `call`"),
                "a case sends one thing: an inbound `request:` from Slack, or a bot's `call:` to the egress door",
            );
            None
        }
        (None, None) => {
            errs.at(
                name.span(),
                format!("`{prefix}` has neither `request` nor `call`"),
                format!("add `request:` (an inbound request) or `call:` (a bot's Web API call), see {FORMAT_DOC}"),
            );
            None
        }
    };
    let expect = validate_expect(expect, prefix, is_call, errs);
    match (input, expect) {
        (Some(input), Some(expect)) if errs.len() == before => Some(Case {
            at: yaml_errors::span_pos(name.span()),
            name: name.to_string(),
            input,
            expect,
        }),
        _ => None,
    }
}

/// A key that no bot of any policy has: long enough to be a key, shaped like none.
pub(super) const WRONG_KEY: &str = "gk_policy_test_wrong_key_0000000000";

fn validate_call(
    spec: &Spanned<CallSpec>,
    prefix: &str,
    loaded: &Loaded,
    errs: &mut Errors,
) -> Option<Call> {
    let CallSpec {
        bot,
        key,
        method,
        args,
        encoding,
        query,
        replied_in,
    } = &**spec;
    let before = errs.len();
    let bots = || {
        let names: Vec<&str> = loaded.policy.bots.iter().map(|b| &*b.name).collect();
        if names.is_empty() {
            "the policy has no `bots:`".to_owned()
        } else {
            names.join(", ")
        }
    };
    let key = match (bot, key) {
        (Some(b), None) => {
            if loaded.policy.bots.by_name(b).is_none() {
                errs.at(
                    b.span(),
                    format!("`{prefix}.call.bot` names no bot of the policy"),
                    format!("use one of: {}", bots()),
                );
            }
            CallKey::Bot(b.to_string())
        }
        (None, Some(k)) => match k.as_str() {
            "none" => CallKey::None,
            "wrong" => CallKey::Wrong,
            _ => {
                errs.at(
                    k.span(),
                    format!("invalid value for `{prefix}.call.key`"),
                    "use `none` (no key) or `wrong` (a key no bot has); to present a bot's key, write `bot: NAME` instead (the key itself never goes in a tests file)",
                );
                CallKey::None
            }
        },
        (Some(_), Some(k)) => {
            errs.at(
                k.span(),
                format!("`{prefix}.call` has both `bot` and `key`"),
                "keep `bot: NAME` to present that bot's key, or `key: none|wrong`",
            );
            CallKey::None
        }
        (None, None) => {
            errs.at(
                spec.span(),
                format!("`{prefix}.call` presents no key"),
                format!("add `bot: NAME` (one of: {}) or `key: none`", bots()),
            );
            CallKey::None
        }
    };
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        errs.at(
            method.span(),
            format!("`{prefix}.call.method` is not a Web API method name"),
            "write a method such as chat.postMessage",
        );
    }
    let json = match encoding.as_ref().map(|e| e.as_str()) {
        None | Some("form") => false,
        Some("json") => true,
        Some(_) => {
            let e = encoding.as_ref().map_or(*spec.span(), |e| *e.span());
            errs.at(
                &e,
                format!("invalid value for `{prefix}.call.encoding`"),
                "use `form` (application/x-www-form-urlencoded, the default) or `json`",
            );
            false
        }
    };
    let args = args.clone().unwrap_or_default();
    let (body, content_type) = if json {
        let map: serde_json::Map<String, serde_json::Value> = args
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        (
            serde_json::Value::Object(map).to_string().into_bytes(),
            "application/json; charset=utf-8",
        )
    } else {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &args {
            form.append_pair(k, v);
        }
        (
            form.finish().into_bytes(),
            "application/x-www-form-urlencoded",
        )
    };
    (errs.len() == before).then(|| Call {
        key,
        method: method.to_string(),
        query: query.clone(),
        body,
        content_type,
        replied_in: replied_in.clone().unwrap_or_default(),
    })
}

fn validate_request(
    spec: RequestSpec,
    prefix: &str,
    loaded: &Loaded,
    errs: &mut Errors,
) -> Option<Request> {
    let RequestSpec {
        path,
        host,
        client_ip,
        headers,
        body,
        event,
        command,
        action,
        signature,
        secret,
        timestamp,
    } = spec;
    let before = errs.len();
    let client_ip = match client_ip {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(ip) => ip.trim().parse().unwrap_or_else(|_| {
            errs.at(
                ip.span(),
                format!("`{prefix}.request.client_ip` is not an IP address"),
                "write an IPv4 or IPv6 address without a port, e.g. 198.51.100.7 or 2001:db8::7",
            );
            IpAddr::from([127, 0, 0, 1])
        }),
    };
    let mut bodies: Vec<(Span, Body)> = Vec::new();
    if let Some(b) = body {
        bodies.push((*b.span(), Body::Literal(b.as_bytes().to_vec())));
    }
    if let Some(e) = event {
        let span = *e.span();
        let e = EventSpec::clone(&e);
        if e.kind == RequestKind::AppRateLimited.as_str()
            && (e.user.is_some() || e.channel.is_some())
        {
            errs.at(
                &span,
                "`app_rate_limited` carries no user or channel",
                "remove `user` and `channel` from this event",
            );
        }
        bodies.push((span, Body::Event(e)));
    }
    if let Some(c) = command {
        bodies.push((*c.span(), Body::Command(CommandSpec::clone(&c))));
    }
    if let Some(a) = action {
        let span = *a.span();
        let a = ActionSpec::clone(&a);
        let kind = a
            .kind
            .as_deref()
            .unwrap_or(RequestKind::BlockActions.as_str());
        match action_kinds().find(|k| k.as_str() == kind) {
            Some(kind) => bodies.push((span, Body::Action(a, kind))),
            None => {
                let known: Vec<String> = action_kinds()
                    .map(|k| format!("`{}`", k.as_str()))
                    .collect();
                errs.at(
                    &span,
                    format!("unknown `{prefix}.request.action.type`"),
                    format!("use one of: {}", known.join(", ")),
                );
            }
        }
    }
    if bodies.len() > 1 {
        errs.at(
            &bodies[1].0,
            "a request has one body: `body`, `event`, `command` or `action`",
            "keep one of them; write another case for the other body",
        );
    }
    let body = bodies
        .pop()
        .map_or(Body::Literal(Vec::new()), |(_, body)| body);

    let headers: Vec<(String, String)> = headers.unwrap_or_default().into_iter().collect();
    let given = PipelineHeaders::from_pairs(&headers);
    let route = probe::route(loaded, host.as_deref(), &path, &given);
    let valid = || Signing::Valid {
        secret: secret.as_ref().map(|s| s.to_string()),
    };
    let signing = match &signature {
        None => valid(),
        Some(s) => match s.as_str() {
            "valid" => valid(),
            "bad" => Signing::Bad,
            "none" => Signing::None,
            _ => {
                errs.at(
                    s.span(),
                    format!("invalid value for `{prefix}.request.signature`"),
                    "use one of: `valid` (the default), `bad`, `none`",
                );
                Signing::None
            }
        },
    };
    if let Some(secret) = &secret {
        match (&signing, route) {
            (Signing::Valid { .. }, Some(route)) => {
                if !route.app.secrets.iter().any(|s| s.key.id() == secret.as_str()) {
                    let ids: Vec<String> =
                        route.app.secrets.iter().map(|s| format!("`{}`", s.key.id())).collect();
                    errs.at(
                        secret.span(),
                        format!(
                            "app `{}` of route `{}` has no secret `{}`",
                            route.app.name,
                            route.name,
                            secret.as_str()
                        ),
                        format!("use one of its secret ids: {}", ids.join(", ")),
                    );
                }
            }
            (Signing::Valid { .. }, None) => errs.at(
                secret.span(),
                format!("`{prefix}.request.secret` names a secret, but no route matches this path (and host)"),
                "remove `secret`, or correct `path` and `host`",
            ),
            _ => errs.at(
                secret.span(),
                format!("`{prefix}.request.secret` is only used with `signature: valid`"),
                "remove `secret`, or remove `signature`",
            ),
        }
    }
    let timestamp = match &timestamp {
        None => Timestamp::Offset(0),
        Some(t) => parse_timestamp(t).unwrap_or_else(|| {
            errs.at(
                t.span(),
                format!("invalid value for `{prefix}.request.timestamp`"),
                "write `now`, an offset from now such as `-10m` or `+6m`, or a Unix time in seconds",
            );
            Timestamp::Offset(0)
        }),
    };
    (errs.len() == before).then_some(Request {
        path,
        host,
        client_ip,
        headers,
        body,
        signing,
        timestamp,
    })
}

fn parse_timestamp(t: &str) -> Option<Timestamp> {
    let t = t.trim();
    if t == "now" {
        return Some(Timestamp::Offset(0));
    }
    if let Some(rest) = t.strip_prefix('-').or_else(|| t.strip_prefix('+')) {
        let secs = i64::try_from(slackgate_policy::parse_duration(rest).ok()?.as_secs()).ok()?;
        return Some(Timestamp::Offset(if t.starts_with('-') {
            -secs
        } else {
            secs
        }));
    }
    t.parse().ok().map(Timestamp::At)
}

fn validate_expect(
    spec: ExpectSpec,
    prefix: &str,
    is_call: bool,
    errs: &mut Errors,
) -> Option<Expect> {
    let ExpectSpec {
        reason,
        rule,
        shadow,
        status,
        route,
        secret_id,
        bot,
    } = spec;
    let known: Vec<&'static str> = if is_call {
        EgressReason::ALL.iter().map(|r| r.as_str()).collect()
    } else {
        Reason::ALL.iter().map(|r| r.as_str()).collect()
    };
    let Some(code) = known.iter().copied().find(|r| *r == reason.as_str()) else {
        let what = if is_call {
            "egress reason codes (a `call:` case)"
        } else {
            "reason codes"
        };
        errs.at(
            reason.span(),
            format!("unknown `{prefix}.expect.reason`"),
            format!("use one of the {what}: {}", known.join(", ")),
        );
        return None;
    };
    let before = errs.len();
    let mut only = |span: Option<&Span>, key: &str, for_call: bool| {
        if let Some(span) = span {
            errs.at(
                span,
                format!("`{prefix}.expect.{key}` does not apply to a {} case", if for_call { "`request:`" } else { "`call:`" }),
                if for_call {
                    "remove it: only a bot's `call:` is decided for a bot"
                } else {
                    "remove it: a call to the egress door has no route, shadow mode or signing secret"
                },
            );
        }
    };
    if is_call {
        only(shadow.as_ref().map(|s| s.span()), "shadow", false);
        only(route.as_ref().map(|s| s.span()), "route", false);
        only(secret_id.as_ref().map(|s| s.span()), "secret_id", false);
    } else {
        only(bot.as_ref().map(|s| s.span()), "bot", true);
    }
    (errs.len() == before).then(|| Expect {
        reason: code,
        bot: bot.map(|b| b.to_string()),
        rule,
        shadow: shadow.map(|s| *s),
        status,
        route: route.map(|r| r.to_string()),
        secret_id: secret_id.map(|s| s.to_string()),
    })
}
