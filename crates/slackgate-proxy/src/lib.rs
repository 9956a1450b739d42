//! pingora glue for slackgate: the front and the pipeline, the upstream client, TLS
//! listeners, the admin and metrics service, policy reloads and the audit sink.
//!
//! Decisions are made by `slackgate-guard`; this crate only moves bytes, keeps the
//! running snapshot in an `ArcSwap`, and reports what happened. It is the only crate
//! besides the binary that depends on pingora.
//!
//! Where things are (folders by direction, as pingora-core's `listeners`/`connectors`/
//! `protocols` and linkerd2-proxy's inbound/outbound):
//!
//! | folder | what |
//! |---|---|
//! | [`net`] | wire code both doors share: `front` (every HTTP/1 connection of every listener, behind its `Door`: head judge `http1`, deadlines, limits, connection cap, lingering close; hand-over to pingora's session in `handover`), `downstream` (the client side of a request on either path), [`client`] (the upstream HTTP/1 client), `slack_client` (the client to Slack's Web API and webhooks, one for the egress door, token rotation and the group reads), [`tls`], `fds` (the descriptor budget) |
//! | [`core`] | what both doors run on: [`state`] (the running snapshot, reloads), [`audit`], [`metrics`], [`redis`] |
//! | [`inbound`] | the inbound door (Slack -> bots): [`gateway`] (the pipeline from route to answer), `record` (its audit record and metrics), [`upstream`] (pools, health, the round trip to a bot) |
//! | [`egress`] | the egress door (bots -> Slack Web API): its pipeline behind the same front, token rotation, the scope ledger, what replicas share |
//! | `replicate` | what the doors share through Redis: reply windows seen inbound, revocations |
//! | [`socket`] | the Socket Mode bridge: the apps' WebSockets to Slack, each envelope run through the inbound pipeline and acked |
//! | [`groups`] | the members of the policy's Slack user groups, read with a bot's token and kept in the guard |
//! | [`server`] | the one place that wires them: listeners, doors, background services (`services`), [`signals`], [`watch`], [`admin`] |

pub mod admin;
pub mod core;
pub mod egress;
pub mod groups;
pub mod inbound;
pub mod net;
mod replicate;
pub mod server;
mod services;
pub mod signals;
pub mod socket;
pub mod watch;

// The paths the binary, the testkit and the benches use.
pub use crate::core::{audit, metrics, redis, state};
pub use crate::inbound::{gateway, upstream};
pub use crate::net::{client, tls};

pub use audit::{AuditRecord, AuditTarget, AuditView};
pub use server::{build, run, start, Options, RunningGateway, StartError};
pub use state::{ReloadOutcome, Shared, Snapshot};
