//! Secret custody at the inbound door: what a route with `resign`, `response_urls:
//! custody` or `workflow_tokens: custody` forwards (the contract: `docs/policy.md`,
//! "Secret custody").
//!
//! [`prepare`] runs on verified requests the guard decided to forward, after the
//! upstream pool was found: response URLs and workflow tokens are taken into the guard's
//! [`Custody`](slackgate_guard::Custody) under fresh capabilities
//! ([`crate::core::capability::mint`]) bound to the route's `bot`, and replaced in the
//! body in place (`slackgate_slack::take_into_custody`); then, with `resign`, the body as
//! forwarded is signed with the route's key and a fresh timestamp. A capability that
//! cannot be minted refuses the request (fail closed). Nothing here logs or records a
//! URL or a token. [`Keeper`] is public for the benchmarks (`benches/benches/custody.rs`),
//! which drive the same code the door runs.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use slackgate_guard::{unix_secs, Custody, Reason, ResponseUrl, StateOp, WorkflowToken};
use slackgate_policy::{Route, StateFailure};
use slackgate_slack::{take_into_custody_decoded, CustodyError, CustodyHint, Held, Wants};

use crate::core::capability::{
    mint_after, CAPABILITY_LEN, WORKFLOW_KEY_PREFIX, WORKFLOW_TOKEN_TTL,
};
use crate::core::held::Minted;
use crate::core::state::{Shared, Snapshot};
use crate::inbound::record::AuditFacts;

/// A request the guard decided to forward: its body, what the guard's reading of it
/// taught custody ([`slackgate_slack::Facts::custody`], reused here rather than read
/// again) and the guard's reason.
pub(crate) struct Verified<'b> {
    pub(crate) body: &'b Bytes,
    pub(crate) hint: Option<&'b CustodyHint<'b>>,
    pub(crate) reason: Reason,
}

/// What is forwarded: the body (rewritten or as received) and, with `resign`, the
/// gateway's signature of it.
#[derive(Debug)]
pub struct Prepared {
    /// The body as rewritten, or `None` when it is forwarded as received.
    pub body: Option<Bytes>,
    /// `None` without `resign`; `Some(None)` with `resign` on a request that was not
    /// verified (shadow mode): Slack's headers are dropped and nothing is signed.
    pub resign: Option<Option<Signed>>,
    /// The capabilities minted for it, when they are shared with the other replicas
    /// through Redis (before it is forwarded); empty without Redis.
    pub minted: Vec<Minted>,
}

/// The gateway's v0 signature of the forwarded body.
#[derive(Debug)]
pub struct Signed {
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: String,
    /// `X-Slack-Signature`.
    pub signature: String,
}

/// The body and signature to forward on `route`, or the reason to refuse the request.
/// `verified` is whether one of the app's secrets verified it: an unverified request
/// (forwarded by a shadow route) is neither rewritten nor signed.
pub(crate) fn prepare(
    shared: &Shared,
    snap: &Snapshot,
    route: &Route,
    facts: &AuditFacts,
    content_type: Option<&str>,
    request: &Verified<'_>,
    verified: bool,
) -> Result<Prepared, Reason> {
    if route.resign.is_none() {
        // A plain route: forwarded as received, nothing read, no clock.
        return Ok(Prepared {
            body: None,
            resign: None,
            minted: Vec::new(),
        });
    }
    let custody = route.response_urls.is_on() || route.workflow_tokens.is_on();
    if custody && verified && facts.kind.is_none() {
        // Verified but not a Slack body (a shadow route forwards malformed payloads):
        // what it may hold cannot be found, so it is not forwarded.
        return Err(Reason::MalformedPayload);
    }
    let keeper = Keeper {
        custody: shared.guard.custody(),
        public_url: snap
            .config
            .egress
            .as_ref()
            .and_then(|e| e.public_url.as_deref()),
        channel: facts.text(&facts.channel_id),
        team: facts.text(&facts.team_id),
        execution: facts.text(&facts.function_execution_id),
        hint: request.hint,
        share: shared.remote.is_some(),
        now: shared.guard.now_secs(),
    };
    keeper.prepare(route, content_type, request.body, verified)
}

/// With Redis: shares the capabilities minted for one request with every replica before
/// it is forwarded (one round trip). When Redis fails, the route's `state_failure` says:
/// forwarded with capabilities that work on this replica only (`fail_open`, counted in
/// `slackgate_state_fallbacks_total{op="custody"}`), or refused `state_unavailable`
/// (`fail_closed`, rule `state.custody`), the `Err`.
pub(crate) async fn share(
    shared: &Shared,
    route: &Route,
    minted: &[Minted],
) -> Result<(), &'static str> {
    let Some(redis) = shared.remote.as_deref().filter(|_| !minted.is_empty()) else {
        return Ok(());
    };
    let Err(e) = crate::core::held::share(redis, minted, shared.guard.now_secs()).await else {
        return Ok(());
    };
    log::warn!(
        "route {}: sharing custody capabilities through Redis failed ({e}); {}",
        route.name,
        match route.state_failure {
            StateFailure::FailOpen => "forwarded, they work on this replica only",
            StateFailure::FailClosed => "the request is refused",
        }
    );
    match route.state_failure {
        StateFailure::FailOpen => {
            shared.metrics.count_fallback(StateOp::Custody);
            Ok(())
        }
        StateFailure::FailClosed => Err(StateOp::Custody.rule()),
    }
}

/// The gateway's signature of `body`, timestamped with the wall clock (what the bot's
/// verifier compares it with).
pub fn sign(key: &slackgate_slack::SigningKey, body: &[u8]) -> Signed {
    let timestamp = unix_secs(SystemTime::now()).to_string();
    let signature = key.sign(&timestamp, body);
    Signed {
        timestamp,
        signature,
    }
}

/// Holds what one request hands over: where, and the request's facts it is bound with.
#[derive(Debug)]
pub struct Keeper<'a> {
    /// The guard's store.
    pub custody: &'a Custody,
    /// `egress.public_url`: the base of response-URL capabilities.
    pub public_url: Option<&'a str>,
    /// The request's channel (a response URL posts there unless it names its own).
    pub channel: Option<&'a str>,
    /// The request's team.
    pub team: Option<&'a str>,
    /// The request's function execution (for a workflow token that names none).
    pub execution: Option<&'a str>,
    /// What the guard's reading of the body taught custody ([`Facts::custody`]: the
    /// decoded interactivity `payload`, where custody's fields are), reused rather than
    /// read again.
    ///
    /// [`Facts::custody`]: slackgate_slack::Facts::custody
    pub hint: Option<&'a CustodyHint<'a>>,
    /// Whether the capabilities are shared with other replicas (Redis): only then are
    /// they listed in [`Prepared::minted`].
    pub share: bool,
    /// The guard clock's now, in unix seconds.
    pub now: f64,
}

impl Keeper<'_> {
    /// The body and signature to forward on `route` (see [`prepare`]).
    pub fn prepare(
        &self,
        route: &Route,
        content_type: Option<&str>,
        body: &[u8],
        verified: bool,
    ) -> Result<Prepared, Reason> {
        let Some(resign) = &route.resign else {
            return Ok(Prepared {
                body: None,
                resign: None,
                minted: Vec::new(),
            });
        };
        if !verified {
            return Ok(Prepared {
                body: None,
                resign: Some(None),
                minted: Vec::new(),
            });
        }
        let wants = Wants {
            response_urls: route.response_urls.is_on(),
            workflow_tokens: route.workflow_tokens.is_on(),
        };
        let mut minted = Vec::new();
        let rewritten = match (wants.any(), &route.bot) {
            (false, _) => None,
            (true, Some(bot)) => {
                let hold = |h: Held<'_>| self.hold(bot, h, &mut minted);
                match take_into_custody_decoded(content_type, body, wants, self.hint, hold) {
                    Ok(Some(rewritten)) => Some(Bytes::from(rewritten)),
                    Ok(None) => None,
                    Err(CustodyError::Refused) => {
                        log::warn!(
                            "route {}: a capability could not be minted or held; the request is refused",
                            route.name
                        );
                        return Err(Reason::StateUnavailable);
                    }
                    Err(CustodyError::Unreadable) => return Err(Reason::MalformedPayload),
                }
            }
            // The policy never loads custody without `bot`; refuse rather than forward.
            (true, None) => return Err(Reason::StateUnavailable),
        };
        Ok(Prepared {
            resign: Some(Some(sign(
                &resign.key,
                rewritten.as_deref().unwrap_or(body),
            ))),
            body: rewritten,
            minted,
        })
    }

    /// Holds `held` for `bot` under a fresh capability, noted in `minted` when it is
    /// shared; what the bot gets in its place.
    fn hold(&self, bot: &Arc<str>, held: Held<'_>, minted: &mut Vec<Minted>) -> Option<String> {
        match held {
            Held::ResponseUrl { url, channel } => {
                // What the bot gets, ending in the capability: one string for both.
                let given = mint_after(&[self.public_url?, "respond/"])?;
                let cap = given.get(given.len() - CAPABILITY_LEN..)?;
                let kept = ResponseUrl {
                    bot: Arc::clone(bot),
                    channel: channel.or(self.channel).map(Arc::from),
                    team: self.team.map(Arc::from),
                    url: Arc::from(url),
                };
                if self.share {
                    minted.push(Minted::Response {
                        cap: cap.to_owned(),
                        held: kept.clone(),
                        until: self.now + slackgate_guard::RESPONSE_URL_TTL,
                    });
                }
                self.custody.hold_response_url(cap, kept, self.now);
                Some(given)
            }
            Held::WorkflowToken {
                token,
                function_execution_id,
            } => {
                let key = mint_after(&[WORKFLOW_KEY_PREFIX])?;
                let kept = WorkflowToken {
                    bot: Arc::clone(bot),
                    function_execution_id: Arc::from(
                        function_execution_id.or(self.execution).unwrap_or_default(),
                    ),
                    token: Arc::from(token),
                };
                let until = self.now + WORKFLOW_TOKEN_TTL;
                if self.share {
                    minted.push(Minted::Workflow {
                        key: key.clone(),
                        held: kept.clone(),
                        until,
                    });
                }
                self.custody.hold_workflow_token(&key, kept, until);
                Some(key)
            }
        }
    }
}
