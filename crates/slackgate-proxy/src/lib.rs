//! pingora glue for slackgate: the front and the pipeline, the upstream client, TLS
//! listeners, the admin and metrics service, policy reloads and the audit sink.
//!
//! Decisions are made by `slackgate-guard`; this crate only moves bytes, keeps the
//! running snapshot in an `ArcSwap`, and reports what happened. It is the only crate
//! besides the binary that depends on pingora.
//!
//! Where things are, in the order a request meets them:
//! - `front`: every HTTP/1 connection of every listener (inbound, egress, admin), each
//!   behind its door; reads each head within the limits, has `http1` judge it (the one
//!   definition of a valid head, for both paths), serves plain requests on the door's
//!   fast path and hands the rest, one at a time, to pingora's session (`handover`);
//!   caps each listener's connections (`fds` fits the caps under the descriptor limit)
//!   and closes gently (lingering close).
//! - [`gateway`]: the pipeline over any `Downstream` (`downstream`: the fast path's
//!   request or pingora's session), from route to answer; `record`: the request's
//!   state, its audit record and metrics.
//! - [`upstream`] and [`client`]: pools, health and the round trip to a bot.
//! - [`egress`]: the egress door (bots -> Slack Web API): its pipeline (behind the same
//!   front), the TLS client to Slack, the scope ledger.
//! - [`groups`]: the members of the policy's Slack user groups, read with a bot's token
//!   and kept in the guard.
//! - [`server`]: builds the pingora server; `services`: its background services;
//!   [`signals`]: the operator's signals; [`watch`]: file-change reloads;
//!   [`state`]: the running snapshot; [`admin`], [`metrics`], [`audit`], [`tls`],
//!   [`redis`].

pub mod admin;
pub mod audit;
pub mod client;
mod downstream;
pub mod egress;
mod fds;
mod forward;
mod front;
pub mod gateway;
pub mod groups;
mod handover;
mod http1;
pub mod metrics;
mod record;
pub mod redis;
pub mod server;
mod services;
pub mod signals;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod watch;
mod wire;

pub use audit::{AuditRecord, AuditTarget, AuditView};
pub use server::{build, run, start, Options, RunningGateway, StartError};
pub use state::{ReloadOutcome, Shared, Snapshot};
