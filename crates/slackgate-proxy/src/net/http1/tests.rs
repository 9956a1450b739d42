//! The head checks against the rules in the module doc, and the chunked-end scanner.
use super::*;

const MAX: usize = 16 * 1024;

fn ok(raw: &[u8]) -> RequestHead {
    match parse(raw, MAX) {
        Parsed::Complete(h) => h,
        other => panic!("{}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

fn refused(raw: &[u8]) -> Reason {
    match parse(raw, MAX) {
        Parsed::Refused(r) => r.reason,
        other => panic!("{}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn the_common_slack_request_is_simple() {
    let raw = b"POST /slack/events?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nX-Slack-Signature: v0=ab\r\n\r\n{}";
    let h = ok(raw);
    assert!(h.is_simple(raw));
    assert_eq!(&raw[h.path.clone()], b"/slack/events");
    assert_eq!(&raw[h.target.clone()], b"/slack/events?x=1");
    assert_eq!(h.framing, Framing::Length(2));
    assert!(h.keep_alive);
    assert_eq!((h.headers.len(), h.len), (3, raw.len() - 2));
}

#[test]
fn refusals() {
    let cases: &[(&[u8], Reason)] = &[
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"POST /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"POST http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"POST ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"POST http://u@a/x HTTP/1.1\r\nHost: u@a\r\n\r\n", Reason::BadRequest),
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Reason::BadRequest),
        (b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reason::UnsupportedTransferCoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", Reason::UnsupportedTransferCoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a b\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a/b\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\nHost: a\n\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/1.1\r\nHost : a\r\n\r\n", Reason::BadRequest),
        (b"POST / HTTP/2.0\r\nHost: a\r\n\r\n", Reason::BadRequest),
        (b"\x16\x03\x01\x02\x00", Reason::BadRequest),
    ];
    for (raw, want) in cases {
        assert_eq!(refused(raw), *want, "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn what_goes_to_pingora_and_what_stays() {
    let pingora: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
        b"POST http://a/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
    ];
    for raw in pingora {
        assert!(!ok(raw).is_simple(raw), "{}", String::from_utf8_lossy(raw));
    }
    let simple: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        b"\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost:\r\nContent-Length: 1\r\n\r\n",
    ];
    for raw in simple {
        assert!(ok(raw).is_simple(raw), "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn persistence_and_expectations() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
    let h = ok(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive && !h.http11);
    let h = ok(b"POST / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive);
    let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expect_continue, "ignored on HTTP/1.0");
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expect_continue);
}

#[test]
fn absolute_form_is_rewritten_to_origin_form() {
    for (raw, want) in [
        (
            &b"POST http://GW:8080/slack/events?x=1 HTTP/1.1\r\nHost: gw:8080\r\n\r\n"[..],
            &b"POST /slack/events?x=1 HTTP/1.1\r\nHost: gw:8080\r\n\r\n"[..],
        ),
        (
            b"POST https://gw HTTP/1.1\r\nHost: gw\r\n\r\nbody",
            b"POST / HTTP/1.1\r\nHost: gw\r\n\r\nbody",
        ),
        (
            b"POST http://gw?q HTTP/1.1\r\nHost: gw\r\n\r\n",
            b"POST /?q HTTP/1.1\r\nHost: gw\r\n\r\n",
        ),
    ] {
        let h = ok(raw);
        let rewritten = to_origin_form(raw, &h).unwrap();
        assert_eq!(rewritten, want);
        assert!(ok(&rewritten).origin_form.is_none());
    }
}

#[test]
fn limits_refuse_as_soon_as_exceeded() {
    let mut raw = b"POST / HTTP/1.1\r\nX: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 100));
    assert!(matches!(parse(&raw, 200), Parsed::Partial));
    raw.extend(std::iter::repeat_n(b'a', 100));
    assert!(matches!(
        parse(&raw, 200),
        Parsed::Refused(Refusal {
            reason: Reason::HeadTooLarge,
            ..
        })
    ));
    let mut many = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for _ in 0..MAX_HEADERS {
        many.extend_from_slice(b"X: 1\r\n");
    }
    assert_eq!(
        refused(&many),
        Reason::HeadTooLarge,
        "refused before the head ends: the lines a dribbled head may send are bounded"
    );
    many.extend_from_slice(b"\r\n");
    assert_eq!(refused(&many), Reason::HeadTooLarge);
    // A complete head right at the limit is fine; one byte over is refused.
    let exact = b"POST / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(matches!(parse(exact, exact.len()), Parsed::Complete(_)));
    assert!(matches!(
        parse(exact, exact.len() - 1),
        Parsed::Refused(Refusal {
            reason: Reason::HeadTooLarge,
            ..
        })
    ));
    assert!(matches!(
        parse(b"POST / HTTP/1.1\r\nHost", MAX),
        Parsed::Partial
    ));
    assert!(matches!(
        parse(b"POST / HTTP/1.1\nHost", MAX),
        Parsed::Refused(_)
    ));
}

#[test]
fn forwarding_filter() {
    let conn: &[&[u8]] = &[b"x-secret-hop"];
    for name in [
        &b"X-Slackgate-User"[..],
        b"X_Slackgate_User",
        b"x_slackgate-route",
        b"Expect",
        b"Content-Length",
        b"Connection",
        b"Transfer-Encoding",
        b"X-Secret-Hop",
    ] {
        assert!(
            is_not_forwarded(name, conn),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    for name in [
        &b"X-Slack-Signature"[..],
        b"Content-Type",
        b"X-Slackgate",
        b"User-Agent",
    ] {
        assert!(
            !is_not_forwarded(name, conn),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b"Connection", b"close, X-A"),
        (b"connection", b" x-b ,"),
        (b"Host", b"x-c"),
    ];
    assert_eq!(
        connection_tokens(headers.into_iter()),
        vec![&b"close"[..], b"X-A", b"x-b"]
    );
}

#[test]
fn chunked_end_is_found_wherever_the_bytes_split() {
    let body: &[u8] = b"3;ext=\"a\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: 1\r\n\r\n";
    let next: &[u8] = b"POST / HTTP/1.1\r\n";
    let whole = [body, next].concat();
    for split in 0..=whole.len() {
        let mut scan = ChunkedEnd::default();
        let a = scan.feed(&whole[..split]);
        let b = if scan.done() {
            0
        } else {
            scan.feed(&whole[split..])
        };
        assert!(scan.done(), "split at {split}");
        assert_eq!(a + b, body.len(), "split at {split}");
    }
    let mut plain = ChunkedEnd::default();
    assert_eq!(plain.feed(b"0\r\n\r\nGET"), 5);
    assert!(plain.done());
}

#[test]
fn broken_chunked_framing_is_seen() {
    for bad in [
        &b"zz\r\nabc\r\n0\r\n\r\n"[..],
        b"3\r\nabcX\r\n",
        b"3\r\nabc\rX",
        b"-1\r\n",
        b"0\r\nTrailer: 1\n\r\n",
    ] {
        let mut scan = ChunkedEnd::default();
        scan.feed(bad);
        assert!(scan.broken(), "{}", String::from_utf8_lossy(bad));
    }
    let mut long = ChunkedEnd::default();
    long.feed(&[b'1'; MAX_CHUNK_LINE + 1]);
    assert!(long.broken());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn chunked_end_agrees_with_a_whole_body_decoder(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40), 0..6),
        splits in proptest::collection::vec(0usize..200, 0..4),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let len = body.len();
        body.extend_from_slice(b"NEXT");
        let mut scan = ChunkedEnd::default();
        let mut at = 0;
        let mut cuts: Vec<usize> = splits.iter().map(|s| s % (body.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(body.len());
        for cut in cuts {
            if cut > at && !scan.done() {
                at += scan.feed(&body[at..cut]);
            }
        }
        proptest::prop_assert!(scan.done());
        proptest::prop_assert_eq!(at, len);
    }
}

fn check_invariants(raw: &[u8], h: &RequestHead) {
    assert!(h.len <= raw.len() && h.len <= MAX);
    assert!(raw[..h.len].ends_with(b"\r\n\r\n"));
    assert!(!has_bare_lf(&raw[..h.len]));
    let at = |r: &Range<usize>| &raw[r.clone()];
    let named = |n: &[u8]| {
        h.headers
            .iter()
            .filter(|(k, _)| at(k).eq_ignore_ascii_case(n))
            .count()
    };
    assert!(named(b"content-length") <= 1);
    assert!(named(b"host") <= 1);
    if h.http11 {
        assert_eq!(named(b"host"), 1);
    }
    match h.framing {
        Framing::Chunked => assert_eq!(named(b"content-length"), 0),
        Framing::Length(_) => assert_eq!(named(b"transfer-encoding"), 0),
    }
    assert!(!at(&h.target).contains(&b'#'));
    if h.origin_form.is_none() {
        assert!(at(&h.target).starts_with(b"/"));
        assert!(at(&h.target).starts_with(at(&h.path)));
        assert!(!at(&h.path).contains(&b'?'));
    }
    for (k, v) in &h.headers {
        assert!(k.end <= h.len && v.end <= h.len);
        assert!(!at(v).contains(&b'\r') && !at(v).contains(&b'\n'));
    }
}

const VALID: &[u8] = b"POST /slack/events HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Slack-Signature: v0=ab\r\nX-Slack-Request-Timestamp: 1\r\n\r\n{}";

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_heads_hold(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        if let Parsed::Complete(h) = parse(&raw, MAX) {
            check_invariants(&raw, &h);
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic_and_accepted_heads_hold(
        edits in proptest::collection::vec((0..VALID.len(), proptest::prelude::any::<u8>()), 1..6),
        cut in 0..VALID.len() + 1,
    ) {
        let mut raw = VALID.to_vec();
        for (at, b) in edits {
            raw[at] = b;
        }
        raw.truncate(cut);
        if let Parsed::Complete(h) = parse(&raw, MAX) {
            check_invariants(&raw, &h);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// The memchr scan for a bare LF answers as a test of every byte does.
    #[test]
    fn bare_lf_scan_matches_every_byte_test(
        raw in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\r', b'\n', b' ']), 0..80),
    ) {
        let every_byte = raw
            .iter()
            .enumerate()
            .any(|(i, &c)| c == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
        proptest::prop_assert_eq!(has_bare_lf(&raw), every_byte);
    }
}

#[test]
fn hop_by_hop_names_are_found_in_any_case_and_only_they() {
    let names: [&[u8]; 10] = [
        b"content-length",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    for n in names {
        assert!(is_hop_by_hop(n));
        assert!(is_hop_by_hop(&n.to_ascii_uppercase()));
        let mut longer = n.to_vec();
        longer.push(b's');
        assert!(!is_hop_by_hop(&longer));
        assert!(!is_hop_by_hop(&n[1..]));
    }
    for other in [
        &b""[..],
        b"t",
        b"host",
        b"content-type",
        b"x-slack-signature",
        b"tee",
    ] {
        assert!(!is_hop_by_hop(other));
    }
}

#[test]
fn one_host_is_read_and_a_second_is_refused_wherever_it_is() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.headers.len(), 2);
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\nhost: b\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n",
    ] {
        assert_eq!(refused(raw), Reason::BadRequest);
    }
    // HTTP/1.0 may go without; an absolute-form target is checked against the one Host.
    assert!(matches!(
        parse(b"GET / HTTP/1.0\r\n\r\n", MAX),
        Parsed::Complete(_)
    ));
    assert_eq!(
        refused(b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reason::BadRequest
    );
    let h = ok(b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(h.origin_form.is_some());
}
