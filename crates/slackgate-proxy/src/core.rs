//! What both doors run on: the running snapshot and shared state (`state`), the audit
//! sink (`audit`), the metrics (`metrics`) and the Redis backend (`redis`).

pub mod audit;
pub mod capability;
pub mod held;
pub mod labels;
pub mod metrics;
pub mod redis;
pub mod shape;
pub mod state;
pub mod time;
