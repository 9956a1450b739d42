use super::*;
use crate::ratelimit::RateLimiter;
use crate::reply::ReplyChannels;
use crate::revoked::RevokedTokens;

#[test]
fn statuses() {
    for r in EgressReason::ALL {
        let s = r.status();
        assert!([200, 404, 429, 502, 503, 504].contains(&s), "{r}");
    }
    assert_eq!(EgressReason::ResponseUrlInvalid.status(), 404);
    assert_eq!(EgressReason::SlackRateLimited.status(), 429);
    assert_eq!(EgressReason::TokenUnavailable.status(), 503);
}

// === decide_call ===

const SCOPED: &str = "gk_scoped_1111aaaa2222bbbb";
const UNFURLER: &str = "gk_unfurler_3333cccc4444dddd";
const REPLIER: &str = "gk_replier_5555eeee6666ffff";
const COUNTER: &str = "gk_counter_7777gggg8888hhhh";
const RESPONDER: &str = "gk_responder_9999iiii0000jjjj";
const SHADOWY: &str = "gk_shadowy_1212kkkk3434llll";
const ECHO: &str = "gk_echo_5656mmmm7878nnnn9090";

fn egress_policy() -> Policy {
    let secrets = slackgate_fixtures::MapSecrets::in_memory(&[
        ("SIGNING", "8f742231b10e8888abcd99yyyzzz85a5"),
        ("SCOPED_KEY", SCOPED),
        ("UNFURLER_KEY", UNFURLER),
        ("REPLIER_KEY", REPLIER),
        ("COUNTER_KEY", COUNTER),
        ("RESPONDER_KEY", RESPONDER),
        ("SHADOWY_KEY", SHADOWY),
        ("ECHO_KEY", ECHO),
        ("TOKEN", "xoxb-1-t"),
    ]);
    let text = r#"version: 1
apps:
  helpdesk: { signing_secrets: [{ id: current, env: SIGNING }] }
routes: []
bots:
  scoped:
    key: { env: SCOPED_KEY }
    token: { env: TOKEN }
    team: T0ACME
    methods: ["chat.*", "canvases.*", conversations.info, x.custom]
    channels: [C0HELP, C0OPS]
    rate_limits: [{ per: channel, rate: 1/min, burst: 1 }]
  unfurler:
    key: { env: UNFURLER_KEY }
    token: { env: TOKEN }
    methods: [chat.unfurl, chat.update]
    channels: [C0HELP]
  replier:
    app: helpdesk
    key: { env: REPLIER_KEY }
    token: { env: TOKEN }
    methods: ["chat.*", files.completeUploadExternal, "reactions.*", conversations.info]
    reply_scope: 10m
  counter:
    key: { env: COUNTER_KEY }
    token: { env: TOKEN }
    methods: [chat.postMessage, "x.*"]
    rate_limits: [{ per: method, rate: 1/min, burst: 1 }]
  responder:
    key: { env: RESPONDER_KEY }
    token: { env: TOKEN }
    methods: [response_url]
    channels: [C0OK]
    deny_args: [username]
  shadowy:
    mode: shadow
    key: { env: SHADOWY_KEY }
    token: { env: TOKEN }
    team: T0ACME
    methods: [chat.postMessage, auth.revoke]
    channels: [C0HELP]
    deny_args: [username]
    rate_limits: [{ per: method, rate: 1/min, burst: 2 }]
  echo:
    mode: shadow
    app: helpdesk
    key: { env: ECHO_KEY }
    token: { env: TOKEN }
    methods: [chat.postMessage]
    reply_scope: 10m
"#;
    slackgate_fixtures::policy::compiled(text, &secrets, 0)
}

/// The egress door's state around one policy.
struct Door {
    policy: Policy,
    settings: EgressSettings,
    limiter: RateLimiter,
    slack: SlackLimits,
    revoked: RevokedTokens,
    reply: ReplyChannels,
    custody: crate::Custody,
}

const NOW: f64 = 1_900_000_000.0;

impl Door {
    fn new() -> Self {
        Door {
            policy: egress_policy(),
            settings: EgressSettings {
                max_call_channels: 100,
            },
            limiter: RateLimiter::new(1000),
            slack: SlackLimits::default(),
            revoked: RevokedTokens::default(),
            reply: ReplyChannels::default(),
            custody: crate::Custody::default(),
        }
    }

    fn state(&self) -> EgressState<'_> {
        EgressState {
            limiter: &self.limiter,
            slack: &self.slack,
            revoked: &self.revoked,
            reply: &self.reply,
            custody: Some(&self.custody),
            now: NOW,
        }
    }

    fn decide(&self, key: &str, path: &str, form: &str) -> EgressDecision {
        let auth = format!("Bearer {key}");
        let state = self.state();
        decide_call(
            &self.policy,
            &EgressCall {
                path,
                query: None,
                authorization: Some(auth.as_bytes()),
                content_type: Some(b"application/x-www-form-urlencoded"),
                body: form.as_bytes(),
            },
            &self.settings,
            &state,
        )
    }
}

fn outcome(d: &EgressDecision) -> (EgressReason, Option<&str>, Option<&str>) {
    (d.reason, d.rule.as_deref(), d.channel_id.as_deref())
}

#[test]
fn a_channel_list_past_the_cap_is_malformed() {
    let mut door = Door::new();
    door.settings.max_call_channels = 3;
    let d = door.decide(SCOPED, "/api/chat.postMessage", "channels=C1,C2,C3,C4");
    assert_eq!(d.reason, EgressReason::MalformedCall);
    let rule = d.rule.as_deref().unwrap_or_default();
    assert!(rule.contains("limits.max_call_channels"), "{rule}");
    assert_eq!(
        d.bot.map(|b| Arc::clone(&b.name)).as_deref(),
        Some("scoped")
    );
    // At the cap, the call is read (and then held to `channels`).
    let d = door.decide(
        SCOPED,
        "/api/chat.postMessage",
        "channel=C0HELP&channels=C0HELP,C0OPS,C0HELP",
    );
    assert_eq!(d.reason, EgressReason::Allowed);
}

#[test]
fn methods_are_decided_in_slacks_spelling() {
    let door = Door::new();
    for path in [
        "/api/chat.PostMessage",
        "/api/CHAT.POSTMESSAGE",
        "/api/chat.postMessage",
    ] {
        let d = door.decide(COUNTER, path, "channel=C0HELP&text=hi");
        assert_eq!(d.method.as_deref(), Some("chat.postMessage"), "{path}");
    }
    // One per-method bucket for every spelling: the first took it.
    let d = door.decide(COUNTER, "/api/Chat.postmessage", "channel=C0HELP");
    assert_eq!(d.reason, EgressReason::RateLimited);
    // Slack's 429 holds for every spelling too.
    door.slack
        .note(&Arc::from("scoped"), "chat.postMessage", 30, NOW);
    let d = door.decide(SCOPED, "/api/CHAT.postMESSAGE", "channel=C0HELP");
    assert_eq!(
        (d.reason, d.method.as_deref()),
        (EgressReason::SlackRateLimited, Some("chat.postMessage"))
    );
    // A privileged family in any case is decided as Slack's name: listed exactly or not at all.
    let d = door.decide(SCOPED, "/api/ADMIN.users.LIST", "");
    assert_eq!(
        (d.reason, d.method.as_deref()),
        (EgressReason::MethodDenied, Some("admin.users.list"))
    );
}

#[test]
fn a_name_slack_does_not_document_passes_only_as_listed() {
    let door = Door::new();
    let d = door.decide(SCOPED, "/api/x.custom", "");
    assert_eq!(
        (d.reason, d.method.as_deref()),
        (EgressReason::Allowed, Some("x.custom"))
    );
    for path in ["/api/X.custom", "/api/x.Custom"] {
        let d = door.decide(SCOPED, path, "");
        assert_eq!(
            outcome(&d),
            (EgressReason::MethodDenied, Some("methods"), None),
            "{path}"
        );
    }
    // A glob never admits one.
    let d = door.decide(COUNTER, "/api/x.custom", "");
    assert_eq!(d.reason, EgressReason::MethodDenied);
}

#[test]
fn every_channel_naming_argument_is_held_to_channels() {
    let door = Door::new();
    for (path, body) in [
        (
            "/api/canvases.access.set",
            "canvas_id=F1&access_level=write&channel_ids=C0OTHER",
        ),
        (
            "/api/conversations.info",
            "channel=C0HELP&context_channel_id=C0OTHER",
        ),
    ] {
        let d = door.decide(SCOPED, path, body);
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("channels"),
                Some("C0OTHER")
            ),
            "{path}"
        );
    }
    let d = door.decide(
        SCOPED,
        "/api/canvases.access.set",
        "canvas_id=F1&channel_ids=C0OPS,C0HELP",
    );
    assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0OPS")));
}

#[test]
fn the_channel_acted_on_is_charged_and_audited() {
    let door = Door::new();
    // chat.postMessage acts on `channel`, whatever came first.
    let d = door.decide(
        SCOPED,
        "/api/chat.postMessage",
        "channel_id=C0HELP&channel=C0OPS&text=x",
    );
    assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0OPS")));
    // C0OPS's bucket (burst 1) is spent; C0HELP's is not.
    let d = door.decide(SCOPED, "/api/chat.postMessage", "channel=C0OPS");
    assert_eq!(d.reason, EgressReason::RateLimited);
    let d = door.decide(SCOPED, "/api/chat.postMessage", "channel=C0HELP");
    assert_eq!(outcome(&d), (EgressReason::Allowed, None, Some("C0HELP")));
}

#[test]
fn writes_that_name_no_conversation() {
    let door = Door::new();
    let unfurl = "unfurl_id=Uf1&source=composer&unfurls=%7B%7D";
    // Held to `channels` through a glob: denied.
    let d = door.decide(SCOPED, "/api/chat.unfurl", unfurl);
    assert_eq!(
        outcome(&d),
        (EgressReason::ChannelDenied, Some("channels"), None)
    );
    // Held to reply_scope: denied.
    let d = door.decide(REPLIER, "/api/chat.unfurl", unfurl);
    assert_eq!(
        outcome(&d),
        (EgressReason::ChannelDenied, Some("reply_scope"), None)
    );
    // Listed by name: the operator chose it.
    let d = door.decide(UNFURLER, "/api/chat.unfurl", unfurl);
    assert_eq!(d.reason, EgressReason::Allowed);
    // A method that needs its channel gets no such pass, listed or not.
    let d = door.decide(
        UNFURLER,
        "/api/chat.update",
        "ts=1.2&text=x&channel_id=C0HELP",
    );
    assert_eq!(
        outcome(&d),
        (
            EgressReason::ChannelDenied,
            Some("channels"),
            Some("C0HELP")
        )
    );
    // An upload shared nowhere writes nowhere.
    let d = door.decide(REPLIER, "/api/files.completeUploadExternal", "files=%5B%5D");
    assert_eq!(d.reason, EgressReason::Allowed);
}

#[test]
fn reply_scope_covers_every_conversation_write() {
    let door = Door::new();
    let app: Arc<str> = Arc::from("helpdesk");
    door.reply.note(&app, "C0HELP", NOW - 60.0);
    for (method, args) in [
        ("chat.startStream", "channel=C0SECRET&thread_ts=1.2"),
        ("chat.appendStream", "channel=C0SECRET&ts=1.2"),
        ("chat.stopStream", "channel=C0SECRET&ts=1.2"),
        ("chat.unfurl", "channel=C0SECRET&ts=1.2&unfurls=%7B%7D"),
        ("chat.scheduleMessage", "channel=C0SECRET&post_at=1&text=x"),
        (
            "chat.deleteScheduledMessage",
            "channel=C0SECRET&scheduled_message_id=Q1",
        ),
        ("reactions.add", "channel=C0SECRET&timestamp=1.2&name=eyes"),
        (
            "files.completeUploadExternal",
            "files=%5B%5D&channel_id=C0SECRET",
        ),
        ("chat.postMessage", "channel=C0HELP&channel_id=C0SECRET"),
    ] {
        let d = door.decide(REPLIER, &format!("/api/{method}"), args);
        assert_eq!(
            outcome(&d),
            (
                EgressReason::ChannelDenied,
                Some("reply_scope"),
                Some("C0SECRET")
            ),
            "{method}"
        );
        let allowed = args.replace("C0SECRET", "C0HELP");
        let d = door.decide(REPLIER, &format!("/api/{method}"), &allowed);
        assert_eq!(d.reason, EgressReason::Allowed, "{method}");
    }
    // Reads are not scoped.
    let d = door.decide(REPLIER, "/api/conversations.info", "channel=C0SECRET");
    assert_eq!(d.reason, EgressReason::Allowed);
}

#[test]
fn an_unknown_caller_leaves_only_a_documented_method_and_the_reason() {
    let door = Door::new();
    let d = door.decide(
        "gk_nobody",
        "/api/chat.PostMessage",
        "channel=C0HELP&team_id=T0ACME",
    );
    assert_eq!(
        (d.reason, d.rule.as_deref()),
        (EgressReason::UnknownBot, Some("key"))
    );
    assert_eq!(d.method.as_deref(), Some("chat.postMessage"));
    assert_eq!(
        (d.team_id, d.channel_id, d.encoding, d.body_token),
        (None, None, None, false)
    );
    let d = door.decide("gk_nobody", "/api/secret.exfil", "channel=C0HELP");
    assert_eq!(d.method, None);
    // Unreadable: the rule is a fixed phrase, not the argument's name.
    let d = door.decide(
        "gk_nobody",
        "/api/chat.postMessage",
        "mysecretname=1&mysecretname=2",
    );
    assert_eq!(d.reason, EgressReason::MalformedCall);
    assert!(!d
        .rule
        .as_deref()
        .unwrap_or_default()
        .contains("mysecretname"));
    let d = door.decide(
        SCOPED,
        "/api/chat.postMessage",
        "mysecretname=1&mysecretname=2",
    );
    assert!(d
        .rule
        .as_deref()
        .unwrap_or_default()
        .contains("mysecretname"));
}

#[test]
fn audited_ids_have_slacks_shape() {
    let door = Door::new();
    let d = door.decide(
        COUNTER,
        "/api/chat.postMessage",
        "channel=c0help&team_id=t%0Aacme",
    );
    assert_eq!(
        (d.team_id.as_deref(), d.channel_id.as_deref()),
        (Some("invalid"), Some("invalid"))
    );
    // The channel check still reads the channel as written.
    let d = door.decide(
        SCOPED,
        "/api/chat.postMessage",
        "channel=c0help&team_id=T0ACME",
    );
    assert_eq!(
        outcome(&d),
        (
            EgressReason::ChannelDenied,
            Some("channels"),
            Some("invalid")
        )
    );
    let d = door.decide(
        SCOPED,
        "/api/chat.postMessage",
        "channel=C0HELP&team_id=T0%20ACME",
    );
    assert_eq!(
        (d.reason, d.team_id.as_deref()),
        (EgressReason::TeamDenied, Some("invalid"))
    );
}

#[test]
fn a_workflow_key_acts_as_its_bot_until_its_execution_ends() {
    let door = Door::new();
    let held = crate::WorkflowToken {
        bot: std::sync::Arc::from("counter"),
        function_execution_id: std::sync::Arc::from("Fx0EXEC"),
        token: std::sync::Arc::from("xwfp-not-a-real-token"),
    };
    door.custody
        .hold_workflow_token("sgw-live", held, NOW + 60.0);
    let d = door.decide(
        "sgw-live",
        "/api/chat.postMessage",
        "channel=C0HELP&text=hi",
    );
    assert_eq!(d.reason, EgressReason::Allowed, "{d:?}");
    assert_eq!(d.bot.as_ref().map(|b| &*b.name), Some("counter"));
    let w = d.workflow.as_ref().map(|w| &*w.function_execution_id);
    assert_eq!(w, Some("Fx0EXEC"));
    assert!(!format!("{d:?}").contains("xwfp"));
    // The bot's rules apply: `counter` may not call conversations.info.
    let d = door.decide("sgw-live", "/api/conversations.info", "channel=C0HELP");
    assert_eq!(d.reason, EgressReason::MethodDenied);
    // A key of the shape that is not held, or whose execution ended, names nobody.
    let post = "channel=C0HELP&text=hi";
    let unknown = (EgressReason::UnknownBot, Some("key"), None);
    assert_eq!(
        outcome(&door.decide("sgw-other", "/api/chat.postMessage", post)),
        unknown
    );
    door.custody.end_function_execution("Fx0EXEC");
    let d = door.decide(
        "sgw-live",
        "/api/chat.postMessage",
        "channel=C0HELP&text=hi",
    );
    assert_eq!(d.reason, EgressReason::UnknownBot);
    assert!(d.workflow.is_none());
}

// === posts to held capabilities ===

fn held_response(bot: &str, channel: &str) -> crate::ResponseUrl {
    crate::ResponseUrl {
        bot: Arc::from(bot),
        channel: Some(Arc::from(channel)),
        team: Some(Arc::from("T0ACME")),
        url: Arc::from("https://hooks.slack.com/commands/T0ACME/1/x"),
    }
}

impl Door {
    fn post<'p>(&self, cap: &'p str, auth: Option<&'p str>, body: &'p str) -> CapabilityPost<'p> {
        CapabilityPost {
            capability: cap,
            is_post: true,
            authorization: auth.map(str::as_bytes),
            content_type: Some(b"application/json"),
            body: body.as_bytes(),
        }
    }

    fn respond(&self, cap: &str, key: Option<&str>, body: &str) -> EgressDecision {
        let auth = key.map(|k| format!("Bearer {k}"));
        let state = self.state();
        let limits = CallLimits { max_channels: 8 };
        let post = self.post(cap, auth.as_deref(), body);
        let (d, url) = decide_response_url(&self.policy, &post, &limits, &self.custody, &state);
        assert_eq!(url.is_some(), d.reason == EgressReason::Allowed);
        assert_eq!(d.method.as_deref(), Some(RESPONSE_URL_METHOD));
        d
    }
}

#[test]
fn response_url_posts_are_decided_on_the_urls_channel() {
    let door = Door::new();
    door.custody
        .hold_response_url("ok", held_response("responder", "C0OK"), NOW);
    door.custody
        .hold_response_url("elsewhere", held_response("responder", "C0NOPE"), NOW);
    door.custody
        .hold_response_url("of_counter", held_response("counter", "C0OK"), NOW);
    let d = door.respond("ok", None, r#"{"text":"hi","channel":"C0NOPE"}"#);
    assert_eq!(d.reason, EgressReason::Allowed, "{d:?}");
    assert_eq!(d.channel_id.as_deref(), Some("C0OK"));
    assert_eq!(d.team_id.as_deref(), Some("T0ACME"));
    assert_eq!(
        door.respond("ok", Some(RESPONDER), "{}").reason,
        EgressReason::Allowed
    );
    let cases = [
        (
            door.respond("nosuch", None, "{}"),
            EgressReason::ResponseUrlInvalid,
            "capability",
        ),
        (
            door.respond("ok", Some(COUNTER), "{}"),
            EgressReason::ResponseUrlInvalid,
            "capability",
        ),
        (
            door.respond("ok", Some("gk_nobody"), "{}"),
            EgressReason::UnknownBot,
            "key",
        ),
        (
            door.respond("elsewhere", None, "{}"),
            EgressReason::ChannelDenied,
            "channels",
        ),
        (
            door.respond("of_counter", None, "{}"),
            EgressReason::MethodDenied,
            "methods",
        ),
        (
            door.respond("ok", None, r#"{"username":"ceo"}"#),
            EgressReason::ArgumentDenied,
            "deny_args: username",
        ),
        (
            door.respond("ok", None, r#"{"token":"xoxb-1"}"#),
            EgressReason::MalformedCall,
            "a response URL takes no token",
        ),
    ];
    for (d, reason, rule) in cases {
        assert_eq!((d.reason, d.rule.as_deref()), (reason, Some(rule)), "{d:?}");
    }
}

#[test]
fn uploads_are_bound_to_their_bot() {
    let door = Door::new();
    let up = crate::UploadUrl {
        bot: Arc::from("responder"),
        length: 3,
        file_id: None,
        url: Arc::from("https://files.slack.com/upload/v1/x"),
    };
    door.custody.hold_upload_url("up", up, NOW);
    let decide = |cap: &str, key: Option<&str>, is_post: bool| {
        let auth = key.map(|k| format!("Bearer {k}"));
        let post = CapabilityPost {
            is_post,
            ..door.post(cap, auth.as_deref(), "")
        };
        let (d, held) = decide_upload(&door.policy, &post, &door.custody, NOW);
        (d.reason, d.bot.map(|b| b.name.to_string()), held.is_some())
    };
    let me = Some("responder".to_owned());
    let allowed = (EgressReason::Allowed, me.clone(), true);
    assert_eq!(decide("up", None, true), allowed);
    assert_eq!(decide("up", Some(RESPONDER), true), allowed);
    assert_eq!(
        decide("up", Some(COUNTER), true),
        (
            EgressReason::ResponseUrlInvalid,
            Some("counter".to_owned()),
            false
        )
    );
    assert_eq!(
        decide("up", None, false),
        (EgressReason::MalformedCall, me, false)
    );
    assert_eq!(
        decide("gone", None, true),
        (EgressReason::ResponseUrlInvalid, None, false)
    );
}

// === mode: shadow ===

/// (reason, rule, shadow, forwards) of a decision.
type ShadowOutcome<'a> = (EgressReason, Option<&'a str>, bool, bool);

fn shadow_outcome(d: &EgressDecision) -> ShadowOutcome<'_> {
    (d.reason, d.rule.as_deref(), d.shadow, d.forwards())
}

#[test]
fn a_shadow_bot_forwards_what_its_own_rules_would_deny() {
    use EgressReason::*;
    let door = Door::new();
    let post = "/api/chat.postMessage";
    let cases: [(&str, &str, ShadowOutcome<'_>); 8] = [
        (post, "channel=C0HELP", (Allowed, None, false, true)),
        (
            "/api/chat.delete",
            "channel=C0HELP&ts=1.2",
            (MethodDenied, Some("methods"), true, true),
        ),
        (
            post,
            "channel=C0OTHER",
            (ChannelDenied, Some("channels"), true, true),
        ),
        (
            post,
            "channel=C0HELP&team_id=T0EVIL",
            (TeamDenied, Some("team"), true, true),
        ),
        (
            post,
            "channel=C0HELP&username=ceo",
            (ArgumentDenied, Some("deny_args: username"), true, true),
        ),
        // A privileged method listed by its exact name is allowed, as in enforce mode.
        ("/api/auth.revoke", "", (Allowed, None, false, true)),
        (post, "channel=C0HELP", (Allowed, None, false, true)),
        // The bucket (burst 2) is empty: reported, not enforced, and no Retry-After.
        (
            post,
            "channel=C0HELP",
            (
                RateLimited,
                Some("rate_limits[0] per method 1/min burst 2"),
                true,
                true,
            ),
        ),
    ];
    for (path, form, want) in cases {
        let d = door.decide(SHADOWY, path, form);
        assert_eq!(shadow_outcome(&d), want, "{path} {form}");
        // Every record says where the call went, a shadowed method_denied included.
        let channel = if form.contains("C0OTHER") {
            "C0OTHER"
        } else {
            "C0HELP"
        };
        if form.contains("channel=") {
            assert_eq!(d.channel_id.as_deref(), Some(channel), "{path} {form}");
        }
        if d.shadow {
            assert_eq!(d.retry_after_secs, None, "{path} {form}");
        }
    }
}

#[test]
fn a_shadow_bot_never_shadows_privileged_undocumented_or_caller_refusals() {
    use EgressReason::*;
    let door = Door::new();
    let denied = |path: &str, form: &str, reason: EgressReason| {
        let d = door.decide(SHADOWY, path, form);
        assert_eq!(d.reason, reason, "{path} {form}");
        assert!(
            !d.shadow && !d.forwards(),
            "{path} {form} must stay enforced"
        );
    };
    // Privileged families, not listed by their exact names.
    for m in [
        "admin.users.list",
        "admin.conversations.invite",
        "users.admin.invite",
        "apps.uninstall",
        "oauth.v2.access",
        "apps.manifest.update",
        "apps.permissions.request",
        "files.sharedPublicURL",
        "migration.exchange",
    ] {
        denied(&format!("/api/{m}"), "", MethodDenied);
    }
    // A method Slack does not document could be a privileged one the table lacks.
    denied("/api/x.undocumented", "", MethodDenied);
    // Refusals that are not the bot's rules.
    denied(
        "/api/chat.postMessage",
        "channel=C0HELP&channel=C0OPS",
        MalformedCall,
    );
    let tok = door.decide(SHADOWY, "/api/chat.postMessage", "token=other");
    assert_eq!((tok.reason, tok.shadow), (MalformedCall, false));
    // Slack's own 429, remembered: the gateway answers for Slack.
    let name: Arc<str> = Arc::from("shadowy");
    door.slack.note(&name, "chat.postMessage", 30, NOW);
    denied("/api/chat.postMessage", "channel=C0HELP", SlackRateLimited);
    // An unknown key is never anyone's shadow.
    let d = door.decide("gk_nobody_0000zzzz9999yyyy", "/api/chat.delete", "");
    assert_eq!(
        (d.reason, d.shadow, d.forwards()),
        (UnknownBot, false, false)
    );
    // The listener's refusal of an unreadable call ends a shadow.
    let mut d = door.decide(SHADOWY, "/api/chat.delete", "channel=C0HELP");
    assert!(d.shadow);
    d.unreadable(Unreadable::BodyTooLarge);
    assert!(!d.shadow && !d.forwards());
}

#[test]
fn an_enforced_bot_is_never_shadowed() {
    let door = Door::new();
    let d = door.decide(SCOPED, "/api/chat.postMessage", "channel=C0OTHER");
    assert_eq!(
        shadow_outcome(&d),
        (EgressReason::ChannelDenied, Some("channels"), false, false)
    );
}

#[test]
fn a_shadow_bot_reports_reply_scope_without_enforcing_it() {
    let door = Door::new();
    let d = door.decide(ECHO, "/api/chat.postMessage", "channel=C0QUIET");
    assert_eq!(
        shadow_outcome(&d),
        (EgressReason::ChannelDenied, Some("reply_scope"), true, true)
    );
    assert_eq!(d.channel_id.as_deref(), Some("C0QUIET"));
    door.reply.note(&Arc::from("helpdesk"), "C0QUIET", NOW);
    let d = door.decide(ECHO, "/api/chat.postMessage", "channel=C0QUIET");
    assert_eq!(
        shadow_outcome(&d),
        (EgressReason::Allowed, None, false, true)
    );
}
