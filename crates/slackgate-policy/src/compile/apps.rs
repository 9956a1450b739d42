//! Apps and their signing secrets: references only (`env:` or `file:`), read through the
//! [`SecretSource`](crate::SecretSource), never echoed in an error.

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Span, Spanned};
use slackgate_slack::SigningKey;

use super::{is_slack_id, line_of, shown, Compiler};
use crate::apps::{App, AppSecret};
pub(super) use socket::SocketPathRef;

mod socket;
use crate::secrets::{describe_io, is_env_name, looks_secret, trim_secret, SecretRef};
use crate::spec::{AppSpec, SecretRefSpec};
use crate::yaml::{LITERAL_SECRET_FIX, LITERAL_SECRET_MESSAGE};

impl Compiler<'_> {
    pub(super) fn app(
        &mut self,
        name: &Spanned<String>,
        spec: AppSpec,
        socket_paths: &mut Vec<SocketPathRef>,
    ) -> Option<App> {
        let AppSpec {
            api_app_id,
            signing_secrets,
            socket_mode,
        } = spec;
        let start = self.errs.len();
        self.check_name("app", name);
        let app_name: Arc<str> = Arc::from(name.as_str());
        let app_label = shown(name);

        let api_app_id = api_app_id.and_then(|id| {
            if is_slack_id(&id, b"A") {
                Some(Arc::<str>::from(id.as_str()))
            } else {
                self.errs.at(
                    id.span(),
                    format!("`api_app_id` of app `{app_label}` is not a Slack app id"),
                    "write the app id from the app's Basic Information page, e.g. A0123ABCDEF (starts with A), or omit the key",
                );
                None
            }
        });

        if signing_secrets.is_empty() {
            self.errs.at(
                signing_secrets.span(),
                format!("app `{app_label}` has no signing secrets: its routes could never verify a request"),
                "add at least one entry such as `- { id: current, env: MY_APP_SIGNING_SECRET }`",
            );
        }
        let list_span = *signing_secrets.span();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut secrets = Vec::new();
        for spec in signing_secrets.iter() {
            if let Some(s) = self.secret(&app_label, spec, list_span, &mut seen) {
                secrets.push(s);
            }
        }
        if self.errs.len() == start && secrets.iter().all(|s| !s.is_live(self.now)) {
            self.errs.at(
                &list_span,
                format!("every signing secret of app `{app_label}` has expired"),
                "add the app's current signing secret (Slack app settings, Basic Information) or move `expires` into the future",
            );
        }
        let socket_mode = socket_mode.and_then(|s| self.socket_mode(&app_name, s, socket_paths));
        (self.errs.len() == start).then(|| App {
            name: app_name,
            api_app_id,
            secrets: secrets.into(),
            socket_mode,
        })
    }

    fn secret(
        &mut self,
        app: &str,
        spec: &SecretRefSpec,
        list_span: Span,
        seen: &mut HashMap<String, usize>,
    ) -> Option<AppSecret> {
        let SecretRefSpec {
            id,
            env,
            file,
            expires,
            secret,
            value,
            signing_secret,
            token,
            password,
        } = spec;
        let start = self.errs.len();
        for literal in [secret, value, signing_secret, token, password]
            .into_iter()
            .flatten()
        {
            self.errs
                .at(literal.span(), LITERAL_SECRET_MESSAGE, LITERAL_SECRET_FIX);
        }

        let Some(id) = id else {
            let at = env
                .as_ref()
                .map(|s| *s.span())
                .or_else(|| file.as_ref().map(|s| *s.span()))
                .or_else(|| expires.as_ref().map(|s| *s.span()))
                .unwrap_or(list_span);
            self.errs.at(
                &at,
                format!("a signing secret of app `{app}` has no `id`"),
                "add `id: current` (a short name recorded in audit logs as secret_id)",
            );
            return None;
        };
        if self.check_name("secret id", id) {
            if let Some(first) = seen.insert(id.to_string(), line_of(id.span())) {
                self.errs.at(
                    id.span(),
                    format!(
                        "duplicate secret id `{}` in app `{app}` (first on line {first})",
                        id.as_str()
                    ),
                    "give each signing secret of an app its own id, e.g. current and previous",
                );
            }
        }

        let expires =
            expires
                .as_ref()
                .and_then(|e| match humantime::parse_rfc3339_weak(e.trim()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.errs.at(
                            e.span(),
                            format!(
                            "`expires` of secret `{}` in app `{app}` is not an RFC 3339 timestamp",
                            id.as_str()
                        ),
                            "write a UTC timestamp such as 2026-12-31T00:00:00Z",
                        );
                        None
                    }
                });

        if self.errs.len() != start && env.is_none() && file.is_none() {
            return None;
        }
        let what = format!("secret `{}` of app `{app}`", shown(id));
        let (source, bytes) = self.reference(
            &what,
            env.as_ref(),
            file.as_ref(),
            id.span(),
            &Hints {
                env_example: "HELPDESK_SIGNING_SECRET",
                file_example: "/run/secrets/helpdesk-signing-secret",
                content: "the app's signing secret",
            },
        )?;
        if self.errs.len() != start {
            return None;
        }
        match SigningKey::new(id.as_str(), &bytes) {
            Ok(key) => Some(AppSecret {
                key,
                expires,
                source,
            }),
            Err(_) => {
                self.errs.at(
                    id.span(),
                    format!("{what} cannot be used as a signing key"),
                    "check the secret's value",
                );
                None
            }
        }
    }

    /// Reads a secret reference (`env:` or `file:`, exactly one) for `what`, reporting
    /// every problem without the value. `anchor` is where a reference with neither is
    /// reported.
    pub(super) fn reference(
        &mut self,
        what: &str,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
        anchor: &Span,
        hints: &Hints,
    ) -> Option<(SecretRef, Vec<u8>)> {
        let start = self.errs.len();
        let out = match (env, file) {
            (Some(_), Some(f)) => {
                self.errs.at(
                    f.span(),
                    format!("{what} has both `env` and `file`"),
                    "keep exactly one of `env:` or `file:`",
                );
                return None;
            }
            (None, None) => {
                if self.errs.len() == start {
                    self.errs.at(
                        anchor,
                        format!("{what} has neither `env` nor `file`"),
                        "add `env: VAR_NAME` or `file: /path/to/secret`",
                    );
                }
                return None;
            }
            (Some(var), None) => {
                if matches!(var.trim(), "" | "~" | "null") {
                    self.errs.at(
                        var.span(),
                        format!("`env` of {what} is empty"),
                        format!("write the name of the environment variable that holds the secret, e.g. `env: {}`", hints.env_example),
                    );
                    return None;
                }
                if !is_env_name(var) || looks_secret(var) {
                    self.errs.at(
                        var.span(),
                        format!("`env` of {what} looks like a literal secret, not an environment variable name"),
                        format!("write the NAME of the variable that holds the secret, e.g. `env: {}` (letters, digits and _); if this was the secret itself, rotate it", hints.env_example),
                    );
                    return None;
                }
                match self.secrets.env(var) {
                    None => {
                        self.errs.at(
                            var.span(),
                            format!("environment variable {} ({what}) is not set", var.as_str()),
                            format!("set {} in the gateway's environment (e.g. from a Kubernetes Secret), or remove this secret", var.as_str()),
                        );
                        return None;
                    }
                    Some(v) if trim_secret(v.as_bytes()).is_empty() => {
                        self.errs.at(
                            var.span(),
                            format!("environment variable {} ({what}) is empty", var.as_str()),
                            format!("put {} in {}", hints.content, var.as_str()),
                        );
                        return None;
                    }
                    Some(v) => (
                        SecretRef::Env(var.to_string()),
                        trim_secret(v.as_bytes()).to_vec(),
                    ),
                }
            }
            (None, Some(f)) => {
                if f.trim().is_empty() {
                    self.errs.at(
                        f.span(),
                        format!("`file` of {what} is empty"),
                        "write the path of the file that holds the secret",
                    );
                    return None;
                }
                if looks_secret(f) {
                    self.errs.at(
                        f.span(),
                        format!("`file` of {what} looks like a literal secret, not a path"),
                        format!("write the path of the file that holds the secret, e.g. `file: {}`; if this was the secret itself, rotate it", hints.file_example),
                    );
                    return None;
                }
                let path = self.base.join(f.as_str());
                match self.secrets.read_file(&path) {
                    Err(e) => {
                        self.errs.at(
                            f.span(),
                            format!("cannot read secret file {} ({what}): {}", path.display(), describe_io(&e)),
                            "mount the secret file at this path and make it readable by the gateway, or fix the path (relative paths start at the policy file's directory)",
                        );
                        return None;
                    }
                    Ok(b) if trim_secret(&b).is_empty() => {
                        self.errs.at(
                            f.span(),
                            format!("secret file {} ({what}) is empty", path.display()),
                            format!("put {} in the file", hints.content),
                        );
                        return None;
                    }
                    Ok(b) => (SecretRef::File(path), trim_secret(&b).to_vec()),
                }
            }
        };
        (self.errs.len() == start).then_some(out)
    }
}

/// Examples and wording for a reference's error messages.
pub(super) struct Hints {
    /// An environment variable name, e.g. `HELPDESK_SIGNING_SECRET`.
    pub(super) env_example: &'static str,
    /// A file path, e.g. `/run/secrets/helpdesk-signing-secret`.
    pub(super) file_example: &'static str,
    /// What the value is, e.g. "the app's signing secret".
    pub(super) content: &'static str,
}
