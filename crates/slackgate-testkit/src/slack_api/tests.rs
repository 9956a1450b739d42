//! Unit tests of the stand-in's pure parts: framing, arguments and tokens, the workspace.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::{base64_decode, basic_credentials, presented_token, Args};
use super::http::{decode_chunked, parse_head, render, split_target, Framing, MAX_HEAD};
use super::workspace::{
    Call, Grant, Limits, Reply, Rotation, RotationSpec, Workspace, BOT_USER_ID,
};

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect()
}

fn workspace() -> Workspace {
    let mut w = Workspace::new(1_700_000_000);
    w.tokens.insert(
        "xoxb-good".into(),
        Grant::new("T0ACME", &["chat:write", "channels:read"]),
    );
    w
}

fn post(w: &mut Workspace, method: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let target = format!("/api/{method}");
    let headers = h(headers);
    w.call(
        Call {
            http_method: "POST",
            target: &target,
            headers: &headers,
            body: body.as_bytes(),
        },
        Instant::now(),
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");
const BEARER: (&str, &str) = ("authorization", "Bearer xoxb-good");

fn error(r: &Reply) -> Option<&str> {
    r.body.get("error").and_then(Value::as_str)
}

// --- framing ---

#[test]
fn head_parses_and_lowercases() {
    let raw = b"POST /api/chat.postMessage?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let head = parse_head(raw).unwrap().unwrap();
    assert_eq!(head.method, "POST");
    assert_eq!(head.target, "/api/chat.postMessage?x=1");
    assert_eq!(head.len, raw.len() - 3);
    assert_eq!(head.headers[1], ("content-length".into(), "3".into()));
    assert_eq!(head.framing(), Ok(Framing::Length(3)));
    assert!(head.keep_alive());
}

#[test]
fn head_partial_and_garbage() {
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost"), Ok(None));
    assert_eq!(parse_head(b""), Ok(None));
    assert!(parse_head(b"\x00\x01 nonsense\r\n\r\n").is_err());
    let huge = vec![b'a'; MAX_HEAD + 10];
    assert!(parse_head(&huge).is_err());
}

#[test]
fn framing_refuses_ambiguity() {
    let head = |extra: &str| {
        let raw = format!("POST / HTTP/1.1\r\n{extra}\r\n");
        parse_head(raw.as_bytes()).unwrap().unwrap()
    };
    assert_eq!(head("").framing(), Ok(Framing::Length(0)));
    assert_eq!(
        head("Transfer-Encoding: chunked\r\n").framing(),
        Ok(Framing::Chunked)
    );
    assert_eq!(
        head("Content-Length: 5\r\nContent-Length: 5\r\n").framing(),
        Ok(Framing::Length(5))
    );
    for bad_head in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ] {
        assert_eq!(
            head(bad_head).framing().map_err(|b| b.status),
            Err(400),
            "{bad_head:?}"
        );
    }
    assert_eq!(
        head("Content-Length: 999999999\r\n")
            .framing()
            .map_err(|b| b.status),
        Err(413)
    );
}

#[test]
fn connection_persistence() {
    let head = |raw: &str| parse_head(raw.as_bytes()).unwrap().unwrap();
    assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
}

#[test]
fn chunked_bodies() {
    let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
    let (body, used) = decode_chunked(wire).unwrap().unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(&wire[used..], b"NEXT");
    for cut in 0..wire.len() - 4 {
        assert_eq!(decode_chunked(&wire[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(decode_chunked(b"zz\r\n").is_err());
    assert!(decode_chunked(b"\r\n").is_err());
    assert!(decode_chunked(b"3\r\nabcX\r\n").is_err());
    assert!(decode_chunked(b"ffffffffffffffffffffffff\r\n").is_err());
    assert_eq!(
        decode_chunked(b"2000000\r\n").map_err(|b| b.status),
        Err(413)
    );
}

#[test]
fn targets() {
    assert_eq!(split_target("/api/a.b?x=1&y"), ("/api/a.b", "x=1&y"));
    assert_eq!(split_target("/api/a.b"), ("/api/a.b", ""));
    assert_eq!(
        split_target("https://slack.com/api/a.b?q"),
        ("/api/a.b", "q")
    );
    assert_eq!(split_target("http://host"), ("/", ""));
}

#[test]
fn render_frames_by_length() {
    let bytes = render(429, &[("retry-after", "30".into())], b"{}", true);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
    assert!(text.contains("content-type: application/json; charset=utf-8\r\n"));
    assert!(text.contains("content-length: 2\r\n"));
    assert!(text.contains("retry-after: 30\r\n"));
    assert!(text.ends_with("connection: close\r\n\r\n{}"));
}

// --- arguments and tokens ---

#[test]
fn args_precedence_and_types() {
    let body = br#"{"channel":"C1","n":3,"blocks":[{"type":"x"}]}"#;
    let a = Args::read("channel=CQ&only=q", &h(&[JSON]), body).unwrap();
    assert_eq!(a.get("channel").as_deref(), Some("C1"));
    assert_eq!(a.get("n").as_deref(), Some("3"));
    assert_eq!(a.get("blocks").as_deref(), Some(r#"[{"type":"x"}]"#));
    assert_eq!(a.get("only").as_deref(), Some("q"));
    assert!(a.warnings.is_empty());

    let a = Args::read("", &h(&[FORM]), b"text=a%20b&channel=C2&channel=C3").unwrap();
    assert_eq!(a.get("text").as_deref(), Some("a b"));
    assert_eq!(a.get("channel").as_deref(), Some("C2"));
}

#[test]
fn body_errors_are_slack_errors() {
    let read = |ct: &[(&str, &str)], body: &[u8]| Args::read("", &h(ct), body).err();
    assert_eq!(read(&[], b"x=1"), Some("missing_post_type"));
    assert_eq!(read(&[JSON], b"{nope"), Some("invalid_json"));
    assert_eq!(read(&[JSON], b"[1]"), Some("json_not_object"));
    assert_eq!(read(&[JSON], b"\xff\xfe"), Some("invalid_json"));
    assert_eq!(
        read(
            &[("content-type", "multipart/form-data; boundary=x")],
            b"--x"
        ),
        Some("invalid_post_type")
    );
    assert_eq!(
        read(
            &[("content-type", "application/json; charset=koi8-r")],
            b"{}"
        ),
        Some("invalid_charset")
    );
    assert_eq!(read(&[], b""), None);
}

#[test]
fn charset_warnings() {
    let a = Args::read("", &h(&[("content-type", "application/json")]), b"{}").unwrap();
    assert_eq!(a.warnings, ["missing_charset"]);
    let ct = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    let a = Args::read("", &h(&[ct]), b"a=1").unwrap();
    assert_eq!(a.warnings, ["superfluous_charset"]);
}

#[test]
fn tokens_slack_reads() {
    let form = Args::read("token=xoxb-q", &h(&[FORM]), b"token=xoxb-form").unwrap();
    assert_eq!(
        presented_token(&h(&[BEARER]), &form).as_deref(),
        Some("xoxb-good")
    );
    assert_eq!(presented_token(&[], &form).as_deref(), Some("xoxb-form"));
    assert_eq!(
        presented_token(&h(&[("authorization", "bearer  xoxb-lower ")]), &form).as_deref(),
        Some("xoxb-lower")
    );
    let query_only = Args::read("token=xoxb-q", &[], b"").unwrap();
    assert_eq!(presented_token(&[], &query_only), None);
    let json = Args::read("", &h(&[JSON]), br#"{"token":"xoxb-json"}"#).unwrap();
    assert_eq!(presented_token(&[], &json), None);
    assert_eq!(
        presented_token(&h(&[("authorization", "Basic abc")]), &query_only),
        None
    );
}

#[test]
fn base64() {
    assert_eq!(base64_decode("aWQ6c2VjcmV0").unwrap(), b"id:secret");
    assert_eq!(base64_decode("YQ==").unwrap(), b"a");
    assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    assert!(base64_decode("a*b").is_none());
    let headers = h(&[("authorization", "Basic aWQ6c2VjcmV0")]);
    assert_eq!(
        basic_credentials(&headers),
        Some(("id".into(), "secret".into()))
    );
}

// --- the workspace ---

#[test]
fn auth_errors() {
    let mut w = workspace();
    w.revoke("xoxb-gone");
    let r = post(&mut w, "auth.test", &[], "");
    assert_eq!((r.status, error(&r)), (200, Some("not_authed")));
    assert!(r.headers.is_empty());
    let r = post(&mut w, "auth.test", &[("authorization", "Bearer nope")], "");
    assert_eq!(error(&r), Some("invalid_auth"));
    assert_eq!(r.token.as_deref(), Some("nope"));
    let r = post(
        &mut w,
        "auth.test",
        &[("authorization", "Bearer xoxb-gone")],
        "",
    );
    assert_eq!(error(&r), Some("token_revoked"));
    let r = post(&mut w, "auth.test", &[JSON], r#"{"token":"xoxb-good"}"#);
    assert_eq!(error(&r), Some("not_authed"));
    let r = post(&mut w, "auth.test", &[FORM], "token=xoxb-good");
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["team_id"], "T0ACME");
    assert_eq!(r.body["user_id"], BOT_USER_ID);
}

#[test]
fn scopes_headers_and_missing_scope() {
    let mut w = workspace();
    let r = post(&mut w, "auth.test", &[BEARER], "");
    assert!(r
        .headers
        .contains(&("x-oauth-scopes", "chat:write,channels:read".into())));
    assert!(r
        .headers
        .contains(&("x-accepted-oauth-scopes", String::new())));
    let r = post(&mut w, "conversations.info", &[BEARER, FORM], "channel=C1");
    assert_eq!(r.body, json!({"ok": true, "channel": {"id": "C1"}}));
    assert!(r.headers.contains(&(
        "x-accepted-oauth-scopes",
        "channels:read,groups:read,im:read,mpim:read".into()
    )));
    let r = post(
        &mut w,
        "reactions.add",
        &[BEARER, FORM],
        "channel=C1&timestamp=1.2&name=x",
    );
    assert_eq!(error(&r), Some("missing_scope"));
    assert_eq!(r.body["needed"], "reactions:write");
    assert_eq!(r.body["provided"], "chat:write,channels:read");
    assert!(r
        .headers
        .contains(&("x-accepted-oauth-scopes", "reactions:write".into())));
}

#[test]
fn unknown_method_and_paths() {
    let mut w = workspace();
    let r = post(&mut w, "admin.everything", &[BEARER], "");
    assert_eq!((r.status, error(&r)), (200, Some("unknown_method")));
    assert_eq!(r.method, "admin.everything");
    let headers = h(&[BEARER]);
    let call = |target: &'static str, m: &'static str| Call {
        http_method: m,
        target,
        headers: &[],
        body: b"",
    };
    assert_eq!(w.call(call("/other", "GET"), Instant::now()).status, 404);
    assert_eq!(
        w.call(call("/api/auth.test", "PUT"), Instant::now()).status,
        405
    );
    let get = Call {
        headers: &headers,
        ..call("/api/conversations.info?channel=C9", "GET")
    };
    assert_eq!(w.call(get, Instant::now()).body["channel"]["id"], "C9");
}

#[test]
fn post_message_shapes_and_increasing_ts() {
    let mut w = workspace();
    let r = post(
        &mut w,
        "chat.postMessage",
        &[BEARER, JSON],
        r#"{"text":"hi"}"#,
    );
    assert_eq!(error(&r), Some("channel_not_found"));
    let r = post(
        &mut w,
        "chat.postMessage",
        &[BEARER, JSON],
        r#"{"channel":"C1"}"#,
    );
    assert_eq!(error(&r), Some("no_text"));
    let a = post(
        &mut w,
        "chat.postMessage",
        &[BEARER, JSON],
        r#"{"channel":"C1","text":"one"}"#,
    );
    let b = post(
        &mut w,
        "chat.postMessage",
        &[BEARER, FORM],
        "channel=C1&text=two",
    );
    assert_eq!(a.body["channel"], "C1");
    assert_eq!(a.body["message"]["text"], "one");
    let (ta, tb) = (
        a.body["ts"].as_str().unwrap(),
        b.body["ts"].as_str().unwrap(),
    );
    assert!(ta < tb, "{ta} < {tb}");
    assert_eq!(ta.parse::<f64>().unwrap(), 1_700_000_000.000001);
    let hist = post(
        &mut w,
        "conversations.history",
        &[("authorization", "Bearer xoxb-hist")],
        "",
    );
    assert_eq!(error(&hist), Some("invalid_auth"));
    w.tokens.insert(
        "xoxb-hist".into(),
        Grant::new("T0ACME", &["channels:history"]),
    );
    let hist = post(
        &mut w,
        "conversations.history",
        &[("authorization", "Bearer xoxb-hist"), FORM],
        "channel=C1",
    );
    assert_eq!(hist.body["messages"][0]["text"], "two");
    assert_eq!(hist.body["messages"][1]["text"], "one");
}

#[test]
fn rate_limit_once_then_window() {
    let mut limits = Limits::default();
    let t0 = Instant::now();
    limits.once("chat.postMessage", 30);
    assert_eq!(limits.check("chat.update", t0), None);
    assert_eq!(limits.check("chat.postMessage", t0), Some(30));
    assert_eq!(limits.check("chat.postMessage", t0), None);
    limits.window("chat.postMessage", t0 + Duration::from_millis(2500));
    assert_eq!(limits.check("chat.postMessage", t0), Some(3));
    assert_eq!(
        limits.check("chat.postMessage", t0 + Duration::from_millis(2400)),
        Some(1)
    );
    assert_eq!(
        limits.check("chat.postMessage", t0 + Duration::from_millis(2500)),
        None
    );
}

#[test]
fn ratelimited_answer() {
    let mut w = workspace();
    w.limits.once("chat.postMessage", 7);
    let body = r#"{"channel":"C1","text":"x"}"#;
    // An unauthenticated call does not use up the limit.
    assert_eq!(
        error(&post(&mut w, "chat.postMessage", &[JSON], body)),
        Some("not_authed")
    );
    let r = post(&mut w, "chat.postMessage", &[BEARER, JSON], body);
    assert_eq!(r.status, 429);
    assert_eq!(r.body, json!({"ok": false, "error": "ratelimited"}));
    assert!(r.headers.contains(&("retry-after", "7".into())));
    assert_eq!(
        post(&mut w, "chat.postMessage", &[BEARER, JSON], body).status,
        200
    );
}

#[test]
fn usergroups_and_revoke() {
    let mut w = workspace();
    w.tokens
        .insert("xoxb-ug".into(), Grant::new("T0ACME", &["usergroups:read"]));
    w.usergroups
        .insert("S0ONCALL".into(), vec!["U1".into(), "U2".into()]);
    let auth = ("authorization", "Bearer xoxb-ug");
    let r = post(
        &mut w,
        "usergroups.users.list",
        &[auth, FORM],
        "usergroup=S0ONCALL",
    );
    assert_eq!(r.body, json!({"ok": true, "users": ["U1", "U2"]}));
    let r = post(
        &mut w,
        "usergroups.users.list",
        &[auth, FORM],
        "usergroup=S0NONE",
    );
    assert_eq!(error(&r), Some("no_such_subteam"));
    let r = post(&mut w, "auth.revoke", &[auth, FORM], "test=true");
    assert_eq!(r.body["revoked"], false);
    let r = post(&mut w, "auth.revoke", &[auth], "");
    assert_eq!(r.body["revoked"], true);
    assert_eq!(
        error(&post(&mut w, "auth.test", &[auth], "")),
        Some("token_revoked")
    );
}

#[test]
fn api_test_echoes_without_auth() {
    let mut w = workspace();
    let r = post(&mut w, "api.test", &[FORM], "foo=bar");
    assert_eq!(r.body, json!({"ok": true, "args": {"foo": "bar"}}));
    let r = post(&mut w, "api.test", &[FORM], "error=my_error");
    assert_eq!(error(&r), Some("my_error"));
    let r = post(
        &mut w,
        "api.test",
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(r.body["warning"], "missing_charset");
    assert_eq!(
        r.body["response_metadata"]["warnings"][0],
        "missing_charset"
    );
}

fn rotating() -> Workspace {
    let mut w = workspace();
    let spec = RotationSpec {
        client_id: "1234.5678".into(),
        client_secret: "shh".into(),
        first_refresh_token: "xoxe-1-first".into(),
        lifetime_secs: 43_200,
    };
    w.rotation = Some(Rotation::new(spec, Grant::new("T0ACME", &["chat:write"])));
    w
}

fn refresh(w: &mut Workspace, extra: &str, now: Instant) -> Reply {
    let headers = h(&[FORM]);
    let body = format!("client_id=1234.5678&client_secret=shh&{extra}");
    w.call(
        Call {
            http_method: "POST",
            target: "/api/oauth.v2.access",
            headers: &headers,
            body: body.as_bytes(),
        },
        now,
    )
}

#[test]
fn refresh_tokens_work_once() {
    let mut w = rotating();
    let t0 = Instant::now();
    let r = refresh(
        &mut w,
        "grant_type=refresh_token&refresh_token=xoxe-1-first",
        t0,
    );
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.body["token_type"], "bot");
    assert_eq!(r.body["expires_in"], 43_200);
    assert_eq!(r.body["team"]["id"], "T0ACME");
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let next = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("xoxe.xoxb-"));
    assert!(next.starts_with("xoxe-1-"));

    let again = refresh(
        &mut w,
        "grant_type=refresh_token&refresh_token=xoxe-1-first",
        t0,
    );
    assert_eq!(error(&again), Some("invalid_refresh_token"));
    let r2 = refresh(
        &mut w,
        &format!("grant_type=refresh_token&refresh_token={next}"),
        t0,
    );
    assert_eq!(r2.body["ok"], true);
    let rot = w.rotation.as_ref().unwrap();
    assert_eq!(
        rot.presented,
        ["xoxe-1-first", "xoxe-1-first", next.as_str()]
    );
    assert_eq!(rot.issued.len(), 2);

    // The minted token works, with the installation's scopes, until it expires.
    let auth = format!("Bearer {access}");
    let headers = h(&[("authorization", &auth)]);
    let call = Call {
        http_method: "POST",
        target: "/api/auth.test",
        headers: &headers,
        body: b"",
    };
    let r = w.call(call, t0 + Duration::from_secs(60));
    assert_eq!(r.body["ok"], true);
    assert!(r.headers.contains(&("x-oauth-scopes", "chat:write".into())));
    let r = w.call(call, t0 + Duration::from_secs(43_200));
    assert_eq!(error(&r), Some("token_expired"));
}

#[test]
fn refresh_client_checks() {
    let mut w = rotating();
    let now = Instant::now();
    let ok_tail = "grant_type=refresh_token&refresh_token=xoxe-1-first";
    let headers = h(&[FORM]);
    let call = |body: &'static str| Call {
        http_method: "POST",
        target: "/api/oauth.v2.access",
        headers: &headers,
        body: body.as_bytes(),
    };
    let r = w.call(call("client_id=nope&client_secret=shh"), now);
    assert_eq!(error(&r), Some("invalid_client_id"));
    let r = w.call(call("client_id=1234.5678&client_secret=bad"), now);
    assert_eq!(error(&r), Some("bad_client_secret"));
    assert_eq!(
        error(&refresh(&mut w, "grant_type=password", now)),
        Some("invalid_grant_type")
    );
    assert_eq!(
        error(&refresh(&mut w, "code=abc", now)),
        Some("invalid_code")
    );
    assert_eq!(
        error(&refresh(
            &mut w,
            "grant_type=refresh_token&refresh_token=xoxe-1-other",
            now
        )),
        Some("invalid_refresh_token")
    );
    // HTTP Basic client authentication, as the method's page prefers.
    let basic = h(&[FORM, ("authorization", "Basic MTIzNC41Njc4OnNoaA==")]);
    let r = w.call(
        Call {
            http_method: "POST",
            target: "/api/oauth.v2.access",
            headers: &basic,
            body: ok_tail.as_bytes(),
        },
        now,
    );
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.token, None);
    // Without rotation configured, nobody is a client.
    let mut plain = workspace();
    assert_eq!(
        error(&refresh(&mut plain, ok_tail, now)),
        Some("invalid_client_id")
    );
}
