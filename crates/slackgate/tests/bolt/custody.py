"""A Slack Bolt for Python app in HTTP mode as the bot behind a slackgate route that keeps
Slack's secrets (`resign`, `response_urls: custody`, `workflow_tokens: custody`), used by
tests/bolt_custody.rs.

It is configured the way a bot moving behind the gateway is: its signing secret is the
route's resign secret (BOLT_SIGNING_SECRET), never Slack's; its token is the bot's gateway
key (SLACKGATE_KEY) and its WebClient's base_url the egress door (SLACKGATE_EGRESS,
host:port). Token verification stays on, so the App's constructor calls auth.test through
the door before the app listens. Secrets come from the environment, never argv.

The handlers use what the gateway handed them as a bot would, and as a thief would:

- `/ticket`: its response URL with another bot's gateway key (SLACKGATE_OTHER_KEY), an
  unknown capability beside it, then `respond()` six times (Slack allows five).
- `app_mention`: `files_upload_v2` of a small file into the event's channel, then the same
  upload by a client that declares fewer bytes to `files.getUploadURLExternal` than it sends.
- function `open_ticket` (a custom workflow step): `complete(outputs)` with the client Bolt
  hands the function (its token is what the event carried), then a `chat.postMessage` with
  that client.

Each handler records what it saw and, per step, what the SDK handed back. The HTTP side and
the records are tests/bolt/bot.py's (`GET /ran`, `GET /requests`).

Usage: custody.py --port N [--path /slack/events]
"""

import json
from urllib.error import HTTPError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

import bot  # tests/bolt/bot.py, beside this file: its HTTP server and handler records

UPLOAD = b"ticket T-42: printer on fire\n"


def webhook(resp):
    """What a WebhookClient (and so Bolt's respond()) handed back."""
    return {"status": resp.status_code, "body": resp.body}


def api_error(e):
    return {"exception": type(e).__name__, "error": e.response.get("error")}


class Understating(WebClient):
    """A client that declares fewer bytes than it uploads."""

    def files_getUploadURLExternal(self, *, filename, length, **kwargs):
        return super().files_getUploadURLExternal(filename=filename, length=length - 4, **kwargs)


def build_app(signing_secret, key, other_key, egress):
    app = bot.gateway_app(signing_secret, key, egress)

    @app.command("/ticket")
    def on_ticket(command, ack, respond):
        ack()
        url = command["response_url"]
        steps = []
        # Another bot's key on this bot's capability.
        thief = WebhookClient(url=url, default_headers={"Authorization": f"Bearer {other_key}"})
        steps.append({"what": "other_key", **webhook(thief.send(text="stolen"))})
        # A capability nobody was handed, beside the real one.
        unknown = url.rsplit("/", 1)[0] + "/" + "0" * 40
        steps.append({"what": "unknown", **webhook(WebhookClient(url=unknown).send(text="guess"))})
        for n in range(1, 7):
            steps.append({"what": f"respond {n}", **webhook(respond(f"ticket T-42, reply {n}"))})
        bot.record("ticket", response_url=url, text=command.get("text"), steps=steps)

    @app.event("app_mention")
    def on_mention(event, ack, client):
        ack()
        steps = []
        kwargs = dict(channel=event["channel"], content=UPLOAD, filename="t.txt", title="T-42")
        try:
            resp = client.files_upload_v2(**kwargs)
            steps.append({"what": "upload", "ok": resp.get("ok"), "file_id": resp["file"]["id"]})
        except SlackApiError as e:
            steps.append({"what": "upload", **api_error(e)})
        liar = Understating(token=client.token, base_url=client.base_url, timeout=10)
        try:
            resp = liar.files_upload_v2(**kwargs)
            steps.append({"what": "oversize", "ok": resp.get("ok")})
        except HTTPError as e:
            # slack_sdk posts the bytes with urllib, which raises on a 4xx answer.
            body = json.loads(e.read().decode("utf-8") or "{}")
            got = {"exception": "HTTPError", "status": e.code, "error": body.get("error")}
            steps.append({"what": "oversize", **got})
        except SlackApiError as e:
            steps.append({"what": "oversize", **api_error(e)})
        bot.record("app_mention", channel=event["channel"], steps=steps)

    @app.function("open_ticket")
    def on_open_ticket(inputs, complete, client, context):
        steps = []
        try:
            resp = complete(outputs={"ticket": "T-42"})
            steps.append({"what": "complete", "ok": resp.get("ok")})
        except SlackApiError as e:
            steps.append({"what": "complete", **api_error(e)})
        try:
            resp = client.chat_postMessage(channel="C0HELP", text="step done")
            steps.append({"what": "after", "ok": resp.get("ok")})
        except SlackApiError as e:
            steps.append({"what": "after", **api_error(e)})
        bot.record(
            "open_ticket",
            token=context.function_bot_access_token,
            client_token=client.token,
            execution=context.function_execution_id,
            inputs=inputs,
            steps=steps,
        )

    return app


if __name__ == "__main__":
    bot.run(
        "custody.py",
        build_app,
        ["BOLT_SIGNING_SECRET", "SLACKGATE_KEY", "SLACKGATE_OTHER_KEY", "SLACKGATE_EGRESS"],
    )
