//! `slackgate test`: policy tests as data. Each case of a tests file is a request and the
//! decision expected for it; every case runs through [`probe::decide`], the pipeline that
//! `explain` runs (and the gateway's guard stages), on the config, policy and secrets `run`
//! would load.
//!
//! The whole run sees one instant, its start: timestamps default to it and the guard's
//! clock stands still at it, so rate-limit buckets never refill during a run and a result
//! never depends on how fast the machine is.

mod body;
mod spec;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slackgate_guard::{FakeClock, Guard};
use slackgate_policy::{LoadErrors, Loaded, Route, SystemSecrets};
use slackgate_slack::{BodyEncoding, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::probe::{self, EgressHeaders, EgressProbe, PipelineHeaders, Probe, Verdict};
use spec::{
    Body, Call, CallKey, Case, Expect, Input, Request, Signing, StateScope, TestFile, Timestamp,
};

/// Exit status when a case failed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the config, the policy or a tests file could not be loaded.
const EXIT_LOAD_ERROR: u8 = 2;

/// Runs every case of every file in `tests` against `config`; prints each failure with the
/// actual decision and a summary; `verbose` also lists the cases that passed.
pub(crate) fn run(config: &Path, tests: &[PathBuf], verbose: bool) -> ExitCode {
    let start = SystemTime::now();
    let now = start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let loaded = match slackgate_policy::load(config, &SystemSecrets, start) {
        Ok(loaded) => loaded,
        Err(errors) => return load_failed(&errors),
    };
    let mut tally = Tally::default();
    let mut load_error = false;
    for file in tests {
        let loaded_file = std::fs::read(file)
            .map_err(|e| {
                LoadErrors::from(slackgate_policy::LoadError::whole_file(
                    file,
                    format!("the tests file cannot be read: {e}"),
                    "check the path and its permissions",
                ))
            })
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| {
                    LoadErrors::from(slackgate_policy::LoadError::whole_file(
                        file,
                        "the tests file is not valid UTF-8",
                        "save the file as UTF-8 text",
                    ))
                })
            })
            .and_then(|text| spec::load(file, &text, &loaded));
        match loaded_file {
            Ok(tests) => run_file(file, &tests, &loaded, now, verbose, &mut tally),
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.len());
                load_error = true;
            }
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if load_error {
        ExitCode::from(EXIT_LOAD_ERROR)
    } else if tally.failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn load_failed(errors: &LoadErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!("{} error(s)", errors.len());
    ExitCode::from(EXIT_LOAD_ERROR)
}

#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

fn run_file(
    file: &Path,
    tests: &TestFile,
    loaded: &Loaded,
    now: i64,
    verbose: bool,
    tally: &mut Tally,
) {
    let clock_at = u64::try_from(now).unwrap_or(0);
    let shared =
        (tests.state == StateScope::Shared).then(|| probe::offline_guard(FakeClock::at(clock_at)));
    for case in &tests.cases {
        let fresh;
        let guard: &Guard<FakeClock> = match &shared {
            Some(g) => g,
            None => {
                fresh = probe::offline_guard(FakeClock::at(clock_at));
                &fresh
            }
        };
        let (line, column) = case.at;
        let outcome = run_case(case, loaded, guard, now);
        match mismatches(&case.expect, &outcome) {
            None => {
                tally.passed += 1;
                if verbose {
                    println!("ok    {}:{line}:{column}: {}", file.display(), case.name);
                }
            }
            Some(wrong) => {
                tally.failed += 1;
                println!("FAIL  {}:{line}:{column}: {}", file.display(), case.name);
                println!("  expected: {}", describe_expected(&case.expect));
                println!("  actual:   {}", outcome.describe());
                println!("  differs:  {}", wrong.join(", "));
            }
        }
    }
}

/// The decision of one case, as compared and printed.
#[derive(Debug)]
struct Outcome {
    reason: &'static str,
    rule: Option<String>,
    shadow: bool,
    status: u16,
    route: Option<String>,
    secret_id: Option<String>,
    /// The bot a call was decided for (calls only).
    bot: Option<String>,
    /// Whether this is a call's decision (printed without the inbound-only fields).
    egress: bool,
}

impl Outcome {
    fn of(verdict: &Verdict<'_, '_>) -> Self {
        Self {
            reason: verdict.reason().as_str(),
            rule: verdict.rule().map(str::to_owned),
            shadow: verdict.shadow(),
            status: verdict.status(),
            route: verdict.route().map(|r| r.name.to_string()),
            secret_id: verdict.secret_id().map(str::to_owned),
            bot: None,
            egress: false,
        }
    }

    fn describe(&self) -> String {
        if self.egress {
            return format!(
                "reason {}, rule {}, status {}, bot {}",
                self.reason,
                self.rule.as_deref().unwrap_or("-"),
                self.status,
                self.bot.as_deref().unwrap_or("-"),
            );
        }
        format!(
            "reason {}, rule {}, shadow {}, status {}, route {}, secret_id {}",
            self.reason,
            self.rule.as_deref().unwrap_or("-"),
            self.shadow,
            self.status,
            self.route.as_deref().unwrap_or("-"),
            self.secret_id.as_deref().unwrap_or("-"),
        )
    }
}

fn describe_expected(e: &Expect) -> String {
    let mut parts = vec![format!("reason {}", e.reason)];
    if let Some(rule) = &e.rule {
        parts.push(format!("rule {rule}"));
    }
    if let Some(shadow) = e.shadow {
        parts.push(format!("shadow {shadow}"));
    }
    if let Some(status) = e.status {
        parts.push(format!("status {status}"));
    }
    if let Some(route) = &e.route {
        parts.push(format!("route {route}"));
    }
    if let Some(id) = &e.secret_id {
        parts.push(format!("secret_id {id}"));
    }
    if let Some(bot) = &e.bot {
        parts.push(format!("bot {bot}"));
    }
    parts.join(", ")
}

/// The names of the expected fields the outcome does not meet, or `None` when it meets all.
fn mismatches(e: &Expect, o: &Outcome) -> Option<Vec<&'static str>> {
    let mut wrong = Vec::new();
    if e.reason != o.reason {
        wrong.push("reason");
    }
    if e.bot.as_ref().is_some_and(|b| Some(b) != o.bot.as_ref()) {
        wrong.push("bot");
    }
    if e.rule.as_ref().is_some_and(|r| Some(r) != o.rule.as_ref()) {
        wrong.push("rule");
    }
    if e.shadow.is_some_and(|s| s != o.shadow) {
        wrong.push("shadow");
    }
    if e.status.is_some_and(|s| s != o.status) {
        wrong.push("status");
    }
    if e.route
        .as_ref()
        .is_some_and(|r| Some(r) != o.route.as_ref())
    {
        wrong.push("route");
    }
    if e.secret_id
        .as_ref()
        .is_some_and(|s| Some(s) != o.secret_id.as_ref())
    {
        wrong.push("secret_id");
    }
    (!wrong.is_empty()).then_some(wrong)
}

/// Decides the case's request or call.
fn run_case(case: &Case, loaded: &Loaded, guard: &Guard<FakeClock>, now: i64) -> Outcome {
    match &case.input {
        Input::Inbound(req) => run_request(req, loaded, guard, now),
        Input::Egress(call) => run_call(call, loaded, guard, now),
    }
}

/// Builds a bot's call (its key from the policy's secrets, never printed) and decides it
/// as the egress listener does. `replied_in` channels are recorded for the bot's app at
/// the run's instant first, as if they had just sent it a verified request.
fn run_call(call: &Call, loaded: &Loaded, guard: &Guard<FakeClock>, now: i64) -> Outcome {
    let bot = match &call.key {
        CallKey::Bot(name) => loaded.policy.bots.by_name(name),
        CallKey::None | CallKey::Wrong => None,
    };
    let mut headers = EgressHeaders::default();
    match (&call.key, bot) {
        (CallKey::Bot(_), Some(b)) => {
            headers.add("authorization", &format!("Bearer {}", b.key.expose()))
        }
        (CallKey::Wrong, _) => headers.add("authorization", &format!("Bearer {}", spec::WRONG_KEY)),
        _ => {}
    }
    headers.add("content-type", call.content_type);
    if let Some(app) = bot.and_then(|b| b.app.as_ref()) {
        for channel in &call.replied_in {
            guard.note_reply_seen(&app.name, channel, now as f64);
        }
    }
    let path = format!("/api/{}", call.method);
    let d = probe::decide_egress(
        loaded,
        guard,
        &EgressProbe {
            path: &path,
            query: call.query.as_deref(),
            headers: &headers,
            body: &call.body,
        },
    );
    Outcome {
        reason: d.reason.as_str(),
        rule: d.rule.as_deref().map(str::to_owned),
        shadow: false,
        status: d.reason.status(),
        route: None,
        secret_id: None,
        bot: d.bot.as_ref().map(|b| b.name.to_string()),
        egress: true,
    }
}

/// Builds the case's request (body, signature, headers) and decides it.
fn run_request(req: &Request, loaded: &Loaded, guard: &Guard<FakeClock>, now: i64) -> Outcome {
    let given = PipelineHeaders::from_pairs(&req.headers);
    let route = probe::route(loaded, req.host.as_deref(), &req.path, &given);
    let app_pin = route.and_then(|r| r.app.api_app_id.as_deref());
    let signed_at = match req.timestamp {
        Timestamp::Offset(secs) => now.saturating_add(secs),
        Timestamp::At(t) => t,
    };
    let (body, content_type) = match &req.body {
        Body::Literal(bytes) => (
            bytes.clone(),
            content_type(BodyEncoding::detect(None, bytes)),
        ),
        Body::Event(e) => (
            body::event(e, app_pin, signed_at),
            content_type(BodyEncoding::Json),
        ),
        Body::Command(c) => (body::command(c, app_pin), content_type(BodyEncoding::Form)),
        Body::Action(a, kind) => (
            body::action(a, *kind, app_pin),
            content_type(BodyEncoding::Form),
        ),
    };
    let mut headers = PipelineHeaders::default();
    headers.set("content-type", content_type);
    let ts = signed_at.to_string();
    if let Some(signature) = route.and_then(|r| signature(r, &req.signing, &ts, &body, now)) {
        headers.set(TIMESTAMP_HEADER, &ts);
        headers.set(SIGNATURE_HEADER, &signature);
    }
    headers.extend(&req.headers);
    let probe = Probe {
        host: req.host.as_deref(),
        path: &req.path,
        client_ip: req.client_ip,
        headers: &headers,
        body: &body,
    };
    Outcome::of(&probe::decide(loaded, guard, &probe))
}

fn content_type(encoding: BodyEncoding) -> &'static str {
    match encoding {
        BodyEncoding::Json => "application/json",
        BodyEncoding::Form => "application/x-www-form-urlencoded",
    }
}

/// The `X-Slack-Signature` of a case: made with the route's app's secret (never shown),
/// `None` for `signature: none`.
fn signature(route: &Route, signing: &Signing, ts: &str, body: &[u8], now: i64) -> Option<String> {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    let key = match signing {
        Signing::None => return None,
        Signing::Valid { secret: Some(id) } => {
            &route.app.secrets.iter().find(|s| s.key.id() == id)?.key
        }
        Signing::Valid { secret: None } | Signing::Bad => route.app.live_keys(at).next()?,
    };
    let valid = key.sign(ts, body);
    if *signing != Signing::Bad {
        return Some(valid);
    }
    // Well-formed, and wrong for every secret: the valid signature with its last digit changed.
    let mut bad = valid;
    let last = if bad.ends_with('0') { '1' } else { '0' };
    bad.pop();
    bad.push(last);
    Some(bad)
}
