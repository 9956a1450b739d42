//! `apps.<app>.socket_mode`: the app token (a reference only, an `xapp-` token, never
//! echoed), the number of connections, and the route path of each envelope type, which
//! must be the path of a route of the same app (checked once the routes are compiled).

use std::sync::Arc;

use marked_yaml::Spanned;

use super::super::{shown, Compiler};
use super::Hints;
use crate::apps::{SocketMode, SocketPaths, MAX_SOCKET_CONNECTIONS};
use crate::secrets::looks_secret;
use crate::spec::{RouteSpec, SocketModeSpec, SocketPathsSpec};

/// A path as written, when it looks like one (so that a pasted secret is never echoed).
fn shown_path(p: &str) -> &str {
    let plain = p.starts_with('/')
        && p.len() <= 200
        && p.bytes().all(|b| b.is_ascii_graphic())
        && !looks_secret(p);
    if plain {
        p
    } else {
        "(path not shown)"
    }
}

/// A `socket_mode.paths` entry waiting for the routes: the app, the envelope type, and
/// the path as written.
#[derive(Debug)]
pub(in crate::compile) struct SocketPathRef {
    app: Arc<str>,
    kind: &'static str,
    path: Spanned<String>,
}

impl Compiler<'_> {
    /// Compiles an app's `socket_mode`; its paths are queued in `pending` for
    /// [`Compiler::socket_paths`].
    pub(super) fn socket_mode(
        &mut self,
        app: &Arc<str>,
        spec: Spanned<SocketModeSpec>,
        pending: &mut Vec<SocketPathRef>,
    ) -> Option<SocketMode> {
        let start = self.errs.len();
        let label = shown(app);
        let SocketModeSpec {
            app_token,
            connections,
            paths,
        } = &*spec;
        let token = self.credential(
            &format!("socket_mode app_token of app `{label}`"),
            app_token,
            &Hints {
                env_example: "HELPDESK_APP_TOKEN",
                file_example: "/run/secrets/helpdesk-app-token",
                content: "the app-level token (xapp-...)",
            },
        );
        if let Some((t, span)) = &token {
            if !t.expose().starts_with("xapp-") {
                self.errs.at(
                    span,
                    format!("the socket_mode app_token of app `{label}` is not an app-level token"),
                    "point `app_token` at an app-level token with the connections:write scope (Basic Information, App-Level Tokens; it starts with xapp-), not a bot or user token",
                );
            }
        }
        let connections = match connections {
            None => 1,
            Some(n) => match u8::try_from(**n) {
                Ok(n) if (1..=MAX_SOCKET_CONNECTIONS).contains(&n) => n,
                _ => {
                    self.errs.at(
                        n.span(),
                        format!("`connections` of app `{label}`'s socket_mode is {}: it must be 1 to {MAX_SOCKET_CONNECTIONS}", **n),
                        "Slack allows up to 10 Socket Mode connections per app; 2 keeps one open while the other is replaced",
                    );
                    1
                }
            },
        };
        let paths_span = *paths.span();
        let SocketPathsSpec {
            events_api,
            slash_commands,
            interactive,
        } = &**paths;
        let mut out = SocketPaths::default();
        for (kind, path, slot) in [
            ("events_api", events_api, &mut out.events_api),
            ("slash_commands", slash_commands, &mut out.slash_commands),
            ("interactive", interactive, &mut out.interactive),
        ] {
            if let Some(path) = path {
                *slot = Some(Arc::from(path.as_str()));
                pending.push(SocketPathRef {
                    app: Arc::clone(app),
                    kind,
                    path: path.clone(),
                });
            }
        }
        if out.iter().next().is_none() {
            self.errs.at(
                &paths_span,
                format!("`paths` of app `{label}`'s socket_mode names no path: no envelope could be delivered"),
                "add the route path of each envelope type the app receives, e.g. `events_api: /slack/events`",
            );
        }
        match token {
            Some((app_token, _)) if self.errs.len() == start => Some(SocketMode {
                app_token,
                connections,
                paths: out,
                at: crate::error::span_pos(spec.span()),
            }),
            _ => None,
        }
    }

    /// Checks every queued `socket_mode.paths` entry against the routes as written: it
    /// must be the path of a route of the same app. The routes as written, not as compiled:
    /// a route (or an app) that failed for its own reason is reported once, at itself, not
    /// again as a socket path that names no route.
    pub(in crate::compile) fn socket_paths(
        &mut self,
        pending: &[SocketPathRef],
        routes: &[RouteSpec],
    ) {
        for p in pending {
            let app_routes = || routes.iter().filter(|r| r.app.as_str() == &*p.app);
            if app_routes().any(|r| *r.path == **p.path) {
                continue;
            }
            let known: Vec<String> = app_routes()
                .map(|r| format!("`{}`", shown_path(&r.path)))
                .collect();
            let known = if known.is_empty() {
                "(the app has no route)".to_owned()
            } else {
                known.join(", ")
            };
            self.errs.at(
                p.path.span(),
                format!(
                    "socket_mode path `{}` ({}) of app `{}` is not the path of a route of that app",
                    shown_path(&p.path),
                    p.kind,
                    shown(&p.app)
                ),
                format!("name the path of one of the app's routes: {known}; envelopes run that route's pipeline"),
            );
        }
    }
}
