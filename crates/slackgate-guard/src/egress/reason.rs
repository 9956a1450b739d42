//! [`EgressReason`]: the reason codes of egress decisions and their statuses.

/// Why the gateway answered or forwarded a Web API call the way it did.
///
/// The single source of the egress reason codes (audit `reason`, metric label, the
/// `error` of the answer) and of the status each is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EgressReason {
    /// Every check passed and the call was sent to Slack.
    Allowed,
    /// No bot has the key presented (or none was presented).
    UnknownBot,
    /// The method is not in the bot's `methods` (or is privileged and not listed exactly).
    MethodDenied,
    /// The call names a channel outside the bot's `channels`.
    ChannelDenied,
    /// The call sends an argument in the bot's `deny_args`.
    ArgumentDenied,
    /// The call names a `team_id` other than the bot's `team`.
    TeamDenied,
    /// A token was sent in the query string.
    TokenInUrl,
    /// The call cannot be read: no method in the path, a body that is not a readable
    /// form or JSON object, an argument given twice with different values, two
    /// different keys.
    MalformedCall,
    /// A rate limit of the bot is exhausted.
    RateLimited,
    /// Slack answered this bot's calls to this method 429, and its `Retry-After` has not
    /// passed.
    SlackRateLimited,
    /// The bot's token was revoked.
    TokenRevoked,
    /// The bot rotates its token and has none to send: the first one is not minted yet
    /// (rule `rotation.pending`) or the current one expired before a refresh succeeded
    /// (`rotation.expired`).
    TokenUnavailable,
    /// Slack could not be reached, or its answer was broken.
    UpstreamError,
    /// Slack did not answer within `egress.timeout`.
    UpstreamTimeout,
    /// A POST to `respond/<capability>` or `upload/<capability>` whose capability is
    /// unknown, expired, used up or another bot's: answered 404, nothing reaches Slack.
    ResponseUrlInvalid,
}

impl EgressReason {
    /// Every egress reason, in contract order.
    pub const ALL: [EgressReason; 15] = [
        EgressReason::Allowed,
        EgressReason::UnknownBot,
        EgressReason::MethodDenied,
        EgressReason::ChannelDenied,
        EgressReason::ArgumentDenied,
        EgressReason::TeamDenied,
        EgressReason::TokenInUrl,
        EgressReason::MalformedCall,
        EgressReason::RateLimited,
        EgressReason::SlackRateLimited,
        EgressReason::TokenRevoked,
        EgressReason::TokenUnavailable,
        EgressReason::UpstreamError,
        EgressReason::UpstreamTimeout,
        EgressReason::ResponseUrlInvalid,
    ];

    /// The reason code of audit records, metric labels and answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            EgressReason::Allowed => "allowed",
            EgressReason::UnknownBot => "unknown_bot",
            EgressReason::MethodDenied => "method_denied",
            EgressReason::ChannelDenied => "channel_denied",
            EgressReason::ArgumentDenied => "argument_denied",
            EgressReason::TeamDenied => "team_denied",
            EgressReason::TokenInUrl => "token_in_url",
            EgressReason::MalformedCall => "malformed_call",
            EgressReason::RateLimited => "rate_limited",
            EgressReason::SlackRateLimited => "slack_rate_limited",
            EgressReason::TokenRevoked => "token_revoked",
            EgressReason::TokenUnavailable => "token_unavailable",
            EgressReason::UpstreamError => "upstream_error",
            EgressReason::UpstreamTimeout => "upstream_timeout",
            EgressReason::ResponseUrlInvalid => "response_url_invalid",
        }
    }

    /// The HTTP status the gateway answers with itself. A denial is answered the way
    /// Slack answers a failed call (200 with `ok: false`), so SDKs raise their usual API
    /// error; rate limits are 429 as Slack's are; the gateway's own failures to reach
    /// Slack are 502 and 504, and 503 while a rotating token is unavailable. `Allowed` is
    /// Slack's own status (200 here).
    pub const fn status(self) -> u16 {
        match self {
            EgressReason::RateLimited | EgressReason::SlackRateLimited => 429,
            EgressReason::TokenUnavailable => 503,
            EgressReason::UpstreamError => 502,
            EgressReason::UpstreamTimeout => 504,
            EgressReason::ResponseUrlInvalid => 404,
            _ => 200,
        }
    }
}

impl std::fmt::Display for EgressReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
