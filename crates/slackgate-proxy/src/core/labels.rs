//! The closed label sets of the metrics that features report: each is an enum whose
//! `as_str` is the label value and whose `ALL` pre-registers every series. They live here,
//! below the features, so the metrics import no feature.

/// The `result` label of `slackgate_policy_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new files replaced the running ones (the first load counts as one).
    Success,
    /// The new files were invalid; the running policy stays.
    Error,
}

impl ReloadResult {
    /// Every result, for pre-registering the series.
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Success, ReloadResult::Error];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Error => "error",
        }
    }
}

/// The `result` label of `slackgate_token_refreshes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefreshResult {
    /// A new pair was minted and stored.
    Ok,
    /// Slack could not be reached or did not answer usably; retried with backoff.
    Retry,
    /// Slack refused the refresh token (spent, revoked or unknown): stuck.
    InvalidRefreshToken,
    /// Slack refused the refresh for another reason (client id or secret): stuck.
    Rejected,
    /// The state store could not be read, written or opened with the key.
    StateError,
}

impl TokenRefreshResult {
    /// Every result, for pre-registering the series.
    pub const ALL: [TokenRefreshResult; 5] = [
        TokenRefreshResult::Ok,
        TokenRefreshResult::Retry,
        TokenRefreshResult::InvalidRefreshToken,
        TokenRefreshResult::Rejected,
        TokenRefreshResult::StateError,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenRefreshResult::Ok => "ok",
            TokenRefreshResult::Retry => "retry",
            TokenRefreshResult::InvalidRefreshToken => "invalid_refresh_token",
            TokenRefreshResult::Rejected => "rejected",
            TokenRefreshResult::StateError => "state_error",
        }
    }
}

/// The `result` label of `slackgate_group_refreshes_total`: what one read of a group's
/// members came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupReadResult {
    /// Slack answered `ok:true` with the members; they replaced the old ones.
    Ok,
    /// Slack answered `ok:false` (its `error` is in `/status`: `no_such_subteam`,
    /// `missing_scope`, `invalid_auth`, `token_revoked`, ...).
    SlackError,
    /// Slack answered 429; the next read waits for its `Retry-After`.
    RateLimited,
    /// The answer is not what Slack documents (status, JSON, `users` of user ids).
    BadAnswer,
    /// No answer: connecting, TLS or the exchange failed.
    UpstreamError,
    /// No answer within `egress.timeout`.
    UpstreamTimeout,
    /// The bot's token was revoked by a verified lifecycle event: not called.
    TokenRevoked,
    /// The bot rotates its token and has none now (not minted yet, or expired): not called.
    TokenUnavailable,
}

impl GroupReadResult {
    /// Every result, for pre-registering the series.
    pub const ALL: [GroupReadResult; 8] = [
        GroupReadResult::Ok,
        GroupReadResult::SlackError,
        GroupReadResult::RateLimited,
        GroupReadResult::BadAnswer,
        GroupReadResult::UpstreamError,
        GroupReadResult::UpstreamTimeout,
        GroupReadResult::TokenRevoked,
        GroupReadResult::TokenUnavailable,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupReadResult::Ok => "ok",
            GroupReadResult::SlackError => "slack_error",
            GroupReadResult::RateLimited => "rate_limited",
            GroupReadResult::BadAnswer => "bad_answer",
            GroupReadResult::UpstreamError => "upstream_error",
            GroupReadResult::UpstreamTimeout => "upstream_timeout",
            GroupReadResult::TokenRevoked => "token_revoked",
            GroupReadResult::TokenUnavailable => "token_unavailable",
        }
    }
}
