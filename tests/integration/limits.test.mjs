// Per-connection limits of the library (README "Options": message_rate,
// max_subscriptions) against herald-test-server with the npm `ws` client:
// a flood is dropped and reported to the handler (which answers
// "limited MESSAGE"), or closed with 1008; subscriptions past the cap are
// refused. The bucket refills at 1 per second, far slower than a burst of
// sends, so which messages pass does not depend on the machine's speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Client, startServer, stopServer } from './helpers.mjs';

async function apiClient(server, name) {
  const c = await Client.connect(server.ws(`/api?name=${name}`));
  assert.equal(JSON.parse(await c.nextText()).type, 'open');
  return c;
}

test('a flood over the rate limit is dropped and the handler answers it', async () => {
  const server = await startServer('HERALD_TEST_SERVER',
                                   ['--message-rate', '1', '--message-burst', '3']);
  try {
    const c = await apiClient(server, 'flood');
    const other = await apiClient(server, 'calm');
    for (let i = 0; i < 30; ++i)
      c.send(`echo m${i}`);
    const got = [];
    for (let i = 0; i < 30; ++i)
      got.push(await c.nextText());
    // The burst passes, then the bucket is empty: every message is either
    // echoed or reported as limited, in the order sent.
    assert.deepEqual(got.slice(0, 4), ['m0', 'm1', 'm2', 'limited echo m3']);
    got.forEach((t, i) => assert.ok(t === `m${i}` || t === `limited echo m${i}`, t));
    assert.ok(got.filter((t) => t.startsWith('limited ')).length >= 20);
    // The connection stays open, and other connections have buckets of their own.
    assert.equal(await other.ask('echo hi'), 'hi');
    assert.equal(c.ws.readyState, 1);
    // Pings do not count.
    for (let i = 0; i < 5; ++i)
      c.ws.ping();
    assert.equal(c.ws.readyState, 1);
    await Promise.all([c.close(), other.close()]);
  } finally {
    await stopServer(server);
  }
});

test('with the close policy a flood closes the connection with 1008', async () => {
  const server = await startServer('HERALD_TEST_SERVER',
                                   ['--message-rate', '1', '--message-burst', '3',
                                    '--rate-limit-close']);
  try {
    const c = await apiClient(server, 'flood');
    const other = await apiClient(server, 'calm');
    for (let i = 0; i < 10; ++i)
      c.send(`echo m${i}`);
    for (let i = 0; i < 3; ++i)
      assert.equal(await c.nextText(), `m${i}`);
    const close = await c.waitClose();
    assert.equal(close.code, 1008);
    assert.equal(close.reason, 'rate limit exceeded');
    // The server goes on serving the others.
    assert.equal(await other.ask('echo still here'), 'still here');
    await other.close();
  } finally {
    await stopServer(server);
  }
});

test('subscriptions past max_subscriptions are refused', async () => {
  const server = await startServer('HERALD_TEST_SERVER', ['--max-subscriptions', '2']);
  try {
    const c = await apiClient(server, 'subs');
    assert.equal(await c.ask('sub a'), 'subscribed a');
    assert.equal(await c.ask('sub b'), 'subscribed b');
    assert.equal(await c.ask('sub c'), 'refused c');
    assert.equal(await c.ask('sub a'), 'subscribed a'); // already in it
    await c.close();
  } finally {
    await stopServer(server);
  }
});
