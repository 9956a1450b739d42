// A Bolt for JavaScript app in HTTP mode as the bot behind a slackgate route with `resign`,
// driven by tests/sdk_resign.rs: requests Slack POSTed through the gateway, and Socket Mode
// envelopes the gateway's bridge turned into those requests. Its signingSecret is the route's resign secret
// (BOLT_SIGNING_SECRET from the environment), never Slack's: Bolt's own receiver verifies
// the gateway's signature and answers 401 to anything else.
//
// It listens on 127.0.0.1, port 0, and prints {"listening": PORT}; then one JSON line per
// handler run: {"handler": "app_mention" | "command" | "action" | "view" | "function", ...}
// with what the handler saw (the command's and the action's response_url, the function's
// token and execution id). The command acks with {"text": "ticket noted"} and the view
// submission with a `response_action`: in Socket Mode those are the acks' payloads.
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
  await ack({ text: 'ticket noted' });
  print({ handler: 'command', response_url: command.response_url });
});

app.action('ticket_close', async ({ ack, action, body }) => {
  await ack();
  print({ handler: 'action', value: action.value, response_url: body.response_url });
});

app.view('ticket_new', async ({ ack, view }) => {
  await ack({ response_action: 'errors', errors: { title: 'too short' } });
  print({ handler: 'view', view_id: view.id });
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
