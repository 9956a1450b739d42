//! The `slackgate` command: `run`, `check`, `sign`, `explain`, `test`, `suggest`, `demo`.
//!
//! Thin by design: argument parsing and output formatting only; the work happens in
//! the library crates.

mod demo;
mod policy_test;
mod probe;
mod suggest;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use slackgate_guard::{Clock, SystemClock};
use slackgate_policy::SystemSecrets;
use slackgate_slack::SigningKey;

use probe::{EgressHeaders, EgressProbe, PipelineHeaders, Probe, Verdict};

#[derive(Debug, Parser)]
#[command(
    name = "slackgate",
    version,
    about = "A security gateway for Slack apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve: SIGHUP reloads the policy, SIGQUIT + `run --upgrade` upgrades with zero downtime,
    /// SIGTERM drains gracefully, SIGUSR1 reopens the audit file.
    Run {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Take over the listeners of a running slackgate (send it SIGQUIT right after).
        #[arg(long)]
        upgrade: bool,
        /// Socket the old and new process hand listeners over on.
        #[arg(long, default_value = "/tmp/slackgate_upgrade.sock")]
        upgrade_sock: PathBuf,
        /// Worker threads (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Validate config, policy and secret references; exit 1 listing every error.
    Check {
        /// The config file (checked with the policy it names), or a policy file alone.
        config: PathBuf,
    },
    /// Print the two Slack signature headers for the body on standard input.
    ///
    /// With `--resign-env`, also what a bot behind a route with `resign` receives for it:
    /// the gateway's own two headers, signed with the route's `resign` secret (the one
    /// the bot verifies with), in place of Slack's.
    Sign {
        /// Environment variable holding the signing secret.
        #[arg(long)]
        secret_env: String,
        /// Unix timestamp to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Environment variable holding a route's `resign` secret (the bot's).
        #[arg(long)]
        resign_env: Option<String>,
    },
    /// Show the decision for the request body on standard input, without any network.
    ///
    /// With `--egress`, the request is a bot's Web API call to the egress door
    /// (`--path /api/METHOD`, its key in `--header 'Authorization: Bearer KEY'` or in a
    /// `token` argument), decided as the egress listener decides it. Neither the key nor
    /// the bot's token is ever printed.
    Explain {
        /// The config file, or a policy file alone (with the default limits).
        #[arg(short, long)]
        config: PathBuf,
        /// Request path (with `--egress` it may carry a `?query`).
        #[arg(long)]
        path: String,
        /// Request header `Name: value` (repeatable).
        #[arg(long = "header", value_name = "K:V")]
        headers: Vec<String>,
        /// Host header.
        #[arg(long, conflicts_with = "egress")]
        host: Option<String>,
        /// Client address (default 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1", conflicts_with = "egress")]
        client_ip: IpAddr,
        /// Decide a bot's Web API call on the egress door instead of an inbound request.
        #[arg(long)]
        egress: bool,
        /// The call's query string, without `?` (or write it into `--path`).
        #[arg(long, requires = "egress")]
        query: Option<String>,
        /// For a bot with `reply_scope`: decide as if this channel had just sent the bot's
        /// app a verified request (repeatable). Without it no channel is in the window.
        #[arg(long = "replied-in", value_name = "CHANNEL", requires = "egress")]
        replied_in: Vec<String>,
    },
    /// Run policy tests: each case of a tests file is a request and the decision expected
    /// for it, decided by the pipeline `explain` runs on the config, policy and secrets
    /// `run` would load. Exit 0 when every case passed, 1 when one failed, 2 when the
    /// config, the policy or a tests file could not be loaded.
    #[command(long_about = TEST_LONG_ABOUT)]
    Test {
        /// The config file, or a policy file alone (with the default limits).
        config: PathBuf,
        /// Tests files (YAML), run in order.
        #[arg(required = true, value_name = "TESTS")]
        tests: Vec<PathBuf>,
        /// Also list the cases that passed.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Suggest the tightest policy that allows what the audit trail shows: per bot the
    /// methods, channels and team its calls used, per route the teams, channels, events and
    /// commands its requests carried, with `mode: enforce`; the policy the config names is
    /// printed with those rewritten (comments give counts and last-seen times), then per
    /// bot its minimal scopes as an app-manifest fragment and the granted scopes to remove.
    ///
    /// Reads plain, rotated and gzip audit files line by line in bounded memory; a
    /// progress line goes to stderr when it is a terminal.
    Suggest {
        /// The config file, or a policy file alone.
        #[arg(short, long)]
        config: PathBuf,
        /// Audit files (repeatable; rotated and .gz files too), read in order.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        audit: Vec<PathBuf>,
        /// Only records since then: a duration back from now (7d, 36h, 90m) or a UTC date
        /// or time (2026-12-01, 2026-12-01T08:00:00Z).
        #[arg(long, value_name = "D")]
        since: Option<String>,
        /// Only this bot (repeatable); with neither --bot nor --route, every bot and route.
        #[arg(long = "bot", value_name = "NAME")]
        bots: Vec<String>,
        /// Only this route (repeatable).
        #[arg(long = "route", value_name = "NAME")]
        routes: Vec<String>,
    },
    /// Gateway + built-in echo bot and Slack Web API stand-in on an embedded example policy;
    /// prints signed curl commands for the inbound door and a bot's calls for the egress door.
    Demo {
        /// Public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// Egress listener (where the demo bot calls the Web API).
        #[arg(long, default_value = "127.0.0.1:8081")]
        egress: String,
        /// Send the printed requests itself, print the answers and exit.
        #[arg(long)]
        self_test: bool,
    },
}

/// `slackgate test --help`: the format of a tests file.
const TEST_LONG_ABOUT: &str = "\
Run policy tests, like `opa test`: each case of a tests file is a request and the decision
expected for it. Every case runs through the pipeline `explain` runs (route, source IP, body
cap, signature, replay, payload, app pin, scope, rate limits), on the config, policy and
secrets `run` would load. Requests are signed with the route's app's secret as loaded (any
value works, so CI can export a dummy); no secret or signature is ever printed.

A tests file:

  state: fresh            # fresh (default): every case on a new guard (empty replay cache,
                          # full rate-limit buckets); shared: one guard, cases in order
  cases:
    - name: a mention in the help channel is forwarded
      request:
        path: /slack/helpdesk
        event: { type: app_mention, enterprise: E0ACME, team: T0ACME, user: U0333,
                 channel: C0HELP }
      expect: { reason: allowed }
    - name: a denied user is refused
      request:
        path: /slack/helpdesk
        client_ip: 198.51.100.7
        command: { command: /ticket, enterprise: E0ACME, team: T0ACME, user: U0BAD,
                   channel: C0HELP }
      expect: { reason: scope_denied, rule: deny.users, status: 403 }

request: path (required), host, client_ip (default 127.0.0.1), headers (a map, sent after
the generated ones), one body: body (literal) | event {type, team, enterprise, user,
channel, app, event_id} | command {command, text, team, enterprise, user, channel, app} |
action {type, action_id, callback_id, team, enterprise, user, channel, app};
signature: valid (default) | bad | none; secret: ID (sign with that secret of the app);
timestamp: now (default) | -10m | +6m | UNIX-SECONDS.
expect: reason (required), rule, shadow, status (200 when forwarded), route, secret_id.

A case may instead send a bot's Web API call to the egress door, decided as `explain
--egress` decides it:

    - name: helpdesk may post into its channel
      call: { bot: helpdesk, method: chat.postMessage, args: { channel: C0HELP, text: hi } }
      expect: { reason: allowed, bot: helpdesk }

call: method (required); bot: NAME (presents that bot's key, read from its secret) or
key: none | wrong; args (a map, sent as encoding: form (default) | json); query;
replied_in: [CHANNEL...] (as if those channels had just spoken to the bot's app, for
reply_scope). expect: an egress reason, rule, status, bot.

The whole run sees one instant: timestamps default to it and rate-limit buckets do not
refill. Failures print the expected and the actual decision; the last line is
`N passed, M failed`. Exit 0: all passed; 1: a case failed; 2: the config, the policy or a
tests file could not be loaded (errors as file:line:column, with the fix).";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        // transfer_fd logs an ERROR for every second a new process waits for the
        // listeners, even in a correct upgrade; slackgate says what happens instead.
        "info,pingora_core=warn,pingora_proxy=warn,pingora_core::server::transfer_fd=off",
    ))
    .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            upgrade,
            upgrade_sock,
            threads,
        } => run(config, upgrade, upgrade_sock, threads),
        Command::Check { config } => return check(&config),
        Command::Sign {
            secret_env,
            timestamp,
            resign_env,
        } => sign(&secret_env, timestamp, resign_env.as_deref()),
        Command::Explain {
            config,
            path,
            headers,
            egress: true,
            query,
            replied_in,
            ..
        } => explain_egress(&config, &path, query.as_deref(), &headers, &replied_in),
        Command::Explain {
            config,
            path,
            headers,
            host,
            client_ip,
            egress: false,
            query: _,
            replied_in: _,
        } => explain(&config, &path, &headers, host.as_deref(), client_ip),
        Command::Test {
            config,
            tests,
            verbose,
        } => return policy_test::run(&config, &tests, verbose),
        Command::Suggest {
            config,
            audit,
            since,
            bots,
            routes,
        } => suggest::run(&suggest::Args {
            config,
            audit,
            since,
            bots,
            routes,
        }),
        Command::Demo {
            listen,
            admin,
            egress,
            self_test,
        } => demo::run(&listen, &admin, &egress, self_test),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    config: PathBuf,
    upgrade: bool,
    upgrade_sock: PathBuf,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let mut opts = slackgate_proxy::Options::new(config);
    opts.upgrade = upgrade;
    opts.upgrade_sock = Some(upgrade_sock);
    opts.threads = threads;
    opts.signals = true;
    slackgate_proxy::run(opts)?;
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path) -> ExitCode {
    // A policy file is checked on its own (policies/ holds both kinds); anything else is
    // a server config, checked together with the policy it references: the loader `run`
    // uses, so `check` accepts exactly what `run` starts with.
    let loaded = match slackgate_policy::load(file, &SystemSecrets, SystemTime::now()) {
        Ok(loaded) => loaded,
        Err(errors) => return report_errors(&errors),
    };
    let policy = &loaded.policy;
    let secrets: usize = policy.apps.values().map(|a| a.secrets.len()).sum();
    let what = match &loaded.config {
        Some(c) => format!("{} and {}", file.display(), c.policy_path.display()),
        None => format!("{} (policy)", file.display()),
    };
    println!(
        "ok: {what}: {} route(s), {} app(s), {} secret(s), {} upstream(s), {} bot(s), {} webhook(s), policy hash {}",
        policy.routes.len(),
        policy.apps.len(),
        secrets,
        policy.upstreams.len(),
        policy.bots.len(),
        policy.webhooks.len(),
        policy.hash
    );
    for g in policy.usergroups.values() {
        println!(
            "group {}: members read from Slack user group {} with bot {}'s token every {:?} (its token needs usergroups:read)",
            g.name,
            g.usergroup,
            g.bot,
            g.refresh
        );
    }
    if let Some(e) = loaded.egress() {
        println!(
            "egress: bots call {}://{}/api/, allowed calls go to {}://{}{}",
            if e.listen.tls.is_some() {
                "https"
            } else {
                "http"
            },
            e.listen.addr,
            if e.slack_api.tls { "https" } else { "http" },
            e.slack_api.authority(),
            e.slack_api.path
        );
    }
    for note in loaded.notes() {
        println!("note: {note}");
    }
    ExitCode::SUCCESS
}

fn report_errors(errors: &slackgate_policy::LoadErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!("{} error(s)", errors.len());
    ExitCode::FAILURE
}

/// The signing key in environment variable `var` (`what` names it in the error).
fn key_from_env(var: &str, what: &str) -> anyhow::Result<SigningKey> {
    let secret = std::env::var(var).unwrap_or_default();
    if secret.is_empty() {
        bail!("environment variable {var} is not set or empty; export the {what} in it");
    }
    SigningKey::new("cli", secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn sign(
    secret_env: &str,
    timestamp: Option<i64>,
    resign_env: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = key_from_env(secret_env, "signing secret")?;
    let resign = resign_env
        .map(|var| key_from_env(var, "route's resign secret"))
        .transpose()?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let ts = match timestamp {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs() as i64,
    };
    let ts = ts.to_string();
    println!("X-Slack-Request-Timestamp: {ts}");
    println!("X-Slack-Signature: {}", key.sign(&ts, &body));
    if let Some(resign) = resign {
        // The gateway signs at the moment it forwards; the same timestamp is shown here.
        println!("# what the bot receives on a route with resign (Slack's headers removed; the gateway uses the time it forwards):");
        println!("X-Slack-Request-Timestamp: {ts}");
        println!("X-Slack-Signature: {}", resign.sign(&ts, &body));
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(
    config: &Path,
    path: &str,
    headers: &[String],
    host: Option<&str>,
    client_ip: IpAddr,
) -> anyhow::Result<ExitCode> {
    let loaded = slackgate_policy::load(config, &SystemSecrets, SystemTime::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let mut pipeline_headers = PipelineHeaders::default();
    for h in headers {
        let Some((k, v)) = h.split_once(':') else {
            bail!("--header {h:?}: expected Name:value");
        };
        pipeline_headers.set(k, v);
    }
    let req = Probe {
        host,
        path,
        client_ip,
        headers: &pipeline_headers,
        body: &body,
    };
    let guard = probe::offline_guard(SystemClock);
    let verdict = probe::decide(&loaded, &guard, &req);
    let Verdict::Routed { route, decision } = &verdict else {
        let out = serde_json::json!({
            "route": null,
            "reason": verdict.reason().as_str(),
            "status": verdict.status(),
            "action": "respond",
            "shadow": false,
            "rule": null,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    };
    let facts = decision.facts.as_ref().map(|f| {
        serde_json::json!({
            "kind": f.kind.as_str(),
            "api_app_id": f.api_app_id.as_deref(),
            "enterprise_id": f.enterprise_id.as_deref(),
            "team_id": f.team_id.as_deref(),
            "user_id": f.user_id.as_deref(),
            "channel_id": f.channel_id.as_deref(),
            "event_type": f.event_type.as_deref(),
            "command": f.command.as_deref(),
            "action_ids": f.action_ids.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            "callback_id": f.callback_id.as_deref(),
            "event_id": f.event_id.as_deref(),
        })
    });
    let out = serde_json::json!({
        "route": route.name.as_ref(),
        "reason": verdict.reason().as_str(),
        "status": verdict.status(),
        "action": if verdict.forwards() { "forward" } else { "respond" },
        "shadow": verdict.shadow(),
        "rule": verdict.rule(),
        "secret_id": verdict.secret_id(),
        "upstream": route.upstream.name.as_ref(),
        "facts": facts,
        "now": SystemClock.now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `explain --egress`: one Web API call decided as the egress listener decides it.
fn explain_egress(
    config: &Path,
    target: &str,
    query: Option<&str>,
    headers: &[String],
    replied_in: &[String],
) -> anyhow::Result<ExitCode> {
    let loaded = slackgate_policy::load(config, &SystemSecrets, SystemTime::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (path, path_query) = probe::split_target(target);
    let query = match (path_query, query) {
        (Some(_), Some(_)) => {
            bail!("--path carries a ?query and --query is given too; give the query string once")
        }
        (q, None) | (None, q) => q,
    };
    let mut egress_headers = EgressHeaders::default();
    for h in headers {
        let Some((k, v)) = h.split_once(':') else {
            // Not echoed: the value may be an Authorization header.
            bail!("--header: expected Name:value, without a `:` here");
        };
        egress_headers.add(k, v);
    }
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    if loaded.config.is_some() && loaded.egress().is_none() {
        eprintln!(
            "note: {} has no `egress:` section, so `run` opens no egress door; this is the decision the policy would give",
            config.display()
        );
    }
    let req = EgressProbe {
        path,
        query,
        headers: &egress_headers,
        body: &body,
    };
    let guard = probe::offline_guard(SystemClock);
    let mut d = probe::decide_egress(&loaded, &guard, &req);
    // reply_scope: the window is what the inbound door saw; offline, only --replied-in.
    let reply_scope = d
        .bot
        .as_ref()
        .and_then(|b| Some((b.reply_scope?, Arc::clone(b.app.as_ref()?))));
    if let Some((_, app)) = &reply_scope {
        if !replied_in.is_empty() {
            let now = SystemClock
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |t| t.as_secs_f64());
            for channel in replied_in {
                guard.note_reply_seen(&app.name, channel, now);
            }
            d = probe::decide_egress(&loaded, &guard, &req);
        }
    }
    let reply_scope = reply_scope.map(|(window, app)| {
        serde_json::json!({
            "window_secs": window.as_secs(),
            "app": &*app.name,
            "replied_in": replied_in,
            "denied_by_it": d.rule.as_deref() == Some("reply_scope"),
        })
    });
    // A shadow bot's would-be denial is forwarded too.
    let forwards = d.forwards();
    // Where an allowed call goes: the config's `egress.slack_api` and the method.
    let upstream = match (loaded.egress(), d.method.as_deref()) {
        (Some(e), Some(m)) if forwards => Some(format!(
            "{}://{}{}{m}",
            if e.slack_api.tls { "https" } else { "http" },
            e.slack_api.authority(),
            e.slack_api.path
        )),
        _ => None,
    };
    let out = serde_json::json!({
        "direction": "egress",
        "bot": d.bot.as_ref().map(|b| &*b.name),
        "method": d.method.as_deref(),
        "reason": d.reason.as_str(),
        "status": d.reason.status(),
        "action": if forwards { "forward" } else { "respond" },
        "rule": d.rule.as_deref(),
        "shadow": d.shadow,
        "team_id": d.team_id.as_deref(),
        "channel_id": d.channel_id.as_deref(),
        "retry_after": d.retry_after_secs,
        "strips_token_argument": d.body_token,
        "reply_scope": reply_scope,
        "upstream": upstream,
        "now": SystemClock.now().duration_since(SystemTime::UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
