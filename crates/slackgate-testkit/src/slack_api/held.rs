//! The capabilities the stand-in handed out (response URLs, upload URLs, workflow
//! tokens) and what was done with them: the data `custody.rs` serves from.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many posts Slack accepts on one response URL.
pub const RESPONSE_URL_USES: u8 = 5;

/// How long Slack accepts posts on a response URL.
pub const RESPONSE_URL_TTL: Duration = Duration::from_secs(30 * 60);

/// One response URL handed out.
#[derive(Debug)]
pub(super) struct ResponseUrl {
    pub(super) made: Instant,
    pub(super) uses: u8,
}

/// One upload URL handed out.
#[derive(Debug)]
pub(super) struct Upload {
    pub(super) file_id: String,
    pub(super) bytes: Option<Vec<u8>>,
}

/// The capabilities the stand-in handed out, and what was done with them.
#[derive(Debug, Default)]
pub(super) struct Capabilities {
    /// `scheme://host:port` of the stand-in.
    pub(super) base: String,
    pub(super) seq: u64,
    /// By path.
    pub(super) responses: HashMap<String, ResponseUrl>,
    /// By upload id (the last path segment).
    pub(super) uploads: HashMap<String, Upload>,
    /// Files completed by `files.completeUploadExternal`.
    pub(super) completed_files: Vec<String>,
    /// Workflow tokens: token to its function execution.
    pub(super) workflow: HashMap<String, String>,
    /// Executions completed: (function_execution_id, success).
    pub(super) completed: Vec<(String, bool)>,
}

impl Capabilities {
    /// A fresh response URL for `team` (`kind` is `commands` or `actions`).
    pub(super) fn response_url(&mut self, kind: &str, team: &str, now: Instant) -> String {
        self.seq += 1;
        let path = format!(
            "/{kind}/{team}/{}/standin{:016x}",
            self.seq,
            self.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        self.responses
            .insert(path.clone(), ResponseUrl { made: now, uses: 0 });
        format!("{}{path}", self.base)
    }
}
