"""The Python Slack SDK (slack_sdk's WebClient) calling through slackgate's egress door,
driven by tests/sdk_compat.rs.

The test writes the plan on stdin, one JSON object per call, in order:

    {"id": "post", "key": "good" | "wrong", "method": "chat.postMessage", "args": {...}}

`method` is the Web API method, called through the WebClient method of that name
(`chat.postMessage` -> `client.chat_postMessage(**args)`), so each call takes the SDK's
own path: its body encoding (JSON for chat.postMessage, form for the others), its headers.
The keys come from the environment, never argv: SLACKGATE_KEY (the bot's gateway key) and
SLACKGATE_WRONG_KEY (a key no bot has). SLACKGATE_EGRESS is the egress listener's host:port.

For each call it prints one JSON line on stdout with what the SDK handed back:

    {"id", "ok", "exception" (the class name, or null), "status", "error",
     "reason" (the X-Slackgate-Reason header), "retry_after", "headers", "data"}

A failed call must surface as the SDK's ordinary SlackApiError; any other exception is
printed with its class and message so the test can say what went wrong.
"""

import json
import os
import sys

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


def header(headers, name):
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v[0] if isinstance(v, list) else v
    return None


def line(call_id, exception, resp):
    headers = {k: (v[0] if isinstance(v, list) else v) for k, v in (resp.headers or {}).items()}
    data = resp.data if isinstance(resp.data, dict) else {"raw": str(resp.data)}
    return {
        "id": call_id,
        "ok": bool(data.get("ok")),
        "exception": exception,
        "status": resp.status_code,
        "error": data.get("error"),
        "reason": header(headers, "x-slackgate-reason"),
        "retry_after": header(headers, "retry-after"),
        "headers": headers,
        "data": data,
    }


def main():
    base_url = f"http://{os.environ['SLACKGATE_EGRESS']}/api/"
    keys = {"good": os.environ["SLACKGATE_KEY"], "wrong": os.environ["SLACKGATE_WRONG_KEY"]}
    clients = {name: WebClient(token=key, base_url=base_url, timeout=10) for name, key in keys.items()}
    for raw in sys.stdin:
        if not raw.strip():
            continue
        call = json.loads(raw)
        client = clients[call["key"]]
        try:
            resp = getattr(client, call["method"].replace(".", "_"))(**call.get("args", {}))
            out = line(call["id"], None, resp)
        except SlackApiError as e:
            out = line(call["id"], type(e).__name__, e.response)
        except Exception as e:  # reported, so the test can say what went wrong
            out = {"id": call["id"], "ok": False, "exception": type(e).__name__, "message": str(e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
