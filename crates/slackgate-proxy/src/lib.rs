//! pingora glue for slackgate: the front (head checks in `http1`, the fast path, pingora's
//! `ProxyHttp` for the rest),
//! the pipeline, the upstream client, TLS listeners, the admin and metrics service,
//! policy reloads and the audit sink.
//!
//! Decisions are made by `slackgate-guard`; this crate only moves bytes, keeps the
//! running snapshot in an `ArcSwap`, and reports what happened. It is the only crate
//! besides the binary that depends on pingora.

pub mod admin;
pub mod audit;
pub mod client;
mod downstream;
pub mod front;
pub mod gateway;
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
