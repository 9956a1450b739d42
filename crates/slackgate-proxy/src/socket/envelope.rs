//! What Slack sends over a Socket Mode WebSocket (`hello`, `disconnect`, envelopes), the
//! HTTP request body an envelope stands for, and the ack the gateway sends back.
//!
//! From Slack's Socket Mode documentation and python-slack-sdk's `socket_mode` client:
//! every message is a JSON text frame; an envelope carries `envelope_id`, `type`
//! (`events_api`, `slash_commands`, `interactive`), `payload`, `accepts_response_payload`
//! and, when Slack retries, `retry_attempt` and `retry_reason`; the ack is
//! `{"envelope_id": ..., "payload": ...}` (the payload only when the envelope accepts one).
//! Nothing here panics on network input: what does not parse is [`Message::Invalid`].

use bytes::Bytes;
use serde_json::Value;

/// The envelope types that stand for a request Slack would have POSTed to a Request URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Events API: the JSON body of an Events API request.
    EventsApi,
    /// A slash command: the form Slack posts to the command's Request URL.
    SlashCommands,
    /// Interactivity: the `payload=` form Slack posts to the Interactivity Request URL.
    Interactive,
}

impl Kind {
    /// The envelope `type` (also the metric label and the `paths` key).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::EventsApi => "events_api",
            Kind::SlashCommands => "slash_commands",
            Kind::Interactive => "interactive",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "events_api" => Some(Kind::EventsApi),
            "slash_commands" => Some(Kind::SlashCommands),
            "interactive" => Some(Kind::Interactive),
            _ => None,
        }
    }
}

/// One envelope.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// `envelope_id`: what the ack names, and what duplicates are told apart by.
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) payload: Value,
    /// Whether the ack may carry the bot's answer as its `payload`.
    pub(crate) accepts_response_payload: bool,
    /// `retry_attempt` (0 or absent on a first delivery).
    pub(crate) retry_attempt: Option<u32>,
    /// `retry_reason`, when not empty.
    pub(crate) retry_reason: Option<String>,
}

/// One message read from the socket.
#[derive(Debug)]
pub(crate) enum Message {
    /// `hello`: the connection is ready.
    Hello,
    /// `disconnect` with its `reason` (`warning`, `refresh_requested`, `link_disabled`,
    /// `too_many_websockets`, ...).
    Disconnect(String),
    /// An envelope of a type the bridge delivers.
    Envelope(Envelope),
    /// An envelope of another type: acked without payload, never delivered.
    Other { id: String },
    /// Not JSON, or not a message Slack documents.
    Invalid,
}

/// Reads one text frame.
pub(crate) fn parse(text: &str) -> Message {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return Message::Invalid;
    };
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "hello" => return Message::Hello,
        "disconnect" => {
            let reason = m.get("reason").and_then(Value::as_str).unwrap_or("unknown");
            return Message::Disconnect(label(reason).to_owned());
        }
        _ => {}
    }
    let Some(id) = m
        .get("envelope_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned)
    else {
        return Message::Invalid;
    };
    let Some(kind) = Kind::parse(kind) else {
        return Message::Other { id };
    };
    let payload = m.remove("payload").unwrap_or(Value::Null);
    if !payload.is_object() {
        return Message::Invalid;
    }
    let retry_attempt = m
        .get("retry_attempt")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    let retry_reason = m
        .get("retry_reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(|r| label(r).to_owned());
    Message::Envelope(Envelope {
        id,
        kind,
        payload,
        accepts_response_payload: m
            .get("accepts_response_payload")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        retry_attempt,
        retry_reason,
    })
}

/// A word from Slack as a log and label value: short lower-case letters, digits and `_`,
/// else `other`.
fn label(s: &str) -> &str {
    let plain = !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        s
    } else {
        "other"
    }
}

impl Envelope {
    /// The request Slack would have POSTed for this envelope: its content type and body.
    /// Events: the payload as JSON; slash commands: the payload's fields as a form;
    /// interactivity: `payload=` and the payload as JSON, form-encoded.
    pub(crate) fn request(&self) -> (&'static str, Bytes) {
        const FORM: &str = "application/x-www-form-urlencoded";
        match self.kind {
            Kind::EventsApi => ("application/json", Bytes::from(self.payload.to_string())),
            Kind::Interactive => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("payload", &self.payload.to_string());
                (FORM, Bytes::from(form.finish()))
            }
            Kind::SlashCommands => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                if let Value::Object(fields) = &self.payload {
                    for (k, v) in fields {
                        match v {
                            Value::Null => {}
                            Value::String(s) => {
                                form.append_pair(k, s);
                            }
                            Value::Bool(_) | Value::Number(_) => {
                                form.append_pair(k, &v.to_string());
                            }
                            Value::Array(_) | Value::Object(_) => {
                                form.append_pair(k, &v.to_string());
                            }
                        }
                    }
                }
                (FORM, Bytes::from(form.finish()))
            }
        }
    }
}

/// The ack of envelope `id`, with `payload` when given.
pub(crate) fn ack(id: &str, payload: Option<Value>) -> String {
    let mut m = serde_json::Map::new();
    m.insert("envelope_id".to_owned(), Value::String(id.to_owned()));
    if let Some(p) = payload {
        m.insert("payload".to_owned(), p);
    }
    Value::Object(m).to_string()
}

/// The bot's answer as an ack payload: its JSON object, or for a plain-text answer (a
/// slash command may answer text) `{"text": ...}`; nothing for an empty answer.
pub(crate) fn answer_payload(body: &[u8]) -> Option<Value> {
    if body.trim_ascii().is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Some(v),
        Ok(_) => None,
        Err(_) => {
            let text = std::str::from_utf8(body).ok()?;
            Some(serde_json::json!({ "text": text }))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_garbage_is_invalid() {
        assert!(matches!(parse(r#"{"type":"hello"}"#), Message::Hello));
        assert!(matches!(
            parse(r#"{"type":"disconnect","reason":"refresh_requested"}"#),
            Message::Disconnect(r) if r == "refresh_requested"
        ));
        assert!(matches!(
            parse(r#"{"type":"disconnect","reason":"Ünïcode\n"}"#),
            Message::Disconnect(r) if r == "other"
        ));
        for bad in [
            "",
            "[]",
            "{",
            "null",
            r#"{"type":"events_api"}"#,
            r#"{"type":"events_api","envelope_id":"e","payload":[1]}"#,
        ] {
            assert!(matches!(parse(bad), Message::Invalid), "{bad}");
        }
        assert!(matches!(
            parse(r#"{"type":"new_thing","envelope_id":"e1"}"#),
            Message::Other { id } if id == "e1"
        ));
        let Message::Envelope(e) = parse(
            r#"{"type":"slash_commands","envelope_id":"e2","accepts_response_payload":true,"retry_attempt":2,"retry_reason":"timeout","payload":{"command":"/ticket","text":"a & b","n":1,"x":null}}"#,
        ) else {
            panic!("an envelope");
        };
        assert_eq!(e.kind, Kind::SlashCommands);
        assert!(e.accepts_response_payload);
        assert_eq!(e.retry_attempt, Some(2));
        assert_eq!(e.retry_reason.as_deref(), Some("timeout"));
        let (ct, body) = e.request();
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(&body[..], b"command=%2Fticket&n=1&text=a+%26+b");
    }

    #[test]
    fn interactive_is_a_payload_form_and_acks_carry_payloads() {
        let Message::Envelope(e) = parse(
            r#"{"type":"interactive","envelope_id":"e3","payload":{"type":"block_actions"}}"#,
        ) else {
            panic!("an envelope");
        };
        let (_, body) = e.request();
        assert_eq!(&body[..], b"payload=%7B%22type%22%3A%22block_actions%22%7D");
        assert_eq!(ack("e3", None), r#"{"envelope_id":"e3"}"#);
        assert_eq!(
            ack("e3", answer_payload(b"{\"response_action\":\"clear\"}")),
            r#"{"envelope_id":"e3","payload":{"response_action":"clear"}}"#
        );
        assert_eq!(
            answer_payload(b"noted"),
            Some(serde_json::json!({"text":"noted"}))
        );
        assert_eq!(answer_payload(b" \n"), None);
        assert_eq!(answer_payload(b"[1]"), None);
        assert_eq!(answer_payload(&[0xff, 0xfe]), None);
    }

    proptest::proptest! {
        #[test]
        fn no_text_panics_the_reader(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn every_envelope_becomes_a_request(
            kind in proptest::sample::select(vec!["events_api", "slash_commands", "interactive", "x"]),
            key in "\\PC{0,12}",
            value in "\\PC{0,40}",
            n in proptest::num::i64::ANY,
            accepts in proptest::bool::ANY,
        ) {
            let msg = serde_json::json!({
                "type": kind,
                "envelope_id": "e",
                "accepts_response_payload": accepts,
                "retry_attempt": n,
                "retry_reason": value.clone(),
                "payload": { key.clone(): value.clone(), "n": n, "o": { key: [value] } },
            });
            if let Message::Envelope(e) = parse(&msg.to_string()) {
                let (_, body) = e.request();
                proptest::prop_assert!(!body.is_empty());
            }
        }
    }
}
