"""A Slack Bolt for Python app behind slackgate's inbound door whose Web API calls go out
through slackgate's egress door, used by tests/sdk_compat.rs.

Bolt is configured the way a bot moving behind the gateway would be: its token is the
gateway KEY (SLACKGATE_KEY) and its WebClient's base_url is the egress listener
(SLACKGATE_EGRESS, host:port). Token verification stays on, so the App's constructor calls
auth.test through the door before the app listens; a failure there exits with Bolt's error.
The signing secret comes from SLACK_SIGNING_SECRET; Bolt verifies every inbound request.

The app_mention handler answers with `say()`, which Bolt sends as chat.postMessage to the
event's channel; the handler records what the SDK handed back (ok, channel, or the
SlackApiError's error and data). The HTTP side and the records are tests/bolt/bot.py's:

    GET /ran       -> JSON list of handler records, in the order they ran
    GET /requests  -> JSON list of {path, status} for every POST Bolt answered

Usage: bolt_say.py --port N [--path /slack/events]
Binds 127.0.0.1:N (the test picks N) and prints `listening 127.0.0.1:<port>` on stdout.
"""

import os
import sys

from slack_sdk.errors import SlackApiError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bolt"))
import bot  # noqa: E402  (tests/bolt/bot.py: its HTTP server and handler records)

REPLY = "ticket T-42 opened"


def build_app(signing_secret, key, egress):
    app = bot.gateway_app(signing_secret, key, egress)

    @app.event("app_mention")
    def on_mention(event, say, ack):
        ack()
        try:
            resp = say(REPLY)
            bot.record(
                "app_mention_say",
                channel=event.get("channel"),
                ok=resp.get("ok"),
                posted_channel=resp.get("channel"),
                status=resp.status_code,
                data=resp.data,
                headers=dict(resp.headers or {}),
            )
        except SlackApiError as e:
            bot.record(
                "app_mention_say",
                channel=event.get("channel"),
                ok=False,
                exception=type(e).__name__,
                error=e.response.get("error"),
                status=e.response.status_code,
                data=e.response.data,
                headers=dict(e.response.headers or {}),
            )

    return app


if __name__ == "__main__":
    bot.run("bolt_say.py", build_app, ["SLACK_SIGNING_SECRET", "SLACKGATE_KEY", "SLACKGATE_EGRESS"])
