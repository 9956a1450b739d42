//! User groups end to end: a `groups:` entry `{ usergroup, bot, refresh }` gets its members
//! from the Slack stand-in's `usergroups.users.list` with the bot's real token, every
//! `refresh` and at once on a verified `subteam_members_changed`; a failed read keeps the
//! last good members; before the first good read the group fails closed; a reload keeps
//! the members; the stand-in gets exactly the calls expected, and the token shows up in no
//! answer, metric or audit record.
//!
//! Waits poll the gateway's state (its member store, metrics, `/status`); nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slackgate_testkit::creds::SIGNING_SECRET as SECRET;
use slackgate_testkit::{
    fixture_with, wait_until, MockBot, Received, SignedRequest, SlackApi, TestGateway,
    TestGatewayBuilder,
};

const KEY: &str = "gk_groups_5f1c9a7e3b2d40681e9f77";
const TOKEN: &str = "xoxb-1111-2222-realgroupstoken0";
const WAIT: Duration = Duration::from_secs(15);

/// A policy with `oncall` (user group S0ONCALL, refreshed every `refresh`) allowed on
/// `/slack/oncall` and `contractors` (S0CONTRACT) denied on `/slack/open`.
fn policy(bot: &MockBot, refresh: &str) -> String {
    format!(
        r#"version: 1
apps:
  helpdesk:
    signing_secrets:
      - {{ id: current, env: HELPDESK_SECRET }}
upstreams:
  bot: {{ targets: ["{bot}"] }}
bots:
  helpdesk:
    app: helpdesk
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: HELPDESK_BOT_TOKEN }}
    team: T0ACME
    methods: [chat.postMessage]
groups:
  oncall: {{ usergroup: S0ONCALL, bot: helpdesk, refresh: {refresh} }}
  contractors: {{ usergroup: S0CONTRACT, bot: helpdesk, refresh: {refresh} }}
routes:
  - name: oncall
    path: /slack/oncall
    app: helpdesk
    upstream: bot
    allow: {{ users: ["@oncall"] }}
  - name: open
    path: /slack/open
    app: helpdesk
    upstream: bot
    deny: {{ users: ["@contractors"] }}
"#,
        bot = bot.addr()
    )
}

struct Rig {
    slack: SlackApi,
    bot: MockBot,
    gw: TestGateway,
    refresh: &'static str,
}

/// The stand-in knows the token (with usergroups:read) and `groups` (id, members).
fn rig(refresh: &'static str, groups: &[(&str, &[&str])]) -> Rig {
    let mut slack = SlackApi::builder().token(TOKEN, "T0ACME", &["usergroups:read", "chat:write"]);
    for (id, members) in groups {
        slack = slack.usergroup(id, members);
    }
    let slack = slack.start();
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot, refresh))
        .secret("HELPDESK_SECRET", SECRET)
        .bot("helpdesk", KEY, TOKEN)
        .slack(&slack)
        .start();
    Rig {
        slack,
        bot,
        gw,
        refresh,
    }
}

/// Makes every request body unique, so no two signatures are the same (no `replayed`).
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A signed `app_mention` from `user` to `path`.
fn mention(path: &str, user: &str) -> SignedRequest {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let body = String::from_utf8(fixture_with("event_app_mention.json", "U0333", user))
        .unwrap()
        .replace("Ev0APPMENTION1", &format!("Ev0GROUPS{n}"));
    SignedRequest::new(path, body).sign(SECRET)
}

/// A `subteam_members_changed` naming `usergroup`.
fn members_changed(usergroup: &str) -> SignedRequest {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let body = String::from_utf8(fixture_with(
        "event_subteam_members_changed.json",
        "S0ONCALL",
        usergroup,
    ))
    .unwrap()
    .replace("Ev0SUBTEAM001", &format!("Ev0SUBTEAM{n}"));
    SignedRequest::new("/slack/open", body)
}

/// The status code `user` gets on `path`.
fn status_for(gw: &TestGateway, path: &str, user: &str) -> u16 {
    gw.client().send(&mention(path, user)).unwrap().status
}

fn group_status(gw: &TestGateway, group: &str) -> Value {
    let s = gw.admin_client().get("/status").unwrap().json();
    s["groups"][group].clone()
}

/// The members the gateway holds for `group` (`None` before the first good read).
fn members(gw: &TestGateway, group: &str) -> Option<Vec<String>> {
    let shared = gw.shared();
    let snap = shared.current();
    let g = snap.policy.usergroups.get(group)?;
    let loaded = shared.guard.group_members().get(g)?;
    let mut v: Vec<String> = loaded.members.iter().map(str::to_owned).collect();
    v.sort();
    Some(v)
}

fn wait_members(gw: &TestGateway, group: &str, want: &[&str]) {
    assert!(
        wait_until(WAIT, || members(gw, group).is_some_and(|m| m
            .iter()
            .map(String::as_str)
            .eq(want.iter().copied()))),
        "group {group} never had members {want:?} (has {:?}; status {})",
        members(gw, group),
        group_status(gw, group)
    );
}

fn refreshes(gw: &TestGateway, group: &str, result: &str) -> f64 {
    gw.metric(&format!(
        "slackgate_group_refreshes_total{{group=\"{group}\",result=\"{result}\"}}"
    ))
}

/// The stand-in's `usergroups.users.list` calls for `usergroup`.
fn reads_of(slack: &SlackApi, usergroup: &str) -> Vec<Received> {
    slack
        .received()
        .into_iter()
        .filter(|r| {
            r.method == "usergroups.users.list" && r.arg("usergroup").as_deref() == Some(usergroup)
        })
        .collect()
}

/// Every call the stand-in got is a `usergroups.users.list` with the real token in
/// `Authorization`, the bot's team and nothing else.
fn assert_only_group_reads(slack: &SlackApi) {
    let got = slack.received();
    assert!(!got.is_empty());
    for r in &got {
        assert_eq!(r.method, "usergroups.users.list", "{}", r.target);
        assert_eq!(r.http_method, "POST");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.token.as_deref(), Some(TOKEN));
        assert_eq!(r.query, "", "nothing in the query string");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let body = String::from_utf8(r.body.clone()).unwrap();
        let ug = r.arg("usergroup").unwrap();
        assert_eq!(body, format!("usergroup={ug}&team_id=T0ACME"));
        assert!(["S0ONCALL", "S0CONTRACT"].contains(&ug.as_str()), "{ug}");
        assert!(
            !String::from_utf8_lossy(&r.head).contains(KEY),
            "the gateway key went to Slack"
        );
    }
}

/// The token and the key are in no answer of the admin listener and no audit record.
fn assert_no_credential_leaks(gw: &TestGateway) {
    let status = gw.admin_client().get("/status").unwrap();
    let metrics = gw.metrics();
    let audit = gw.audit_raw().join("\n");
    for (what, text) in [
        (
            "/status",
            String::from_utf8_lossy(&status.body).into_owned(),
        ),
        ("/metrics", metrics),
        ("audit", audit),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the token");
        assert!(
            !text.contains("realgroupstoken"),
            "{what} shows part of the token"
        );
        assert!(!text.contains(KEY), "{what} shows the key");
    }
}

#[test]
fn a_member_added_in_slack_is_allowed_and_a_removed_one_denied_within_the_refresh() {
    let rig = rig(
        "1s",
        &[("S0ONCALL", &["U0333"]), ("S0CONTRACT", &["U0BAD"])],
    );
    let gw = &rig.gw;
    wait_members(gw, "oncall", &["U0333"]);
    wait_members(gw, "contractors", &["U0BAD"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 200);
    assert_eq!(status_for(gw, "/slack/oncall", "U0444"), 403);
    let denied = gw.audit_lines(2).pop().unwrap();
    assert_eq!(
        (denied["reason"].as_str(), denied["rule"].as_str()),
        (Some("scope_denied"), Some("allow.users"))
    );
    assert_eq!(status_for(gw, "/slack/open", "U0444"), 200);
    assert_eq!(status_for(gw, "/slack/open", "U0BAD"), 403);

    // U0444 joins, U0333 leaves: the next timed read (no event) picks it up.
    rig.slack.set_usergroup("S0ONCALL", &["U0444"]);
    wait_members(gw, "oncall", &["U0444"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0444"), 200);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 403);
    assert_eq!(
        rig.bot.requests().len(),
        3,
        "only the allowed requests reached the bot"
    );

    let s = group_status(gw, "oncall");
    assert_eq!(s["usergroup"], "S0ONCALL");
    assert_eq!(s["bot"], "helpdesk");
    assert_eq!(s["refresh"], "1s");
    assert_eq!(s["members"], 1);
    assert_eq!(s["last_result"], "ok");
    assert_eq!(s["last_error"], Value::Null);
    assert!(
        s["loaded_at"].is_string() && s["last_refresh"].is_string(),
        "{s}"
    );
    assert_eq!(gw.metric("slackgate_group_members{group=\"oncall\"}"), 1.0);
    assert!(refreshes(gw, "oncall", "ok") >= 2.0);
    assert_eq!(refreshes(gw, "oncall", "slack_error"), 0.0);
    assert!(gw.metric("slackgate_group_last_success_timestamp_seconds{group=\"oncall\"}") > 1.0e9);
    assert_only_group_reads(&rig.slack);
    assert_no_credential_leaks(gw);
    let _ = rig.refresh;
}

#[test]
fn a_verified_subteam_members_changed_reads_the_group_before_its_timer() {
    // An hour between timed reads: only the first read and the event's can happen here.
    let rig = rig("1h", &[("S0ONCALL", &["U0333"]), ("S0CONTRACT", &[])]);
    let gw = &rig.gw;
    wait_members(gw, "oncall", &["U0333"]);
    wait_members(gw, "contractors", &[]);
    assert_eq!(reads_of(&rig.slack, "S0ONCALL").len(), 1);
    rig.slack.set_usergroup("S0ONCALL", &["U0444"]);

    // Unsigned, or for another user group: no read.
    assert_eq!(
        gw.client()
            .send(&members_changed("S0ONCALL"))
            .unwrap()
            .status,
        401
    );
    let other = members_changed("S0SOMEOTHER").sign(SECRET);
    assert_eq!(gw.client().send(&other).unwrap().status, 200);
    // Verified and naming S0ONCALL (the event reaches the open route's bot as usual).
    let changed = members_changed("S0ONCALL").sign(SECRET);
    assert_eq!(gw.client().send(&changed).unwrap().status, 200);
    wait_members(gw, "oncall", &["U0444"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0444"), 200);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 403);

    // Exactly one read per group at start and one for the event: the forged event and
    // the one for another group read nothing, and the event's members were not trusted
    // (the event says U0333 left and U0444 joined; the read said so).
    assert_eq!(reads_of(&rig.slack, "S0ONCALL").len(), 2);
    assert_eq!(reads_of(&rig.slack, "S0CONTRACT").len(), 1);
    assert_eq!(rig.slack.count(), 3);
    assert_only_group_reads(&rig.slack);
    assert_no_credential_leaks(gw);
}

#[test]
fn a_failed_read_keeps_the_last_good_members() {
    let rig = rig(
        "1s",
        &[("S0ONCALL", &["U0333"]), ("S0CONTRACT", &["U0BAD"])],
    );
    let gw = &rig.gw;
    wait_members(gw, "oncall", &["U0333"]);
    // The token is revoked at Slack, and the group changes there: reads now fail.
    rig.slack.revoke(TOKEN);
    rig.slack.set_usergroup("S0ONCALL", &["U0444"]);
    assert!(
        wait_until(WAIT, || refreshes(gw, "oncall", "slack_error") >= 1.0),
        "no failed read counted"
    );
    let s = group_status(gw, "oncall");
    assert_eq!(s["last_result"], "slack_error", "{s}");
    assert_eq!(s["last_error"], "token_revoked", "{s}");
    assert_eq!(s["members"], 1, "{s}");
    // The last good members stay in force.
    assert_eq!(members(gw, "oncall").unwrap(), ["U0333"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 200);
    assert_eq!(status_for(gw, "/slack/oncall", "U0444"), 403);
    assert_eq!(status_for(gw, "/slack/open", "U0BAD"), 403);
    assert_eq!(gw.metric("slackgate_group_members{group=\"oncall\"}"), 1.0);

    // The token works again: the next read catches up.
    rig.slack.grant(TOKEN, "T0ACME", &["usergroups:read"]);
    wait_members(gw, "oncall", &["U0444"]);
    assert_eq!(group_status(gw, "oncall")["last_result"], "ok");
    assert_only_group_reads(&rig.slack);
    assert_no_credential_leaks(gw);
}

#[test]
fn before_the_first_good_read_a_group_fails_closed() {
    // Slack knows neither group: every read answers no_such_subteam.
    let rig = rig("1s", &[]);
    let gw = &rig.gw;
    assert!(
        wait_until(WAIT, || refreshes(gw, "oncall", "slack_error") >= 1.0
            && refreshes(gw, "contractors", "slack_error") >= 1.0),
        "no failed read counted"
    );
    // The allow list naming only the group admits nobody; the deny list denies every
    // user (anyone might be in it).
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 403);
    assert_eq!(status_for(gw, "/slack/open", "U0333"), 403);
    let a = gw.audit_lines(2);
    assert_eq!(a[0]["rule"], "allow.users");
    assert_eq!(a[1]["rule"], "deny.users");
    assert!(rig.bot.requests().is_empty());
    let s = group_status(gw, "oncall");
    assert_eq!(s["members"], Value::Null, "{s}");
    assert_eq!(s["loaded_at"], Value::Null, "{s}");
    assert_eq!(s["last_error"], "no_such_subteam", "{s}");
    assert_eq!(
        gw.metric("slackgate_group_last_success_timestamp_seconds{group=\"oncall\"}"),
        0.0
    );
    assert_eq!(refreshes(gw, "oncall", "ok"), 0.0);
    // Every result is pre-registered.
    let scrape = gw.metrics();
    for result in [
        "ok",
        "slack_error",
        "rate_limited",
        "bad_answer",
        "upstream_error",
        "upstream_timeout",
        "token_revoked",
    ] {
        assert!(
            scrape.contains(&format!(
                "slackgate_group_refreshes_total{{group=\"oncall\",result=\"{result}\"}}"
            )),
            "{result} is not pre-registered"
        );
    }

    // Once Slack has the groups, they count.
    rig.slack.set_usergroup("S0ONCALL", &["U0333"]);
    rig.slack.set_usergroup("S0CONTRACT", &["U0BAD"]);
    wait_members(gw, "oncall", &["U0333"]);
    wait_members(gw, "contractors", &["U0BAD"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 200);
    assert_eq!(status_for(gw, "/slack/open", "U0333"), 200);
    assert_only_group_reads(&rig.slack);
}

#[test]
fn a_reload_keeps_the_members_and_follows_changed_and_removed_groups() {
    let rig = rig(
        "1h",
        &[("S0ONCALL", &["U0333"]), ("S0CONTRACT", &["U0BAD"])],
    );
    let gw = &rig.gw;
    wait_members(gw, "oncall", &["U0333"]);
    wait_members(gw, "contractors", &["U0BAD"]);
    assert_eq!(rig.slack.count(), 2);
    assert_eq!(gw.features().groups.tasks_running(), 2);
    rig.slack.set_usergroup("S0ONCALL", &["U0444"]);

    // A reload that leaves the groups alone: no new read, the members stay.
    let base = policy(&rig.bot, "1h");
    gw.reload_policy(&format!(
        "{base}  - {{ name: extra, path: /slack/extra, app: helpdesk, upstream: bot }}\n"
    ));
    assert_eq!(members(gw, "oncall").unwrap(), ["U0333"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 200);
    assert_eq!(rig.slack.count(), 2, "an unchanged group was read again");

    // A changed refresh restarts the group's task, which reads at once; the members it
    // held count until then.
    let faster = base.replace(
        "oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 1h }",
        "oncall: { usergroup: S0ONCALL, bot: helpdesk, refresh: 2h }",
    );
    assert_ne!(faster, base);
    gw.reload_policy(&faster);
    wait_members(gw, "oncall", &["U0444"]);
    assert_eq!(reads_of(&rig.slack, "S0ONCALL").len(), 2);
    assert_eq!(reads_of(&rig.slack, "S0CONTRACT").len(), 1);
    assert_eq!(group_status(gw, "oncall")["refresh"], "2h");

    // Removing a group stops its task and forgets its members, status and series.
    let removed = faster
        .replace(
            "  contractors: { usergroup: S0CONTRACT, bot: helpdesk, refresh: 1h }\n",
            "",
        )
        .replace("    deny: { users: [\"@contractors\"] }\n", "");
    assert_ne!(removed, faster);
    gw.reload_policy(&removed);
    assert!(
        wait_until(WAIT, || gw.features().groups.tasks_running() == 1),
        "the removed group's task still runs"
    );
    let status = gw.admin_client().get("/status").unwrap().json();
    let names: Vec<&String> = status["groups"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["oncall"]);
    assert!(
        wait_until(WAIT, || !gw.metrics().contains("group=\"contractors\"")),
        "the removed group's series are still exported"
    );
    assert_eq!(status_for(gw, "/slack/open", "U0BAD"), 200);
    assert_eq!(rig.slack.count(), 3);
    assert_only_group_reads(&rig.slack);
    assert_no_credential_leaks(gw);
}

#[test]
fn a_group_pointed_at_another_user_group_starts_empty() {
    let rig = rig(
        "1h",
        &[
            ("S0ONCALL", &["U0333"]),
            ("S0CONTRACT", &[]),
            ("S0NEWTEAM", &["U0555"]),
        ],
    );
    let gw = &rig.gw;
    wait_members(gw, "oncall", &["U0333"]);
    // The new user group cannot be read yet (no scope): the old members must not count.
    rig.slack.grant(TOKEN, "T0ACME", &["chat:write"]);
    let moved = policy(&rig.bot, "1h").replace("usergroup: S0ONCALL", "usergroup: S0NEWTEAM");
    gw.reload_policy(&moved);
    assert!(
        wait_until(WAIT, || group_status(gw, "oncall")["last_error"]
            == "missing_scope"),
        "{}",
        group_status(gw, "oncall")
    );
    assert_eq!(members(gw, "oncall"), None);
    assert_eq!(status_for(gw, "/slack/oncall", "U0333"), 403);
    assert_eq!(group_status(gw, "oncall")["usergroup"], "S0NEWTEAM");
    rig.slack.grant(TOKEN, "T0ACME", &["usergroups:read"]);
    let changed = members_changed("S0NEWTEAM").sign(SECRET);
    assert_eq!(gw.client().send(&changed).unwrap().status, 200);
    wait_members(gw, "oncall", &["U0555"]);
    assert_eq!(status_for(gw, "/slack/oncall", "U0555"), 200);
}

#[test]
fn shutdown_stops_every_refresh_task() {
    let mut rig = rig("1s", &[("S0ONCALL", &["U0333"]), ("S0CONTRACT", &[])]);
    wait_members(&rig.gw, "oncall", &["U0333"]);
    let groups = Arc::clone(&rig.gw.features().groups);
    assert_eq!(groups.tasks_running(), 2);
    rig.gw.running.take().unwrap().shutdown();
    assert_eq!(groups.tasks_running(), 0);
    // An event arriving now wakes nothing that could call Slack.
    let calls = rig.slack.count();
    groups.wake("S0ONCALL");
    assert_eq!(groups.tasks_running(), 0);
    assert_eq!(rig.slack.count(), calls);
}
