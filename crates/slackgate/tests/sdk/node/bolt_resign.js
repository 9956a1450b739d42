// A Bolt for JavaScript app in HTTP mode as the bot behind a slackgate route with `resign`,
// driven by tests/sdk_resign.rs. Its signingSecret is the route's resign secret
// (BOLT_SIGNING_SECRET from the environment), never Slack's: Bolt's own receiver verifies
// the gateway's signature and answers 401 to anything else.
//
// It listens on 127.0.0.1, port 0, and prints {"listening": PORT}; then one JSON line per
// handler run: {"handler": "app_mention" | "command" | "function", ...} with what the
// handler saw (the command's response_url, the function's token and execution id).
'use strict';

const { App, LogLevel } = require('@slack/bolt');

const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const app = new App({
  signingSecret: process.env.BOLT_SIGNING_SECRET,
  // No Web API call is made (no auth.test either): the installation is given as it is.
  authorize: async () => ({
    botToken: 'xoxb-0000-0000-not-used-by-this-test',
    botId: 'B0BOT',
    botUserId: 'U0BOT',
  }),
  logLevel: LogLevel.ERROR,
});

app.event('app_mention', async ({ event, body }) => {
  print({ handler: 'app_mention', event_id: body.event_id, user: event.user });
});

app.command('/ticket', async ({ ack, command }) => {
  await ack();
  print({ handler: 'command', response_url: command.response_url });
});

app.function('open_ticket', async ({ context }) => {
  print({
    handler: 'function',
    token: context.functionBotAccessToken,
    execution: context.functionExecutionId,
  });
});

(async () => {
  const server = await app.start({ port: 0, host: '127.0.0.1' });
  print({ listening: server.address().port });
})().catch((e) => {
  print({ error: String(e) });
  process.exit(1);
});
