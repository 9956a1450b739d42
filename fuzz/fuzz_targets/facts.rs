//! `parse_facts` and `is_ssl_check` on arbitrary bytes, as JSON, as a form and sniffed.
//! Neither may panic; facts that parse must be consistent with the body's encoding, and
//! the quick JSON reader must give exactly what `serde_json` alone gives (value or error).

#![no_main]

use libfuzzer_sys::fuzz_target;
use slackgate_slack::{
    is_ssl_check, parse_facts, parse_facts_with_serde_only, CustodyHint, Facts, FactsError,
    RequestKind,
};

/// The facts without an events body's custody spots.
fn strip<'a>(f: Result<Facts<'a>, FactsError>) -> Result<Facts<'a>, FactsError> {
    f.map(|mut f| {
        if matches!(f.custody, Some(CustodyHint::Event(_))) {
            f.custody = None;
        }
        f
    })
}

fuzz_target!(|body: &[u8]| {
    for content_type in [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let ssl = is_ssl_check(content_type, body);
        let facts = parse_facts(content_type, body);
        // The same facts; only the quick reader vouches for custody's spots in an events
        // body (the custody target holds those to custody's own walk).
        assert_eq!(
            strip(facts.clone()),
            strip(parse_facts_with_serde_only(content_type, body))
        );
        if let Ok(facts) = facts {
            // The cheap check and the full parse agree on ssl_check bodies.
            assert_eq!(ssl, facts.kind == RequestKind::SslCheck);
            let _ = facts.into_owned();
        }
    }
});
