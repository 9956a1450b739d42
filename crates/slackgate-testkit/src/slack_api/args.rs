//! A call's arguments and credentials, as Slack reads them.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// A call's arguments: query string, form body, JSON body.
#[derive(Debug, Default)]
pub(super) struct Args {
    pub(super) query: Vec<(String, String)>,
    pub(super) form: Vec<(String, String)>,
    pub(super) json: Option<Map<String, Value>>,
    pub(super) warnings: Vec<&'static str>,
}

impl Args {
    /// Reads the query and the body by its content type. The error is the Slack error code
    /// for a body it cannot read.
    pub(super) fn read(
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Self, &'static str> {
        let mut args = Args {
            query: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            ..Args::default()
        };
        let content_type = crate::first_header(headers, "content-type");
        if body.is_empty() {
            return Ok(args);
        }
        let Some(content_type) = content_type else {
            return Err("missing_post_type");
        };
        let mut parts = content_type.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let charset = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
            .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
        if let Some(c) = &charset {
            if c != "utf-8" && c != "iso-8859-1" {
                return Err("invalid_charset");
            }
        }
        match media.as_str() {
            "application/x-www-form-urlencoded" => {
                if charset.is_some() {
                    args.warnings.push("superfluous_charset");
                }
                args.form = form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            }
            "application/json" => {
                if charset.is_none() {
                    args.warnings.push("missing_charset");
                }
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(map)) => args.json = Some(map),
                    Ok(_) => return Err("json_not_object"),
                    Err(_) => return Err("invalid_json"),
                }
            }
            _ => return Err("invalid_post_type"),
        }
        Ok(args)
    }

    /// An argument: JSON member, else form field, else query parameter (first wins).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.json.as_ref().and_then(|j| j.get(name)) {
            return Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        let find = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        find(&self.form).or_else(|| find(&self.query))
    }

    /// Every argument name, once, in a stable order.
    pub(super) fn names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let json_keys = self.json.iter().flat_map(|j| j.keys().cloned());
        let pair_keys = self.form.iter().chain(&self.query).map(|(k, _)| k.clone());
        json_keys
            .chain(pair_keys)
            .filter(|k| seen.insert(k.clone()))
            .collect()
    }
}

/// The token Slack would read: `Authorization: Bearer`, else a `token` field of a form body.
pub(super) fn presented_token(headers: &[(String, String)], args: &Args) -> Option<String> {
    let bearer = headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .find_map(|(_, v)| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            let token = rest.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
        });
    bearer.or_else(|| {
        args.form
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
    })
}

/// `Authorization: Basic base64(id:secret)`.
pub(super) fn basic_credentials(headers: &[(String, String)]) -> Option<(String, String)> {
    let value = crate::first_header(headers, "authorization")?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(b64.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Standard base64 with optional padding; `None` on any other byte.
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
