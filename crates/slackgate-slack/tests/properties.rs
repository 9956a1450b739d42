//! Property tests: signatures round-trip and reject every single-bit change; timestamps outside
//! the window fail in both directions; header and body parsers never panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use slackgate_slack::{is_ssl_check, parse_facts, verify, SignatureError, SigningKey};

const MAX_SKEW: u64 = 300;

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let i = bit % (out.len() * 8);
    out[i / 8] ^= 1 << (i % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 0..512),
        ts in 0i64..4_000_000_000,
        skew in -(MAX_SKEW as i64)..=(MAX_SKEW as i64),
    ) {
        let key = SigningKey::new("k", &secret).unwrap();
        let ts_text = ts.to_string();
        let sig = key.sign(&ts_text, &body);
        let keys = [key];
        let v = verify(&keys, Some(sig.as_bytes()), Some(ts_text.as_bytes()), &body, ts + skew, MAX_SKEW).unwrap();
        prop_assert_eq!(v.key.id(), "k");
        prop_assert_eq!(v.timestamp, ts);
    }

    #[test]
    fn any_bit_flip_in_body_fails(
        body in prop::collection::vec(any::<u8>(), 1..256),
        bit in any::<usize>(),
    ) {
        let key = SigningKey::new("k", b"secret").unwrap();
        let sig = key.sign("1700000000", &body);
        let keys = [key];
        let flipped = flip(&body, bit);
        prop_assert_eq!(
            verify(&keys, Some(sig.as_bytes()), Some(b"1700000000"), &flipped, 1_700_000_000, MAX_SKEW).unwrap_err(),
            SignatureError::BadSignature
        );
    }

    #[test]
    fn any_bit_flip_in_timestamp_fails(
        body in prop::collection::vec(any::<u8>(), 0..128),
        bit in any::<usize>(),
    ) {
        let key = SigningKey::new("k", b"secret").unwrap();
        let ts = b"1700000000";
        let sig = key.sign("1700000000", &body);
        let keys = [key];
        let flipped = flip(ts, bit);
        // Whether the flipped header is malformed, stale or in the window, it never verifies.
        let err = verify(&keys, Some(sig.as_bytes()), Some(&flipped), &body, 1_700_000_000, u64::MAX).unwrap_err();
        prop_assert!(matches!(err, SignatureError::BadSignature | SignatureError::MalformedTimestamp), "{:?}", err);
    }

    #[test]
    fn any_bit_flip_in_signature_fails(
        body in prop::collection::vec(any::<u8>(), 0..128),
        bit in 0usize..256,
    ) {
        let key = SigningKey::new("k", b"secret").unwrap();
        let mac = key.mac(b"1700000000", &body);
        let keys = [key];
        let flipped = format!("v0={}", hex::encode(flip(&mac, bit)));
        prop_assert_eq!(
            verify(&keys, Some(flipped.as_bytes()), Some(b"1700000000"), &body, 1_700_000_000, MAX_SKEW).unwrap_err(),
            SignatureError::BadSignature
        );
    }

    #[test]
    fn any_bit_flip_in_signature_header_fails_unless_only_case_changed(
        body in prop::collection::vec(any::<u8>(), 0..128),
        bit in any::<usize>(),
    ) {
        let key = SigningKey::new("k", b"secret").unwrap();
        let sig = key.sign("1700000000", &body);
        let keys = [key];
        let flipped = flip(sig.as_bytes(), bit);
        let got = verify(&keys, Some(&flipped), Some(b"1700000000"), &body, 1_700_000_000, MAX_SKEW);
        let case_only = flipped[..3] == sig.as_bytes()[..3] && flipped.eq_ignore_ascii_case(sig.as_bytes());
        match got {
            Ok(_) => prop_assert!(case_only),
            Err(err) => {
                prop_assert!(!case_only);
                prop_assert!(matches!(err, SignatureError::BadSignature | SignatureError::MalformedSignature), "{:?}", err);
            }
        }
    }

    #[test]
    fn outside_window_is_stale_both_ways(
        ts in 0i64..4_000_000_000,
        beyond in 1i64..10_000_000,
        future in any::<bool>(),
    ) {
        let key = SigningKey::new("k", b"secret").unwrap();
        let ts_text = ts.to_string();
        let sig = key.sign(&ts_text, b"body");
        let keys = [key];
        let offset = MAX_SKEW as i64 + beyond;
        let now = if future { ts - offset } else { ts + offset };
        prop_assert_eq!(
            verify(&keys, Some(sig.as_bytes()), Some(ts_text.as_bytes()), b"body", now, MAX_SKEW).unwrap_err(),
            SignatureError::StaleTimestamp { skew_secs: now - ts }
        );
    }

    #[test]
    fn verify_never_panics_on_arbitrary_headers(
        sig in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
        ts in prop::option::of(prop::collection::vec(any::<u8>(), 0..24)),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
        skew in any::<u64>(),
    ) {
        let keys = [SigningKey::new("k", b"secret").unwrap()];
        let _ = verify(&keys, sig.as_deref(), ts.as_deref(), &body, now, skew);
    }

    #[test]
    fn parse_facts_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for ct in [None, Some("application/json"), Some("application/x-www-form-urlencoded")] {
            let _ = parse_facts(ct, &body);
            let _ = is_ssl_check(ct, &body);
        }
    }

    #[test]
    fn parse_facts_never_panics_on_json_like_text(body in r#"[{}\[\]":,a-z_0-9 ]{0,200}"#) {
        let _ = parse_facts(Some("application/json"), body.as_bytes());
    }

    #[test]
    fn parse_facts_never_panics_on_slack_shaped_json(
        kind in prop::sample::select(vec!["url_verification", "event_callback", "app_rate_limited", "block_actions", "x"]),
        field in prop::sample::select(vec!["team_id", "enterprise_id", "event", "authorizations", "challenge", "api_app_id", "event_id", "is_enterprise_install"]),
        value in prop::sample::select(vec!["null", "1", "true", "\"s\"", "[]", "{}", "[{}]", "{\"type\":\"m\",\"user\":{},\"channel\":[]}"]),
    ) {
        let body = format!(r#"{{"type":"{kind}","{field}":{value}}}"#);
        let _ = parse_facts(Some("application/json"), body.as_bytes());
    }

    #[test]
    fn parse_facts_never_panics_on_payload_forms(p in r#"[{}\[\]":,a-z_0-9 ]{0,200}"#) {
        let body = form_urlencoded_payload(&p);
        let _ = parse_facts(None, body.as_bytes());
    }
}

fn form_urlencoded_payload(json: &str) -> String {
    let mut out = String::from("payload=");
    for b in json.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
