//! Key exchange: the crypto provider every TLS connection of the gateway uses, with the
//! groups of `tls.key_exchange`, and the listeners' choice of group by the gateway's
//! preference rather than the client's.
//!
//! rustls (0.23) picks, among the groups both sides support, the one the client lists
//! first, and asks for it by HelloRetryRequest when the client sent no share for it. A
//! client that lists P-384 first would so get P-384, the slowest curve, although it also
//! offers X25519. [`Preference`] reads the ClientHello first (rustls' `Acceptor`) and
//! hands rustls a config that holds only the one group the gateway wants: the first of
//! `tls.key_exchange` the client lists, leaving out the post-quantum hybrids (TLS 1.3
//! only) when the client offers no TLS 1.3 cipher suite and so cannot end up on TLS 1.3.
//! Every config shares the certificate resolver, the ticket key and the session cache, so
//! resumption works whichever config a connection got.

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, NamedGroup, ServerConfig};
use slackgate_policy::KeyExchange;

/// rustls' group for a config word.
fn kx_group(k: KeyExchange) -> &'static dyn SupportedKxGroup {
    use aws_lc_rs::kx_group as g;
    match k {
        KeyExchange::X25519MLKEM768 => g::X25519MLKEM768,
        KeyExchange::SecP256r1MLKEM768 => g::SECP256R1MLKEM768,
        KeyExchange::X25519 => g::X25519,
        KeyExchange::P256 => g::SECP256R1,
        KeyExchange::P384 => g::SECP384R1,
    }
}

/// The TLS name of a group (what a ClientHello lists).
pub(super) fn named_group(k: KeyExchange) -> NamedGroup {
    kx_group(k).name()
}

/// The gateway's crypto provider: aws-lc-rs (rustls' default provider; ring has no
/// ML-KEM), its cipher suites, with `groups` as the key-exchange groups in that order.
pub fn provider(groups: &[KeyExchange]) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: groups.iter().map(|&k| kx_group(k)).collect(),
        ..aws_lc_rs::default_provider()
    })
}

/// Installs aws-lc-rs as the process' default rustls provider, before pingora would
/// install ring as it (it keeps whichever came first). Only code that builds a config
/// without naming a provider uses the default (the Redis client's TLS); every config of
/// the gateway's own names [`provider`]. Idempotent.
pub fn install_process_default() {
    let _ = aws_lc_rs::default_provider().install_default();
}

/// The listener's configs, one for each group it can choose (see the module doc).
pub(crate) struct Preference {
    /// The groups of `tls.key_exchange`, in order, each with a config holding only it.
    configs: Vec<(KeyExchange, NamedGroup, Arc<ServerConfig>)>,
    /// Every group: for a ClientHello that lists none of them (rustls then answers with
    /// the right alert) or no group list at all.
    all: Arc<ServerConfig>,
}

impl std::fmt::Debug for Preference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<_> = self.configs.iter().map(|(k, _, _)| k).collect();
        f.debug_struct("Preference")
            .field("groups", &groups)
            .finish_non_exhaustive()
    }
}

impl Preference {
    /// Builds the configs with `build`, which gets the provider of each choice.
    pub(crate) fn new(
        groups: &[KeyExchange],
        build: impl Fn(Arc<CryptoProvider>) -> Result<ServerConfig, rustls::Error>,
    ) -> Result<Self, rustls::Error> {
        let mut configs = Vec::with_capacity(groups.len());
        for &k in groups {
            configs.push((k, named_group(k), Arc::new(build(provider(&[k]))?)));
        }
        Ok(Self {
            configs,
            all: Arc::new(build(provider(groups))?),
        })
    }

    /// The config for a ClientHello that lists the groups `offered` (`None`: no group
    /// list) and whose cipher suites are `suites`.
    pub(crate) fn config_for(
        &self,
        offered: Option<&[NamedGroup]>,
        suites: &[CipherSuite],
    ) -> &Arc<ServerConfig> {
        let Some(offered) = offered else {
            return &self.all;
        };
        let tls13 = suites.iter().any(|s| TLS13_SUITES.contains(s));
        self.configs
            .iter()
            .find(|(k, name, _)| (tls13 || !k.is_hybrid()) && offered.contains(name))
            .map_or(&self.all, |(_, _, config)| config)
    }
}

/// The TLS 1.3 cipher suites (RFC 8446 B.4): a client that offers none of them cannot
/// negotiate TLS 1.3.
const TLS13_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS13_AES_128_CCM_SHA256,
    CipherSuite::TLS13_AES_128_CCM_8_SHA256,
];

#[cfg(test)]
mod tests {
    use super::*;
    use slackgate_policy::DEFAULT_KEY_EXCHANGE;

    fn groups_of(config: &ServerConfig) -> Vec<NamedGroup> {
        config
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect()
    }

    fn preference(groups: &[KeyExchange]) -> Preference {
        Preference::new(groups, |p| {
            Ok(ServerConfig::builder_with_provider(p)
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())))
        })
        .unwrap()
    }

    const TLS13: &[CipherSuite] = &[CipherSuite::TLS13_AES_128_GCM_SHA256];
    const TLS12: &[CipherSuite] = &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];

    #[test]
    fn the_gateway_order_decides_not_the_clients() {
        let p = preference(DEFAULT_KEY_EXCHANGE);
        let (x, p256, p384, pq) = (
            NamedGroup::X25519,
            NamedGroup::secp256r1,
            NamedGroup::secp384r1,
            NamedGroup::X25519MLKEM768,
        );
        // P-384 first, X25519 too: only X25519 is on offer to rustls.
        assert_eq!(groups_of(p.config_for(Some(&[p384, x, p256]), TLS13)), [x]);
        assert_eq!(groups_of(p.config_for(Some(&[p256, x]), TLS13)), [x]);
        // P-384 is all it offers: P-384.
        assert_eq!(groups_of(p.config_for(Some(&[p384]), TLS13)), [p384]);
        // The hybrid wherever the client lists it, when TLS 1.3 is possible.
        assert_eq!(groups_of(p.config_for(Some(&[pq, x]), TLS13)), [pq]);
        assert_eq!(groups_of(p.config_for(Some(&[p384, pq]), TLS13)), [pq]);
        // A TLS 1.2-only client cannot use it: its best classical group.
        assert_eq!(groups_of(p.config_for(Some(&[pq, p256, x]), TLS12)), [x]);
        // Nothing in common, or no list: every group (rustls answers the alert).
        assert_eq!(
            groups_of(p.config_for(Some(&[NamedGroup::FFDHE2048]), TLS13)).len(),
            DEFAULT_KEY_EXCHANGE.len()
        );
        assert_eq!(
            groups_of(p.config_for(None, TLS13)).len(),
            DEFAULT_KEY_EXCHANGE.len()
        );
    }

    #[test]
    fn a_restricted_list_is_all_there_is() {
        let p = preference(&[KeyExchange::X25519]);
        let x = NamedGroup::X25519;
        assert_eq!(
            groups_of(p.config_for(Some(&[NamedGroup::X25519MLKEM768, x]), TLS13)),
            [x]
        );
        assert_eq!(
            groups_of(p.config_for(Some(&[NamedGroup::secp384r1]), TLS13)),
            [x],
            "no group in common: rustls refuses with the one configured"
        );
    }

    #[test]
    fn the_provider_keeps_the_configured_order() {
        let groups: Vec<NamedGroup> = provider(DEFAULT_KEY_EXCHANGE)
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519MLKEM768,
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }
}
