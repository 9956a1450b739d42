//! The inbound door (Slack -> bots): the pipeline over either path (`gateway`), the
//! request's record (`record`), secret custody of what is forwarded (`custody`: re-signing,
//! response URLs and workflow tokens) and the upstream pools (`upstream`). It never imports the
//! egress door; the two meet in the guard and in `replicate`.

pub mod custody;
pub mod gateway;
pub(crate) mod record;
pub mod upstream;
