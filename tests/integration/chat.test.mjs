// herald-chat end to end with the npm `ws` client and Node's HTTP client:
// the protocol of docs/chat-protocol.md (welcome, the first members page,
// join/leave with counts, history, messages, paged members, the rate limit,
// errors and closes), the HTTP endpoints (page, POST
// /rooms/ROOM/messages, /health, /metrics), --token and --deflate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  Client, startServer, stopServer, httpRequest, expectRefusedUpgrade,
  waitFor, uniqueName, freePort, startRedis,
} from './helpers.mjs';

/** A chat member: a Client that reads JSON events. */
class Member {
  static async join(server, name, room, { token, deflate } = {}) {
    const m = new Member();
    let path = `/ws?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`;
    if (token)
      path += `&token=${encodeURIComponent(token)}`;
    m.client = await Client.connect(server.ws(path), undefined,
                                    { perMessageDeflate: deflate ?? false });
    m.name = name;
    return m;
  }
  async event() {
    return JSON.parse(await this.client.nextText(8000));
  }
  /** Events until one of `type` arrives (the others are returned too). */
  async until(type) {
    const seen = [];
    for (;;) {
      const e = await this.event();
      seen.push(e);
      if (e.type === type)
        return seen;
    }
  }
  /** Reads welcome, the first members page, the own join and the
   * history (the last two in either order: they travel different paths,
   * docs/chat-protocol.md); returns the history. */
  async settle() {
    const seen = await this.until('history');
    const history = seen.at(-1);
    assert.equal(seen[0].type, 'welcome');
    this.page = seen.find((e) => e.type === 'members');
    assert.ok(this.page, 'a members page on joining');
    const ownJoin = (e) => e.type === 'join' && e.name === this.name;
    while (!seen.some(ownJoin))
      seen.push(await this.event());
    return history;
  }
  say(text) {
    return this.client.send(JSON.stringify({ type: 'message', text }));
  }
  close() {
    return this.client.close();
  }
}

let server;
before(async () => {
  server = await startServer('HERALD_CHAT', ['--history', '5']);
});
after(async () => {
  await stopServer(server);
});

test('the page, its files, health and unknown paths', async () => {
  const page = await httpRequest(`${server.httpUrl}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers['content-type'], /^text\/html/);
  assert.match(page.body, /<script src="\/?app\.js"/);
  const js = await httpRequest(`${server.httpUrl}/app.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'], /^text\/javascript/);
  const css = await httpRequest(`${server.httpUrl}/style.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers['content-type'], /^text\/css/);
  const head = await httpRequest(`${server.httpUrl}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal((await httpRequest(`${server.httpUrl}/`, { method: 'POST', body: 'x' })).status, 405);
  assert.equal((await httpRequest(`${server.httpUrl}/nope`)).status, 404);
  assert.equal((await httpRequest(`${server.httpUrl}/public/index.html`)).status, 404);
  const health = await httpRequest(`${server.httpUrl}/health`);
  assert.equal(health.status, 200);
  assert.equal(health.body, 'ok\n');
});

test('members see joins, messages and leaves; a later member gets the history', async () => {
  const room = uniqueName('room');
  const ann = await Member.join(server, 'ann', room);
  assert.deepEqual((await ann.settle()).messages, []);
  const bob = await Member.join(server, 'bob', room);
  await bob.settle();
  // bob's first page: the room as it was before bob.
  assert.deepEqual(bob.page.members, ['ann']);
  assert.equal(bob.page.count, 1);
  assert.equal(bob.page.more, false);
  const join = await ann.event();
  assert.equal(join.type, 'join');
  assert.equal(join.name, 'bob');
  assert.equal(join.connections, 1);
  assert.equal(join.count, 2);
  assert.equal(join.seq, bob.page.seq + 1);
  assert.equal(join.members, undefined);
  assert.equal(typeof join.time, 'number');

  for (let i = 1; i <= 7; ++i)
    await ann.say(`m${i}`);
  for (const m of [ann, bob])
    for (let i = 1; i <= 7; ++i) {
      const e = await m.event();
      assert.equal(e.type, 'message');
      assert.equal(e.name, 'ann');
      assert.equal(e.text, `m${i}`);
      assert.equal(e.room, room);
      assert.equal(typeof e.id, 'string');
    }

  // The third member gets the last five (--history 5), oldest first.
  const cid = await Member.join(server, 'cid', room);
  const history = await cid.settle();
  assert.deepEqual(history.messages.map((e) => e.text), ['m3', 'm4', 'm5', 'm6', 'm7']);
  assert.ok(history.messages.every((e) => e.name === 'ann' && e.type === 'message'));

  // members on request.
  await cid.client.send(JSON.stringify({ type: 'members' }));
  const list = await cid.event();
  assert.deepEqual(list, { type: 'members', room, members: ['ann', 'bob', 'cid'],
                           count: 3, more: false, seq: list.seq });
  // Paging: two names at a time.
  await cid.client.send(JSON.stringify({ type: 'members', limit: 2 }));
  const first = await cid.event();
  assert.deepEqual([first.members, first.more], [['ann', 'bob'], true]);
  await cid.client.send(JSON.stringify({ type: 'members', after: 'bob', limit: 2 }));
  const second = await cid.event();
  assert.deepEqual([second.members, second.more, second.after], [['cid'], false, 'bob']);

  await bob.close();
  for (const m of [ann, cid]) {
    const seen = await m.until('leave');
    assert.equal(seen.at(-1).name, 'bob');
    assert.equal(seen.at(-1).connections, 0);
    assert.equal(seen.at(-1).count, 2);
  }
  await ann.close();
  await cid.close();
});

test('a flooding sender gets error answers and the room only what the limit lets through', async () => {
  const room = uniqueName('flood');
  const ann = await Member.join(server, 'ann', room);
  await ann.settle();
  const bob = await Member.join(server, 'bob', room);
  await bob.settle();
  await ann.until('join');
  const n = 60;
  for (let i = 0; i < n; ++i)
    ann.say(`f${i}`);
  // Every message is either published (ann gets it back) or answered
  // with an error; the burst of 20 always passes.
  let published = 0;
  let refused = 0;
  while (published + refused < n) {
    const e = await ann.event();
    if (e.type === 'message') ++published;
    else if (e.type === 'error') {
      assert.match(e.error, /^rate limit: at most 10 messages per second/);
      ++refused;
    }
  }
  assert.ok(published >= 20, `published ${published}`);
  assert.ok(refused >= 1, `refused ${refused}`);
  for (let i = 0; i < published; ++i)
    assert.equal((await bob.event()).type, 'message');
  // The connection stays; the refusals are counted in /metrics.
  const metrics = await httpRequest(`${server.httpUrl}/metrics`);
  const counted = Number(metrics.body.match(/^herald_rate_limited_messages_total (\d+)$/m)[1]);
  assert.ok(counted >= refused, metrics.body);
  await Promise.all([ann.close(), bob.close()]);
});

test('POST /rooms/ROOM/messages publishes a server message into the room', async () => {
  const room = uniqueName('post');
  const ann = await Member.join(server, 'ann', room);
  await ann.settle();
  const url = `${server.httpUrl}/rooms/${encodeURIComponent(room)}/messages`;
  const r = await httpRequest(`${url}?name=ops`, { method: 'POST', body: 'deploy at 5 ✓' });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.ok(JSON.parse(r.body).subscribers >= 1);
  const e = await ann.event();
  assert.equal(e.type, 'message');
  assert.equal(e.name, 'ops');
  assert.equal(e.text, 'deploy at 5 ✓');
  assert.equal(e.server, true);
  const anon = await httpRequest(url, { method: 'POST', body: 'hi' });
  assert.equal(anon.status, 200);
  assert.equal((await ann.event()).name, 'server');

  for (const [body, what] of [['', 'empty'], ['x'.repeat(4001), 'too long'],
                              [Buffer.from([0xff, 0xfe]), 'not UTF-8']]) {
    const bad = await httpRequest(url, { method: 'POST', body });
    assert.equal(bad.status, 400, what);
    assert.equal(JSON.parse(bad.body).type, 'error');
  }
  const longRoom = `${server.httpUrl}/rooms/${'r'.repeat(33)}/messages`;
  assert.equal((await httpRequest(longRoom, { method: 'POST', body: 'x' })).status, 400);
  assert.equal((await httpRequest(`${url}?name=`, { method: 'POST', body: 'x' })).status, 400);
  const get = await httpRequest(url);
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow, 'POST');
  // Nothing of the refused requests reached the room.
  await ann.client.send(JSON.stringify({ type: 'members' }));
  assert.equal((await ann.event()).type, 'members');
  await ann.close();
});

test('bad client input: errors keep the connection, bad frames close it, the room goes on', async () => {
  const room = uniqueName('bad');
  const ann = await Member.join(server, 'ann', room);
  await ann.settle();
  const bob = await Member.join(server, 'bob', room);
  await bob.settle();
  await ann.until('join');

  for (const [input, error] of [
    ['not json', 'expected a JSON object with a "type"'],
    ['{"type":"shout"}', 'unknown type'],
    ['{"type":"message","text":42}', 'a message needs a "text" string'],
    [JSON.stringify({ type: 'message', text: 'x'.repeat(4001) }), 'text must be 1 to 4000 characters'],
  ]) {
    await bob.client.send(input);
    assert.deepEqual(await bob.event(), { type: 'error', error });
  }
  // Binary: 1003.
  const b1 = await Member.join(server, 'b1', room);
  await b1.settle();
  await b1.client.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await b1.client.waitClose()).code, 1003);
  // Over 16 KiB: 1009.
  const b2 = await Member.join(server, 'b2', room);
  await b2.settle();
  await b2.client.send('x'.repeat(16 * 1024 + 1));
  assert.equal((await b2.client.waitClose()).code, 1009);
  // Invalid UTF-8 in a text frame: 1007 (sent raw through ws's internals
  // would be refused by ws itself, so use a text frame with bad bytes).
  const b3 = await Member.join(server, 'b3', room);
  await b3.settle();
  await new Promise((resolve, reject) =>
    b3.client.ws._sender.sendFrame(
      b3.client.ws._sender.constructor.frame(Buffer.from([0xc3, 0x28]),
        { fin: true, rsv1: false, opcode: 1, mask: true, readOnly: false }),
      (e) => (e ? reject(e) : resolve())));
  assert.equal((await b3.client.waitClose()).code, 1007);

  // The room saw joins and leaves of b1..b3 but no errors, and still works.
  await bob.say('still here');
  const seen = await ann.until('message');
  assert.equal(seen.at(-1).text, 'still here');
  assert.ok(seen.every((e) => ['join', 'leave', 'message'].includes(e.type)));
  await ann.close();
  await bob.close();
});

test('metrics in the Prometheus text format count what happened', async () => {
  const before = (await httpRequest(`${server.httpUrl}/metrics`));
  assert.equal(before.status, 200);
  assert.match(before.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const value = (text, name) => {
    const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
    assert.ok(m, `${name} in:\n${text}`);
    return Number(m[1]);
  };
  for (const line of before.body.trim().split('\n'))
    assert.match(line, /^(# (HELP|TYPE) herald_\w+ .+|herald_\w+(\{code="\w+"\})? \d+)$/);
  const room = uniqueName('metrics');
  const ann = await Member.join(server, 'ann', room);
  await ann.settle();
  await ann.say('counted');
  await ann.until('message');
  const during = (await httpRequest(`${server.httpUrl}/metrics`)).body;
  assert.ok(value(during, 'herald_open_connections') >= 1);
  assert.ok(value(during, 'herald_messages_received_total') >
            value(before.body, 'herald_messages_received_total'));
  assert.ok(value(during, 'herald_messages_sent_total') >
            value(before.body, 'herald_messages_sent_total'));
  assert.ok(value(during, 'herald_topics') >= 1);
  await ann.close();
  await waitFor(async () => {
    const after = (await httpRequest(`${server.httpUrl}/metrics`)).body;
    return value(after, 'herald_closes_total\\{code="1000"\\}') >
           value(before.body, 'herald_closes_total\\{code="1000"\\}');
  }, 'the close to be counted');
});

test('--token: 401 before the upgrade without the token, open with it', async () => {
  const guarded = await startServer('HERALD_CHAT', ['--token', 's3cret']);
  try {
    const refused = await expectRefusedUpgrade(guarded.ws('/ws?name=ann'));
    assert.equal(refused.status, 401);
    const wrong = await expectRefusedUpgrade(guarded.ws('/ws?name=ann&token=s3cre'));
    assert.equal(wrong.status, 401);
    const ann = await Member.join(guarded, 'ann', 'general', { token: 's3cret' });
    await ann.settle();
    const bob = new Member();
    bob.name = 'bob';
    bob.client = await Client.connect(guarded.ws('/ws?name=bob'), undefined,
                                      { headers: { Authorization: 'Bearer s3cret' } });
    await bob.settle();
    const post = `${guarded.httpUrl}/rooms/general/messages`;
    assert.equal((await httpRequest(post, { method: 'POST', body: 'x' })).status, 401);
    assert.equal((await httpRequest(post, {
      method: 'POST', body: 'with token', headers: { Authorization: 'Bearer s3cret' },
    })).status, 200);
    assert.equal((await ann.until('message')).at(-1).text, 'with token');
    // The page and health stay open.
    assert.equal((await httpRequest(`${guarded.httpUrl}/`)).status, 200);
    assert.equal((await httpRequest(`${guarded.httpUrl}/health`)).status, 200);
    await ann.close();
    await bob.close();
  } finally {
    await stopServer(guarded);
  }
});

test('--deflate shared: a compressing client takes part like any other', async () => {
  const zipped = await startServer('HERALD_CHAT', ['--deflate', 'shared']);
  try {
    const ann = await Member.join(zipped, 'ann', 'general', { deflate: true });
    assert.match(ann.client.ws.extensions, /permessage-deflate/);
    await ann.settle();
    const bob = await Member.join(zipped, 'bob', 'general');
    assert.equal(bob.client.ws.extensions, '');
    await bob.settle();
    const long = 'compressible '.repeat(200);
    await ann.say(long);
    for (const m of [ann, bob])
      assert.equal((await m.until('message')).at(-1).text, long);
    await ann.close();
    await bob.close();
  } finally {
    await stopServer(zipped);
  }
});

test('--redis: two instances share rooms; presence and history stay per instance', async () => {
  const redis = await startRedis(await freePort());
  const a = await startServer('HERALD_CHAT', ['--redis', redis.url]);
  const b = await startServer('HERALD_CHAT', ['--redis', redis.url]);
  try {
    const room = uniqueName('shared');
    const ann = await Member.join(a, 'ann', room);
    await ann.settle();
    const bob = await Member.join(b, 'bob', room);
    await bob.settle();
    // Both nodes hold the room's channel once each has a member there.
    const cross = async (from, to, text) => {
      await from.say(text);
      const seen = await to.until('message');
      return seen.at(-1);
    };
    // Sync messages sent before B held the channel are lost; the copies
    // of those that crossed (and ann's own copies) may still trail in, so
    // the count below leaves every "sync" out.
    await waitFor(async () => {
      const got = await cross(ann, bob, 'sync').catch(() => null);
      return got && got.text === 'sync';
    }, 'a message from instance A to reach instance B', 15000, 200);
    for (let i = 0; i < 10; ++i)
      await ann.say(`a${i}`);
    for (let i = 0; i < 10; ++i)
      await bob.say(`b${i}`);
    // Each side sees both publishers, each in its own order, exactly once.
    for (const m of [ann, bob]) {
      const got = { ann: [], bob: [] };
      while (got.ann.length < 10 || got.bob.length < 10) {
        const e = await m.event();
        if (e.type === 'message' && e.text !== 'sync')
          got[e.name].push(e.text);
      }
      assert.deepEqual(got.ann, [...Array(10).keys()].map((i) => `a${i}`));
      assert.deepEqual(got.bob, [...Array(10).keys()].map((i) => `b${i}`));
    }
    // A server message posted on B reaches ann on A.
    const post = await httpRequest(`${b.httpUrl}/rooms/${room}/messages`, { method: 'POST', body: 'from B' });
    assert.equal(post.status, 200);
    const e = (await ann.until('message')).at(-1);
    assert.equal(e.text, 'from B');
    assert.equal(e.server, true);
    // Presence is per instance: ann's list has ann only.
    await ann.client.send(JSON.stringify({ type: 'members' }));
    assert.deepEqual((await ann.until('members')).at(-1).members, ['ann']);
    // History on A holds what came from B too. The history actor is a
    // subscriber of its own (on its own loop's registry shard), so it may
    // take "from B" a moment after ann did: a late joiner gets it soon.
    let cid = null;
    let tries = 0;
    await waitFor(async () => {
      if (cid)
        await cid.close();
      cid = await Member.join(a, `cid${tries++}`, room);
      const texts = (await cid.settle()).messages.map((m) => m.text);
      return texts.includes('b9') && texts.includes('from B');
    }, 'A\'s history to hold b9 and "from B"', 10000, 100);
    const metrics = (await httpRequest(`${a.httpUrl}/metrics`)).body;
    assert.match(metrics, /^herald_redis_connected 1$/m);
    assert.match(metrics, /^herald_cross_node_received_total [1-9]\d*$/m);
    await ann.close();
    await bob.close();
    await cid.close();
  } finally {
    await stopServer(a);
    await stopServer(b);
    await redis.kill();
  }
});

test('shutdown closes every member with 1001 and exits 0', async () => {
  const own = await startServer('HERALD_CHAT');
  const ann = await Member.join(own, 'ann', 'general');
  await ann.settle();
  const { code, signal } = await own.stop('SIGTERM');
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.equal((await ann.client.waitClose()).code, 1001);
});

test('bad command lines are refused with status 2', async () => {
  for (const args of [['--history', '-1'], ['--deflate', 'maybe'], ['--port', '70000'], ['--bogus', '1']]) {
    const s = startServer('HERALD_CHAT', args);
    await assert.rejects(s, /exited \(2\)/);
  }
});
