//! The audit line, byte for byte, and the sink's queue, drops and reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::core::metrics::Metrics;
use crate::core::shape::MAX_TEXT;
use std::time::SystemTime;

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn record(n: u64) -> AuditRecord {
    AuditRecord {
        ts: rfc3339(SystemTime::now()),
        reason: "allowed",
        status: 200,
        duration_us: n,
        ..AuditRecord::default()
    }
}

#[test]
fn ts_text_matches_humantime() {
    let mut t = 0u64;
    let mut checked = 0;
    // Every day boundary of 1970..2110 region in coarse steps, plus odd offsets.
    while t < 4_400_000_000 {
        for off in [0u64, 1, 59, 86_399] {
            let at = SystemTime::UNIX_EPOCH + Duration::new(t + off, 123_456_789);
            let want = humantime::format_rfc3339_micros(at).to_string();
            assert_eq!(TsText::new(at).unwrap().as_str(), want);
            checked += 1;
        }
        t += 86_400 * 7 + 3_601;
    }
    assert!(checked > 25_000);
    for s in [
        "2000-02-29T23:59:59.999999Z",
        "2100-03-01T00:00:00.000001Z",
        "9999-12-31T23:59:59.000000Z",
    ] {
        let at = humantime::parse_rfc3339(s).unwrap();
        assert_eq!(TsText::new(at).unwrap().as_str(), s);
    }
    let far = humantime::parse_rfc3339("9999-12-31T23:59:59Z").unwrap() + Duration::from_secs(1);
    assert!(TsText::new(far).is_none());
    assert!(!rfc3339(far).is_empty(), "falls back to humantime");
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    assert!(TsText::new(before).is_none());
}

proptest::proptest! {
    #[test]
    fn strings_are_escaped_exactly_like_serde_json(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
        let mut out = Vec::new();
        json_string(&mut out, &s);
        proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
    }
}

#[test]
fn the_hand_written_line_is_byte_for_byte_serde_json() {
    let nasty = "q\"b\\s/\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}é🦀\u{2028}";
    let full = AuditRecord {
        ts: rfc3339(SystemTime::now()),
        direction: Direction::Inbound,
        route: Some(nasty.into()),
        reason: "allowed",
        status: 200,
        shadow: true,
        client_ip: Some("::ffff:1.2.3.4".into()),
        app: Some("a".into()),
        secret_id: Some(nasty.into()),
        kind: Some("event"),
        api_app_id: Some("A1".into()),
        enterprise_id: Some("E1".into()),
        team_id: Some(nasty.into()),
        user_id: Some("U1".into()),
        channel_id: Some("C1".into()),
        event_type: Some("message".into()),
        command: Some("/x".into()),
        event_id: Some("Ev1".into()),
        action_id: Some(nasty.into()),
        retry_num: Some(3),
        rule: Some("allow.users".into()),
        upstream: Some("bot".into()),
        upstream_status: Some(502),
        duration_us: u64::MAX,
        lifecycle: true,
        source: None,
    };
    for r in [full, AuditRecord::default(), record(7)] {
        let mut line = Vec::new();
        r.view().write_json(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            serde_json::to_string(&r).unwrap()
        );
    }
}

#[test]
fn a_blocked_writer_makes_drops_counted_and_exported() {
    let metrics = Metrics::new().unwrap();
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = AuditSink::start(
        AuditTarget::Memory(Arc::clone(&buf)),
        1,
        metrics.audit_dropped.clone(),
    )
    .unwrap();
    let sent = 10;
    {
        // Holding the buffer blocks the writer on its first record: the queue holds
        // one more, every other record must be dropped and counted.
        let _held = buf.lock();
        for n in 0..sent {
            sink.record(&record(n));
        }
        assert!(
            metrics.audit_dropped.get() >= sent - 2,
            "dropped {}",
            metrics.audit_dropped.get()
        );
        let text = String::from_utf8(metrics.render()).unwrap();
        let exported = text
            .lines()
            .find_map(|l| l.strip_prefix("slackgate_audit_dropped_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
        assert_eq!(exported, metrics.audit_dropped.get());
    }
    // Released: every record is either written or counted, none vanished.
    assert!(wait_until(|| {
        buf.lock().len() as u64 + metrics.audit_dropped.get() == sent
    }));
}

#[test]
fn reopen_follows_a_file_renamed_by_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let dropped = IntCounter::new("t_dropped_total", "t").unwrap();
    let sink = AuditSink::start(AuditTarget::File(path.clone()), 16, dropped.clone()).unwrap();
    let lines = |p: &PathBuf| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    sink.record(&record(1));
    assert!(wait_until(|| lines(&path).len() == 1));
    std::fs::rename(&path, &rotated).unwrap();
    sink.reopen();
    sink.record(&record(2));
    sink.record(&record(3));
    assert!(
        wait_until(|| lines(&path).len() == 2),
        "no new file after reopen"
    );
    let old = lines(&rotated);
    let new = lines(&path);
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["duration_us"], 1);
    assert_eq!(new[0]["duration_us"], 2);
    assert_eq!(new[1]["duration_us"], 3);
    assert_eq!(dropped.get(), 0);
}

#[test]
fn without_reopen_a_renamed_file_keeps_receiving() {
    // The reason reopen exists: an open descriptor follows the rename.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let dropped = IntCounter::new("t_dropped_total", "t").unwrap();
    let sink = AuditSink::start(AuditTarget::File(path.clone()), 16, dropped).unwrap();
    sink.record(&record(1));
    assert!(wait_until(|| std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .count()
        == 1));
    std::fs::rename(&path, &rotated).unwrap();
    sink.record(&record(2));
    assert!(wait_until(|| std::fs::read_to_string(&rotated)
        .unwrap_or_default()
        .lines()
        .count()
        == 2));
    assert!(!path.exists());
}

// === Field shapes and line bounds ===

#[test]
fn ids_keep_slack_shapes_and_nothing_else() {
    for id in [
        "T0ACME",
        "T0GRIDWS",
        "E0ACME",
        "C0HELP",
        "G8PSS9T3V",
        "U0333",
        "U2CERLKJA",
        "A0HELPDESK",
        "T1DC2JH3J",
    ] {
        assert_eq!(slack_id(id), id);
    }
    let long = "T".repeat(33);
    for bad in [
        "",
        "T",
        "t0acme",
        "T0-ACME",
        "#general",
        "C0HELP\n",
        "C0\u{1b}[2J",
        "Ｃ0HELP",
        long.as_str(),
    ] {
        assert_eq!(slack_id(bad), INVALID, "{bad:?}");
    }
    for id in ["Ev1", "Ev0APPMENTION1", "Ev0FUNC0001", "Ev9UQ52YNA"] {
        assert_eq!(event_id(id), id);
    }
    for bad in ["Ev", "EV0ABC", "ev0ABC", "Ev0abc", "T0ACME", "Ev0ABC\u{0}"] {
        assert_eq!(event_id(bad), INVALID, "{bad:?}");
    }
    assert_eq!(slack_error_code("channel_not_found"), "channel_not_found");
    assert_eq!(slack_error_code("Some message text"), INVALID);
    assert_eq!(method_name("chat.postMessage"), "chat.postMessage");
    assert_eq!(method_name("hooks.alerts"), "hooks.alerts");
    assert_eq!(method_name(&"a".repeat(65)), INVALID);
    assert_eq!(method_name("chat.post Message"), INVALID);
    // Only Slack's documented methods in Slack's spelling: a caller's own name is not kept.
    assert_eq!(method_name("chat.PostMessage"), INVALID);
    assert_eq!(method_name("my.secretkey0123456789"), INVALID);
    assert_eq!(short_text("/ticket"), "/ticket");
    assert_eq!(short_text("deny_args: icon_url"), "deny_args: icon_url");
    assert_eq!(
        short_text("rate_limits[0] per method 1/min burst 2"),
        "rate_limits[0] per method 1/min burst 2"
    );
    assert_eq!(short_text("a\u{7}b"), INVALID);
    assert_eq!(short_text("a\u{85}b"), INVALID, "C1 controls too");
    assert_eq!(short_text(&"x".repeat(MAX_TEXT + 1)), INVALID);
    assert_eq!(short_text(&"x".repeat(MAX_TEXT)), "x".repeat(MAX_TEXT));
}

/// The no-key call of the finding: a 1 MiB `channel` of control bytes.
fn control_bytes(n: usize) -> String {
    (0..n).map(|i| char::from((i % 32) as u8)).collect()
}

#[test]
fn an_unknown_callers_record_keeps_only_method_reason_rule_status_duration() {
    let huge = control_bytes(1 << 20);
    let record = EgressRecord {
        ts: "2026-12-02T10:00:00.000000Z",
        direction: Direction::Egress,
        bot: None,
        method: Some("chat.postMessage"),
        team_id: Some("T0ACME"),
        channel_id: Some(&huge),
        reason: "unknown_bot",
        status: 200,
        rule: Some("no key"),
        slack_ok: Some(false),
        slack_error: Some("invalid_auth"),
        upstream_status: Some(200),
        duration_us: 17,
        function_execution_id: Some("Fx0EXEC"),
        shadow: true,
        scopes_needed: Some("chat:write"),
        scopes_granted: Some("chat:write"),
    };
    let line = egress_line(&record).unwrap();
    assert!(line.len() < 360, "{} bytes", line.len());
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "ts": "2026-12-02T10:00:00.000000Z", "direction": "egress", "bot": null,
            "method": "chat.postMessage", "team_id": null, "channel_id": null,
            "reason": "unknown_bot", "status": 200, "rule": "no key", "slack_ok": null,
            "slack_error": null, "upstream_status": null, "duration_us": 17,
            "function_execution_id": null, "shadow": false, "scopes_needed": null,
            "scopes_granted": null
        })
    );

    // A method that is no method name, and a rule that names what the caller sent (an
    // argument name may be the caller's key), are not kept.
    let named = slackgate_slack::CallError::Ambiguous {
        name: "sgk_secretkeyofthebot".into(),
    }
    .to_string();
    assert!(named.contains("sgk_secretkeyofthebot"), "the premise");
    let odd = EgressRecord {
        method: Some("chat.postMessage\u{1}"),
        rule: Some(&named),
        ..record
    };
    let v: serde_json::Value = serde_json::from_slice(&egress_line(&odd).unwrap()).unwrap();
    assert_eq!(v["method"], INVALID);
    assert_eq!(v["rule"], INVALID);
    // Every rule a call gets before a bot is known is kept as it is: the front's refusals
    // of a head (by their reason), the listener's unreadable bodies, and the guard's key,
    // path, query and token checks.
    use slackgate_guard::{Reason, Unreadable};
    for fixed in [
        Reason::BadRequest.as_str(),
        Reason::HeadTooLarge.as_str(),
        Reason::HeadTimeout.as_str(),
        Reason::UnsupportedTransferCoding.as_str(),
        Unreadable::BodyTooLarge.rule(),
        Unreadable::BodyFraming.rule(),
        Unreadable::BodyTimeout.rule(),
        Unreadable::HeaderTwice.rule(),
        "no key",
        "key",
        "path",
        "query",
        "Authorization and the token argument differ",
    ] {
        let r = EgressRecord {
            rule: Some(fixed),
            ..record
        };
        let v: serde_json::Value = serde_json::from_slice(&egress_line(&r).unwrap()).unwrap();
        assert_eq!(v["rule"], fixed);
    }
    // A rule nothing gives any more (the front's refusals used to say "request head") is
    // not kept.
    let r = EgressRecord {
        rule: Some("request head"),
        ..record
    };
    let v: serde_json::Value = serde_json::from_slice(&egress_line(&r).unwrap()).unwrap();
    assert_eq!(v["rule"], INVALID);
    let bad_json = slackgate_slack::CallError::BadJson.to_string();
    let r = EgressRecord {
        rule: Some(&bad_json),
        ..record
    };
    let v: serde_json::Value = serde_json::from_slice(&egress_line(&r).unwrap()).unwrap();
    assert_eq!(v["rule"], bad_json.as_str());
}

#[test]
fn a_known_bots_record_keeps_its_fields_checked() {
    let huge = control_bytes(1 << 20);
    let record = EgressRecord {
        ts: "2026-12-02T10:00:00.000000Z",
        direction: Direction::Egress,
        bot: Some("helpdesk"),
        method: Some("chat.postMessage"),
        team_id: Some("T0ACME"),
        channel_id: Some("C0HELP"),
        reason: "allowed",
        status: 200,
        rule: None,
        slack_ok: Some(false),
        slack_error: Some("channel_not_found"),
        upstream_status: Some(200),
        duration_us: 17,
        function_execution_id: None,
        shadow: false,
        scopes_needed: Some("channels:read,groups:read"),
        scopes_granted: Some(""),
    };
    let v: serde_json::Value = serde_json::from_slice(&egress_line(&record).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::to_value(&record).unwrap(),
        "a plain record is unchanged"
    );
    let odd = EgressRecord {
        team_id: Some("t0acme"),
        channel_id: Some(&huge),
        slack_error: Some("Bad things\n"),
        rule: Some(&huge),
        scopes_needed: Some("chat:write,bad scope"),
        scopes_granted: Some(&huge),
        ..record
    };
    let line = egress_line(&odd).unwrap();
    assert!(line.len() < 480, "{} bytes", line.len());
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    for field in [
        "team_id",
        "channel_id",
        "slack_error",
        "rule",
        "scopes_needed",
        "scopes_granted",
    ] {
        assert_eq!(v[field], INVALID, "{field}");
    }
    assert_eq!(v["bot"], "helpdesk");
}

#[test]
fn scope_headers_are_written_whole_or_invalid() {
    let needed = |h: &[u8]| scope_header(h, MAX_SCOPES_NEEDED);
    assert_eq!(
        needed(b" chat:write , ,channels:read"),
        "chat:write,channels:read"
    );
    assert_eq!(needed(b""), "", "Slack lists no scope: none needed");
    assert_eq!(needed(b"chat:write,bad scope"), INVALID);
    assert_eq!(needed(b"chat:write,\xff"), INVALID);
    let long = vec!["a:b"; 200].join(",");
    assert_eq!(needed(long.as_bytes()), INVALID);
    let fits = vec!["a:b"; 128].join(",");
    assert_eq!(fits.len(), MAX_SCOPES_NEEDED - 1);
    assert_eq!(needed(fits.as_bytes()), fits);
    assert_eq!(scope_list(&fits, MAX_SCOPES_NEEDED), fits);
    assert_eq!(scope_list("a:b,,c", MAX_SCOPES_NEEDED), INVALID);
}

#[test]
fn inbound_ids_and_texts_are_checked() {
    let huge = control_bytes(1 << 20);
    let view = AuditView {
        ts: "2026-12-02T10:00:00.000000Z",
        direction: Direction::Inbound,
        route: Some("helpdesk"),
        reason: "allowed",
        status: 200,
        shadow: false,
        client_ip: Some("127.0.0.1"),
        app: Some("helpdesk"),
        secret_id: Some("current"),
        kind: Some("event"),
        api_app_id: Some("A0HELPDESK"),
        enterprise_id: Some("E0ACME"),
        team_id: Some("T0ACME"),
        user_id: Some("U0333"),
        channel_id: Some("C0HELP"),
        event_type: Some("app_mention"),
        command: Some("/ticket"),
        event_id: Some("Ev0APPMENTION1"),
        action_id: Some("ticket_open"),
        retry_num: Some(1),
        rule: Some("allow.teams"),
        upstream: Some("helpdesk"),
        upstream_status: Some(200),
        duration_us: 5,
        lifecycle: false,
        source: None,
    };
    let mut plain = Vec::new();
    view.write_json(&mut plain);
    assert_eq!(inbound_line(&view), plain, "a plain record is unchanged");
    let odd = AuditView {
        api_app_id: Some("a0helpdesk"),
        enterprise_id: Some(&huge),
        team_id: Some("T0ACME\""),
        user_id: Some("U"),
        channel_id: Some("#general"),
        event_type: Some(&huge),
        command: Some("/ticket\r\n"),
        event_id: Some("EV0APPMENTION1"),
        action_id: Some("ticket\u{1b}[31m"),
        ..view
    };
    let line = inbound_line(&odd);
    assert!(line.len() < 600, "{} bytes", line.len());
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    // Every fact the caller wrote (all but `kind`, which the gateway names).
    for field in slackgate_testkit::audit::FACT_KEYS
        .into_iter()
        .filter(|k| *k != "kind")
    {
        assert_eq!(v[field], INVALID, "{field}");
    }
    assert_eq!(v["rule"], "allow.teams");
}

mod lines {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static HUGE_STATIC: LazyLock<String> = LazyLock::new(|| control_bytes(1 << 20));

    /// Any text a caller, Slack or a broken config could put in a field: short and plain,
    /// short and all escapes, id-like, any Unicode, and huge runs of one character.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\\PC{0,40}",
            4 => "[\\x00-\\x1f\"\\\\\\x7f]{0,200}",
            // Around the length bound, every byte escaped: the longest lines.
            3 => "[\"\\\\]{0,300}",
            2 => "[A-Z0-9]{0,40}|Ev[A-Z0-9]{0,34}",
            2 => any::<String>(),
            1 => (any::<char>(), 0usize..1_100_000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
            1 => (0usize..1_100_000).prop_map(control_bytes),
        ]
    }

    fn static_text() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("allowed"),
            Just("unknown_bot"),
            Just("q\"\\\u{1}"),
            Just(HUGE_STATIC.as_str()),
        ]
    }

    fn some(s: &Option<String>) -> Option<&str> {
        s.as_deref()
    }

    fn check(line: &[u8]) -> Result<(), TestCaseError> {
        prop_assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
        prop_assert!(v.is_object());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn no_inbound_line_exceeds_the_bound(
            t in proptest::collection::vec(proptest::option::of(text()), 16),
            ts in text(),
            reason in static_text(),
            kind in proptest::option::of(static_text()),
            numbers in any::<(u16, Option<u32>, Option<u16>, u64, bool, bool)>(),
        ) {
            let view = AuditView {
                ts: &ts,
                direction: Direction::Inbound,
                route: some(&t[0]),
                reason,
                status: numbers.0,
                shadow: numbers.4,
                client_ip: some(&t[1]),
                app: some(&t[2]),
                secret_id: some(&t[3]),
                kind,
                api_app_id: some(&t[4]),
                enterprise_id: some(&t[5]),
                team_id: some(&t[6]),
                user_id: some(&t[7]),
                channel_id: some(&t[8]),
                event_type: some(&t[9]),
                command: some(&t[10]),
                event_id: some(&t[11]),
                action_id: some(&t[14]),
                retry_num: numbers.1,
                rule: some(&t[12]),
                upstream: some(&t[13]),
                upstream_status: numbers.2,
                duration_us: numbers.3,
                lifecycle: numbers.5,
                source: None,
            };
            check(&inbound_line(&view))?;
        }

        #[test]
        fn no_egress_line_exceeds_the_bound(
            t in proptest::collection::vec(proptest::option::of(text()), 7),
            ts in text(),
            reason in static_text(),
            numbers in any::<(u16, Option<bool>, Option<u16>, u64)>(),
        ) {
            let record = EgressRecord {
                ts: &ts,
                direction: Direction::Egress,
                bot: some(&t[0]),
                method: some(&t[1]),
                team_id: some(&t[2]),
                channel_id: some(&t[3]),
                reason,
                status: numbers.0,
                rule: some(&t[4]),
                slack_ok: numbers.1,
                slack_error: some(&t[5]),
                upstream_status: numbers.2,
                duration_us: numbers.3,
                function_execution_id: None,
                shadow: numbers.1.unwrap_or(false),
                scopes_needed: some(&t[6]),
                scopes_granted: some(&t[6]),
            };
            check(&egress_line(&record).unwrap())?;
        }
    }

    #[test]
    fn the_longest_records_stay_under_the_bound() {
        // Every text field at its longest, every byte escaped: the bound's worst case.
        let text = "\"".repeat(MAX_TEXT);
        let t = Some(text.as_str());
        let id = "A".repeat(32);
        let view = AuditView {
            ts: &text,
            direction: Direction::Inbound,
            route: t,
            reason: "unsupported_transfer_coding",
            status: u16::MAX,
            shadow: true,
            client_ip: t,
            app: t,
            secret_id: t,
            kind: Some("block_suggestion"),
            api_app_id: Some(&id),
            enterprise_id: Some(&id),
            team_id: Some(&id),
            user_id: Some(&id),
            channel_id: Some(&id),
            event_type: t,
            command: t,
            event_id: Some("Ev000000000000000000000000000000"),
            action_id: t,
            retry_num: Some(u32::MAX),
            rule: t,
            upstream: t,
            upstream_status: Some(u16::MAX),
            duration_us: u64::MAX,
            lifecycle: true,
            source: None,
        };
        let line = inbound_line(&view);
        assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        assert!(
            line.len() > 2_000,
            "the worst case is near the bound: {}",
            line.len()
        );
    }

    #[test]
    fn the_longest_egress_records_stay_under_the_bound() {
        let text = "\"".repeat(MAX_TEXT);
        let t = Some(text.as_str());
        let id = "A".repeat(32);
        let scopes = |max: usize| {
            let one = "a".repeat(63);
            let mut s = one.clone();
            while s.len() + 1 + one.len() <= max {
                s.push(',');
                s.push_str(&one);
            }
            s
        };
        let (needed, granted) = (scopes(MAX_SCOPES_NEEDED), scopes(MAX_SCOPES_GRANTED));
        assert_eq!(scope_list(&needed, MAX_SCOPES_NEEDED), needed);
        assert_eq!(scope_list(&granted, MAX_SCOPES_GRANTED), granted);
        let record = EgressRecord {
            ts: &text,
            direction: Direction::Egress,
            bot: t,
            method: t,
            team_id: Some(&id),
            channel_id: Some(&id),
            reason: "response_url_invalid",
            status: u16::MAX,
            rule: t,
            slack_ok: Some(false),
            slack_error: Some(&"a".repeat(64)),
            upstream_status: Some(u16::MAX),
            duration_us: u64::MAX,
            function_execution_id: Some("Fx000000000000000000000000000000"),
            shadow: true,
            scopes_needed: Some(&needed),
            scopes_granted: Some(&granted),
        };
        let line = egress_line(&record).unwrap();
        assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        assert!(line.len() > 3_000, "the worst case: {}", line.len());
    }
}

// === The queue's byte bound ===

/// A record whose line is near the longest a record can be.
fn large_record(n: u64) -> AuditRecord {
    let text = "\"".repeat(MAX_TEXT);
    AuditRecord {
        route: Some(text.clone()),
        app: Some(text.clone()),
        secret_id: Some(text.clone()),
        event_type: Some(text.clone()),
        command: Some(text.clone()),
        rule: Some(text.clone()),
        upstream: Some(text),
        ..record(n)
    }
}

#[test]
fn a_stalled_writer_holds_at_most_max_queue_bytes_and_drops_are_counted() {
    let metrics = Metrics::new().unwrap();
    let buf = Arc::new(Mutex::new(Vec::new()));
    let cap = 64 * 1024;
    // Room for far more records than the bytes allow: the byte bound is the one tested.
    let sink = AuditSink::start_bounded(
        AuditTarget::Memory(Arc::clone(&buf)),
        100_000,
        cap,
        metrics.audit_dropped.clone(),
    )
    .unwrap();
    let line_len = inbound_line(&large_record(0).view()).len();
    assert!(line_len > 1_500, "{line_len}");
    let sent = 2_000u64;
    {
        // Holding the buffer blocks the writer on its first record, as a stalled reader
        // of stdout would: every record past the bytes must be dropped, none may wait.
        let _held = buf.lock();
        let started = Instant::now();
        for n in 0..sent {
            sink.record(&large_record(n));
            assert!(
                sink.queued_bytes() <= cap,
                "{} bytes queued",
                sink.queued_bytes()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "recording blocked"
        );
        let fit = (cap / line_len) as u64;
        let dropped = metrics.audit_dropped.get();
        assert!(
            dropped >= sent - fit,
            "dropped {dropped}, at most {fit} fit"
        );
        assert!(dropped < sent, "nothing was queued");
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(&format!("slackgate_audit_dropped_total {dropped}")));
    }
    // Released: every record is either written or counted, none vanished, and the queue
    // is empty again.
    assert!(wait_until(|| {
        buf.lock().len() as u64 + metrics.audit_dropped.get() == sent
    }));
    assert!(wait_until(|| sink.queued_bytes() == 0));
    sink.record(&large_record(sent));
    assert!(wait_until(|| buf.lock().len() as u64
        + metrics.audit_dropped.get()
        == sent + 1));
    assert!(wait_until(|| sink.queued_bytes() == 0));
}

/// The line of an inbound record, as the sink queues it (without its newline).
fn inbound_line(record: &AuditView<'_>) -> Vec<u8> {
    let mut line = Vec::with_capacity(INBOUND_LINE);
    record.bounded().write_json(&mut line);
    line
}

/// The line of an egress record, as the sink queues it (without its newline).
fn egress_line(record: &EgressRecord<'_>) -> Option<Vec<u8>> {
    let mut line = Vec::with_capacity(EGRESS_LINE);
    serde_json::to_writer(&mut line, &record.bounded()).ok()?;
    Some(line)
}
