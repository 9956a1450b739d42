//! The demo's Slack Web API stand-in: plain HTTP on a loopback port, just enough of
//! Slack's answers for the egress door to show its work. It knows one bot token, answers
//! `/api/METHOD` calls as Slack does (`ok`, `error`, HTTP 200) and carries the scope
//! headers the gateway's scope ledger reads: `x-oauth-scopes` (what the token was
//! granted) and `x-accepted-oauth-scopes` (what the method accepts).
//!
//! The testkit's stand-in models far more, but it is test support (generated CAs,
//! fixtures) that a release binary must not carry.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

/// The scopes the demo token was granted: more than the demo bot needs, so `/status`
/// has unused scopes to show.
pub(super) const GRANTED_SCOPES: &str = "chat:write,reactions:write,channels:read,users:read";

/// The largest body read; the gateway's own cap is far below.
const MAX_BODY: usize = 1024 * 1024;

/// Starts the stand-in on a free loopback port; it accepts `token` only. Returns its address.
pub(super) fn start(listener: TcpListener, token: String) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let token = token.clone();
            std::thread::spawn(move || serve(conn, &token));
        }
    });
    Ok(addr)
}

/// The scope a method accepts, as Slack's `x-accepted-oauth-scopes` lists it.
fn accepted_scopes(method: &str) -> &'static str {
    match method.split('.').next().unwrap_or_default() {
        "chat" => "chat:write",
        "reactions" => "reactions:write",
        "conversations" => "channels:read",
        "users" => "users:read",
        _ => "",
    }
}

/// The named argument of a form or JSON body.
fn arg(body: &[u8], json: bool, name: &str) -> Option<String> {
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get(name)?.as_str().map(str::to_owned);
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Slack's answer to one call: (status, extra headers, JSON body).
fn answer(
    path: &str,
    authorization: Option<&str>,
    json: bool,
    body: &[u8],
    token: &str,
) -> (u16, Vec<(&'static str, String)>, serde_json::Value) {
    let Some(method) = path.strip_prefix("/api/").filter(|m| !m.is_empty()) else {
        return (
            404,
            Vec::new(),
            serde_json::json!({"ok": false, "error": "unknown_method"}),
        );
    };
    let presented = authorization.and_then(|a| a.strip_prefix("Bearer "));
    if presented != Some(token) {
        let error = if presented.is_none() {
            "not_authed"
        } else {
            "invalid_auth"
        };
        return (
            200,
            Vec::new(),
            serde_json::json!({"ok": false, "error": error}),
        );
    }
    let headers = vec![
        ("x-oauth-scopes", GRANTED_SCOPES.to_owned()),
        (
            "x-accepted-oauth-scopes",
            accepted_scopes(method).to_owned(),
        ),
    ];
    let out = match method {
        "chat.postMessage" => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            match arg(body, json, "channel") {
                Some(channel) => serde_json::json!({
                    "ok": true,
                    "channel": channel,
                    "ts": format!("{now}.000100"),
                    "message": {
                        "type": "message",
                        "user": "U0DEMOBOT",
                        "bot_id": "B0DEMO",
                        "text": arg(body, json, "text").unwrap_or_default(),
                    },
                }),
                None => serde_json::json!({"ok": false, "error": "channel_not_found"}),
            }
        }
        "auth.test" => serde_json::json!({
            "ok": true, "team": "Acme", "team_id": "T0ACME", "user": "helpdesk",
            "user_id": "U0DEMOBOT", "bot_id": "B0DEMO",
        }),
        _ => serde_json::json!({"ok": true}),
    };
    (200, headers, out)
}

/// Serves the calls of one keep-alive connection.
fn serve(stream: TcpStream, token: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(&stream);
    while let Some((line, headers)) = super::read_head(&mut reader) {
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (mut len, mut authorization, mut json) = (0usize, None, false);
        for (k, v) in headers {
            match k.as_str() {
                "content-length" => len = v.parse().unwrap_or(0),
                "content-type" => json = v.starts_with("application/json"),
                "authorization" => authorization = Some(v),
                _ => {}
            }
        }
        if len > MAX_BODY {
            return;
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, headers, out) = answer(&path, authorization.as_deref(), json, &body, token);
        let out = out.to_string();
        let mut resp = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            if status == 200 { "OK" } else { "Not Found" },
            out.len()
        );
        for (k, v) in headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(&out);
        if (&stream).write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_slack_does() {
        let (s, h, v) = answer(
            "/api/chat.postMessage",
            Some("Bearer t"),
            false,
            b"channel=C0DEMO&text=hi",
            "t",
        );
        assert_eq!(
            (s, &v["ok"], &v["channel"]),
            (200, &true.into(), &"C0DEMO".into())
        );
        assert!(h.contains(&("x-accepted-oauth-scopes", "chat:write".to_owned())));
        let (_, h, v) = answer("/api/chat.postMessage", Some("Bearer x"), false, b"", "t");
        assert_eq!(v["error"], "invalid_auth");
        assert!(h.is_empty(), "no scope headers without a valid token");
        let (_, _, v) = answer("/api/chat.postMessage", None, true, b"{}", "t");
        assert_eq!(v["error"], "not_authed");
        let (s, _, _) = answer("/other", Some("Bearer t"), false, b"", "t");
        assert_eq!(s, 404);
    }
}
