"""A real Slack Bolt for Python app, used as slackgate's upstream in tests/bolt_compat.rs.

Bolt verifies every request's signature itself (its default request verification is on), with
the signing secret from the SLACK_SIGNING_SECRET environment variable (never argv, so it stays
out of process listings). The handlers record that they ran; the test reads the records back:

    GET /ran       -> JSON list of handler records, in the order they ran
    GET /requests  -> JSON list of {path, status, headers, body} for every POST Bolt answered
                      (headers lower-cased, as Bolt got them)

Usage: bot.py [--port N] [--path /slack/events]
Binds 127.0.0.1 (port 0 = any free port) and prints `listening 127.0.0.1:<port>` on stdout.
This app touches the network only through that socket: authorization is a local stub, so
Bolt never calls auth.test, and no handler calls the Web API. The scripts whose bots call
out through the gateway's egress door (tests/sdk/bolt_say.py, tests/bolt/custody.py) build
their app with `gateway_app` and serve it with `serve`.
"""

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

RAN = []
REQUESTS = []
LOCK = threading.Lock()


def record(handler, **fields):
    with LOCK:
        RAN.append({"handler": handler, **fields})


def authorize(enterprise_id, team_id, user_id, logger):
    # A fixed result instead of an installation store: no token lookup, no network.
    return AuthorizeResult(
        enterprise_id=enterprise_id,
        team_id=team_id,
        bot_token="xoxb-offline-test",
        bot_id="B0BOT",
        bot_user_id="U0BOT",
        user_id=user_id,
    )


def build_app(signing_secret):
    app = App(
        signing_secret=signing_secret,
        authorize=authorize,
        token_verification_enabled=False,
        # Run handlers before answering, so an HTTP 200 means the handler already ran.
        process_before_response=True,
    )

    @app.event("app_mention")
    def on_mention(event, ack):
        ack()
        record(
            "app_mention",
            user=event.get("user"),
            channel=event.get("channel"),
            text=event.get("text"),
        )

    @app.command("/ticket")
    def on_ticket(command, ack):
        ack()
        record(
            "ticket",
            user=command.get("user_id"),
            team=command.get("team_id"),
            text=command.get("text"),
        )

    @app.action("ticket_close")
    def on_ticket_close(body, action, ack):
        ack()
        record(
            "ticket_close",
            user=body.get("user", {}).get("id"),
            team=body.get("team", {}).get("id"),
            channel=body.get("channel", {}).get("id"),
            api_app_id=body.get("api_app_id"),
            value=action.get("value"),
        )

    return app


def gateway_app(signing_secret, key, egress):
    """A Bolt app as a bot behind slackgate has it: its token is the gateway key `key` and
    its WebClient's base_url the egress door `egress` (host:port). Token verification stays
    on, so this calls auth.test through the door. Handlers run before Bolt answers, so an
    HTTP 200 means they already returned."""
    # The client carries the token (Bolt takes it from there and warns if both are given).
    client = WebClient(token=key, base_url=f"http://{egress}/api/", timeout=10)
    return App(signing_secret=signing_secret, client=client, process_before_response=True)


def make_handler(app, path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            sys.stderr.write("bolt-bot: " + (format % args) + "\n")

        def _send(self, status, body, headers=None):
            data = body.encode("utf-8") if isinstance(body, str) else body
            self.send_response(status)
            for k, vs in (headers or {}).items():
                if k.lower() in ("content-length", "connection"):
                    continue
                for v in vs if isinstance(vs, (list, tuple)) else [vs]:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with LOCK:
                if self.path == "/ran":
                    out = json.dumps(RAN)
                elif self.path == "/requests":
                    out = json.dumps(REQUESTS)
                else:
                    self._send(404, "")
                    return
            self._send(200, out, {"Content-Type": "application/json"})

        def do_POST(self):
            request_path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            if request_path != path:
                status, resp_body, headers = 404, "", {}
            else:
                resp = app.dispatch(
                    BoltRequest(body=body, query=query, headers=self.headers)
                )
                status, resp_body, headers = resp.status, resp.body, resp.headers
            with LOCK:
                REQUESTS.append(
                    {
                        "path": request_path,
                        "status": status,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
            self._send(status, resp_body, headers)

    return Handler


def serve(app, port, path):
    """Serves `app` on 127.0.0.1:`port` (0: any free port) at `path` until interrupted,
    after printing `listening HOST:PORT` (what the tests wait for)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app, path))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"listening {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def run(name, build, env_names):
    """The main of a script: serves `build(*values)` on `--port N` (0: any free port) at
    `--path P`, the values read from the environment variables `env_names` (secrets stay
    out of argv), each of which must be set."""
    parser = argparse.ArgumentParser(prog=name)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/slack/events")
    args = parser.parse_args()
    values = [os.environ.get(n, "") for n in env_names]
    if not all(values):
        sys.exit(f"{name}: set {', '.join(env_names)}")
    serve(build(*values), args.port, args.path)


if __name__ == "__main__":
    run("bot.py", build_app, ["SLACK_SIGNING_SECRET"])
