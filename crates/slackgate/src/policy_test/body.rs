//! Slack-shaped bodies for the `event:`, `command:` and `action:` shorthands of a tests
//! file: each puts the ids where Slack puts them (and where the gateway reads them), with
//! the other fields a real delivery carries.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use slackgate_slack::RequestKind;

/// `event:` an Events API delivery: an `event_callback` with the event, or Slack's
/// `app_rate_limited` envelope (which carries no user or channel).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventSpec {
    /// The event type: `app_mention`, `message`, `app_uninstalled`, `app_rate_limited`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `team_id`.
    pub team: Option<String>,
    /// `enterprise_id`.
    pub enterprise: Option<String>,
    /// `event.user`.
    pub user: Option<String>,
    /// `event.channel`.
    pub channel: Option<String>,
    /// `api_app_id` (default: the route's app pin).
    pub app: Option<String>,
    /// `event_id` (default: one fixed id, so two equal cases are one delivery twice).
    pub event_id: Option<String>,
}

/// `command:` a slash command form post.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandSpec {
    /// The command, with its slash: `/ticket`.
    pub command: String,
    /// `text`.
    pub text: Option<String>,
    /// `team_id`.
    pub team: Option<String>,
    /// `enterprise_id`.
    pub enterprise: Option<String>,
    /// `user_id`.
    pub user: Option<String>,
    /// `channel_id`.
    pub channel: Option<String>,
    /// `api_app_id` (default: the route's app pin).
    pub app: Option<String>,
}

/// `action:` an interactivity form post (field `payload` holding JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionSpec {
    /// The payload type (default `block_actions`); see [`action_kinds`].
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The `action_id` of the (first) action.
    pub action_id: Option<String>,
    /// The `callback_id` (of the view, for view submissions and closes).
    pub callback_id: Option<String>,
    /// `team.id`.
    pub team: Option<String>,
    /// `enterprise.id`.
    pub enterprise: Option<String>,
    /// `user.id`.
    pub user: Option<String>,
    /// `channel.id`.
    pub channel: Option<String>,
    /// `api_app_id` (default: the route's app pin).
    pub app: Option<String>,
}

/// The interactivity payload types the `action:` shorthand shapes (the older
/// `interactive_message` and `dialog_submission` are left to literal bodies).
pub(super) fn action_kinds() -> impl Iterator<Item = RequestKind> {
    use RequestKind::*;
    RequestKind::ALL.into_iter().filter(|k| {
        matches!(
            k,
            BlockActions | ViewSubmission | ViewClosed | Shortcut | MessageAction | BlockSuggestion
        )
    })
}

/// The verification token field every Slack body still carries (deprecated, never read).
const TOKEN: &str = "slackgate-test-token";
/// The event id of an `event:` without one.
const EVENT_ID: &str = "Ev0SLACKGATETEST";
/// The bot user the authorizations of a generated event name.
const BOT_USER: &str = "U0SLACKGATEBOT";

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), Value::from(v));
    }
}

/// The JSON body of `e`, signed at `now`; `app_pin` is the route's `api_app_id`.
pub(super) fn event(e: &EventSpec, app_pin: Option<&str>, now: i64) -> Vec<u8> {
    let mut env = Map::new();
    env.insert("token".into(), TOKEN.into());
    put(&mut env, "team_id", e.team.as_deref());
    put(&mut env, "enterprise_id", e.enterprise.as_deref());
    put(&mut env, "api_app_id", e.app.as_deref().or(app_pin));
    if e.kind == RequestKind::AppRateLimited.as_str() {
        env.insert("type".into(), e.kind.as_str().into());
        env.insert("minute_rate_limited".into(), (now - now % 60).into());
    } else {
        let mut event = Map::new();
        event.insert("type".into(), e.kind.as_str().into());
        put(&mut event, "user", e.user.as_deref());
        put(&mut event, "channel", e.channel.as_deref());
        event.insert("event_ts".into(), format!("{now}.000100").into());
        env.insert("event".into(), event.into());
        env.insert("type".into(), RequestKind::EventCallback.as_str().into());
        env.insert(
            "event_id".into(),
            e.event_id.as_deref().unwrap_or(EVENT_ID).into(),
        );
        env.insert("event_time".into(), now.into());
        env.insert(
            "authorizations".into(),
            json!([{
                "enterprise_id": e.enterprise,
                "team_id": e.team,
                "user_id": BOT_USER,
                "is_bot": true,
                "is_enterprise_install": false,
            }]),
        );
    }
    Value::Object(env).to_string().into_bytes()
}

/// The form body of `c`; `app_pin` is the route's `api_app_id`.
pub(super) fn command(c: &CommandSpec, app_pin: Option<&str>) -> Vec<u8> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", TOKEN);
    let ids = [
        ("team_id", c.team.as_deref()),
        ("enterprise_id", c.enterprise.as_deref()),
        ("channel_id", c.channel.as_deref()),
        ("user_id", c.user.as_deref()),
    ];
    for (k, v) in ids {
        if let Some(v) = v {
            form.append_pair(k, v);
        }
    }
    form.append_pair("command", &c.command);
    form.append_pair("text", c.text.as_deref().unwrap_or(""));
    if let Some(app) = c.app.as_deref().or(app_pin) {
        form.append_pair("api_app_id", app);
    }
    form.append_pair("is_enterprise_install", "false");
    form.append_pair(
        "response_url",
        "https://hooks.slack.com/commands/T0/1/slackgate-test",
    );
    form.append_pair("trigger_id", "1.2.slackgate-test");
    form.finish().into_bytes()
}

/// The form body of `a` (kind one of [`action_kinds`]); `app_pin` is the
/// route's `api_app_id`.
pub(super) fn action(a: &ActionSpec, kind: RequestKind, app_pin: Option<&str>) -> Vec<u8> {
    let mut p = Map::new();
    p.insert("type".into(), kind.as_str().into());
    p.insert("token".into(), TOKEN.into());
    put(&mut p, "api_app_id", a.app.as_deref().or(app_pin));
    if let Some(team) = &a.team {
        p.insert("team".into(), json!({ "id": team }));
    }
    p.insert(
        "enterprise".into(),
        a.enterprise
            .as_ref()
            .map_or(Value::Null, |e| json!({ "id": e })),
    );
    if let Some(user) = &a.user {
        p.insert("user".into(), json!({ "id": user, "team_id": a.team }));
    }
    if let Some(channel) = &a.channel {
        p.insert("channel".into(), json!({ "id": channel }));
    }
    if let Some(id) = &a.action_id {
        if kind == RequestKind::BlockActions {
            p.insert(
                "actions".into(),
                json!([{ "action_id": id, "block_id": "b1", "type": "button" }]),
            );
        } else {
            p.insert("action_id".into(), id.as_str().into());
        }
    }
    if let Some(id) = &a.callback_id {
        if matches!(kind, RequestKind::ViewSubmission | RequestKind::ViewClosed) {
            p.insert("view".into(), json!({ "type": "modal", "callback_id": id }));
        } else {
            p.insert("callback_id".into(), id.as_str().into());
        }
    }
    p.insert("trigger_id".into(), "1.2.slackgate-test".into());
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &Value::Object(p).to_string())
        .finish()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use slackgate_slack::{parse_facts, Lifecycle};

    fn ids(
        e: Option<&str>,
        t: Option<&str>,
        u: Option<&str>,
        c: Option<&str>,
    ) -> [Option<String>; 4] {
        [e, t, u, c].map(|v| v.map(str::to_owned))
    }

    #[test]
    fn an_event_shorthand_yields_its_facts() {
        let [enterprise, team, user, channel] = ids(
            Some("E0ACME"),
            Some("T0ACME"),
            Some("U0333"),
            Some("C0HELP"),
        );
        let e = EventSpec {
            kind: "app_mention".into(),
            team,
            enterprise,
            user,
            channel,
            app: None,
            event_id: None,
        };
        let body = event(&e, Some("A0HELPDESK"), 1_764_377_000);
        let f = parse_facts(Some("application/json"), &body).unwrap();
        assert_eq!(f.kind, RequestKind::EventCallback);
        assert_eq!(f.event_type.as_deref(), Some("app_mention"));
        assert_eq!(f.team_id.as_deref(), Some("T0ACME"));
        assert_eq!(f.enterprise_id.as_deref(), Some("E0ACME"));
        assert_eq!(f.user_id.as_deref(), Some("U0333"));
        assert_eq!(f.channel_id.as_deref(), Some("C0HELP"));
        assert_eq!(f.api_app_id.as_deref(), Some("A0HELPDESK"));
        assert_eq!(f.event_id.as_deref(), Some(EVENT_ID));
    }

    #[test]
    fn lifecycle_shorthands_are_lifecycle_requests() {
        for (kind, expected) in [
            ("app_uninstalled", Lifecycle::AppUninstalled),
            ("app_rate_limited", Lifecycle::AppRateLimited),
        ] {
            let e = EventSpec {
                kind: kind.into(),
                team: Some("T0ACME".into()),
                enterprise: None,
                user: None,
                channel: None,
                app: None,
                event_id: None,
            };
            let body = event(&e, None, 1_764_377_000);
            let f = parse_facts(None, &body).unwrap();
            assert_eq!(f.lifecycle, Some(expected), "{kind}");
            assert_eq!(f.team_id.as_deref(), Some("T0ACME"), "{kind}");
        }
    }

    #[test]
    fn a_command_shorthand_yields_its_facts() {
        let [enterprise, team, user, channel] =
            ids(None, Some("T0ACME"), Some("U0333"), Some("C0HELP"));
        let c = CommandSpec {
            command: "/ticket".into(),
            text: Some("printer on fire & smoke".into()),
            team,
            enterprise,
            user,
            channel,
            app: Some("A0HELPDESK".into()),
        };
        let body = command(&c, None);
        let f = parse_facts(Some("application/x-www-form-urlencoded"), &body).unwrap();
        assert_eq!(f.kind, RequestKind::SlashCommand);
        assert_eq!(f.command.as_deref(), Some("/ticket"));
        assert_eq!(
            (
                f.team_id.as_deref(),
                f.user_id.as_deref(),
                f.channel_id.as_deref()
            ),
            (Some("T0ACME"), Some("U0333"), Some("C0HELP"))
        );
        assert_eq!(f.api_app_id.as_deref(), Some("A0HELPDESK"));
    }

    #[test]
    fn every_action_kind_yields_its_facts() {
        for kind in action_kinds() {
            let [enterprise, team, user, channel] = ids(
                Some("E0ACME"),
                Some("T0ACME"),
                Some("U0333"),
                Some("C0HELP"),
            );
            let a = ActionSpec {
                kind: None,
                action_id: Some("ticket_close".into()),
                callback_id: Some("ticket_form".into()),
                team,
                enterprise,
                user,
                channel,
                app: None,
            };
            let body = action(&a, kind, Some("A0HELPDESK"));
            let f = parse_facts(None, &body).unwrap();
            assert_eq!(f.kind, kind);
            assert_eq!(f.action_ids.len(), 1, "{kind:?}");
            assert_eq!(f.action_ids[0].as_ref(), "ticket_close", "{kind:?}");
            assert_eq!(f.callback_id.as_deref(), Some("ticket_form"), "{kind:?}");
            assert_eq!(f.team_id.as_deref(), Some("T0ACME"), "{kind:?}");
            assert_eq!(f.enterprise_id.as_deref(), Some("E0ACME"), "{kind:?}");
            assert_eq!(f.user_id.as_deref(), Some("U0333"), "{kind:?}");
            assert_eq!(f.channel_id.as_deref(), Some("C0HELP"), "{kind:?}");
            assert_eq!(f.api_app_id.as_deref(), Some("A0HELPDESK"), "{kind:?}");
        }
    }
}
