//! Secret custody on arbitrary bytes: `take_into_custody` never panics (as JSON, as a form
//! and sniffed; wanting response URLs, workflow tokens or both; keeping or refusing each
//! capability), and wherever the facts readers read a body, custody with what they learnt
//! (`Facts::custody`: the decoded `payload`, where custody's fields are) answers byte for
//! byte what custody reading the body itself answers: the body, what it held, or the error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slackgate_slack::{parse_facts, take_into_custody_decoded, CustodyHint, Wants};

/// Custody's whole answer for `body`: the outcome and what it held, in order.
fn answer(
    content_type: Option<&str>,
    body: &[u8],
    wants: Wants,
    hint: Option<&CustodyHint<'_>>,
) -> String {
    let mut held = Vec::new();
    let out = take_into_custody_decoded(content_type, body, wants, hint, |h| {
        held.push(format!("{h:?}"));
        Some(format!("https://gw.example/c/\"\\%+&={}", held.len()))
    });
    format!("{out:?} {held:?}")
}

fuzz_target!(|body: &[u8]| {
    for content_type in [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let facts = parse_facts(content_type, body).ok();
        let hint = facts.as_ref().and_then(|f| f.custody.as_ref());
        for (response_urls, workflow_tokens) in [(true, true), (true, false), (false, true)] {
            let wants = Wants {
                response_urls,
                workflow_tokens,
            };
            let own = answer(content_type, body, wants, None);
            if hint.is_some() {
                assert_eq!(answer(content_type, body, wants, hint), own);
            }
            // Refusing changes nothing but the outcome of a body that held something.
            let refused = take_into_custody_decoded(content_type, body, wants, hint, |_| None);
            if own.starts_with("Ok(None)") {
                assert_eq!(refused, Ok(None));
            }
        }
    }
});
