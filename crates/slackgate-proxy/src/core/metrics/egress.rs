//! The egress door's metrics: the bots' calls by method and reason, their time, Slack's
//! 429s, the scopes no call needed, and the bots' tokens (their state, and token
//! rotation's refreshes, expiries and stuck refreshes).

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The metrics of the egress door (bots -> Slack) and of the bots' tokens.
#[derive(Debug, Clone)]
pub struct EgressMetrics {
    /// `slackgate_egress_requests_total{bot,method,reason}`.
    pub requests: IntCounterVec,
    /// `slackgate_egress_shadowed_total{bot,reason}`: would-be denials of bots in
    /// `mode: shadow`, forwarded anyway.
    pub shadowed: IntCounterVec,
    /// `slackgate_egress_duration_seconds{bot}`.
    pub duration: HistogramVec,
    /// `slackgate_egress_unused_scopes{bot}`.
    pub unused_scopes: IntGaugeVec,
    /// `slackgate_egress_slack_rate_limits_total{bot}`: Slack's own 429s.
    pub slack_429: IntCounterVec,
    /// `slackgate_egress_token_state{bot,state}`: 1 for the state the bot's token is in
    /// (`active`, `revoked`, and for a rotating token `pending` or `expired`), 0 for the
    /// others.
    pub token_state: IntGaugeVec,
    /// `slackgate_token_refreshes_total{bot,result}`: token rotation's refresh attempts.
    pub token_refreshes: IntCounterVec,
    /// `slackgate_token_expiry_timestamp_seconds{bot}`: when a rotating bot's token expires.
    pub token_expiry: GaugeVec,
    /// `slackgate_token_refresh_stuck{bot}`: 1 when Slack refused a refresh and it is not
    /// retried (a new refresh token is needed).
    pub token_refresh_stuck: IntGaugeVec,
}

/// What the token metrics show of one bot.
#[derive(Debug, Clone, Copy)]
pub struct BotTokenView<'a> {
    /// The bot's name.
    pub name: &'a str,
    /// `active`, `revoked`, `pending` or `expired`.
    pub state: &'static str,
    /// Whether the bot rotates its token.
    pub rotating: bool,
    /// Unix expiry of the rotated token.
    pub expires_at: Option<i64>,
    /// Whether its refresh is stuck.
    pub stuck: bool,
}

impl EgressMetrics {
    /// Registers the egress door's metrics in `registry`; `call_buckets` for the
    /// time a call takes.
    pub(super) fn new(
        registry: &Registry,
        call_buckets: &[f64],
    ) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "slackgate_egress_requests_total",
                "Web API calls through the egress door by bot, method (named in the policy, else other) and reason code.",
            ),
            &["bot", "method", "reason"],
        )?;
        let shadowed = IntCounterVec::new(
            Opts::new(
                "slackgate_egress_shadowed_total",
                "Calls of bots in mode: shadow that a rule would have denied, forwarded anyway, by bot and would-be reason code.",
            ),
            &["bot", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "slackgate_egress_duration_seconds",
                "Time from a bot's call arriving to its answer, Slack's time included.",
            )
            .buckets(call_buckets.to_vec()),
            &["bot"],
        )?;
        let unused_scopes = IntGaugeVec::new(
            Opts::new(
                "slackgate_egress_unused_scopes",
                "Scopes granted to a bot's token that none of its calls so far needed (x-oauth-scopes minus x-accepted-oauth-scopes seen).",
            ),
            &["bot"],
        )?;
        let slack_429 = IntCounterVec::new(
            Opts::new(
                "slackgate_egress_slack_rate_limits_total",
                "429 answers from Slack to a bot's calls (its Retry-After is then honoured locally).",
            ),
            &["bot"],
        )?;
        let token_state = IntGaugeVec::new(
            Opts::new(
                "slackgate_egress_token_state",
                "1 for the state of a bot's token: active, or revoked by a verified app_uninstalled or tokens_revoked (its calls are answered token_revoked until its token reference changes).",
            ),
            &["bot", "state"],
        )?;
        let token_refreshes = IntCounterVec::new(
            Opts::new(
                "slackgate_token_refreshes_total",
                "Token rotation refresh attempts per bot: ok, retry (Slack unreachable or busy; the current token serves), invalid_refresh_token and rejected (not retried: the refresh is stuck), state_error (the state store failed).",
            ),
            &["bot", "result"],
        )?;
        let token_expiry = GaugeVec::new(
            Opts::new(
                "slackgate_token_expiry_timestamp_seconds",
                "Unix time a rotating bot's current token expires (refreshed at half its life).",
            ),
            &["bot"],
        )?;
        let token_refresh_stuck = IntGaugeVec::new(
            Opts::new(
                "slackgate_token_refresh_stuck",
                "1 when Slack refused a rotating bot's refresh and it is not retried: reinstall the app, point rotation.refresh_token at the new refresh token and reload.",
            ),
            &["bot"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(shadowed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(unused_scopes.clone()))?;
        registry.register(Box::new(slack_429.clone()))?;
        registry.register(Box::new(token_state.clone()))?;
        registry.register(Box::new(token_refreshes.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(token_refresh_stuck.clone()))?;
        Ok(Self {
            requests,
            shadowed,
            duration,
            unused_scopes,
            slack_429,
            token_state,
            token_refreshes,
            token_expiry,
            token_refresh_stuck,
        })
    }

    /// Sets `slackgate_egress_unused_scopes{bot}`.
    pub fn show_unused_scopes(&self, bot: &str, unused: usize) {
        self.unused_scopes
            .with_label_values(&[bot])
            .set(i64::try_from(unused).unwrap_or(i64::MAX));
    }

    /// Sets `slackgate_egress_token_state` and the rotation gauges for the bots of the
    /// running policy; the series of bots no longer in the policy are dropped (called
    /// under the metrics' lock: [`super::Metrics::observe_token_states`]).
    pub(super) fn observe_token_states<'b>(&self, bots: impl Iterator<Item = BotTokenView<'b>>) {
        self.token_state.reset();
        self.token_expiry.reset();
        self.token_refresh_stuck.reset();
        for b in bots {
            let states: &[&str] = if b.rotating {
                &["active", "revoked", "pending", "expired"]
            } else {
                &["active", "revoked"]
            };
            for s in states {
                self.token_state
                    .with_label_values(&[b.name, s])
                    .set(i64::from(*s == b.state));
            }
            if b.rotating {
                if let Some(t) = b.expires_at {
                    self.token_expiry.with_label_values(&[b.name]).set(t as f64);
                }
                self.token_refresh_stuck
                    .with_label_values(&[b.name])
                    .set(i64::from(b.stuck));
                for r in crate::core::labels::TokenRefreshResult::ALL {
                    self.token_refreshes
                        .with_label_values(&[b.name, r.as_str()]);
                }
            }
        }
    }
}
