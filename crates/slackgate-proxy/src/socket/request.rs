//! An envelope as the inbound pipeline's client side ([`Downstream`]): the request Slack
//! would have POSTed, held in memory, whose answer is kept for the ack. The pipeline is
//! `Gateway::handle`, the very code of the HTTP path; this type only says that the
//! request is socket-sourced ([`Downstream::socket_sourced`]), which skips `source_ips`
//! and the signature and replay stages and nothing else.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use slackgate_policy::Route;
use slackgate_slack::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::net::downstream::{BodyError, Downstream};
use crate::net::upstream_head::{request_head, Forwarded};
use crate::socket::envelope::Envelope;

/// `X-Slack-Retry-Reason`, as Slack sends it with `X-Slack-Retry-Num`.
const RETRY_REASON_HEADER: &str = "x-slack-retry-reason";

/// What the pipeline answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// One envelope as a request.
#[derive(Debug)]
pub(crate) struct SocketRequest {
    path: String,
    host: Option<String>,
    /// Lower-case names: `host`, `content-type`, `user-agent`, the signature headers the
    /// bot verifies, and the retry headers.
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// The pipeline's answer, once written.
    pub(crate) answer: Option<Answer>,
}

impl SocketRequest {
    /// The request for `envelope` on `route`, signed for the bot at `now`.
    pub(crate) fn new(route: &Route, envelope: &Envelope, now: SystemTime) -> Self {
        let (content_type, body) = envelope.request();
        let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(8);
        let host = route.host.as_deref().unwrap_or("localhost").to_owned();
        headers.push(("host", host));
        headers.push(("content-type", content_type.to_owned()));
        headers.push((
            "user-agent",
            "Slackbot 1.0 (+https://api.slack.com/robots) slackgate-socket-mode".to_owned(),
        ));
        if let Some((timestamp, signature)) = bot_signature(route, &body, now) {
            headers.push((TIMESTAMP_HEADER, timestamp));
            headers.push((SIGNATURE_HEADER, signature));
        }
        if let Some(n) = envelope.retry_attempt {
            headers.push((slackgate_slack::RETRY_NUM_HEADER, n.to_string()));
            let reason = envelope.retry_reason.as_deref().unwrap_or("unknown");
            headers.push((RETRY_REASON_HEADER, reason.to_owned()));
        }
        SocketRequest {
            path: route.path.to_string(),
            host: route.host.as_deref().map(str::to_owned),
            headers,
            body,
            answer: None,
        }
    }
}

/// The signature the bot verifies, as Slack would have signed the request: with the
/// route's `resign` key when it has one, else the app's first live signing secret.
///
/// Socket Mode's own signing, in one place: the HTTP path's re-signing (issue 28) can
/// take it over where the inbound forward builds its head.
pub(crate) fn bot_signature(
    route: &Route,
    body: &[u8],
    now: SystemTime,
) -> Option<(String, String)> {
    let key = match &route.resign {
        Some(r) => &r.key,
        None => route.app.live_keys(now).next()?,
    };
    let timestamp = slackgate_guard::unix_secs(now).to_string();
    let signature = key.sign(&timestamp, body);
    Some((timestamp, signature))
}

#[async_trait]
impl Downstream for SocketRequest {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }

    fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .collect()
    }

    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn method(&self) -> &[u8] {
        b"POST"
    }

    fn query(&self) -> Option<&[u8]> {
        None
    }

    fn is_head(&self) -> bool {
        false
    }

    fn peer_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }

    fn declared_length(&self) -> Option<u64> {
        Some(self.body.len() as u64)
    }

    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        request_head(b"POST", self.path.as_bytes(), headers, add)
    }

    async fn read_body(&mut self, max: usize, _timeout: Duration) -> Result<Bytes, BodyError> {
        if self.body.len() > max {
            return Err(BodyError::TooLarge);
        }
        Ok(self.body.clone())
    }

    fn close_after(&mut self) {}

    fn socket_sourced(&self) -> bool {
        true
    }

    async fn respond(
        &mut self,
        status: u16,
        _reason: Option<&str>,
        _headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()> {
        self.answer = Some(Answer { status, body });
        Ok(())
    }
}
