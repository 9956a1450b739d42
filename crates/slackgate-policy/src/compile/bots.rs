//! Bots (the egress door): their key and token references (never literal values), team
//! pin, methods, channels, denied arguments and rate limits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use marked_yaml::Spanned;

use super::apps::Hints;
use super::routes::{Dim, LimitWords};
use super::{is_slack_id, names, shown, Compiler};
use crate::apps::App;
use crate::bots::{
    Bot, BotToken, Credential, EgressLimitKey, EgressLimitRule, Location, MethodRule, Rotation,
    RESPONSE_URL_METHOD,
};
use crate::matcher::{GlobSet, IdSet};
use crate::mode::Mode;
use crate::spec::{
    BotSpec, CredentialSpec, EgressLimitKeySpec, EgressLimitSpec, ModeSpec, RotationSpec,
};
use crate::yaml::{LITERAL_SECRET_FIX, LITERAL_SECRET_MESSAGE};

/// The shortest gateway key accepted: a key is a random string, and one this short
/// could be guessed.
const MIN_KEY_LEN: usize = 20;

/// A Web API method name or pattern as the policy may write it (or
/// [`RESPONSE_URL_METHOD`]).
fn is_method_pattern(s: &str) -> bool {
    s == RESPONSE_URL_METHOD
        || !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'*')
}

/// One or more ASCII digits.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An argument name as `deny_args` may write it.
fn is_arg_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

impl Compiler<'_> {
    /// Compiles every bot; two bots sharing a key, or a key equal to a token, is an error.
    pub(super) fn bots(
        &mut self,
        specs: Vec<(Spanned<String>, BotSpec)>,
        apps: &BTreeMap<Arc<str>, Arc<App>>,
    ) -> Vec<Arc<Bot>> {
        let mut out: Vec<Arc<Bot>> = Vec::new();
        let mut keys: HashMap<String, String> = HashMap::new();
        for (name, spec) in specs {
            let key_span = *spec.key.span();
            let Some(bot) = self.bot(&name, spec, apps) else {
                continue;
            };
            if let Some(other) = keys.insert(bot.key.expose().to_owned(), bot.name.to_string()) {
                self.errs.at(
                    &key_span,
                    format!("bots `{other}` and `{}` have the same gateway key", bot.name),
                    "give every bot its own random key (e.g. `openssl rand -hex 24`): the key is how the gateway tells bots apart",
                );
                continue;
            }
            out.push(Arc::new(bot));
        }
        out
    }

    fn bot(
        &mut self,
        name: &Spanned<String>,
        spec: BotSpec,
        apps: &BTreeMap<Arc<str>, Arc<App>>,
    ) -> Option<Bot> {
        let BotSpec {
            app,
            key,
            token,
            team,
            methods,
            channels,
            deny_args,
            rate_limits,
            reply_scope,
            mode,
        } = spec;
        let start = self.errs.len();
        self.check_name("bot", name);
        let label = shown(name);

        let app = app.and_then(|a| match apps.get(a.as_str()) {
            Some(app) => Some(Arc::clone(app)),
            None => {
                if !self.declared.apps.contains(a.as_str()) {
                    self.errs.at(
                        a.span(),
                        format!(
                            "bot `{label}` names app `{}`, which is not defined",
                            shown(&a)
                        ),
                        format!(
                            "use one of the apps under `apps:` ({}) or remove `app`",
                            names(apps.keys().map(|k| &**k))
                        ),
                    );
                }
                None
            }
        });

        let key = self.credential(
            &format!("key of bot `{label}`"),
            &key,
            &Hints {
                env_example: "HELPDESK_GATEWAY_KEY",
                file_example: "/run/secrets/helpdesk-gateway-key",
                content: "the bot's gateway key",
            },
        );
        let token = self.bot_token(&label, &token);
        if let Some((k, k_span)) = &key {
            let same = match &token {
                None => false,
                Some(BotToken::Static(t)) => k.expose() == t.expose(),
                Some(BotToken::Rotating(r)) => {
                    k.expose() == r.refresh_token.expose() || k.expose() == r.client_secret.expose()
                }
            };
            if same {
                self.errs.at(
                    k_span,
                    format!("the key of bot `{label}` is its Slack token"),
                    "the key must be a new random string that is worth nothing outside the gateway; rotate the token, which the bot has held",
                );
            }
            if k.expose().starts_with("xox") {
                self.errs.at(
                    k_span,
                    format!("the key of bot `{label}` looks like a Slack token"),
                    "the key must be a new random string (e.g. `openssl rand -hex 24`), not a token; if it is one, rotate it",
                );
            } else if k.expose().len() < MIN_KEY_LEN {
                self.errs.at(
                    k_span,
                    format!("the key of bot `{label}` is shorter than {MIN_KEY_LEN} characters"),
                    "use a random key of at least 20 characters, e.g. `openssl rand -hex 24`",
                );
            } else if k.expose().len() <= 32
                && k.expose()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                // Such a key, sent as a channel or team argument, would be written to the
                // audit trail as an id.
                self.errs.at(
                    k_span,
                    format!("the key of bot `{label}` has the shape of a Slack id"),
                    "use a random key of lower-case hex, e.g. `openssl rand -hex 24`, or one longer than 32 characters",
                );
            }
        }

        let team = team.and_then(|t| {
            if is_slack_id(&t, b"T") {
                Some(Arc::<str>::from(t.as_str()))
            } else {
                self.errs.at(
                    t.span(),
                    format!("`team` of bot `{label}` is not a Slack team id"),
                    "write the workspace id, e.g. T0123ABCDEF (starts with T), or omit the key",
                );
                None
            }
        });

        if methods.is_empty() {
            self.errs.at(
                methods.span(),
                format!("bot `{label}` has no methods: every call would be denied"),
                "list the Web API methods the bot calls, e.g. [chat.postMessage, \"reactions.*\"]",
            );
        }
        let mut exact = Vec::new();
        for m in methods.iter() {
            if !is_method_pattern(m) {
                self.errs.at(
                    m.span(),
                    format!("`methods` of bot `{label}` has an entry that is not a Web API method name"),
                    "write a method name such as chat.postMessage, or a pattern such as reactions.* (letters, digits, '.', '*')",
                );
            } else if !m.contains('*') {
                // Calls are decided under Slack's spelling, so another spelling of a method
                // Slack documents would never match.
                match slackgate_slack::canonical_method(m) {
                    Some(slack) if slack != m.as_str() => self.errs.at(
                        m.span(),
                        format!("`methods` of bot `{label}` lists `{}`, which Slack spells `{slack}`", m.as_str()),
                        format!("write `{slack}`: Slack's method names are case-sensitive, and calls are decided under Slack's spelling"),
                    ),
                    _ => exact.push(m.as_str()),
                }
            }
        }
        let method_rule = MethodRule {
            exact: exact.iter().copied().collect(),
            patterns: methods.iter().map(|m| m.as_str()).collect::<GlobSet>(),
        };

        let channels = channels.and_then(|list| {
            if list.is_empty() {
                self.errs.at(
                    list.span(),
                    format!("`channels` of bot `{label}` is empty: every call naming a channel would be denied"),
                    "list channel ids, or remove `channels` to allow any",
                );
                return None;
            }
            for c in list.iter() {
                if let Err((problem, fix)) = Dim::Channels.check(c) {
                    self.errs.at(c.span(), format!("channel of bot `{label}` {problem}"), fix);
                }
            }
            Some(list.iter().map(|c| c.as_str()).collect::<IdSet>())
        });

        let deny_args = deny_args.map_or_else(IdSet::default, |list| {
            for a in list.iter() {
                if !is_arg_name(a) {
                    self.errs.at(
                        a.span(),
                        format!("`deny_args` of bot `{label}` has an entry that is not an argument name"),
                        "write a Web API argument name such as username or icon_url",
                    );
                } else if matches!(a.as_str(), "token" | "team_id")
                    || slackgate_slack::CHANNEL_ARGUMENTS.contains(&a.as_str())
                {
                    self.errs.at(
                        a.span(),
                        format!("`deny_args` of bot `{label}` lists `{}`, which the gateway rules on itself", a.as_str()),
                        "use `channels` or `team` for channel and team rules; `token` is always replaced",
                    );
                }
            }
            list.iter().map(|a| a.as_str()).collect()
        });

        let rate_limits = self.egress_limits(&label, rate_limits.as_deref().unwrap_or_default());

        let reply_scope = reply_scope.and_then(|w| match crate::units::parse_duration(&w) {
            Ok(d) if d.is_zero() => {
                self.errs.at(
                    w.span(),
                    format!("`reply_scope` of bot `{label}` is zero: every chat write would be denied"),
                    "write a window such as 10m, or remove `reply_scope`",
                );
                None
            }
            Ok(d) => {
                if app.is_none() {
                    self.errs.at(
                        w.span(),
                        format!("bot `{label}` has `reply_scope` but no `app`"),
                        "name the bot's inbound app with `app:`: the window counts that app's verified requests",
                    );
                }
                Some(d)
            }
            Err(_) => {
                self.errs.at(
                    w.span(),
                    format!("`reply_scope` of bot `{label}` is not a duration"),
                    "write a whole number and a unit (ms, s, m, h), e.g. 10m",
                );
                None
            }
        });

        let (key, token) = match (key, token) {
            (Some((k, _)), Some(t)) if self.errs.len() == start => (k, t),
            _ => return None,
        };
        Some(Bot {
            name: Arc::from(name.as_str()),
            app,
            key,
            token,
            team,
            methods: method_rule,
            channels,
            deny_args,
            rate_limits: rate_limits.into(),
            reply_scope,
            mode: match mode.as_ref().map(|m| **m) {
                None | Some(ModeSpec::Enforce) => Mode::Enforce,
                Some(ModeSpec::Shadow) => Mode::Shadow,
            },
        })
    }

    /// Reads a bot's token: a reference to a token, or `rotation:` (the client id and
    /// secret and the first refresh token, from which the gateway mints tokens itself).
    fn bot_token(&mut self, label: &str, spec: &Spanned<CredentialSpec>) -> Option<BotToken> {
        let Some(rotation) = &spec.rotation else {
            let (t, span) = self.credential(
                &format!("token of bot `{label}`"),
                spec,
                &Hints {
                    env_example: "HELPDESK_BOT_TOKEN",
                    file_example: "/run/secrets/helpdesk-bot-token",
                    content: "the bot's Slack token",
                },
            )?;
            if !t.expose().starts_with("xox") {
                self.errs.at(
                    &span,
                    format!("the token of bot `{label}` is not a Slack token"),
                    "point `token` at the bot's token from the app's OAuth & Permissions page (it starts with xoxb-, xoxp- or xoxe.)",
                );
                return None;
            }
            return Some(BotToken::Static(t));
        };
        let beside = [&spec.env, &spec.file].into_iter().flatten().next();
        if let Some(l) = spec.literals().next() {
            self.errs
                .at(l.span(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
            return None;
        }
        if let Some(b) = beside {
            self.errs.at(
                b.span(),
                format!("the token of bot `{label}` has both a reference and `rotation`"),
                "keep `rotation:` alone (the gateway then mints the bot's tokens) or a plain `env:`/`file:` reference to a token that does not expire",
            );
            return None;
        }
        let RotationSpec {
            client_id,
            client_secret,
            refresh_token,
        } = &***rotation;
        let start = self.errs.len();
        let id_ok = client_id
            .split_once('.')
            .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
        if !id_ok {
            self.errs.at(
                client_id.span(),
                format!("`client_id` of bot `{label}` is not a Slack client id"),
                "write the app's Client ID from its Basic Information page, e.g. \"1234567890.1234567890\"",
            );
        }
        let secret = self.credential(
            &format!("client_secret of bot `{label}`"),
            client_secret,
            &Hints {
                env_example: "HELPDESK_CLIENT_SECRET",
                file_example: "/run/secrets/helpdesk-client-secret",
                content: "the app's client secret",
            },
        );
        if let Some((s, span)) = &secret {
            if s.expose().starts_with("xox") {
                self.errs.at(
                    span,
                    format!("the client_secret of bot `{label}` looks like a Slack token"),
                    "point `client_secret` at the app's Client Secret from its Basic Information page",
                );
            }
        }
        let refresh = self.credential(
            &format!("refresh_token of bot `{label}`"),
            refresh_token,
            &Hints {
                env_example: "HELPDESK_REFRESH_TOKEN",
                file_example: "/run/secrets/helpdesk-refresh-token",
                content: "the first refresh token",
            },
        );
        if let Some((r, span)) = &refresh {
            if !r.expose().starts_with("xoxe-") {
                self.errs.at(
                    span,
                    format!("the refresh_token of bot `{label}` is not a Slack refresh token"),
                    "point `refresh_token` at the refresh token Slack gave with the app's first rotating token (it starts with xoxe-)",
                );
            }
        }
        let (line, column) = crate::error::span_pos(rotation.span());
        match (secret, refresh) {
            (Some((s, _)), Some((r, _))) if self.errs.len() == start => Some(BotToken::Rotating(
                Arc::new(Rotation::new(client_id, s, r, Location { line, column })),
            )),
            _ => None,
        }
    }

    /// Reads a key or token reference; literal values are errors and never echoed.
    pub(super) fn credential(
        &mut self,
        what: &str,
        spec: &Spanned<CredentialSpec>,
        hints: &Hints,
    ) -> Option<(Credential, marked_yaml::Span)> {
        let CredentialSpec {
            env,
            file,
            rotation,
            ..
        } = &**spec;
        let start = self.errs.len();
        if let Some(r) = rotation {
            self.errs.at(
                r.span(),
                format!("the {what} cannot be `rotation:`"),
                "only a bot's `token` rotates; write `env: VAR_NAME` or `file: /path/to/secret` here",
            );
            return None;
        }
        for literal in spec.literals() {
            self.errs
                .at(literal.span(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
        }
        if self.errs.len() != start && env.is_none() && file.is_none() {
            return None;
        }
        let (source, bytes) =
            self.reference(what, env.as_ref(), file.as_ref(), spec.span(), hints)?;
        if self.errs.len() != start {
            return None;
        }
        let span = env
            .as_ref()
            .or(file.as_ref())
            .map_or(*spec.span(), |s| *s.span());
        match String::from_utf8(bytes) {
            Ok(v) if v.bytes().all(|b| b.is_ascii_graphic()) => {
                Some((Credential::new(v, source), span))
            }
            _ => {
                self.errs.at(
                    &span,
                    format!("the {what} holds characters that cannot travel in an HTTP header"),
                    "the value must be printable ASCII without spaces (tokens and keys are)",
                );
                None
            }
        }
    }

    fn egress_limits(&mut self, bot: &str, specs: &[EgressLimitSpec]) -> Vec<EgressLimitRule> {
        let mut out = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let EgressLimitSpec { per, rate, burst } = spec;
            let per = match **per {
                EgressLimitKeySpec::Bot => EgressLimitKey::Bot,
                EgressLimitKeySpec::Method => EgressLimitKey::Method,
                EgressLimitKeySpec::Channel => EgressLimitKey::Channel,
            };
            let words = LimitWords {
                examples: "1/s or 50/min",
                what: "call",
            };
            let owner = format!("bot `{bot}`");
            if let Some((rate, burst, label)) =
                self.rate_limit(&owner, i, per.as_str(), rate, burst, &words)
            {
                out.push(EgressLimitRule {
                    per,
                    rate,
                    burst,
                    label,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_patterns() {
        assert!(is_method_pattern("chat.postMessage"));
        assert!(is_method_pattern("reactions.*"));
        assert!(!is_method_pattern(""));
        assert!(!is_method_pattern("chat postMessage"));
        assert!(!is_method_pattern("/api/chat.postMessage"));
    }
}
