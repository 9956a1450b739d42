//! Shared setup for the end-to-end tests: a policy with one route per behaviour.
// Shared by test files (crates without an API), each using some of it: `pub` for them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub use slackgate_testkit::creds::SIGNING_SECRET as SECRET;
use slackgate_testkit::{BotBehavior, MockBot, SignedRequest, TestGateway, TestGatewayBuilder};

pub const OLD_SECRET: &str = "0ld5ecret0ld5ecret0ld5ecret0ld5e";

#[derive(Debug)]
pub struct Rig {
    pub gw: TestGateway,
    pub bot: MockBot,
    pub slow: MockBot,
}

pub fn policy(bot: &MockBot, slow: &MockBot) -> String {
    format!(
        r#"version: 1
apps:
  helpdesk:
    api_app_id: A0HELPDESK
    signing_secrets:
      - {{ id: current, env: HELPDESK_SECRET }}
      - {{ id: previous, env: HELPDESK_SECRET_OLD }}
  other:
    api_app_id: A0OTHERAPP
    signing_secrets:
      - {{ id: current, env: HELPDESK_SECRET }}
upstreams:
  bot: {{ targets: ["{bot}"] }}
  slow: {{ targets: ["{slow}"] }}
  dead: {{ targets: ["127.0.0.1:1"] }}
groups:
  blocked: [U0BAD]
routes:
  - name: helpdesk
    path: /slack/events
    app: helpdesk
    upstream: bot
    source_ips: {{ deny: [203.0.113.0/24] }}
    allow:
      teams: [T0ACME, T0GRIDWS]
      events: [app_mention, message]
      commands: [/ticket]
      actions: ["ticket_*"]
    deny: {{ users: ["@blocked"] }}
    rate_limits:
      - {{ per: user, rate: 1/min, burst: 3 }}
  - name: open
    path: /slack/open
    app: helpdesk
    upstream: bot
  - name: office-only
    path: /slack/office
    app: helpdesk
    upstream: bot
    source_ips: {{ allow: [10.0.0.0/8] }}
  - name: acked
    path: /slack/ack
    app: helpdesk
    upstream: bot
    on_deny: ack
    allow: {{ teams: [T0OTHER] }}
  - name: pinned
    path: /slack/pinned
    app: other
    upstream: bot
  - name: shadowed
    path: /slack/shadow
    app: helpdesk
    upstream: bot
    mode: shadow
    allow: {{ teams: [T0OTHER] }}
  - name: identity
    path: /slack/identity
    app: helpdesk
    upstream: bot
    allow: {{ teams: [T0ACME], users: [U0333], channels: [C0HELP] }}
    deny: {{ users: ["@blocked"] }}
  - name: dead
    path: /slack/dead
    app: helpdesk
    upstream: dead
  - name: slow
    path: /slack/slow
    app: helpdesk
    upstream: slow
"#,
        bot = bot.addr(),
        slow = slow.addr()
    )
}

pub fn rig_with(f: impl FnOnce(TestGatewayBuilder) -> TestGatewayBuilder) -> Rig {
    rig_with_limits("", f)
}

/// [`rig_with`] with more `limits` keys (`extra` starts with ", ").
pub fn rig_with_limits(
    extra: &str,
    f: impl FnOnce(TestGatewayBuilder) -> TestGatewayBuilder,
) -> Rig {
    let bot = MockBot::start();
    let slow = MockBot::with(BotBehavior::Delay(std::time::Duration::from_secs(3)));
    let builder = TestGatewayBuilder::new(&policy(&bot, &slow))
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_SECRET_OLD", OLD_SECRET)
        .config(&format!(
            "limits: {{ upstream_timeout: 500ms, body_read_timeout: 1s{extra} }}"
        ));
    let gw = f(builder).start();
    Rig { gw, bot, slow }
}

pub fn rig() -> Rig {
    rig_with(|b| b)
}

pub fn mention(path: &str) -> SignedRequest {
    SignedRequest::fixture(path, "event_app_mention.json")
}

/// An app_mention body of exactly `size` bytes (padding in the text field).
pub fn mention_of_size(size: usize) -> Vec<u8> {
    let head = r#"{"token":"x","team_id":"T0ACME","api_app_id":"A0HELPDESK","type":"event_callback","event_id":"Ev0SIZE","event":{"type":"app_mention","user":"U0333","channel":"C0HELP","text":""#;
    let tail = r#""}}"#;
    let pad = size - head.len() - tail.len();
    let mut body = head.as_bytes().to_vec();
    body.extend(std::iter::repeat_n(b'a', pad));
    body.extend_from_slice(tail.as_bytes());
    assert_eq!(body.len(), size);
    body
}
