// The Node Slack SDK (@slack/web-api's WebClient) calling through slackgate's egress door,
// driven by tests/sdk_compat.rs.
//
// The test writes the plan on stdin, one JSON object per call, in order:
//
//     {"id": "post", "key": "good" | "wrong", "method": "chat.postMessage", "args": {...}}
//
// `method` is the Web API method, called through the SDK's own method of that name
// (`client.chat.postMessage(args)`), so each call takes the SDK's path: a POST with a form
// body and `Authorization: Bearer`. The keys come from the environment, never argv:
// SLACKGATE_KEY (the bot's gateway key) and SLACKGATE_WRONG_KEY (a key no bot has).
// SLACKGATE_EGRESS is the egress listener's host:port.
//
// For each call it prints one JSON line on stdout with what the SDK handed back:
//
//     {"id", "ok", "exception" (the error's class, or null), "code" (the SDK's error code),
//      "error" (Slack's error code), "retry_after", "status", "data"}
//
// The SDK's retries are off and rate-limited calls are rejected at once, so a 429 shows as
// the SDK's WebAPIRateLimitedError with its retryAfter, and no call is sent twice.
'use strict';

const readline = require('node:readline');
const { WebClient, LogLevel } = require('@slack/web-api');

function resolve(client, method) {
  // `chat.postMessage` -> client.chat.postMessage, bound to its namespace object.
  const parts = method.split('.');
  let owner = client;
  for (const p of parts.slice(0, -1)) {
    owner = owner?.[p];
  }
  const fn = owner?.[parts[parts.length - 1]];
  if (typeof fn !== 'function') {
    throw new TypeError(`the SDK has no method ${method}`);
  }
  return (args) => fn.call(owner, args);
}

function describe(id, err) {
  const out = { id, ok: false, exception: err?.constructor?.name ?? typeof err, code: err?.code ?? null };
  if (err?.data !== undefined) {
    out.data = err.data;
    out.error = err.data?.error ?? null;
  }
  if (err?.retryAfter !== undefined) out.retry_after = err.retryAfter;
  if (err?.statusCode !== undefined) out.status = err.statusCode;
  if (out.code !== 'slack_webapi_platform_error') out.message = String(err?.message ?? err);
  return out;
}

async function main() {
  const slackApiUrl = `http://${process.env.SLACKGATE_EGRESS}/api/`;
  const options = {
    slackApiUrl,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: 10000,
    logLevel: LogLevel.ERROR,
  };
  const clients = {
    good: new WebClient(process.env.SLACKGATE_KEY, options),
    wrong: new WebClient(process.env.SLACKGATE_WRONG_KEY, options),
  };
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const raw of lines) {
    if (!raw.trim()) continue;
    const call = JSON.parse(raw);
    let out;
    try {
      const result = await resolve(clients[call.key], call.method)(call.args ?? {});
      out = { id: call.id, ok: result.ok === true, exception: null, code: null, error: result.error ?? null, data: result };
    } catch (err) {
      out = describe(call.id, err);
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`client.js: ${err?.stack ?? err}\n`);
  process.exit(1);
});
