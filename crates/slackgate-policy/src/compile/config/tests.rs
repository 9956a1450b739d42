use super::*;
use crate::config::{RedisMode, RedisSettings, StateBackend};

#[test]
fn top_level_keys_match_the_spec() {
    assert_eq!(yaml::serde_keys::<ConfigSpec>(), CONFIG_KEYS);
}

#[test]
fn redis_state_settings() {
    let c = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\nstate:\n  backend: redis\n  redis: { url: redis://10.0.0.5:6380/2, key_prefix: \"sg:\", timeout: 20ms, password_env: REDIS_PASSWORD }\n",
    )
    .unwrap();
    assert_eq!(
        c.state.backend,
        StateBackend::Redis(RedisSettings {
            addr: "10.0.0.5:6380".into(),
            tls: false,
            ca_file: None,
            db: 2,
            key_prefix: "sg:".into(),
            timeout: Duration::from_millis(20),
            username_env: None,
            password_env: Some("REDIS_PASSWORD".into()),
            mode: RedisMode::Standalone,
        })
    );
    let tls = compile_config(
        Path::new("/etc/sg/c.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\nstate:\n  backend: redis\n  redis:\n    url: rediss://r.example:6380\n    ca_file: redis-ca.pem\n    username_env: REDIS_USER\n    password_env: REDIS_PASSWORD\n    mode: sentinel\n    sentinel: { master: mymaster, addrs: [\"s2:26379\", \"[::1]:26380\"] }\n",
    )
    .unwrap();
    let StateBackend::Redis(t) = tls.state.backend else {
        panic!("redis expected")
    };
    assert_eq!(
        (t.tls, t.ca_file.as_deref(), t.username_env.as_deref()),
        (
            true,
            Some(Path::new("/etc/sg/redis-ca.pem")),
            Some("REDIS_USER")
        )
    );
    assert_eq!(
        t.mode,
        RedisMode::Sentinel {
            master: "mymaster".into(),
            addrs: vec!["s2:26379".into(), "[::1]:26380".into()],
        }
    );
    let cluster = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\nstate: { backend: redis, redis: { url: \"redis://seed:7000\", mode: cluster } }\n",
    )
    .unwrap();
    let StateBackend::Redis(c) = cluster.state.backend else {
        panic!("redis expected")
    };
    assert_eq!(c.mode, RedisMode::Cluster);
    let d = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\nstate: { backend: redis, redis: { url: \"redis://r:6379\" } }\n",
    )
    .unwrap();
    let StateBackend::Redis(r) = d.state.backend else {
        panic!("redis expected")
    };
    assert_eq!(
        (r.db, r.key_prefix.as_str(), r.timeout),
        (0, "slackgate:", Duration::from_millis(50))
    );
    let local = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:8080 }]\npolicy: p.yaml\n",
    )
    .unwrap();
    assert_eq!(local.state.backend, StateBackend::Local);
}

#[test]
fn defaults_and_relative_paths() {
    let c = compile_config(
        Path::new("/etc/slackgate/config.yaml"),
        "listen: [{ addr: 0.0.0.0:8443, tls: { cert: tls/crt.pem, key: /abs/key.pem } }]\naudit: { path: audit.log }\npolicy: p.yaml\n",
    )
    .unwrap();
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.policy_path, Path::new("/etc/slackgate/p.yaml"));
    assert_eq!(
        c.audit.path,
        AuditPath::File("/etc/slackgate/audit.log".into())
    );
    let tls = c.listen[0].tls.clone().unwrap();
    assert_eq!(tls.cert, Path::new("/etc/slackgate/tls/crt.pem"));
    assert_eq!(tls.key, Path::new("/abs/key.pem"));
    assert!(c.admin.is_none());
}

#[test]
fn limits_parse() {
    let c = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:1 }]\nadmin: { addr: 127.0.0.1:2 }\ntrusted_proxies: [10.0.0.0/8]\nlimits: { max_body_bytes: 2048, body_read_timeout: 1m, upstream_timeout: 2h, max_clock_skew: 60s, max_rate_limit_keys: 5, max_replay_entries: 6, shutdown_grace: 0s }\npolicy: p.yaml\n",
    )
    .unwrap();
    assert_eq!(c.limits.max_body_bytes, 2048);
    assert_eq!(c.limits.body_read_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.upstream_timeout, Duration::from_secs(7200));
    assert_eq!(c.limits.max_clock_skew, Duration::from_secs(60));
    assert_eq!(c.limits.max_rate_limit_keys, 5);
    assert_eq!(c.limits.max_replay_entries, 6);
    assert_eq!(c.limits.shutdown_grace, Duration::ZERO);
    assert!(c.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
}

#[test]
fn duplicate_addresses_are_errors() {
    let e = compile_config(
        Path::new("c.yaml"),
        "listen: [{ addr: 127.0.0.1:1 }]\nadmin: { addr: 127.0.0.1:1 }\npolicy: p.yaml\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("already used by the listener on line 1"),
        "{e}"
    );
}

#[test]
fn tls_key_exchange() {
    let config = |tls: &str| {
        compile_config(
            Path::new("c.yaml"),
            &format!("listen: [{{ addr: 127.0.0.1:1 }}]\npolicy: p.yaml\n{tls}"),
        )
    };
    use KeyExchange::*;
    assert_eq!(
        config("").unwrap().tls.key_exchange,
        [X25519MLKEM768, X25519, P256, P384],
        "the hybrid first by default; P-384 last"
    );
    assert_eq!(
        config("tls: {}\n").unwrap().tls.key_exchange,
        crate::config::DEFAULT_KEY_EXCHANGE
    );
    assert_eq!(
        config("tls: { key_exchange: [x25519, secp256r1, SecP256r1MLKEM768] }\n")
            .unwrap()
            .tls
            .key_exchange,
        [X25519, P256, SecP256r1MLKEM768],
        "IANA names, any case, in the operator's order"
    );
    for (tls, want) in [
        (
            "tls: { key_exchange: [] }\n",
            "3:22: error: `tls.key_exchange` is empty",
        ),
        (
            "tls: { key_exchange: [X25519, X448] }\n",
            "3:31: error: `tls.key_exchange` names an unknown key-exchange group",
        ),
        (
            "tls: { key_exchange: [P-256, secp256r1] }\n",
            "3:30: error: `tls.key_exchange` names P-256 twice",
        ),
        ("tls: { groups: [X25519] }\n", "groups"),
    ] {
        let e = config(tls).unwrap_err().to_string();
        assert!(e.contains(want), "{tls}: {e}");
    }
    let e = config("tls: { key_exchange: [X448] }\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("use one of: X25519MLKEM768, SecP256r1MLKEM768, X25519, P-256, P-384"),
        "{e}"
    );
}
