//! `state.backend` and `state.redis`: where shared state lives and how Redis is reached
//! (`redis://` or `rediss://` with `ca_file`, an ACL user by environment variables, one
//! server, a cluster or a master behind sentinels).

use std::path::Path;
use std::time::Duration;

use marked_yaml::{Span, Spanned};

use super::{non_empty_path, resolve};
use crate::config::{RedisMode, RedisSettings, StateBackend};
use crate::error::Errors;
use crate::spec::{BackendSpec, RedisModeSpec, RedisSpec, SentinelSpec};
use crate::units::parse_duration;

pub(super) fn state_backend(
    backend: Option<Spanned<BackendSpec>>,
    redis: Option<RedisSpec>,
    base: &Path,
    errs: &mut Errors,
) -> StateBackend {
    let wants_redis = matches!(backend.as_deref(), Some(BackendSpec::Redis));
    match (wants_redis, redis) {
        (false, None) => StateBackend::Local,
        (false, Some(r)) => {
            errs.at(
                r.url.span(),
                "`state.redis` is set but `state.backend` is not `redis`",
                "set `backend: redis` to share state through Redis, or remove `redis:`",
            );
            StateBackend::Local
        }
        (true, None) => {
            let at = backend
                .as_ref()
                .map(|b| *b.span())
                .unwrap_or_else(Span::new_blank);
            errs.at(
                &at,
                "`state.backend: redis` needs a `redis:` section",
                "add `redis: { url: redis://HOST:6379 }`",
            );
            StateBackend::Local
        }
        (true, Some(r)) => match redis_settings(r, base, errs) {
            Some(settings) => StateBackend::Redis(settings),
            None => StateBackend::Local,
        },
    }
}

/// `host:port` with a host and a port above zero (`[::1]:6379` too).
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The URL's TLS flag, `host:port` and database.
fn url(url: &Spanned<String>, errs: &mut Errors) -> Option<(bool, String, u32)> {
    let text = url.trim();
    let (tls, rest) = match (
        text.strip_prefix("rediss://"),
        text.strip_prefix("redis://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            errs.at(
                url.span(),
                "`state.redis.url` must start with redis:// or rediss://",
                "write redis://HOST:PORT[/DB], or rediss://HOST:PORT[/DB] for TLS",
            );
            return None;
        }
    };
    if rest.contains('@') {
        errs.at(
            url.span(),
            "`state.redis.url` contains credentials: a literal secret in the config",
            "remove user:password@ from the URL and name environment variables in `username_env` and `password_env`",
        );
        return None;
    }
    let (hostport, db) = match rest.split_once('/') {
        None => (rest, Some(0)),
        Some((hp, "")) => (hp, Some(0)),
        Some((hp, db)) => (hp, db.parse::<u32>().ok()),
    };
    let Some(db) = db.filter(|_| is_host_port(hostport)) else {
        errs.at(
            url.span(),
            "`state.redis.url` is not redis[s]://HOST:PORT[/DB]",
            "write e.g. redis://127.0.0.1:6379 or rediss://redis.slackgate.svc:6380/1",
        );
        return None;
    };
    Some((tls, hostport.to_owned(), db))
}

/// An optional environment variable name at `state.redis.<what>`.
fn env_name(
    v: Option<Spanned<String>>,
    what: &str,
    errs: &mut Errors,
) -> Result<Option<String>, ()> {
    match v {
        Some(v) if !crate::secrets::is_env_name(v.trim()) => {
            errs.at(
                v.span(),
                format!("`state.redis.{what}` is not an environment variable name"),
                format!(
                    "name the environment variable that holds it, e.g. REDIS_{}",
                    what.trim_end_matches("_env").to_uppercase()
                ),
            );
            Err(())
        }
        other => Ok(other.map(|v| v.trim().to_owned())),
    }
}

fn timeout(t: Option<Spanned<String>>, errs: &mut Errors) -> Option<Duration> {
    let Some(t) = t else {
        return Some(Duration::from_millis(50));
    };
    match parse_duration(&t) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            errs.at(
                t.span(),
                "`state.redis.timeout` is zero",
                "set a timeout above zero, e.g. 50ms",
            );
            None
        }
        Err(_) => {
            errs.at(
                t.span(),
                "`state.redis.timeout` is not a duration",
                "write a duration such as 50ms or 1s",
            );
            None
        }
    }
}

/// `mode` and `sentinel`, which go together.
fn mode(
    mode: Option<Spanned<RedisModeSpec>>,
    sentinel: Option<SentinelSpec>,
    errs: &mut Errors,
) -> Option<RedisMode> {
    let word = mode
        .as_deref()
        .copied()
        .unwrap_or(RedisModeSpec::Standalone);
    match (word, sentinel) {
        (RedisModeSpec::Sentinel, None) => {
            let at = mode
                .as_ref()
                .map(|m| *m.span())
                .unwrap_or_else(Span::new_blank);
            errs.at(
                &at,
                "`state.redis.mode: sentinel` needs a `sentinel:` section",
                "add `sentinel: { master: NAME, addrs: [HOST:26379, ...] }` (the URL names one sentinel)",
            );
            None
        }
        (RedisModeSpec::Sentinel, Some(s)) => {
            let master = s.master.trim();
            let mut ok = true;
            if master.is_empty() {
                errs.at(
                    s.master.span(),
                    "`state.redis.sentinel.master` is empty",
                    "name the master the sentinels monitor, e.g. mymaster",
                );
                ok = false;
            }
            for a in &s.addrs {
                if !is_host_port(a.trim()) {
                    errs.at(
                        a.span(),
                        "`state.redis.sentinel.addrs` has an entry that is not HOST:PORT",
                        "write each sentinel as HOST:PORT, e.g. sentinel-1.redis.svc:26379",
                    );
                    ok = false;
                }
            }
            ok.then(|| RedisMode::Sentinel {
                master: master.to_owned(),
                addrs: s.addrs.iter().map(|a| a.trim().to_owned()).collect(),
            })
        }
        (_, Some(s)) => {
            errs.at(
                s.master.span(),
                "`state.redis.sentinel` is set but `state.redis.mode` is not `sentinel`",
                "set `mode: sentinel`, or remove `sentinel:`",
            );
            None
        }
        (RedisModeSpec::Standalone, None) => Some(RedisMode::Standalone),
        (RedisModeSpec::Cluster, None) => Some(RedisMode::Cluster),
    }
}

fn redis_settings(spec: RedisSpec, base: &Path, errs: &mut Errors) -> Option<RedisSettings> {
    let RedisSpec {
        url: url_spec,
        ca_file,
        mode: mode_spec,
        sentinel,
        key_prefix,
        timeout: timeout_spec,
        username_env,
        password_env,
    } = spec;
    let start = errs.len();
    let parsed = url(&url_spec, errs);
    let mode = mode(mode_spec, sentinel, errs);
    let timeout = timeout(timeout_spec, errs);
    let has_password = password_env.is_some();
    if let (Some(u), false) = (&username_env, has_password) {
        errs.at(
            u.span(),
            "`state.redis.username_env` is set without `password_env`",
            "name the variable that holds the ACL user's password in `password_env` too",
        );
    }
    let username_env = env_name(username_env, "username_env", errs).ok()?;
    let password_env = env_name(password_env, "password_env", errs).ok()?;
    let key_prefix = match key_prefix {
        Some(p) if p.contains(['{', '}']) => {
            errs.at(
                p.span(),
                "`state.redis.key_prefix` contains { or }",
                "remove the braces: the gateway puts its own hash tags into keys, so that a script's keys stay on one cluster slot",
            );
            None
        }
        Some(p) => Some(p.to_string()),
        None => Some("slackgate:".to_owned()),
    };
    let (tls, addr, db) = parsed?;
    let ca_file = match ca_file {
        Some(c) if !tls => {
            errs.at(
                c.span(),
                "`state.redis.ca_file` is set but `state.redis.url` is redis:// (no TLS)",
                "write rediss:// to talk TLS to Redis, or remove `ca_file`",
            );
            None
        }
        Some(c) => non_empty_path(&c, "state.redis.ca_file", errs).then(|| resolve(base, &c)),
        None => None,
    };
    if db != 0 && mode == Some(RedisMode::Cluster) {
        errs.at(
            url_spec.span(),
            "`state.redis.url` names a database, but Redis Cluster has only database 0",
            "remove /DB from the URL in cluster mode",
        );
    }
    if errs.len() != start {
        return None;
    }
    Some(RedisSettings {
        addr,
        tls,
        ca_file,
        db,
        key_prefix: key_prefix?,
        timeout: timeout?,
        username_env,
        password_env,
        mode: mode?,
    })
}
