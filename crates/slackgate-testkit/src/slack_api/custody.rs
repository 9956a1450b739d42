//! What Slack hands an app as a bearer capability, modelled: response URLs, upload URLs
//! and workflow tokens (pure, time passed in).
//!
//! - Response URLs (<https://docs.slack.dev/interactivity/handling-user-interaction#message_responses>):
//!   `POST <base>/commands/<team>/<id>/<secret>` (or `/actions/...`) with a JSON message;
//!   each URL takes [`RESPONSE_URL_USES`] posts within [`RESPONSE_URL_TTL`], then answers
//!   404 `used_url` (uses spent) or `expired_url` (time passed); an unknown one 404
//!   `not_found`. The stand-in answers JSON (`{"ok":true}`) where Slack answers text.
//! - Uploads (<https://docs.slack.dev/messaging/working-with-files#upload>):
//!   `files.getUploadURLExternal` (`filename`, `length`) answers an `upload_url` on this
//!   stand-in (`<base>/upload/v1/<id>`) and a `file_id`; the URL takes one POST of the
//!   bytes (raw or `multipart/form-data`, any length: Slack does not document a check);
//!   `files.completeUploadExternal` (`files`: a JSON list of `{id, title}`) completes
//!   uploaded files and answers `file_not_found` for one not uploaded.
//! - Workflow tokens (<https://docs.slack.dev/workflows/workflow-steps>):
//!   `functions.completeSuccess` (`function_execution_id`, `outputs`) and
//!   `functions.completeError` (`function_execution_id`, `error`) take only the workflow
//!   token of that execution (`invalid_auth` for another token,
//!   `function_execution_not_found` for another execution); the token works for other
//!   methods too, and ends with the completion (`token_expired` after).

use std::time::Instant;

use serde_json::{json, Value};

use super::args::Args;
use super::held::{Upload, RESPONSE_URL_TTL, RESPONSE_URL_USES};
use super::workspace::{Call, Grant, Reply, Workspace};

/// Whether `path` is where a response URL lives.
fn is_response_path(path: &str) -> bool {
    path.starts_with("/commands/") || path.starts_with("/actions/")
}

impl Workspace {
    /// A request outside `/api/`: a response URL or an upload URL.
    pub(super) fn capability_call(&mut self, path: &str, call: Call<'_>, now: Instant) -> Reply {
        let not_found = || Reply::new(404, json!({"ok": false, "error": "not_found"}));
        if call.http_method != "POST" {
            return if is_response_path(path) || path.starts_with("/upload/") {
                Reply::new(405, json!({"ok": false, "error": "method_not_allowed"}))
            } else {
                not_found()
            };
        }
        if is_response_path(path) {
            let Some(url) = self.capabilities.responses.get_mut(path) else {
                return not_found();
            };
            if now.duration_since(url.made) >= RESPONSE_URL_TTL {
                return Reply::new(404, json!({"ok": false, "error": "expired_url"}));
            }
            if url.uses >= RESPONSE_URL_USES {
                return Reply::new(404, json!({"ok": false, "error": "used_url"}));
            }
            return match Args::read("", call.headers, call.body) {
                Ok(_) if serde_json::from_slice::<Value>(call.body).is_ok() => {
                    url.uses += 1;
                    Reply::new(200, json!({"ok": true}))
                }
                _ => Reply::new(400, json!({"ok": false, "error": "invalid_payload"})),
            };
        }
        if let Some(id) = path.strip_prefix("/upload/v1/") {
            return match self.capabilities.uploads.get_mut(id) {
                Some(u) if u.bytes.is_none() => {
                    u.bytes = Some(call.body.to_vec());
                    Reply::new(200, json!({"ok": true, "size": call.body.len()}))
                }
                Some(_) => Reply::new(404, json!({"ok": false, "error": "used_url"})),
                None => not_found(),
            };
        }
        not_found()
    }

    /// The custody methods (uploads, workflow completion) for a call that passed
    /// authentication and scopes.
    pub(super) fn capability_method(&mut self, name: &str, token: &str, args: &Args) -> Reply {
        let caps = &mut self.capabilities;
        match name {
            "files.getUploadURLExternal" => {
                let filename = args.get("filename").filter(|f| !f.is_empty());
                let length = args.get("length").and_then(|l| l.parse::<u64>().ok());
                let (Some(_), Some(_)) = (filename, length) else {
                    return Reply::error("invalid_arguments");
                };
                caps.seq += 1;
                let id = format!("standin{:08}", caps.seq);
                let file_id = format!("F0STANDIN{}", caps.seq);
                let upload_url = format!("{}/upload/v1/{id}", caps.base);
                caps.uploads.insert(
                    id,
                    Upload {
                        file_id: file_id.clone(),
                        bytes: None,
                    },
                );
                Reply::new(
                    200,
                    json!({"ok": true, "upload_url": upload_url, "file_id": file_id}),
                )
            }
            "files.completeUploadExternal" => {
                let files: Vec<Value> = args
                    .get("files")
                    .and_then(|f| serde_json::from_str(&f).ok())
                    .unwrap_or_default();
                let ids: Vec<String> = files
                    .iter()
                    .filter_map(|f| f.get("id")?.as_str().map(str::to_owned))
                    .collect();
                let uploaded = |id: &String| {
                    caps.uploads
                        .values()
                        .any(|u| u.file_id == *id && u.bytes.is_some())
                };
                if ids.is_empty() || !ids.iter().all(uploaded) {
                    return Reply::error("file_not_found");
                }
                caps.completed_files.extend(ids.iter().cloned());
                let files: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
                Reply::new(200, json!({"ok": true, "files": files}))
            }
            "functions.completeSuccess" | "functions.completeError" => {
                let Some(execution) = caps.workflow.get(token).cloned() else {
                    return Reply::error("invalid_auth");
                };
                if args.get("function_execution_id").as_deref() != Some(execution.as_str()) {
                    return Reply::error("function_execution_not_found");
                }
                caps.completed
                    .push((execution, name == "functions.completeSuccess"));
                // The workflow token ends with its execution.
                caps.workflow.remove(token);
                if let Some(g) = self.tokens.get_mut(token) {
                    g.expires = Some(Instant::now());
                }
                Reply::new(200, json!({"ok": true}))
            }
            _ => Reply::error("unknown_method"),
        }
    }

    /// Grants a workflow token of `execution` on `team`.
    pub(super) fn grant_workflow_token(&mut self, token: &str, team: &str, execution: &str) {
        self.tokens
            .insert(token.to_owned(), Grant::new(team, &["chat:write"]));
        self.capabilities
            .workflow
            .insert(token.to_owned(), execution.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(w: &mut Workspace, path: &str, at: Instant) -> Option<String> {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let call = Call {
            http_method: "POST",
            target: path,
            headers: &headers,
            body: br#"{"text":"x"}"#,
        };
        let a = w.call(call, at).answer();
        assert_eq!(a.ok, a.status == 200);
        a.error
    }

    #[test]
    fn a_response_url_takes_five_posts_within_thirty_minutes() {
        let t0 = Instant::now();
        let mut w = Workspace::new(0);
        w.capabilities.base = "https://standin".to_owned();
        let used = w.capabilities.response_url("commands", "T0", t0);
        let used = used.trim_start_matches("https://standin").to_owned();
        for _ in 0..RESPONSE_URL_USES {
            assert_eq!(post(&mut w, &used, t0), None);
        }
        assert_eq!(post(&mut w, &used, t0).as_deref(), Some("used_url"));
        let old = w.capabilities.response_url("actions", "T0", t0);
        let old = old.trim_start_matches("https://standin").to_owned();
        let later = t0 + RESPONSE_URL_TTL;
        assert_eq!(post(&mut w, &old, later).as_deref(), Some("expired_url"));
        assert_eq!(
            post(&mut w, "/commands/T0/9/nope", t0).as_deref(),
            Some("not_found")
        );
    }
}
