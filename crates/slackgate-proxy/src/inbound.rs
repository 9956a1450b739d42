//! The inbound door (Slack -> bots): the pipeline over either path (`gateway`), the
//! request's record (`record`) and the upstream pools (`upstream`). It never imports the
//! egress door; the two meet in the guard and in `replicate`.

pub mod gateway;
pub(crate) mod record;
pub mod upstream;
