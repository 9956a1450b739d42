use std::borrow::Cow;

use proptest::prelude::*;

use super::form::form_pair;
use super::json::scan_object;
use super::*;

const FORM: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");
const JSON: Option<&[u8]> = Some(b"application/json");

/// The default `limits.max_call_channels`.
const LIMITS: CallLimits = CallLimits { max_channels: 100 };

/// `read_call` within the default limits.
fn read_call(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<CallArgs, CallError> {
    super::read_call(query, content_type, body, &LIMITS)
}

fn form(body: &str) -> Result<CallArgs, CallError> {
    read_call(None, FORM, body.as_bytes())
}

fn json(body: &str) -> Result<CallArgs, CallError> {
    read_call(None, JSON, body.as_bytes())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn stripped(encoding: CallEncoding, body: &str) -> String {
    String::from_utf8(
        strip_body_token(encoding, body.as_bytes())
            .unwrap()
            .into_owned(),
    )
    .unwrap()
}

// === method_from_path ===

#[test]
fn methods_are_the_segment_after_api() {
    assert_eq!(
        method_from_path("/api/chat.postMessage"),
        Some("chat.postMessage")
    );
    assert_eq!(method_from_path("/api/auth.test"), Some("auth.test"));
    assert_eq!(
        method_from_path("/api/oauth.v2.access"),
        Some("oauth.v2.access")
    );
    assert_eq!(method_from_path("/api/api_test"), Some("api_test"));
    let longest = format!("/api/{}", "a".repeat(100));
    assert_eq!(method_from_path(&longest), Some(&longest[5..]));
}

#[test]
fn odd_paths_name_no_method() {
    for path in [
        "",
        "/",
        "/api",
        "/api/",
        "api/chat.postMessage",
        "/API/chat.postMessage",
        "//api/chat.postMessage",
        "/v1/api/chat.postMessage",
        "/api/chat.postMessage/",
        "/api/chat/postMessage",
        "/api//chat.postMessage",
        "/api/.chat",
        "/api/chat.",
        "/api/chat..postMessage",
        "/api/..",
        "/api/.",
        "/api/chat%2EpostMessage",
        "/api/chat.post%4dessage",
        "/api/chat.postMessage?x=1",
        "/api/chat.postMessage;x",
        "/api/chat-postMessage",
        "/api/chat postMessage",
        "/api/chat.postMessage\0",
        "/api/chät.postMessage",
        "/api/chat.postMessage#x",
    ] {
        assert_eq!(method_from_path(path), None, "{path:?}");
    }
    let too_long = format!("/api/{}", "a".repeat(101));
    assert_eq!(method_from_path(&too_long), None);
}

// === is_privileged_method ===

#[test]
fn access_changing_methods_are_privileged() {
    for method in [
        "admin.users.list",
        "admin.apps.approve",
        "admin",
        "auth.revoke",
        "apps.uninstall",
        "apps.manifest.create",
        "apps.manifest.update",
        "apps.manifest",
        "oauth.access",
        "oauth.v2.access",
        "oauth.v2.exchange",
        "oauth",
        "apps.connections.open",
        "files.sharedPublicURL",
        "users.admin.invite",
        "users.admin.setInactive",
        "apps.permissions.request",
        "apps.permissions.users.request",
        "openid.connect.token",
        "tooling.tokens.rotate",
        "migration.exchange",
    ] {
        assert!(is_privileged_method(method), "{method}");
    }
}

#[test]
fn privilege_ignores_case() {
    for method in [
        "Admin.users.list",
        "ADMIN.USERS.LIST",
        "Auth.Revoke",
        "apps.Uninstall",
        "APPS.MANIFEST.create",
        "OAuth.V2.Access",
        "apps.Connections.Open",
        "files.sharedpublicurl",
        "Users.Admin.invite",
    ] {
        assert!(is_privileged_method(method), "{method}");
    }
}

#[test]
fn ordinary_methods_are_not_privileged() {
    for method in [
        "chat.postMessage",
        "chat.update",
        "reactions.add",
        "conversations.info",
        "auth.test",
        "apps.connections",
        "apps.manifests.create",
        "adminx.users",
        "oauthv2.access",
        "users.list",
        "users.adminx",
        "files.sharedPublicURLs",
        "files.revokePublicURL",
        "auth.revoked",
        "apps.uninstalled",
        "",
        "a",
    ] {
        assert!(!is_privileged_method(method), "{method}");
    }
}

// === CallEncoding ===

#[test]
fn encodings_come_from_the_content_type() {
    let detect = |ct: Option<&str>| CallEncoding::detect(ct.map(str::as_bytes), b"x");
    assert_eq!(detect(None), Ok(CallEncoding::Form));
    for ct in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-Urlencoded",
        " application/x-www-form-urlencoded ;charset=UTF-8",
    ] {
        assert_eq!(detect(Some(ct)), Ok(CallEncoding::Form), "{ct}");
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json;charset=iso-8859-1",
    ] {
        assert_eq!(detect(Some(ct)), Ok(CallEncoding::Json), "{ct}");
    }
    for ct in [
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/jsonx",
        "application/json+x",
        "application/x-json",
        "",
        ";",
        "application/octet-stream",
    ] {
        assert_eq!(
            detect(Some(ct)),
            Err(CallError::UnsupportedEncoding),
            "{ct}"
        );
    }
    for ct in [
        &b"application/\xffjson"[..],
        b"application/json; charset=\xff",
    ] {
        assert_eq!(
            CallEncoding::detect(Some(ct), b"x"),
            Err(CallError::UnsupportedEncoding)
        );
    }
}

#[test]
fn empty_bodies_have_no_encoding_and_only_the_query_counts() {
    for ct in [
        None,
        FORM,
        JSON,
        Some(&b"multipart/form-data"[..]),
        Some(&b""[..]),
    ] {
        let args = read_call(Some(b"channel=C0HELP"), ct, b"").unwrap();
        assert_eq!(args.encoding, CallEncoding::None);
        assert_eq!(args.channels, strings(&["C0HELP"]));
        assert_eq!(
            strip_body_token(CallEncoding::None, b""),
            Ok(Cow::Borrowed(&b""[..]))
        );
    }
    let args = read_call(None, None, b"").unwrap();
    assert_eq!(args, CallArgs::new(CallEncoding::None));
}

#[test]
fn multipart_bodies_are_refused() {
    let body =
        b"--x\r\nContent-Disposition: form-data; name=\"channel\"\r\n\r\nC0HELP\r\n--x--\r\n";
    assert_eq!(
        read_call(None, Some(b"multipart/form-data; boundary=x"), body),
        Err(CallError::UnsupportedEncoding)
    );
}

// === SDK shapes ===

#[test]
fn python_sdk_json_post_message() {
    let args = read_call(
        None,
        Some(b"application/json;charset=utf-8"),
        br#"{"channel":"C0HELP","text":"hi"}"#,
    )
    .unwrap();
    assert_eq!(
        args,
        CallArgs {
            token_in_query: false,
            body_token: None,
            channels: strings(&["C0HELP"]),
            by_argument: vec![("channel", "C0HELP".to_owned())],
            team_id: None,
            names: strings(&["channel", "text"]),
            encoding: CallEncoding::Json,
        }
    );
}

#[test]
fn node_sdk_form_post_message() {
    let body = "channel=C0HELP&text=hi&blocks=%5B%7B%22type%22%3A%22section%22%2C%22text%22%3A%7B%22type%22%3A%22mrkdwn%22%2C%22text%22%3A%22hi%22%7D%7D%5D&unfurl_links=false";
    let args = form(body).unwrap();
    assert_eq!(args.channels, strings(&["C0HELP"]));
    assert_eq!(
        args.names,
        strings(&["channel", "text", "blocks", "unfurl_links"])
    );
    assert_eq!(args.encoding, CallEncoding::Form);
    assert_eq!(args.body_token, None);
    assert_eq!(
        strip_body_token(CallEncoding::Form, body.as_bytes()),
        Ok(Cow::Borrowed(body.as_bytes()))
    );
}

#[test]
fn legacy_form_token_is_read_and_stripped() {
    let body = "token=xoxb-1-2-abc&channel=C0HELP&text=hi+there";
    let args = read_call(None, None, body.as_bytes()).unwrap();
    assert_eq!(args.body_token.as_deref(), Some("xoxb-1-2-abc"));
    assert!(!args.token_in_query);
    assert_eq!(args.names, strings(&["token", "channel", "text"]));
    assert_eq!(
        stripped(CallEncoding::Form, body),
        "channel=C0HELP&text=hi+there"
    );
    assert_eq!(
        stripped(CallEncoding::Form, "channel=C0HELP&token=xoxb-1&text=hi"),
        "channel=C0HELP&text=hi"
    );
    assert_eq!(
        stripped(CallEncoding::Form, "channel=C0HELP&token=xoxb-1"),
        "channel=C0HELP"
    );
    assert_eq!(stripped(CallEncoding::Form, "token=xoxb-1"), "");
    assert_eq!(stripped(CallEncoding::Form, "tok%65n=xoxb-1&a=1"), "a=1");
    assert_eq!(stripped(CallEncoding::Form, "token&a=1"), "a=1");
    assert_eq!(
        stripped(CallEncoding::Form, "a=1&&token=x&&b=2&"),
        "a=1&&&b=2&"
    );
    assert_eq!(stripped(CallEncoding::Form, "token=x&a=1&token=x"), "a=1");
    assert_eq!(
        stripped(CallEncoding::Form, "tokens=x&a_token=1"),
        "tokens=x&a_token=1"
    );
}

#[test]
fn json_token_is_read_and_stripped() {
    let body = r#"{"token":"xoxb-1","channel":"C0HELP","text":"hi"}"#;
    let args = json(body).unwrap();
    assert_eq!(args.body_token.as_deref(), Some("xoxb-1"));
    assert_eq!(
        stripped(CallEncoding::Json, body),
        r#"{"channel":"C0HELP","text":"hi"}"#
    );
    assert_eq!(
        stripped(
            CallEncoding::Json,
            r#"{"channel":"C0HELP","token":"xoxb-1"}"#
        ),
        r#"{"channel":"C0HELP"}"#
    );
    assert_eq!(stripped(CallEncoding::Json, r#"{"token":"xoxb-1"}"#), "{}");
    assert_eq!(
        stripped(CallEncoding::Json, " { \"a\" : 1 , \"token\" : \"t\" } "),
        " { \"a\" : 1   } "
    );
    assert_eq!(
        stripped(CallEncoding::Json, "{\"token\" : \"t\" ,\n \"a\":1}"),
        "{ \n \"a\":1}"
    );
    assert_eq!(
        stripped(
            CallEncoding::Json,
            r#"{"a":1,"token":"t","b":2,"token":"t"}"#
        ),
        r#"{"a":1,"b":2}"#
    );
    assert_eq!(
        stripped(
            CallEncoding::Json,
            r#"{"token":"t","token":"t","a":[1,{"token":"x"}]}"#
        ),
        r#"{"a":[1,{"token":"x"}]}"#
    );
    assert_eq!(
        stripped(
            CallEncoding::Json,
            r#"{"a":1,"token":"t","tok\u0065n":"t"}"#
        ),
        r#"{"a":1}"#
    );
    let plain = r#"{"channel":"C0HELP","blocks":[{"token":"nested"}]}"#;
    assert_eq!(
        strip_body_token(CallEncoding::Json, plain.as_bytes()),
        Ok(Cow::Borrowed(plain.as_bytes()))
    );
}

#[test]
fn bearer_only_calls_have_no_body_token() {
    let args = json(r#"{"channel":"C0HELP","text":"hi"}"#).unwrap();
    assert_eq!(args.body_token, None);
    assert!(!args.token_in_query);
}

// === Query ===

#[test]
fn a_token_in_the_query_is_flagged() {
    let args = read_call(Some(b"token=xoxb-1"), None, b"channel=C1").unwrap();
    assert!(args.token_in_query);
    assert_eq!(args.body_token, None);
    let args = read_call(Some(b"tok%65n=xoxb-1"), JSON, b"{}").unwrap();
    assert!(args.token_in_query);
    let args = read_call(Some(b"token="), None, b"").unwrap();
    assert!(args.token_in_query);
    let args = read_call(Some(b"token"), None, b"").unwrap();
    assert!(args.token_in_query);
    let args = read_call(Some(b"tokens=1&x_token=2"), None, b"").unwrap();
    assert!(!args.token_in_query);
    // The same token in query and body: both are seen.
    let args = read_call(Some(b"token=t"), None, b"token=t").unwrap();
    assert!(args.token_in_query);
    assert_eq!(args.body_token.as_deref(), Some("t"));
}

#[test]
fn query_and_body_are_read_together() {
    let args = read_call(
        Some(b"channel=C1&team_id=T1"),
        JSON,
        br#"{"channels":"C2, C1 ,,C3","text":"x"}"#,
    )
    .unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2", "C3"]));
    assert_eq!(args.team_id.as_deref(), Some("T1"));
    assert_eq!(
        args.names,
        strings(&["channel", "team_id", "channels", "text"])
    );

    assert_eq!(
        read_call(Some(b"channel=C1"), JSON, br#"{"channel":"C2"}"#),
        Err(CallError::Ambiguous {
            name: "channel".into()
        })
    );
    assert_eq!(
        read_call(Some(b"channel=C1"), None, b"channel=C2"),
        Err(CallError::Ambiguous {
            name: "channel".into()
        })
    );
    assert!(read_call(Some(b"channel=C1"), JSON, br#"{"channel":"C1"}"#).is_ok());
    assert!(read_call(Some(b"channel=C1"), JSON, br#"{"channel":"\u00431"}"#).is_ok());
    // A query value equals only a JSON string of the same text.
    assert_eq!(
        read_call(Some(b"limit=5"), JSON, br#"{"limit":5}"#),
        Err(CallError::Ambiguous {
            name: "limit".into()
        })
    );
    assert!(read_call(Some(b"limit=5"), JSON, br#"{"limit":"5"}"#).is_ok());
    assert_eq!(
        read_call(Some(b"token=a"), None, b"token=b"),
        Err(CallError::Ambiguous {
            name: "token".into()
        })
    );
}

// === Channels, team, names ===

#[test]
fn channels_come_from_three_arguments() {
    let args = form("channel=C1&channel_id=C2&channels=C3,C4").unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2", "C3", "C4"]));
    let args = form("channels=+C1+,%20C2,,C1,%2CC5").unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2", "C5"]));
    let args = form("channel=C1&channels=C1,C2&channel_id=C2").unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2"]));
    // channel and channel_id are taken as given.
    let args = form("channel=+C1").unwrap();
    assert_eq!(args.channels, strings(&[" C1"]));
    let args = form("channel=").unwrap();
    assert_eq!(args.channels, strings(&[""]));
    let args = form("channels=,,").unwrap();
    assert!(args.channels.is_empty());
    let args = json(r#"{"channels":["C1"," C2","C3,C4",""],"channel_id":"C9"}"#).unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2", "C3", "C4", "C9"]));
    let args = json(r#"{"channels":[]}"#).unwrap();
    assert!(args.channels.is_empty());
}

#[test]
fn channel_arguments_must_be_strings() {
    for (body, name) in [
        (r#"{"channel":1}"#, "channel"),
        (r#"{"channel":null}"#, "channel"),
        (r#"{"channel":["C1"]}"#, "channel"),
        (r#"{"channel":{"id":"C1"}}"#, "channel"),
        (r#"{"channel_id":true}"#, "channel_id"),
        (r#"{"channels":{"a":"C1"}}"#, "channels"),
        (r#"{"channels":["C1",2]}"#, "channels"),
        (r#"{"channels":[["C1"]]}"#, "channels"),
        (r#"{"channels":null}"#, "channels"),
        (r#"{"channels":3}"#, "channels"),
    ] {
        assert_eq!(
            json(body),
            Err(CallError::ChannelNotString { name }),
            "{body}"
        );
    }
    assert_eq!(
        json(r#"{"team_id":7}"#),
        Err(CallError::NotAString { name: "team_id" })
    );
    assert_eq!(
        json(r#"{"token":null}"#),
        Err(CallError::NotAString { name: "token" })
    );
}

#[test]
fn escaped_keys_and_values_are_decoded() {
    let args = json(r#"{"chan\u006eel":"C\u0030HELP","team\u005fid":"T\/1","tok\u0065n":"x\"y"}"#)
        .unwrap();
    assert_eq!(args.channels, strings(&["C0HELP"]));
    assert_eq!(args.team_id.as_deref(), Some("T/1"));
    assert_eq!(args.body_token.as_deref(), Some("x\"y"));
    assert_eq!(args.names, strings(&["channel", "team_id", "token"]));
    let args = json(r#"{"text":"\ud83d\ude00 \b\f\n\r\t\\","channel":"\u00e9"}"#).unwrap();
    assert_eq!(args.channels, strings(&["é"]));
    let args = form("chan%6Eel=C%30HELP&team%5Fid=T1").unwrap();
    assert_eq!(args.channels, strings(&["C0HELP"]));
    assert_eq!(args.team_id.as_deref(), Some("T1"));
}

#[test]
fn names_are_listed_once_in_order() {
    let args = form("b=1&a=2&b=1&=3&c").unwrap();
    assert_eq!(args.names, strings(&["b", "a", "", "c"]));
    let args = read_call(Some(b"x=1"), JSON, br#"{"y":1,"x":"1","y":1}"#).unwrap();
    assert_eq!(args.names, strings(&["x", "y"]));
}

#[test]
fn team_id_is_read() {
    assert_eq!(
        form("team_id=T0ACME").unwrap().team_id.as_deref(),
        Some("T0ACME")
    );
    assert_eq!(
        json(r#"{"team_id":"T0ACME"}"#).unwrap().team_id.as_deref(),
        Some("T0ACME")
    );
    assert_eq!(form("channel=C1").unwrap().team_id, None);
}

// === Channel-naming arguments, the cap, the channel acted on ===

fn within(max_channels: usize, body: &str) -> Result<CallArgs, CallError> {
    super::read_call(None, FORM, body.as_bytes(), &CallLimits { max_channels })
}

fn ids(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("C{i}")).collect::<Vec<_>>().join(",")
}

#[test]
fn every_channel_naming_argument_counts() {
    let args = form("channel_ids=C1,C2&context_channel_id=C3&channel=C4").unwrap();
    assert_eq!(args.channels, strings(&["C1", "C2", "C3", "C4"]));
    assert_eq!(
        args.by_argument,
        vec![
            ("channel_ids", "C1".to_owned()),
            ("context_channel_id", "C3".to_owned()),
            ("channel", "C4".to_owned()),
        ]
    );
    let args = json(r#"{"channel_ids":["C0OTHER"," C1,C2"],"channel_id":"C9"}"#).unwrap();
    assert_eq!(args.channels, strings(&["C0OTHER", "C1", "C2", "C9"]));
    for (body, name) in [
        (r#"{"channel_ids":{"a":"C1"}}"#, "channel_ids"),
        (r#"{"channel_ids":["C1",2]}"#, "channel_ids"),
        (r#"{"context_channel_id":["C1"]}"#, "context_channel_id"),
    ] {
        assert_eq!(
            json(body),
            Err(CallError::ChannelNotString { name }),
            "{body}"
        );
    }
    // Slack's form parser would file these under a channel-naming name.
    assert_eq!(
        form("channel_ids%5B%5D=C1"),
        Err(CallError::AliasedName {
            name: "channel_ids"
        })
    );
    assert_eq!(
        form("context.channel_id=C1"),
        Err(CallError::AliasedName {
            name: "context_channel_id"
        })
    );
}

#[test]
fn the_cap_counts_distinct_channels_of_every_argument() {
    let at_cap = format!("channels={}", ids(0..100));
    assert_eq!(within(100, &at_cap).unwrap().channels.len(), 100);
    // Repeats of a channel, in one list or across arguments, are one channel.
    let repeated = format!(
        "channels={}&channel_ids={}&channel=C7",
        ids(0..100),
        ids(0..100)
    );
    assert_eq!(within(100, &repeated).unwrap().channels.len(), 100);
    let over = CallError::TooManyChannels { max: 100 };
    assert_eq!(
        within(100, &format!("channels={}", ids(0..101))),
        Err(over.clone())
    );
    let spread = format!("channel=C100&channels={}", ids(0..100));
    assert_eq!(within(100, &spread), Err(over.clone()));
    let spread = format!("channel_ids={}&channels={}", ids(0..60), ids(50..101));
    assert_eq!(within(100, &spread), Err(over.clone()));
    let array: Vec<String> = (0..101).map(|i| format!("\"C{i}\"")).collect();
    let body = format!(r#"{{"channels":[{}]}}"#, array.join(","));
    assert_eq!(
        super::read_call(None, JSON, body.as_bytes(), &LIMITS),
        Err(over.clone())
    );
    assert_eq!(
        within(0, "channel=C1"),
        Err(CallError::TooManyChannels { max: 0 })
    );
    assert!(within(0, "text=hi").is_ok());
    // Reading stops at the cap: the broken argument after it is never decoded.
    let stops = format!("channels={}&text=%FF", ids(0..101));
    assert_eq!(within(100, &stops), Err(over.clone()));
    // The error text names the setting, never a channel.
    let text = over.to_string();
    assert!(
        text.contains("limits.max_call_channels") && !text.contains("C1"),
        "{text}"
    );
}

#[test]
fn the_channel_acted_on_is_the_methods_own_argument() {
    let args = form("channel_id=C0HELP&channel=C0OPS").unwrap();
    assert_eq!(args.acted_on("chat.postMessage"), Some("C0OPS"));
    assert_eq!(args.acted_on("bookmarks.add"), Some("C0HELP"));
    // A method the table ties to no conversation: the first channel named.
    assert_eq!(args.acted_on("auth.test"), Some("C0HELP"));
    assert_eq!(args.acted_on("someone.elses"), Some("C0HELP"));
    let args = json(r#"{"channel_ids":["C0OTHER","C0HELP"],"canvas_id":"F1"}"#).unwrap();
    assert_eq!(args.acted_on("canvases.access.set"), Some("C0OTHER"));
    let upload = form("files=%5B%5D&channels=C2,C3").unwrap();
    assert_eq!(upload.acted_on("files.completeUploadExternal"), Some("C2"));
    let upload = form("channels=C2&channel_id=C1").unwrap();
    assert_eq!(upload.acted_on("files.completeUploadExternal"), Some("C1"));
    // An unfurl by unfurl_id names no conversation.
    let unfurl = form("unfurl_id=U1&source=composer&unfurls=%7B%7D").unwrap();
    assert_eq!(unfurl.acted_on("chat.unfurl"), None);
    assert_eq!(unfurl.acted_on("auth.test"), None);
    // A post naming its conversation only by an argument Slack does not read there.
    let stray = form("channel_id=C0HELP&text=hi").unwrap();
    assert_eq!(stray.acted_on("chat.postMessage"), None);
}

/// Calls that name `n` channels, in one of the shapes a hostile caller might pick: a form
/// or JSON list, with or without repeats, or one large JSON value repeated many times in
/// small spellings (each repeat compared with the first).
fn hostile_call(shape: u8, argument: &str, n: usize) -> (Option<&'static [u8]>, Vec<u8>) {
    let items = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    match shape % 5 {
        0 => (
            FORM,
            format!("{argument}={}", items(&|i| format!("C{i}")).join(",")).into_bytes(),
        ),
        1 => (
            FORM,
            format!(
                "{argument}={}",
                items(&|i| format!("+C{}+", i / 2)).join("%2C")
            )
            .into_bytes(),
        ),
        2 => {
            let quoted = items(&|i| format!("\"C{i}\""));
            (
                JSON,
                format!(r#"{{"{argument}":[{}]}}"#, quoted.join(",")).into_bytes(),
            )
        }
        3 => (
            JSON,
            format!(
                r#"{{"{argument}":"{}"}}"#,
                items(&|i| format!("C{}", i % 7)).join(" , ")
            )
            .into_bytes(),
        ),
        _ => {
            // A first value padded to the body's size, then n small repeats of it.
            let mut body = format!(r#"{{"x":[1{}]"#, " ".repeat(8 * n));
            for _ in 0..n {
                body.push_str(r#","x":[1]"#);
            }
            body.push('}');
            (JSON, body.into_bytes())
        }
    }
}

/// The fastest of seven runs of `read_call` on each of two bodies, in seconds. The runs
/// alternate, so that a busy moment of a shared machine slows both alike.
fn fastest_reads(content_type: Option<&[u8]>, bodies: [&[u8]; 2]) -> [f64; 2] {
    let limits = CallLimits {
        max_channels: usize::MAX,
    };
    let mut fastest = [f64::INFINITY; 2];
    for _ in 0..7 {
        for (body, best) in bodies.iter().zip(fastest.iter_mut()) {
            let started = std::time::Instant::now();
            let read = super::read_call(None, content_type, body, &limits);
            *best = best.min(started.elapsed().as_secs_f64());
            assert!(read.is_ok(), "{read:?}");
        }
    }
    fastest
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Reading is linear: eight times the channels take about eight times as long. Up to
    /// 32x passes, for a shared machine's noise; the quadratic reader took over 64x. The
    /// measurement is taken again (up to three times) before it fails: a busy moment of a
    /// shared machine can slow one series of runs, a quadratic reader is slow in all three.
    #[test]
    fn reading_channels_is_linear(
        shape in 0u8..5,
        argument in prop::sample::select(vec!["channels", "channel_ids"]),
    ) {
        let n = 4_000;
        let (ct, small) = hostile_call(shape, argument, n);
        let (_, large) = hostile_call(shape, argument, 8 * n);
        let mut ratios = Vec::new();
        for _ in 0..3 {
            let [t_small, t_large] = fastest_reads(ct, [&small, &large]);
            ratios.push(t_large / t_small.max(1e-6));
            if t_large <= 32.0 * t_small.max(1e-6) {
                break;
            }
        }
        prop_assert!(
            ratios.iter().any(|r| *r <= 32.0),
            "shape {shape}: {} items against {n} took {ratios:?} times as long", 8 * n
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Channels, the arguments naming them and the cap, as a reader built on serde_json's
    /// members (repeats kept, in order) finds them in a JSON body.
    #[test]
    fn json_channels_follow_serde_json(body in json_text(), max_channels in 0usize..8) {
        let limits = CallLimits { max_channels };
        let ours = super::read_call(None, JSON, body.as_bytes(), &limits);
        let reference = reference_json_channels(body.as_bytes(), max_channels);
        match (&ours, &reference) {
            (Ok(args), Some((channels, by_argument))) => {
                prop_assert_eq!(&args.channels, channels);
                prop_assert_eq!(&args.by_argument, by_argument);
            }
            (Err(_), None) => {}
            _ => prop_assert!(false, "{body}: read_call {ours:?}, reference {reference:?}"),
        }
    }
}

/// The channels and first channel per argument of a JSON call, read with serde_json alone;
/// `None` for a call `read_call` must refuse.
#[allow(clippy::type_complexity)]
fn reference_json_channels(
    body: &[u8],
    max_channels: usize,
) -> Option<(Vec<String>, Vec<(&'static str, String)>)> {
    let members = serde_json::from_slice::<Members>(body).ok()?.0;
    let mut first: Vec<(&str, &serde_json::Value)> = Vec::new();
    let mut channels: Vec<String> = Vec::new();
    let mut by_argument: Vec<(&'static str, String)> = Vec::new();
    for (name, value) in &members {
        match first.iter().find(|(n, _)| n == name) {
            Some((_, seen)) if *seen != value => return None,
            Some(_) => {}
            None => first.push((name, value)),
        }
        if (name == "token" || name == "team_id") && !value.is_string() {
            return None;
        }
        let Some(&argument) = crate::CHANNEL_ARGUMENTS.iter().find(|a| *a == name) else {
            continue;
        };
        let listed: Vec<&str> = match (value, argument) {
            (serde_json::Value::String(s), "channels" | "channel_ids") => s
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect(),
            (serde_json::Value::Array(items), "channels" | "channel_ids") => {
                let mut all = Vec::new();
                for item in items {
                    all.extend(
                        item.as_str()?
                            .split(',')
                            .map(str::trim)
                            .filter(|c| !c.is_empty()),
                    );
                }
                all
            }
            (serde_json::Value::String(s), _) => vec![s.as_str()],
            _ => return None,
        };
        for channel in listed {
            if !channels.iter().any(|c| c == channel) {
                if channels.len() == max_channels {
                    return None;
                }
                channels.push(channel.to_owned());
            }
            if !by_argument.iter().any(|(a, _)| *a == argument) {
                by_argument.push((argument, channel.to_owned()));
            }
        }
    }
    Some((channels, by_argument))
}

/// A JSON object's members in order, repeats included, as serde_json reads them.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

// === Ambiguity ===

#[test]
fn repeats_with_different_values_are_ambiguous() {
    for body in [
        "channel=C1&channel=C2",
        "text=a&text=b",
        "username=a&username=",
        "username=a&username",
        "token=a&token=b",
        "team_id=T1&team_id=T2",
        "channels=C1&channels=C1,C2",
        "x=a+b&x=a%2Bb",
    ] {
        assert!(
            matches!(form(body), Err(CallError::Ambiguous { .. })),
            "{body}"
        );
    }
    for body in [
        r#"{"channel":"C1","channel":"C2"}"#,
        r#"{"text":"a","text":"b"}"#,
        r#"{"n":1,"n":1.0}"#,
        r#"{"n":1,"n":"1"}"#,
        r#"{"o":{"a":1},"o":{"a":2}}"#,
        r#"{"c\u0068annel":"C1","channel":"C2"}"#,
    ] {
        assert!(
            matches!(json(body), Err(CallError::Ambiguous { .. })),
            "{body}"
        );
    }
}

#[test]
fn repeats_with_the_same_value_are_fine() {
    for body in [
        "channel=C1&channel=C1",
        "text=a+b&text=a%20b",
        "x&x=",
        "token=t&token=t",
    ] {
        assert!(form(body).is_ok(), "{body}");
    }
    for body in [
        r#"{"channel":"C1","channel":"C1"}"#,
        r#"{"channel":"C1","channel":"\u00431"}"#,
        r#"{"n":1.0,"n":1.00}"#,
        r#"{"o":{"a":1,"b":2},"o":{ "b":2, "a":1 }}"#,
        r#"{"a":[1,2],"a":[1, 2]}"#,
    ] {
        assert!(json(body).is_ok(), "{body}");
    }
}

#[test]
fn ambiguity_names_only_plain_names() {
    let err = form("channel=C1&channel=C2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the argument `channel` is given more than once with different values"
    );
    let err = form("xoxb-123=a&xoxb-123=b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the argument (name not shown) is given more than once with different values"
    );
}

#[test]
fn error_texts_never_carry_values() {
    let secret = "xoxbsecretvalue";
    let calls: Vec<(Option<&[u8]>, String)> = vec![
        (FORM, format!("channel={secret}&channel={secret}2")),
        (JSON, format!(r#"{{"channel":"{secret}","channel":"x"}}"#)),
        (JSON, format!(r#"{{"token":"{secret}""#)),
        (JSON, format!(r#"{{"team_id":["{secret}"]}}"#)),
        (FORM, format!("token={secret}%ff")),
        (Some(b"text/plain"), secret.to_owned()),
        (JSON, format!(r#"["{secret}"]"#)),
    ];
    for (ct, body) in calls {
        let err = read_call(None, ct, body.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
}

// === PHP-style names ===

#[test]
fn names_slack_may_read_as_watched_ones_are_refused() {
    for (body, name) in [
        ("channel[]=C1", "channel"),
        ("channel[0]=C1", "channel"),
        ("channels[]=C1", "channels"),
        ("channel[id=C1", "channel"),
        ("team[id=T1", "team_id"),
        ("channel.id=C1", "channel_id"),
        ("channel+id=C1", "channel_id"),
        ("team.id=T2", "team_id"),
        ("+token=x", "token"),
        ("token%00x=1", "token"),
        ("token[]=x", "token"),
    ] {
        assert_eq!(form(body), Err(CallError::AliasedName { name }), "{body}");
        let query = read_call(Some(body.as_bytes()), None, b"");
        assert_eq!(query, Err(CallError::AliasedName { name }), "query {body}");
    }
    // JSON keys are not mangled by Slack's JSON reader.
    let args = json(r#"{"channel[]":"C1","team.id":"T2"}"#).unwrap();
    assert!(args.channels.is_empty());
    assert_eq!(args.team_id, None);
}

#[test]
fn mangled_names_are_listed_under_both_readings() {
    let args = form("icon_url[]=x&user.name=y&icon+emoji[a=z").unwrap();
    assert_eq!(
        args.names,
        strings(&[
            "icon_url[]",
            "icon_url",
            "user.name",
            "user_name",
            "icon emoji[a",
            "icon_emoji",
            "icon_emoji_a"
        ])
    );
}

// === UTF-8 ===

#[test]
fn non_utf8_arguments_are_refused() {
    assert_eq!(form("text=%FF"), Err(CallError::BadUtf8));
    assert_eq!(form("te%C3xt=1"), Err(CallError::BadUtf8));
    assert_eq!(read_call(None, FORM, b"text=\xff"), Err(CallError::BadUtf8));
    assert_eq!(
        read_call(Some(b"a=%80"), None, b""),
        Err(CallError::BadUtf8)
    );
    assert_eq!(
        read_call(None, JSON, b"{\"a\":\"\xff\"}"),
        Err(CallError::BadUtf8)
    );
    // A literal U+FFFD is text like any other.
    let args = form("channel=%EF%BF%BD").unwrap();
    assert_eq!(args.channels, strings(&["\u{fffd}"]));
    let args = form("channel=C%C3%A9&x=%").unwrap();
    assert_eq!(args.channels, strings(&["Cé"]));
    assert!(form("x=%zz&y=%4").is_ok());
}

// === JSON grammar ===

fn serde_accepts_object(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(body),
        Ok(serde_json::Value::Object(_))
    )
}

#[test]
fn json_bodies_follow_serde_json() {
    let cases: &[&[u8]] = &[
        b"{}",
        b" \t\r\n{ } \n",
        b"{\"a\":1}",
        b"{\"a\":-0.5e+10,\"b\":[true,false,null,{\"c\":\"\\u00e9\"}]}",
        b"{\"a\":1e400}",
        b"{\"a\":-1e400}",
        b"{\"a\":1e-400}",
        b"{\"a\":0e999999999999}",
        b"{\"a\":1.7976931348623157e308}",
        b"{\"a\":1.7976931348623159e308}",
        b"{\"a\":18446744073709551616}",
        b"{\"a\":-9223372036854775809}",
        b"{\"a\":01}",
        b"{\"a\":1.}",
        b"{\"a\":.1}",
        b"{\"a\":1e}",
        b"{\"a\":+1}",
        b"{\"a\":-}",
        b"{\"a\":NaN}",
        b"{\"a\":Infinity}",
        b"{\"a\":tru}",
        b"{\"a\":truex}",
        b"{\"a\":1,}",
        b"{,}",
        b"{\"a\"}",
        b"{\"a\" 1}",
        b"{a:1}",
        b"{'a':1}",
        b"{\"a\":1}}",
        b"{\"a\":1} x",
        b"{\"a\":1}\x0c",
        b"{\"a\":1}\0",
        b"{\"a\":[1,]}",
        b"{\"a\":[,1]}",
        b"{\"a\":[1 2]}",
        b"{\"a\":{\"b\"}}",
        b"{\"a\":{\"b\":1,}}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\\u12\"}",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":\"\\ud800\"}",
        b"{\"a\":\"\\udc00\"}",
        b"{\"a\":\"\\ud800\\u0041\"}",
        b"{\"a\":\"\\ud800\\n\"}",
        b"{\"a\":\"\\ud800\\ud800\"}",
        b"{\"a\":\"\\ud83d\\ude00\"}",
        b"{\"\\ud800\":1}",
        b"{\"a\":\"\t\"}",
        b"{\"a\":\"\x7f\"}",
        b"{\"a\":\"",
        b"{\"a\":\"\\",
        b"{\"a\":",
        b"{\"a\"",
        b"{",
        b"",
        b" ",
        b"[]",
        b"1",
        b"\"x\"",
        b"null",
        b"/* c */ {}",
        b"{} // c",
        b"\xef\xbb\xbf{}",
        b"{\"a\":1}{}",
    ];
    for &body in cases {
        if body.is_empty() {
            // An empty body is no body: only the query is read.
            assert_eq!(json_read(body).map(|a| a.encoding), Ok(CallEncoding::None));
            continue;
        }
        let ours = json_read(body);
        assert_eq!(
            ours.is_ok(),
            serde_accepts_object(body),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

fn json_read(body: &[u8]) -> Result<CallArgs, CallError> {
    read_call(None, JSON, body)
}

#[test]
fn not_an_object_is_told_apart_from_bad_json() {
    for body in ["[]", "1", "\"x\"", "null", " [1, {\"a\":2}] ", "-0.5"] {
        assert_eq!(json(body), Err(CallError::NotAnObject), "{body}");
    }
    for body in ["[", "1 2", "x", "[1,]", ""] {
        if body.is_empty() {
            continue;
        }
        assert_eq!(json(body), Err(CallError::BadJson), "{body}");
    }
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn nesting_limit_matches_serde_json() {
    for total in [1usize, 2, 100, 126, 127, 128, 129, 200, 5000, 100_000] {
        // The top-level object counts as one level.
        let arrays = format!("{{\"a\":{}}}", nested(total - 1, "[", "]"));
        let objects = format!(
            "{{{}1{}}}",
            "\"a\":{".repeat(total - 1),
            "}".repeat(total - 1)
        );
        let mixed = format!("{{\"a\":{}}}", nested(total - 1, "[{\"b\":", "}]"));
        for body in [arrays, objects, mixed] {
            let ours = json(&body).is_ok();
            assert_eq!(ours, serde_accepts_object(body.as_bytes()), "depth {total}");
        }
        // Not an object at the top, deep anyway.
        let deep = nested(total, "[", "]");
        assert_eq!(
            json(&deep) == Err(CallError::NotAnObject),
            serde_json::from_slice::<serde_json::Value>(deep.as_bytes()).is_ok(),
            "array depth {total}"
        );
    }
    assert!(json(&format!("{{\"a\":{}}}", nested(126, "[", "]"))).is_ok());
    assert_eq!(
        json(&format!("{{\"a\":{}}}", nested(127, "[", "]"))),
        Err(CallError::BadJson)
    );
    // Unclosed deep input fails without exhausting the stack.
    assert_eq!(json(&"[".repeat(1_000_000)), Err(CallError::BadJson));
    assert_eq!(
        json(&format!("{{\"a\":{}", "[".repeat(1_000_000))),
        Err(CallError::BadJson)
    );
}

// === Scanner spans ===

#[test]
fn members_carry_exact_spans() {
    let body = br#" { "a" : [1, 2] , "b":"x" } "#;
    let members = scan_object(body).unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(&body[members[0].span.clone()], br#""a" : [1, 2]"#);
    assert_eq!(&body[members[0].value.clone()], b"[1, 2]");
    assert_eq!(members[0].comma.map(|c| body[c]), Some(b','));
    assert_eq!(&body[members[1].span.clone()], br#""b":"x""#);
    assert_eq!(members[1].comma, None);
}

// === Property tests ===

/// JSON text generated as a tree, printed with random whitespace.
fn json_text() -> impl Strategy<Value = String> {
    let ws = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n"]);
    let key = prop::sample::select(vec![
        "\"channel\"",
        "\"channels\"",
        "\"channel_id\"",
        "\"channel_ids\"",
        "\"context_channel_id\"",
        "\"team_id\"",
        "\"token\"",
        "\"text\"",
        "\"tok\\u0065n\"",
        "\"chan\\u006eel\"",
        "\"\"",
        "\"a\"",
        "\"\\ud83d\\ude00\"",
    ]);
    let leaf = prop::sample::select(vec![
        "\"C1\"",
        "\"C2\"",
        "\"C1,C2\"",
        "\" C3 ,\"",
        "\"\\u0043\\u0031\"",
        "\"x\\\"y\"",
        "\"\\ud800\"",
        "1",
        "-0",
        "1.5e3",
        "1e400",
        "01",
        "true",
        "null",
        "nul",
        "[]",
        "{}",
        "[\"C4\"]",
        "[\"C5\",\"C6\"]",
        "[1]",
        "\"\t\"",
    ])
    .prop_map(str::to_owned);
    let value = leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("\"k\"|\"token\"|\"a\"", inner), 0..4).prop_map(|m| {
                let members: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    prop::collection::vec((ws.clone(), key, ws.clone(), value, ws.clone()), 0..6).prop_map(
        |members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(w1, k, w2, v, w3)| format!("{w1}{k}{w2}:{w3}{v}{w1}"))
                .collect();
            format!("{{{}}}", members.join(","))
        },
    )
}

/// A possibly damaged JSON text: a generated one with a few bytes changed, cut or inserted.
fn json_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        json_text(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0u8..4,
                prop::sample::select(b"{}[]\",:\\ 0e.-tx\x01".to_vec()),
            ),
            0..3,
        ),
    )
        .prop_map(|(text, edits)| {
            let mut bytes = text.into_bytes();
            for (at, kind, byte) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => {
                        bytes.remove(i);
                    }
                    2 => bytes.insert(i, byte),
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
}

/// The members `serde_json` reads, last repeat winning, compared with the scanner's.
fn assert_members_match_serde(body: &[u8]) -> Result<(), TestCaseError> {
    let reference = serde_json::from_slice::<serde_json::Value>(body);
    let ours = scan_object(body);
    match (&reference, &ours) {
        (Ok(serde_json::Value::Object(object)), Ok(members)) => {
            let mut read = serde_json::Map::new();
            for m in members {
                let value: serde_json::Value =
                    serde_json::from_slice(&body[m.value.clone()]).unwrap();
                read.insert(m.key.clone().into_owned(), value);
            }
            prop_assert_eq!(object, &read);
        }
        (Ok(serde_json::Value::Object(_)), Err(e)) => {
            prop_assert!(
                false,
                "serde accepts, scanner says {e:?}: {:?}",
                String::from_utf8_lossy(body)
            );
        }
        (Ok(_), ours) => prop_assert_eq!(ours, &Err(CallError::NotAnObject)),
        (Err(_), Ok(_)) => prop_assert!(
            false,
            "serde refuses, scanner accepts: {:?}",
            String::from_utf8_lossy(body)
        ),
        (Err(_), Err(e)) => prop_assert!(*e == CallError::BadJson || *e == CallError::BadUtf8),
    }
    Ok(())
}

/// A form reader built on `form_urlencoded` alone, refusing what it decodes lossily.
fn reference_form(input: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for piece in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = form_urlencoded::parse(piece).next()?;
        let raw: Vec<u8> = piece
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let eq = raw.iter().position(|&b| b == b'=').unwrap_or(raw.len());
        let decoded_name: Vec<u8> = percent_decode(&raw[..eq]);
        let decoded_value: Vec<u8> = percent_decode(raw.get(eq + 1..).unwrap_or_default());
        if std::str::from_utf8(&decoded_name).is_err()
            || std::str::from_utf8(&decoded_value).is_err()
        {
            return None;
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let h = |j: usize| raw.get(j).and_then(|c| (*c as char).to_digit(16));
        match (raw[i], h(i + 1), h(i + 2)) {
            (b'%', Some(a), Some(b)) => {
                out.push((a * 16 + b) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "token=xoxb-1",
            "token=xoxb-2",
            "tok%65n=xoxb-1",
            "token",
            "channel=C1",
            "channel=C2",
            "channels=C1,+C3",
            "channel_id=C4",
            "team_id=T1",
            "text=hi+there",
            "text=hi%20there",
            "x=%FF",
            "x=%",
            "x=%4",
            "x=%e2%82%ac",
            "=",
            "",
            "a=b=c",
            "channel%5B%5D=C1",
            "user.name=y",
            "+token=1",
            "x=%EF%BF%BD",
            "t%C3=1",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(
            prop::sample::select(b"ab%+=&2Fcf\xff\xc3\xa9 ".to_vec()),
            0..8
        ),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.join(&b'&'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The scanner accepts exactly what serde_json accepts as an object and reads the same
    /// members.
    #[test]
    fn scanner_matches_serde_json(body in json_bytes()) {
        assert_members_match_serde(&body)?;
    }

    /// Arbitrary bytes too.
    #[test]
    fn scanner_matches_serde_json_on_any_bytes(body in prop::collection::vec(prop::sample::select(b"{}[]\",:\\ 0123456789eE.+-truefalsn\t\nu".to_vec()), 0..40)) {
        let mut body = body;
        body.insert(0, b'{');
        assert_members_match_serde(&body)?;
    }

    /// Form decoding is form_urlencoded's, with lossy decoding refused.
    #[test]
    fn forms_decode_like_form_urlencoded(body in form_bytes()) {
        let reference = reference_form(&body);
        let mut ours = Vec::new();
        let mut ok = true;
        for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            match form_pair(piece) {
                Ok((n, v)) => ours.push((n.into_owned(), v.into_owned())),
                Err(e) => {
                    prop_assert_eq!(e, CallError::BadUtf8);
                    ok = false;
                    break;
                }
            }
        }
        match reference {
            Some(pairs) => { prop_assert!(ok); prop_assert_eq!(pairs, ours); }
            None => prop_assert!(!ok),
        }
    }

    /// Stripping a form removes exactly the token pieces and nothing else; reading again gives
    /// the same arguments less the token.
    #[test]
    fn form_strip_removes_exactly_the_token(query in form_bytes(), body in form_bytes()) {
        let query = Some(&query[..]).filter(|q| !q.is_empty());
        let Ok(args) = read_call(query, FORM, &body) else { return Ok(()); };
        let out = strip_body_token(args.encoding, &body).unwrap();
        let expected: Vec<&[u8]> = body
            .split(|&b| b == b'&')
            .filter(|p| p.is_empty() || form_pair(p).unwrap().0 != "token")
            .collect();
        let expected = if body.is_empty() { Vec::new() } else { expected.join(&b'&') };
        prop_assert_eq!(&out[..], &expected[..]);
        prop_assert_eq!(matches!(out, Cow::Borrowed(_)), args.body_token.is_none());
        check_reread(query, FORM, &args, &out)?;
    }

    /// Stripping a JSON body gives the same object less `token`; reading again gives the same
    /// arguments less the token.
    #[test]
    fn json_strip_removes_exactly_the_token(body in json_text(), query in form_bytes()) {
        let query = Some(&query[..]).filter(|q| !q.is_empty());
        let Ok(args) = read_call(query, JSON, body.as_bytes()) else { return Ok(()); };
        let out = strip_body_token(args.encoding, body.as_bytes()).unwrap();
        let mut original: serde_json::Value = serde_json::from_str(&body).unwrap();
        let removed = original.as_object_mut().unwrap().remove("token");
        prop_assert_eq!(removed.is_some(), args.body_token.is_some());
        let after: serde_json::Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(&after, &original);
        prop_assert_eq!(matches!(out, Cow::Borrowed(_)), args.body_token.is_none());
        check_reread(query, JSON, &args, &out)?;
    }
}

/// Reading a stripped body gives the arguments of the original less the body token.
fn check_reread(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    args: &CallArgs,
    stripped: &[u8],
) -> Result<(), TestCaseError> {
    let again = read_call(query, content_type, stripped).unwrap();
    prop_assert_eq!(again, args.after_strip(stripped));
    Ok(())
}

proptest! {
    /// Nothing panics on arbitrary bytes, whatever the encoding claimed.
    #[test]
    fn arbitrary_bytes_never_panic(
        query in prop::collection::vec(any::<u8>(), 0..40),
        body in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        for ct in [None, FORM, JSON] {
            let _ = read_call(Some(&query), ct, &body);
        }
        for encoding in [CallEncoding::None, CallEncoding::Form, CallEncoding::Json] {
            let _ = strip_body_token(encoding, &body);
        }
    }
}
