//! The audit line, byte for byte, and the sink's queue, drops and reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::metrics::Metrics;

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
        retry_num: Some(3),
        rule: Some("allow.users".into()),
        upstream: Some("bot".into()),
        upstream_status: Some(502),
        duration_us: u64::MAX,
        lifecycle: true,
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
        let _held = buf.lock().unwrap();
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
        buf.lock().unwrap().len() as u64 + metrics.audit_dropped.get() == sent
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
