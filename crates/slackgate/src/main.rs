//! The `slackgate` command: `run`, `check`, `sign`, `explain`, `demo`.
//!
//! Thin by design: argument parsing and output formatting only; the work happens in
//! the library crates.

mod demo;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use slackgate_guard::{
    Action, Clock, Decision, Guard, GuardSettings, Inbound, Reason, SystemClock,
};
use slackgate_policy::{SecretSource, SystemSecrets};
use slackgate_slack::{SigningKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};

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
    Sign {
        /// Environment variable holding the signing secret.
        #[arg(long)]
        secret_env: String,
        /// Unix timestamp to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Show the decision for the request body on standard input, without any network.
    Explain {
        /// The config file, or a policy file alone (with the default limits).
        #[arg(short, long)]
        config: PathBuf,
        /// Request path.
        #[arg(long)]
        path: String,
        /// Request header `Name: value` (repeatable).
        #[arg(long = "header", value_name = "K:V")]
        headers: Vec<String>,
        /// Host header.
        #[arg(long)]
        host: Option<String>,
        /// Client address (default 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: IpAddr,
    },
    /// Gateway + built-in echo bot on an embedded example policy; prints signed curl commands.
    Demo {
        /// Public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// Send the printed requests itself, print the answers and exit.
        #[arg(long)]
        self_test: bool,
    },
}

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
        } => sign(&secret_env, timestamp),
        Command::Explain {
            config,
            path,
            headers,
            host,
            client_ip,
        } => explain(&config, &path, &headers, host.as_deref(), client_ip),
        Command::Demo {
            listen,
            admin,
            self_test,
        } => demo::run(&listen, &admin, self_test),
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
    let now = SystemTime::now();
    // A policy file is checked on its own (policies/ holds both kinds); anything else is
    // a server config, checked together with the policy it references.
    let is_policy = std::fs::read_to_string(file).is_ok_and(|text| looks_like_policy(&text));
    let (config, policy_path) = if is_policy {
        (None, file.to_path_buf())
    } else {
        match slackgate_policy::load_config(file) {
            Ok(c) => {
                let p = c.policy_path.clone();
                (Some(c), p)
            }
            Err(errors) => return report_errors(&errors),
        }
    };
    match slackgate_policy::load_policy(&policy_path, &SystemSecrets, now) {
        Ok(policy) => {
            let secrets: usize = policy.apps.values().map(|a| a.secrets.len()).sum();
            let what = match &config {
                Some(_) => format!("{} and {}", file.display(), policy_path.display()),
                None => format!("{} (policy)", policy_path.display()),
            };
            println!(
                "ok: {what}: {} route(s), {} app(s), {} secret(s), {} upstream(s), policy hash {}",
                policy.routes.len(),
                policy.apps.len(),
                secrets,
                policy.upstreams.len(),
                policy.hash
            );
            ExitCode::SUCCESS
        }
        Err(errors) => report_errors(&errors),
    }
}

fn report_errors(errors: &slackgate_policy::LoadErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!("{} error(s)", errors.len());
    ExitCode::FAILURE
}

/// Whether a YAML text is a policy rather than a server config: judged by its top-level
/// keys (`slackgate_policy::POLICY_KEYS` versus `CONFIG_KEYS`), without parsing values, so
/// a broken file is still routed to the loader that reports its errors.
fn looks_like_policy(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut policy_keys = 0;
    for line in text.lines() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if slackgate_policy::CONFIG_KEYS.contains(&key) {
            return false;
        }
        if slackgate_policy::POLICY_KEYS.contains(&key) {
            policy_keys += 1;
        }
    }
    policy_keys > 0
}

fn sign(secret_env: &str, timestamp: Option<i64>) -> anyhow::Result<ExitCode> {
    let secret = std::env::var(secret_env).unwrap_or_default();
    if secret.is_empty() {
        bail!("environment variable {secret_env} is not set or empty; export the signing secret in it");
    }
    let key = SigningKey::new("cli", secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    Ok(ExitCode::SUCCESS)
}

fn explain(
    config: &Path,
    path: &str,
    headers: &[String],
    host: Option<&str>,
    client_ip: IpAddr,
) -> anyhow::Result<ExitCode> {
    // Like `check`, a policy file alone is accepted too; limits are then the defaults.
    let is_policy = std::fs::read_to_string(config).is_ok_and(|text| looks_like_policy(&text));
    let (limits, policy_path) = if is_policy {
        (slackgate_policy::Limits::default(), config.to_path_buf())
    } else {
        let cfg = slackgate_policy::load_config(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        (cfg.limits, cfg.policy_path)
    };
    let secrets: Arc<dyn SecretSource> = Arc::new(SystemSecrets);
    let policy = slackgate_policy::load_policy(&policy_path, secrets.as_ref(), SystemTime::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let mut sig = None;
    let mut ts = None;
    let mut content_type = None;
    let mut host_header = None;
    for h in headers {
        let Some((k, v)) = h.split_once(':') else {
            bail!("--header {h:?}: expected Name:value");
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
        match k.as_str() {
            k if k == SIGNATURE_HEADER => sig = Some(v),
            k if k == TIMESTAMP_HEADER => ts = Some(v),
            "content-type" => content_type = Some(v),
            "host" => host_header = Some(v),
            _ => {}
        }
    }
    let host = host.or(host_header.as_deref());
    let Some(route) = policy.routes.find(host, path) else {
        let out = serde_json::json!({
            "route": null,
            "reason": Reason::NoRoute.as_str(),
            "status": Reason::NoRoute.status(),
            "action": "respond",
            "shadow": false,
            "rule": null,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    };
    // The pipeline `run` runs, in its order: the two guard stages with the body read
    // between them (here: its size checked against the same cap).
    let guard = Guard::new(SystemClock, 1024, 1024);
    let decision = match guard.admit(route, client_ip) {
        Err(d) => *d,
        Ok(_) if body.len() > limits.max_body_bytes => Decision::respond(Reason::BodyTooLarge),
        Ok(admitted) => {
            let inbound = Inbound {
                client_ip,
                signature: sig.as_deref().map(str::as_bytes),
                timestamp: ts.as_deref().map(str::as_bytes),
                content_type: content_type.as_deref(),
                body: &body,
            };
            guard.decide_admitted(
                admitted,
                route,
                &inbound,
                &GuardSettings {
                    max_clock_skew: limits.max_clock_skew,
                },
            )
        }
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
        "reason": decision.reason.as_str(),
        "status": if decision.action == Action::Forward { 200 } else { decision.status },
        "action": match decision.action { Action::Forward => "forward", Action::Respond => "respond" },
        "shadow": decision.shadow,
        "rule": decision.rule.as_ref().map(|r| r.as_str().to_owned()),
        "secret_id": decision.secret_id.as_deref(),
        "upstream": route.upstream.name.as_ref(),
        "facts": facts,
        "now": SystemClock.now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::looks_like_policy;

    #[test]
    fn every_config_key_marks_a_config() {
        // `state:` was missing from this binary's own copy of the list.
        for key in slackgate_policy::CONFIG_KEYS {
            assert!(
                !looks_like_policy(&format!("{key}: x\nroutes: []\n")),
                "{key}"
            );
        }
        for key in slackgate_policy::POLICY_KEYS {
            assert!(looks_like_policy(&format!("{key}: x\n")), "{key}");
        }
    }
}
