//! Requests signed the way Slack signs them.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use slackgate_slack::SigningKey;

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The bytes of a fixture in `crates/slackgate-testkit/data/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A Slack-style POST: path, body, content type and the two signature headers.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Request path.
    pub path: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content-Type.
    pub content_type: String,
    /// `X-Slack-Request-Timestamp`, if sent.
    pub timestamp: Option<String>,
    /// `X-Slack-Signature`, if sent.
    pub signature: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    /// An unsigned request; the content type follows the body (`{` means JSON).
    pub fn new(path: &str, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        let content_type = if body.first() == Some(&b'{') {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        Self {
            path: path.to_owned(),
            body,
            content_type: content_type.to_owned(),
            timestamp: None,
            signature: None,
            headers: Vec::new(),
        }
    }

    /// A fixture body sent to `path`.
    pub fn fixture(path: &str, name: &str) -> Self {
        Self::new(path, fixture(name))
    }

    /// Signs with `secret` at time `ts`.
    pub fn sign_at(mut self, secret: &str, ts: i64) -> Self {
        let key = SigningKey::new("test", secret.as_bytes()).expect("non-empty secret");
        let ts = ts.to_string();
        self.signature = Some(key.sign(&ts, &self.body));
        self.timestamp = Some(ts);
        self
    }

    /// Signs with `secret` now.
    pub fn sign(self, secret: &str) -> Self {
        self.sign_at(secret, now_unix())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request as HTTP/1.1 bytes for `host`.
    pub fn to_http(&self, host: &str) -> Vec<u8> {
        let mut out = format!(
            "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.path,
            self.content_type,
            self.body.len()
        );
        if let Some(ts) = &self.timestamp {
            out.push_str(&format!("X-Slack-Request-Timestamp: {ts}\r\n"));
        }
        if let Some(sig) = &self.signature {
            out.push_str(&format!("X-Slack-Signature: {sig}\r\n"));
        }
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}
