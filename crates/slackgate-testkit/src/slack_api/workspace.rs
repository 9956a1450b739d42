//! The workspace: tokens, scopes, limits, rotation and the methods' answers (pure, time
//! passed in).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::args::{basic_credentials, presented_token, Args};
use super::held::Capabilities;
use super::http::split_target;

/// The user id of the stand-in's bot user (`auth.test`, posted messages).
pub const BOT_USER_ID: &str = "U0BOT";
/// The bot id of the stand-in's bot (`auth.test`, posted messages).
pub const BOT_ID: &str = "B0BOT";
/// The app id the stand-in reports (`oauth.v2.access`).
pub const APP_ID: &str = "A0STANDIN";

/// What the stand-in answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `ok` member of the JSON body.
    pub ok: bool,
    /// The `error` member of the JSON body, if any.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct RotationSpec {
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) first_refresh_token: String,
    pub(super) lifetime_secs: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub(super) team: String,
    pub(super) scopes: Vec<String>,
    pub(super) revoked: bool,
    pub(super) expires: Option<Instant>,
}

impl Grant {
    pub(super) fn new(team: &str, scopes: &[&str]) -> Self {
        Self {
            team: team.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            revoked: false,
            expires: None,
        }
    }
}

/// Per-method rate limits set by the test.
#[derive(Debug, Default)]
pub(super) struct Limits {
    pub(super) once: HashMap<String, u64>,
    pub(super) until: HashMap<String, Instant>,
}

impl Limits {
    pub(super) fn once(&mut self, method: &str, secs: u64) {
        self.once.insert(method.to_owned(), secs);
    }

    pub(super) fn window(&mut self, method: &str, until: Instant) {
        self.until.insert(method.to_owned(), until);
    }

    /// The `Retry-After` seconds when this call is limited.
    pub(super) fn check(&mut self, method: &str, now: Instant) -> Option<u64> {
        if let Some(&until) = self.until.get(method) {
            if now < until {
                let left = until - now;
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Some(secs.max(1));
            }
            self.until.remove(method);
        }
        self.once.remove(method)
    }
}

#[derive(Debug)]
pub(super) struct Rotation {
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) lifetime_secs: u64,
    pub(super) grant: Grant,
    /// The one refresh token that works now.
    pub(super) current: String,
    /// Every refresh token ever presented, in order.
    pub(super) presented: Vec<String>,
    /// Every access token minted, in order.
    pub(super) issued: Vec<String>,
    pub(super) seq: u64,
}

impl Rotation {
    pub(super) fn new(spec: RotationSpec, grant: Grant) -> Self {
        Self {
            client_id: spec.client_id,
            client_secret: spec.client_secret,
            lifetime_secs: spec.lifetime_secs,
            grant,
            current: spec.first_refresh_token,
            presented: Vec::new(),
            issued: Vec::new(),
            seq: 0,
        }
    }
}

#[derive(Debug)]
pub(super) struct Workspace {
    pub(super) tokens: HashMap<String, Grant>,
    pub(super) usergroups: HashMap<String, Vec<String>>,
    pub(super) limits: Limits,
    pub(super) rotation: Option<Rotation>,
    /// Messages posted through the stand-in: (channel, message), oldest first.
    pub(super) messages: Vec<(String, Value)>,
    pub(super) ts_base: u64,
    pub(super) ts_seq: u64,
    /// Response URLs, upload URLs and workflow tokens handed out (`held.rs`, served by
    /// `custody.rs`).
    pub(super) capabilities: Capabilities,
}

/// One call as the workspace sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    pub(super) http_method: &'a str,
    pub(super) target: &'a str,
    pub(super) headers: &'a [(String, String)],
    pub(super) body: &'a [u8],
}

/// The answer to one call, and what the record needs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Value,
    pub(super) method: String,
    pub(super) token: Option<String>,
}

impl Reply {
    pub(super) fn new(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            method: String::new(),
            token: None,
        }
    }

    pub(super) fn error(error: &str) -> Self {
        Self::new(200, json!({"ok": false, "error": error}))
    }

    pub(super) fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            ok: self
                .body
                .get("ok")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            error: self
                .body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// How a method authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthKind {
    /// A token, checked and scoped.
    Token,
    /// No credential (`api.test`).
    None,
    /// Client id and secret (`oauth.v2.access`).
    Client,
}

#[derive(Debug)]
pub(super) struct MethodSpec {
    pub(super) name: &'static str,
    pub(super) auth: AuthKind,
    /// The scopes the method accepts; any one of them suffices (empty: none needed).
    pub(super) scopes: &'static [&'static str],
}

pub(super) const CONVERSATIONS_READ: &[&str] =
    &["channels:read", "groups:read", "im:read", "mpim:read"];
pub(super) const CONVERSATIONS_HISTORY: &[&str] = &[
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
];

/// The methods the stand-in knows, with the scopes their reference pages list
/// (<https://docs.slack.dev/reference/methods>). Any other method is `unknown_method`.
pub(super) const METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: "api.test",
        auth: AuthKind::None,
        scopes: &[],
    },
    MethodSpec {
        name: "auth.test",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "auth.revoke",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "chat.postMessage",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.postEphemeral",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.update",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.delete",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "conversations.info",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_READ,
    },
    MethodSpec {
        name: "conversations.list",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_READ,
    },
    MethodSpec {
        name: "conversations.history",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_HISTORY,
    },
    MethodSpec {
        name: "reactions.add",
        auth: AuthKind::Token,
        scopes: &["reactions:write"],
    },
    MethodSpec {
        name: "reactions.remove",
        auth: AuthKind::Token,
        scopes: &["reactions:write"],
    },
    MethodSpec {
        name: "users.info",
        auth: AuthKind::Token,
        scopes: &["users:read"],
    },
    MethodSpec {
        name: "usergroups.users.list",
        auth: AuthKind::Token,
        scopes: &["usergroups:read"],
    },
    MethodSpec {
        name: "files.getUploadURLExternal",
        auth: AuthKind::Token,
        scopes: &["files:write"],
    },
    MethodSpec {
        name: "files.completeUploadExternal",
        auth: AuthKind::Token,
        scopes: &["files:write"],
    },
    MethodSpec {
        name: "functions.completeSuccess",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "functions.completeError",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "oauth.v2.access",
        auth: AuthKind::Client,
        scopes: &[],
    },
];

pub(super) fn method_spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

impl Workspace {
    pub(super) fn new(ts_base: u64) -> Self {
        Self {
            tokens: HashMap::new(),
            usergroups: HashMap::new(),
            limits: Limits::default(),
            rotation: None,
            messages: Vec::new(),
            ts_base,
            ts_seq: 0,
            capabilities: Capabilities::default(),
        }
    }

    pub(super) fn revoke(&mut self, token: &str) {
        match self.tokens.get_mut(token) {
            Some(g) => g.revoked = true,
            None => {
                let mut g = Grant::new("", &[]);
                g.revoked = true;
                self.tokens.insert(token.to_owned(), g);
            }
        }
    }

    /// A fresh message timestamp, increasing: `<secs>.<6 digits>`.
    pub(super) fn next_ts(&mut self) -> String {
        self.ts_seq += 1;
        format!(
            "{}.{:06}",
            self.ts_base + self.ts_seq / 1_000_000,
            self.ts_seq % 1_000_000
        )
    }

    /// Answers one call.
    pub(super) fn call(&mut self, call: Call<'_>, now: Instant) -> Reply {
        let (path, query) = split_target(call.target);
        let Some(name) = path.strip_prefix("/api/") else {
            return self.capability_call(path, call, now);
        };
        let mut reply = self.call_method(name, query, call, now);
        reply.method = name.to_owned();
        reply
    }

    pub(super) fn call_method(
        &mut self,
        name: &str,
        query: &str,
        call: Call<'_>,
        now: Instant,
    ) -> Reply {
        let Some(spec) = method_spec(name) else {
            return Reply::new(
                200,
                json!({"ok": false, "error": "unknown_method", "req_method": name}),
            );
        };
        if !matches!(call.http_method, "GET" | "POST") {
            return Reply::new(405, json!({"ok": false, "error": "method_not_allowed"}));
        }
        let args = match Args::read(query, call.headers, call.body) {
            Ok(a) => a,
            Err(e) => return Reply::error(e),
        };
        let token = presented_token(call.headers, &args);
        let mut reply = match spec.auth {
            AuthKind::None => api_test(&args),
            // Slack rate-limits oauth.v2.access too (Tier 4); a 429 is answered before the
            // call is read, so its refresh token counts as neither presented nor spent.
            AuthKind::Client => match self.limits.check(spec.name, now) {
                Some(secs) => {
                    let mut r = Reply::new(429, json!({"ok": false, "error": "ratelimited"}));
                    r.headers.push(("retry-after", secs.to_string()));
                    r
                }
                None => self.oauth_v2_access(call.headers, &args, now),
            },
            AuthKind::Token => self.authed(spec, token.as_deref(), &args, now),
        };
        reply.token = token;
        if let (Some(obj), false) = (reply.body.as_object_mut(), args.warnings.is_empty()) {
            obj.insert("warning".into(), Value::from(args.warnings.join(",")));
            obj.insert(
                "response_metadata".into(),
                json!({ "warnings": args.warnings }),
            );
        }
        reply
    }

    pub(super) fn authed(
        &mut self,
        spec: &MethodSpec,
        token: Option<&str>,
        args: &Args,
        now: Instant,
    ) -> Reply {
        let Some(token) = token else {
            return Reply::error("not_authed");
        };
        let grant = match self.tokens.get(token) {
            None => return Reply::error("invalid_auth"),
            Some(g) if g.revoked => return Reply::error("token_revoked"),
            Some(Grant {
                expires: Some(t), ..
            }) if now >= *t => return Reply::error("token_expired"),
            Some(g) => g.clone(),
        };
        let scope_headers = vec![
            ("x-oauth-scopes", grant.scopes.join(",")),
            ("x-accepted-oauth-scopes", spec.scopes.join(",")),
        ];
        let mut reply = if let Some(secs) = self.limits.check(spec.name, now) {
            let mut r = Reply::new(429, json!({"ok": false, "error": "ratelimited"}));
            r.headers.push(("retry-after", secs.to_string()));
            r
        } else if !spec.scopes.is_empty()
            && !spec
                .scopes
                .iter()
                .any(|s| grant.scopes.iter().any(|g| g == s))
        {
            Reply::new(
                200,
                json!({
                    "ok": false,
                    "error": "missing_scope",
                    "needed": spec.scopes.join(","),
                    "provided": grant.scopes.join(","),
                }),
            )
        } else {
            self.method(spec.name, token, &grant, args)
        };
        reply.headers.extend(scope_headers);
        reply
    }

    /// A call that passed authentication, rate limit and scopes.
    pub(super) fn method(&mut self, name: &str, token: &str, grant: &Grant, args: &Args) -> Reply {
        let ok = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.insert("ok".into(), Value::Bool(true));
            }
            Reply::new(200, v)
        };
        match name {
            "auth.test" => ok(json!({
                "url": format!("https://{}.slack.com/", grant.team.to_ascii_lowercase()),
                "team": grant.team,
                "user": "standin-bot",
                "team_id": grant.team,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": false,
            })),
            "auth.revoke" => {
                let test = args.get("test").is_some_and(|t| t == "true" || t == "1");
                if !test {
                    self.revoke(token);
                }
                ok(json!({"revoked": !test}))
            }
            "chat.postMessage" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                if !has_content(args) {
                    return Reply::error("no_text");
                }
                let ts = self.next_ts();
                let message = json!({
                    "type": "message",
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "text": args.get("text").unwrap_or_default(),
                    "ts": ts,
                });
                self.messages.push((channel.clone(), message.clone()));
                ok(json!({"channel": channel, "ts": ts, "message": message}))
            }
            "chat.postEphemeral" => {
                if args.get("channel").is_none_or(|c| c.is_empty()) {
                    return Reply::error("channel_not_found");
                }
                if args.get("user").is_none_or(|u| u.is_empty()) {
                    return Reply::error("user_not_in_channel");
                }
                if !has_content(args) {
                    return Reply::error("no_text");
                }
                let ts = self.next_ts();
                ok(json!({"message_ts": ts}))
            }
            "chat.update" | "chat.delete" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                let Some(ts) = args.get("ts").filter(|t| !t.is_empty()) else {
                    return Reply::error("message_not_found");
                };
                if name == "chat.update" {
                    let text = args.get("text").unwrap_or_default();
                    ok(json!({"channel": channel, "ts": ts, "text": text}))
                } else {
                    ok(json!({"channel": channel, "ts": ts}))
                }
            }
            "conversations.info" => match args.get("channel").filter(|c| !c.is_empty()) {
                Some(channel) => ok(json!({"channel": {"id": channel}})),
                None => Reply::error("channel_not_found"),
            },
            "conversations.list" => ok(json!({
                "channels": [],
                "response_metadata": {"next_cursor": ""},
            })),
            "conversations.history" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                let messages: Vec<Value> = self
                    .messages
                    .iter()
                    .rev()
                    .filter(|(c, _)| *c == channel)
                    .map(|(_, m)| m.clone())
                    .collect();
                ok(json!({"messages": messages, "has_more": false}))
            }
            "reactions.add" | "reactions.remove" => {
                let item = args.get("channel").is_some() && args.get("timestamp").is_some();
                if !item {
                    return Reply::error("no_item_specified");
                }
                if args.get("name").is_none_or(|n| n.is_empty()) {
                    return Reply::error("invalid_name");
                }
                ok(json!({}))
            }
            "users.info" => match args.get("user").filter(|u| !u.is_empty()) {
                Some(user) => ok(json!({"user": {
                    "id": user,
                    "team_id": grant.team,
                    "name": user.to_ascii_lowercase(),
                    "deleted": false,
                    "is_bot": false,
                }})),
                None => Reply::error("user_not_found"),
            },
            "usergroups.users.list" => {
                let group = args.get("usergroup").unwrap_or_default();
                match self.usergroups.get(&group) {
                    Some(users) => ok(json!({"users": users})),
                    None => Reply::error("no_such_subteam"),
                }
            }
            "files.getUploadURLExternal"
            | "files.completeUploadExternal"
            | "functions.completeSuccess"
            | "functions.completeError" => self.capability_method(name, token, args),
            _ => ok(json!({})),
        }
    }

    /// `oauth.v2.access` with `grant_type=refresh_token`. The client authenticates with
    /// HTTP Basic (preferred by the docs) or `client_id` / `client_secret` arguments.
    pub(super) fn oauth_v2_access(
        &mut self,
        headers: &[(String, String)],
        args: &Args,
        now: Instant,
    ) -> Reply {
        let refresh = args.get("refresh_token");
        let Some(rotation) = self.rotation.as_mut() else {
            return Reply::error("invalid_client_id");
        };
        if let Some(r) = &refresh {
            rotation.presented.push(r.clone());
        }
        let (id, secret) = match basic_credentials(headers) {
            Some(pair) => (Some(pair.0), Some(pair.1)),
            None => (args.get("client_id"), args.get("client_secret")),
        };
        if id.as_deref() != Some(rotation.client_id.as_str()) {
            return Reply::error("invalid_client_id");
        }
        if secret.as_deref() != Some(rotation.client_secret.as_str()) {
            return Reply::error("bad_client_secret");
        }
        match args.get("grant_type").as_deref() {
            Some("refresh_token") => {}
            None | Some("authorization_code") => return Reply::error("invalid_code"),
            Some(_) => return Reply::error("invalid_grant_type"),
        }
        match refresh {
            Some(r) if r == rotation.current => {}
            _ => return Reply::error("invalid_refresh_token"),
        }
        rotation.seq += 1;
        let n = rotation.seq;
        let access = format!("xoxe.xoxb-1-standin-{n}");
        rotation.current = format!("xoxe-1-standin-refresh-{n}");
        rotation.issued.push(access.clone());
        let mut grant = rotation.grant.clone();
        grant.expires = Some(now + Duration::from_secs(rotation.lifetime_secs));
        let body = json!({
            "ok": true,
            "app_id": APP_ID,
            "authed_user": {"id": "U0INSTALLER"},
            "scope": grant.scopes.join(","),
            "token_type": "bot",
            "access_token": access,
            "bot_user_id": BOT_USER_ID,
            "refresh_token": rotation.current,
            "expires_in": rotation.lifetime_secs,
            "team": {"id": grant.team, "name": grant.team},
            "enterprise": null,
            "is_enterprise_install": false,
        });
        self.tokens.insert(access, grant);
        Reply::new(200, body)
    }
}

/// Whether a message call names its content: one of `text`, `blocks`, `attachments`,
/// `markdown_text` (else `no_text`, <https://docs.slack.dev/reference/methods/chat.postMessage>).
pub(super) fn has_content(args: &Args) -> bool {
    ["text", "blocks", "attachments", "markdown_text"]
        .iter()
        .any(|k| args.get(k).is_some_and(|v| !v.is_empty()))
}

/// `api.test`: echoes its arguments; an `error` argument makes it fail with that error.
pub(super) fn api_test(args: &Args) -> Reply {
    let echoed: Map<String, Value> = args
        .names()
        .into_iter()
        .filter(|n| n != "token")
        .filter_map(|n| args.get(&n).map(|v| (n, Value::from(v))))
        .collect();
    match args.get("error") {
        Some(e) => Reply::new(200, json!({"ok": false, "error": e, "args": echoed})),
        None if echoed.is_empty() => Reply::new(200, json!({"ok": true})),
        None => Reply::new(200, json!({"ok": true, "args": echoed})),
    }
}
