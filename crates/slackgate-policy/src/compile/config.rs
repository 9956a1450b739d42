//! The server config's compiler: config text -> [`ConfigSpec`] -> validated [`Config`]
//! (the types are in `config.rs`, as the policy's are in `model.rs`).
//!
//! As for the policy, every error is collected with its file:line:column and the fix, and
//! a spec that did not deserialize whole is compiled from its valid parts
//! (`partial_spec`). The state key the config names is read here too
//! ([`read_state_key`]), through the [`SecretSource`](crate::SecretSource), never echoed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use crate::config::{
    Admin, Audit, AuditPath, Config, Egress, KeyExchange, Limits, Listener, Pacing, SlackApi,
    State, StateKey, StateKeyRef, Tls, TlsFiles, CONFIG_KEYS, DEFAULT_AUDIT_QUEUE_BYTES,
};
use crate::error::{Errors, LoadErrors};
use crate::matcher::parse_cidrs;
use crate::secrets::SecretRef;
use crate::spec::{
    AdminSpec, AuditSpec, ConfigSpec, CredentialSpec, EgressSpec, LimitsSpec, ListenerSpec,
    SharedTlsSpec, StateSpec, TlsSpec,
};
use crate::units::{parse_duration, DurationError};
use crate::yaml;

mod redis;

/// Below this `audit.max_queue_bytes` could not hold one record of each kind.
const MIN_AUDIT_QUEUE_BYTES: usize = 64 * 1024;
/// The longest accepted `max_clock_skew`: a longer window makes replay
/// protection need more memory and lets captured requests live longer.
const MAX_CLOCK_SKEW_LIMIT: Duration = Duration::from_secs(3600);
/// Bounds of `limits.max_head_bytes`: below 1 KiB no real client fits, above 1 MiB one
/// unfinished head per connection is a memory lever for an attacker.
const MIN_HEAD_BYTES: usize = 1024;
const MAX_HEAD_BYTES: usize = 1024 * 1024;

/// Builds as much of a [`ConfigSpec`] as deserializes, reporting every
/// structural error, so that semantic checks still run on the valid parts.
fn partial_spec(node: &Node, err: &marked_yaml::FromNodeError, errs: &mut Errors) -> ConfigSpec {
    let before = errs.len();
    yaml::check_top_level(node, CONFIG_KEYS, &["listen", "policy"], errs);
    let listen = node
        .as_mapping()
        .and_then(|m| m.get_node("listen"))
        .map(|n| yaml::probe_items::<ListenerSpec>(n, "listen", errs))
        .unwrap_or_else(|| Spanned::new(*node.span(), Vec::new()));
    let spec = ConfigSpec {
        listen,
        admin: yaml::probe_key(node, "admin", errs),
        trusted_proxies: yaml::probe_key(node, "trusted_proxies", errs),
        limits: yaml::probe_key(node, "limits", errs),
        audit: yaml::probe_key(node, "audit", errs),
        policy: yaml::probe_key(node, "policy", errs)
            .unwrap_or_else(|| Spanned::new(*node.span(), "-".to_string())),
        state: yaml::probe_key(node, "state", errs),
        egress: yaml::probe_key(node, "egress", errs),
        tls: yaml::probe_key(node, "tls", errs),
    };
    if errs.len() == before {
        yaml::report_from_node(err, "", errs);
    }
    spec
}

/// Validates config text that was read from `source`. Relative paths in it (TLS files,
/// audit file, policy) are resolved against `source`'s directory. Files are read by
/// `load`, which every command uses.
pub fn compile_config(source: &Path, text: &str) -> Result<Config, LoadErrors> {
    let mut errs = Errors::new(source);
    let config = yaml::parse(text, &mut errs).and_then(|node| {
        let (spec, partial) = match marked_yaml::from_node::<ConfigSpec>(&node) {
            Ok(spec) => (spec, false),
            Err(e) => (partial_spec(&node, &e, &mut errs), true),
        };
        let base = source.parent().unwrap_or_else(|| Path::new(""));
        config(spec, partial, source, base, &mut errs)
    });
    errs.finish(config)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    base.join(p.trim())
}

fn socket_addr(s: &Spanned<String>, what: &str, errs: &mut Errors) -> Option<SocketAddr> {
    match s.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.at(
                s.span(),
                format!("`{what}` is not an IP:port socket address"),
                "write an IP address and port, e.g. 0.0.0.0:8443, 127.0.0.1:9090 or [::]:8443 (host names are not resolved)",
            );
            None
        }
    }
}

fn non_empty_path(s: &Spanned<String>, what: &str, errs: &mut Errors) -> bool {
    if s.trim().is_empty() {
        errs.at(s.span(), format!("`{what}` is empty"), "write a file path");
        false
    } else {
        true
    }
}

fn config(
    spec: ConfigSpec,
    partial: bool,
    source: &Path,
    base: &Path,
    errs: &mut Errors,
) -> Option<Config> {
    let ConfigSpec {
        listen,
        admin,
        trusted_proxies,
        limits,
        audit,
        policy,
        state,
        egress,
        tls,
    } = spec;
    let start = errs.len();
    let mut bound: HashMap<SocketAddr, usize> = HashMap::new();
    let mut check_unique = |addr: SocketAddr, at: &Spanned<String>, errs: &mut Errors| {
        let line = at.span().start().map_or(0, |m| m.line());
        if let Some(first) = bound.insert(addr, line) {
            errs.at(
                at.span(),
                format!("address {addr} is already used by the listener on line {first}"),
                "give every listener and the admin listener its own address",
            );
        }
    };

    if listen.is_empty() && !partial {
        errs.at(
            listen.span(),
            "no listeners: the gateway would accept no requests",
            "add at least one listener, e.g. `- addr: 0.0.0.0:8443` with `tls: { cert: ..., key: ... }`",
        );
    }
    let mut listeners = Vec::new();
    for l in listen.iter() {
        let ListenerSpec { addr, tls } = l;
        let parsed = socket_addr(addr, "listen.addr", errs);
        if let Some(a) = parsed {
            check_unique(a, addr, errs);
        }
        let tls = tls.as_ref().and_then(|t| {
            let TlsSpec { cert, key } = t;
            let ok = non_empty_path(cert, "tls.cert", errs) & non_empty_path(key, "tls.key", errs);
            ok.then(|| TlsFiles {
                cert: resolve(base, cert),
                key: resolve(base, key),
            })
        });
        if let Some(addr) = parsed {
            listeners.push(Listener { addr, tls });
        }
    }

    let admin = admin.and_then(|a| {
        let AdminSpec { addr } = a;
        let parsed = socket_addr(&addr, "admin.addr", errs)?;
        check_unique(parsed, &addr, errs);
        Some(Admin { addr: parsed })
    });

    let trusted_proxies = trusted_proxies
        .map(|l| parse_cidrs(&l, errs))
        .unwrap_or_default();

    let limits = limits.map(|l| self::limits(l, errs)).unwrap_or_default();

    let audit = match audit {
        None => Audit::default(),
        Some(AuditSpec {
            path,
            max_queue_bytes,
        }) => {
            let path = match path {
                None => AuditPath::Stdout,
                Some(path) => {
                    non_empty_path(&path, "audit.path", errs);
                    if path.trim() == "-" {
                        AuditPath::Stdout
                    } else {
                        AuditPath::File(resolve(base, &path))
                    }
                }
            };
            let max_queue_bytes = match max_queue_bytes {
                None => DEFAULT_AUDIT_QUEUE_BYTES,
                Some(v) => match usize::try_from(*v) {
                    Ok(n) if n >= MIN_AUDIT_QUEUE_BYTES => n,
                    _ => {
                        errs.at(
                            v.span(),
                            "`audit.max_queue_bytes` is below 65536 or too large for this platform",
                            "set at least 65536 bytes, or omit it for the default 16777216 (16 MiB)",
                        );
                        DEFAULT_AUDIT_QUEUE_BYTES
                    }
                },
            };
            Audit {
                path,
                max_queue_bytes,
            }
        }
    };

    non_empty_path(&policy, "policy", errs);
    let policy_path = resolve(base, &policy);
    let state = state
        .map(|s| self::state(s, base, errs))
        .unwrap_or_default();

    let egress = egress.and_then(|e| {
        let EgressSpec {
            listen,
            slack_api,
            hooks_base,
            ca_file,
            timeout,
            public_url,
            pacing,
        } = e;
        let ListenerSpec { addr, tls } = listen;
        let parsed = socket_addr(&addr, "egress.listen.addr", errs);
        if let Some(a) = parsed {
            check_unique(a, &addr, errs);
        }
        let tls = tls.as_ref().and_then(|t| {
            let TlsSpec { cert, key } = t;
            let ok = non_empty_path(cert, "egress.listen.tls.cert", errs)
                & non_empty_path(key, "egress.listen.tls.key", errs);
            ok.then(|| TlsFiles {
                cert: resolve(base, cert),
                key: resolve(base, key),
            })
        });
        let api = match &slack_api {
            None => SlackApi::parse("https://slack.com/api/").ok(),
            Some(url) => match SlackApi::parse(url.trim()) {
                Ok(a) => Some(a),
                Err(fix) => {
                    errs.at(
                        url.span(),
                        "`egress.slack_api` is not a usable Web API base URL",
                        fix,
                    );
                    None
                }
            },
        };
        let hooks_base = match &hooks_base {
            None => SlackApi::parse("https://hooks.slack.com/").ok(),
            Some(url) => match SlackApi::parse(url.trim()) {
                Ok(a) => Some(a),
                Err(_) => {
                    errs.at(
                        url.span(),
                        "`egress.hooks_base` is not a usable webhook base URL",
                        "write an https:// URL ending in `/`, e.g. https://hooks.slack.com/ (http:// only for a loopback stand-in)",
                    );
                    None
                }
            },
        };
        let ca_file = ca_file
            .and_then(|c| non_empty_path(&c, "egress.ca_file", errs).then(|| resolve(base, &c)));
        let timeout = match &timeout {
            None => Some(Duration::from_secs(10)),
            Some(t) => match parse_duration(t) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => {
                    errs.at(
                        t.span(),
                        "`egress.timeout` is not a duration above zero",
                        "write a duration such as 10s or 2500ms",
                    );
                    None
                }
            },
        };
        let public_url = public_url.and_then(|u| {
            let url = u.trim();
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                let host = r.split('/').next().unwrap_or("");
                !host.is_empty()
                    && !host.contains('@')
                    && r.ends_with('/')
                    && !r.contains(['?', '#'])
                    && r.bytes().all(|b| b.is_ascii_graphic())
            });
            if ok {
                Some(url.to_string())
            } else {
                errs.at(
                    u.span(),
                    "`egress.public_url` is not a base URL bots can reach the egress listener on",
                    "write the URL of the egress listener as bots see it, ending in `/`, e.g. http://slackgate-egress.bots.svc:8081/",
                );
                None
            }
        });
        let pacing = match pacing {
            None => Some(None),
            Some(p) => match p.max_wait.as_ref() {
                None => Some(Some(Pacing {
                    max_wait: Duration::from_secs(1),
                })),
                Some(w) => match parse_duration(w) {
                    Ok(d) if d <= Duration::from_secs(30) => Some(Some(Pacing { max_wait: d })),
                    _ => {
                        errs.at(
                            w.span(),
                            "`egress.pacing.max_wait` is not a duration of at most 30s",
                            "write how long a call may be held back for Slack's rate tier, e.g. 1s (0s answers slack_rate_limited at once)",
                        );
                        None
                    }
                },
            },
        };
        Some(Egress {
            pacing: pacing?,
            listen: Listener { addr: parsed?, tls },
            slack_api: api?,
            hooks_base: hooks_base?,
            ca_file,
            timeout: timeout?,
            public_url,
        })
    });

    (errs.len() == start).then(|| Config {
        source: source.to_path_buf(),
        listen: listeners,
        admin,
        trusted_proxies,
        limits,
        audit,
        policy_path,
        state,
        egress,
        tls: tls.map(|t| shared_tls(t, errs)).unwrap_or_default(),
    })
}

/// `tls:`: the key-exchange list, checked (known names, no repeats, not empty).
fn shared_tls(spec: SharedTlsSpec, errs: &mut Errors) -> Tls {
    let SharedTlsSpec { key_exchange } = spec;
    let Some(list) = key_exchange else {
        return Tls::default();
    };
    let names = || {
        KeyExchange::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if list.is_empty() {
        errs.at(
            list.span(),
            "`tls.key_exchange` is empty: no TLS handshake could complete",
            format!(
                "list the groups to allow, most preferred first (known: {}), or omit it for the default",
                names()
            ),
        );
        return Tls::default();
    }
    let mut groups = Vec::with_capacity(list.len());
    for word in list.iter() {
        match KeyExchange::parse(word) {
            Some(k) if groups.contains(&k) => errs.at(
                word.span(),
                format!("`tls.key_exchange` names {} twice", k.as_str()),
                "list each group once",
            ),
            Some(k) => groups.push(k),
            None => errs.at(
                word.span(),
                "`tls.key_exchange` names an unknown key-exchange group",
                format!("use one of: {}", names()),
            ),
        }
    }
    Tls {
        key_exchange: groups,
    }
}

fn state(spec: StateSpec, base: &Path, errs: &mut Errors) -> State {
    let StateSpec {
        backend,
        redis,
        path,
        encryption_key,
    } = spec;
    let path = path.map(|p| {
        non_empty_path(&p, "state.path", errs);
        resolve(base, &p)
    });
    let encryption_key = encryption_key.and_then(|k| state_key_ref(&k, base, errs));
    let backend = redis::state_backend(backend, redis, base, errs);
    State {
        backend,
        path,
        encryption_key,
    }
}

/// Reads the `state.encryption_key` reference: `env:` or `file:`, never a literal.
fn state_key_ref(
    spec: &Spanned<CredentialSpec>,
    base: &Path,
    errs: &mut Errors,
) -> Option<StateKeyRef> {
    let CredentialSpec {
        env,
        file,
        rotation,
        ..
    } = &**spec;
    if let Some(l) = spec.literals().next() {
        errs.at(
            l.span(),
            crate::yaml::LITERAL_SECRET_MESSAGE,
            crate::yaml::LITERAL_SECRET_FIX,
        );
        return None;
    }
    if let Some(r) = rotation {
        errs.at(
            r.span(),
            "`state.encryption_key` cannot be `rotation:`",
            "write `env: SLACKGATE_STATE_KEY` or `file: /run/secrets/slackgate-state-key`",
        );
        return None;
    }
    let (source, span) = match (env, file) {
        (Some(e), None) if crate::secrets::is_env_name(e.trim()) => {
            (SecretRef::Env(e.trim().to_owned()), *e.span())
        }
        (None, Some(f)) if !f.trim().is_empty() => (SecretRef::File(resolve(base, f)), *f.span()),
        _ => {
            errs.at(
                spec.span(),
                "`state.encryption_key` needs exactly one of `env` (a variable name) or `file` (a path)",
                "write `encryption_key: { env: SLACKGATE_STATE_KEY }` holding 32 random bytes in base64 (`openssl rand -base64 32`)",
            );
            return None;
        }
    };
    let (line, column) = crate::error::span_pos(&span);
    Some(StateKeyRef {
        source,
        line,
        column,
    })
}

/// Reads and checks the key `state.encryption_key` names: 32 bytes in base64. `None`
/// when the config names no key. The errors name the reference, never the value.
pub(crate) fn read_state_key(
    config: &Config,
    secrets: &dyn crate::SecretSource,
) -> Result<Option<StateKey>, LoadErrors> {
    use base64::Engine as _;
    let Some(r) = &config.state.encryption_key else {
        return Ok(None);
    };
    let fail = |message: String, fix: &str| {
        Err(LoadErrors(vec![crate::LoadError::new(
            &config.source,
            r.line,
            r.column,
            message,
            fix,
        )]))
    };
    const FIX: &str =
        "put 32 random bytes in base64 there, e.g. the output of `openssl rand -base64 32`";
    let raw = match &r.source {
        SecretRef::Env(name) => match secrets.env(name) {
            Some(v) => v.into_bytes(),
            None => {
                return fail(
                    format!("`state.encryption_key`: environment variable `{name}` is not set"),
                    FIX,
                )
            }
        },
        SecretRef::File(path) => match secrets.read_file(path) {
            Ok(b) => b,
            Err(e) => {
                return fail(
                    format!(
                        "`state.encryption_key`: {} cannot be read: {}",
                        path.display(),
                        crate::secrets::describe_io(&e)
                    ),
                    FIX,
                )
            }
        },
    };
    let text = crate::secrets::trim_secret(&raw);
    if text.is_empty() {
        return fail("`state.encryption_key` is empty".to_owned(), FIX);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text));
    match decoded.ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
        Some(k) => Ok(Some(StateKey::from_bytes(k))),
        None => fail(
            "`state.encryption_key` is not 32 bytes in base64".to_owned(),
            FIX,
        ),
    }
}

/// Formats a duration the way the config writes it: `2800ms`, `5s`.
fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn limits(spec: LimitsSpec, errs: &mut Errors) -> Limits {
    let LimitsSpec {
        max_body_bytes,
        body_read_timeout,
        upstream_timeout,
        max_clock_skew,
        max_rate_limit_keys,
        max_replay_entries,
        shutdown_grace,
        max_head_bytes,
        head_read_timeout,
        max_connections,
        max_call_channels,
    } = spec;
    let d = Limits::default();
    let count = |v: Option<Spanned<u64>>, key: &str, default: usize, errs: &mut Errors| -> usize {
        let Some(v) = v else { return default };
        match usize::try_from(*v) {
            Ok(0) => {
                errs.at(
                    v.span(),
                    format!("`limits.{key}` is 0"),
                    format!("set a value above 0, or omit it for the default {default}"),
                );
                default
            }
            Ok(n) => n,
            Err(_) => {
                errs.at(
                    v.span(),
                    format!("`limits.{key}` is too large for this platform"),
                    format!("set a smaller value, or omit it for the default {default}"),
                );
                default
            }
        }
    };
    let duration = |v: Option<Spanned<String>>,
                    key: &str,
                    default: Duration,
                    zero_ok: bool,
                    errs: &mut Errors|
     -> Duration {
        let Some(v) = v else { return default };
        match parse_duration(&v) {
            Ok(x) if x.is_zero() && !zero_ok => {
                errs.at(
                    v.span(),
                    format!("`limits.{key}` is zero"),
                    format!(
                        "set a duration above zero, or omit it for the default {}",
                        show_duration(default)
                    ),
                );
                default
            }
            Ok(x) => x,
            Err(e) => {
                let problem = match e {
                    DurationError::Empty => "is empty",
                    DurationError::MissingUnit => "has no unit",
                    DurationError::BadNumber => "does not start with a whole number",
                    DurationError::BadUnit => "has an unknown unit",
                    DurationError::Overflow => "is too large",
                };
                errs.at(
                    v.span(),
                    format!("duration `limits.{key}` {problem}"),
                    "write a whole number followed by ms, s, m or h, e.g. 5s, 2800ms, 1m or 2h",
                );
                default
            }
        }
    };
    let skew_span = max_clock_skew.as_ref().map(|s| *s.span());
    let head_span = max_head_bytes.as_ref().map(|s| *s.span());
    let limits = Limits {
        max_body_bytes: count(max_body_bytes, "max_body_bytes", d.max_body_bytes, errs),
        body_read_timeout: duration(
            body_read_timeout,
            "body_read_timeout",
            d.body_read_timeout,
            false,
            errs,
        ),
        upstream_timeout: duration(
            upstream_timeout,
            "upstream_timeout",
            d.upstream_timeout,
            false,
            errs,
        ),
        max_clock_skew: duration(
            max_clock_skew,
            "max_clock_skew",
            d.max_clock_skew,
            false,
            errs,
        ),
        max_rate_limit_keys: count(
            max_rate_limit_keys,
            "max_rate_limit_keys",
            d.max_rate_limit_keys,
            errs,
        ),
        max_replay_entries: count(
            max_replay_entries,
            "max_replay_entries",
            d.max_replay_entries,
            errs,
        ),
        shutdown_grace: duration(
            shutdown_grace,
            "shutdown_grace",
            d.shutdown_grace,
            true,
            errs,
        ),
        max_head_bytes: count(max_head_bytes, "max_head_bytes", d.max_head_bytes, errs),
        head_read_timeout: duration(
            head_read_timeout,
            "head_read_timeout",
            d.head_read_timeout,
            false,
            errs,
        ),
        max_connections: count(max_connections, "max_connections", d.max_connections, errs),
        max_call_channels: count(
            max_call_channels,
            "max_call_channels",
            d.max_call_channels,
            errs,
        ),
    };
    if let Some(span) = head_span {
        if !(MIN_HEAD_BYTES..=MAX_HEAD_BYTES).contains(&limits.max_head_bytes) {
            errs.at(
                &span,
                "`limits.max_head_bytes` is outside 1024..=1048576",
                "Slack's request heads are under 2 KiB; the default 16384 fits every client",
            );
        }
    }
    if let Some(span) = skew_span {
        if limits.max_clock_skew > MAX_CLOCK_SKEW_LIMIT {
            errs.at(
                &span,
                "`limits.max_clock_skew` is longer than 1h",
                "use Slack's recommended 300s; a long window keeps captured requests replayable longer",
            );
        }
    }
    limits
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
