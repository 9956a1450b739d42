//! Wire code both doors share: the HTTP/1 judge (`http1`), the one connection front of
//! every listener (`front`) with its hand-over to pingora (`handover`) and the client side
//! of a request (`downstream`), the upstream HTTP/1 client (`client`), the client for
//! Slack's Web API and webhooks over it (`slack_client`), their idle connections (`pool`), TLS (`tls`), wire helpers, and the
//! descriptor budget (`fds`). Nothing here knows a door's rules.

pub mod client;
pub(crate) mod conn;
pub(crate) mod downstream;
pub(crate) mod fds;
pub(crate) mod forward;
pub(crate) mod front;
pub(crate) mod handover;
pub(crate) mod http1;
pub(crate) mod pool;
pub(crate) mod slack_client;
pub mod tls;
pub(crate) mod upstream_head;
pub(crate) mod wire;

pub use slack_client::SlackClientError;
