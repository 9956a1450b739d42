//! Requests signed the way Slack signs them: `v0=hex(hmac_sha256(secret, "v0:" + ts + ":" + body))`.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::data::{content_type_for, fixture};

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A prepared HMAC-SHA256 key that signs many requests (the load generator's hot loop).
#[derive(Clone)]
pub struct Signer(Hmac<Sha256>);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// A signer for `secret`.
    pub fn new(secret: &str) -> Self {
        Self(Hmac::new_from_slice(secret.as_bytes()).expect("any key length"))
    }

    /// `v0=<hex>` for `v0:{ts}:{body}`, written into `out` (cleared first).
    pub fn sign_into(&self, ts: &str, body: &[u8], out: &mut String) {
        let mut mac = self.0.clone();
        mac.update(b"v0:");
        mac.update(ts.as_bytes());
        mac.update(b":");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        out.clear();
        out.push_str("v0=");
        for b in tag {
            let _ = write!(out, "{b:02x}");
        }
    }

    /// `v0=<hex>` for `v0:{ts}:{body}`.
    pub fn sign(&self, ts: &str, body: &[u8]) -> String {
        let mut s = String::with_capacity(67);
        self.sign_into(ts, body, &mut s);
        s
    }
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
        Self {
            path: path.to_owned(),
            content_type: content_type_for(&body).to_owned(),
            body,
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
        assert!(!secret.is_empty(), "a signing secret is never empty");
        let ts = ts.to_string();
        self.signature = Some(Signer::new(secret).sign(&ts, &self.body));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented vector (see `testdata/slack/README.md`).
    #[test]
    fn signs_slacks_documented_vector() {
        let body = fixture("signature_vector.form");
        assert_eq!(
            Signer::new("8f742231b10e8888abcd99yyyzzz85a5").sign("1531420618", &body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }
}
