// Topics shared across Herald instances through a real redis-server
// (Debian's), started and stopped here on a free loopback port: messages
// cross nodes both ways in order per publisher, the origin delivers once,
// the sender stays excluded, bytes arrive unchanged, a node holds a Redis
// channel only while it has local subscribers, and Redis going away (or not
// being there at start) degrades to local delivery and heals by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';

import {
  Client, startServer, stopServer, httpRequest, waitFor, withTimeout,
  freePort, startRedis,
} from './helpers.mjs';

const stats = async (server) =>
  JSON.parse((await httpRequest(`${server.httpUrl}/stats`)).body);

/**
 * Starts redis-server and two nodes sharing it under a fresh channel prefix,
 * runs `fn({ redis, prefix, a, b })`, then stops the nodes (asserting clean
 * exits) and Redis.
 */
async function withCluster(fn) {
  const redis = await startRedis(await freePort());
  const prefix = uniquePrefix();
  const [a, b] = await startNodes(redis.url, prefix);
  try {
    await fn({ redis, prefix, a, b });
  } finally {
    await stopServer(a);
    await stopServer(b);
    await redis.kill();
  }
}

/** Runs a redis-cli command against `port`; resolves with its lines. */
function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args],
             (err, stdout) => (err ? reject(err) : resolve(
               stdout.split('\n').filter((l) => l !== ''))));
  });
}

/** Subscribers (nodes) of Redis channel `channel`. */
async function numsub(port, channel) {
  const lines = await cli(port, 'PUBSUB', 'NUMSUB', channel);
  return Number(lines[1]);
}

const waitNumsub = (port, channel, n) =>
  waitFor(async () => (await numsub(port, channel)) === n,
          `PUBSUB NUMSUB ${channel} to be ${n}`, 10000);

const waitConnected = (server, up = 1) =>
  waitFor(async () => (await stats(server)).redis_connected === up,
          `redis_connected to be ${up}`, 10000);

// -- nodes ----------------------------------------------------------------------

/** Starts `n` pubsub test servers sharing topics through `url`. */
async function startNodes(url, prefix, n = 2) {
  const nodes = [];
  for (let i = 0; i < n; ++i)
    nodes.push(await startServer('HERALD_PUBSUB_SERVER',
                                 ['--redis', url, '--redis-prefix', prefix]));
  return nodes;
}

/** Waits until `room` has `n` subscribers on `server` (its registry). */
const waitCount = (server, room, n) =>
  waitFor(async () => Number((await httpRequest(
    `${server.httpUrl}/count?room=${encodeURIComponent(room)}`)).body) === n,
  `${n} subscribers of ${room}`, 10000);

const uniquePrefix = () => `t${crypto.randomBytes(4).toString('hex')}:`;

/**
 * Takes messages from `client` until it has seen every marker; returns the
 * other messages' texts in order.
 */
async function collectUntil(client, markers) {
  const left = new Set(markers);
  const got = [];
  while (left.size > 0) {
    const m = await client.next(10000);
    if (!m.isBinary && left.has(m.text))
      left.delete(m.text);
    else
      got.push(m.isBinary ? m.data : m.text);
  }
  return got;
}

const publish = (server, room, body) =>
  httpRequest(`${server.httpUrl}/publish?room=${encodeURIComponent(room)}`,
              { method: 'POST', body });

// -- tests ----------------------------------------------------------------------

test('messages cross nodes both ways, once, in order per publisher, not back to the sender', () => withCluster(async ({ redis, prefix, a, b }) => {
  await waitConnected(a);
  await waitConnected(b);
  const room = 'order';
  const names = ['a1', 'a2', 'b1', 'b2'];
  const clients = [];
  for (const [i, name] of names.entries()) {
    const node = i < 2 ? a : b;
    clients.push(await Client.connect(node.ws(`/?name=${name}&room=${room}`)));
  }
  // Both nodes hold the channel once their first member joined.
  await waitNumsub(redis.port, prefix + room, 2);
  await waitCount(a, room, 2);
  await waitCount(b, room, 2);
  const perSender = 50;
  await Promise.all(clients.map(async (c) => {
    for (let k = 0; k < perSender; ++k)
      await c.send(`${k}`);
  }));
  // Markers published last, from each node: whatever an echo or a
  // duplicate would bring arrives before the marker of the other node.
  for (const [i, c] of clients.entries()) {
    const expected = 3 * perSender;
    const got = [];
    while (got.length < expected)
      got.push(await c.nextText(10000));
    const bySender = new Map();
    for (const text of got) {
      const [sender, seq] = text.split(': ');
      assert.notEqual(sender, names[i], `${names[i]} got its own message`);
      const list = bySender.get(sender) ?? [];
      list.push(Number(seq));
      bySender.set(sender, list);
    }
    assert.equal(bySender.size, 3);
    for (const [sender, list] of bySender)
      assert.deepEqual(list, [...Array(perSender).keys()],
                       `order of ${sender} as seen by ${names[i]}`);
  }
  await publish(b, room, 'end-b');
  await publish(a, room, 'end-a');
  for (const [i, c] of clients.entries())
    assert.deepEqual(await collectUntil(c, ['end-a', 'end-b']), [],
                     `${names[i]} got more than once`);
  // The origin counts no echo: each node received exactly what the
  // other published (two members' messages and one marker).
  const sa = await stats(a);
  const sb = await stats(b);
  assert.equal(sa.cross_node_received, 2 * perSender + 1);
  assert.equal(sb.cross_node_received, 2 * perSender + 1);
  assert.equal(sa.cross_node_dropped, 0);
  assert.equal(sb.cross_node_dropped, 0);
  await Promise.all(clients.map((c) => c.close()));
}));

test('binary and text arrive byte for byte on the other node', () => withCluster(async ({ redis, prefix, a, b }) => {
  const room = 'bytes';
  const sender = await Client.connect(a.ws(`/?name=s&room=${room}`));
  const receiver = await Client.connect(b.ws(`/?name=r&room=${room}`));
  await waitConnected(a);
  await waitConnected(b);
  await waitNumsub(redis.port, prefix + room, 2);
  await waitCount(b, room, 1);
  const all = Buffer.from([...Array(256).keys()]);
  const big = crypto.randomBytes(256 * 1024);
  const text = 'héllo ✓ 😀 \u0000 end';
  await sender.send(all, { binary: true });
  await sender.send(Buffer.alloc(0), { binary: true });
  await sender.send(big, { binary: true });
  await sender.send(text);
  let m = await receiver.next(10000);
  assert.equal(m.isBinary, true);
  assert.deepEqual(Buffer.from(m.data), all);
  m = await receiver.next(10000);
  assert.equal(m.isBinary, true);
  assert.equal(m.data.length, 0);
  m = await receiver.next(10000);
  assert.equal(m.isBinary, true);
  assert.ok(Buffer.from(m.data).equals(big), 'the 256 KiB message changed');
  m = await receiver.next(10000);
  assert.equal(m.isBinary, false);
  assert.equal(m.text, `s: ${text}`);
  await sender.close();
  await receiver.close();
}));

test('a node holds a channel from its first local subscriber to its last', () => withCluster(async ({ redis, prefix, a, b }) => {
  await waitConnected(a);
  await waitConnected(b);
  const ch = `${prefix}t`;
  const a1 = await Client.connect(a.ws(`/?name=a1&room=ra`));
  const a2 = await Client.connect(a.ws(`/?name=a2&room=ra`));
  const b1 = await Client.connect(b.ws(`/?name=b1&room=rb`));
  assert.equal(await numsub(redis.port, ch), 0);
  assert.equal(await a1.ask('/sub t'), 'ok');
  await waitNumsub(redis.port, ch, 1);
  assert.equal(await a2.ask('/sub t'), 'ok');
  assert.equal(await b1.ask('/sub t'), 'ok');
  await waitNumsub(redis.port, ch, 2);
  // A second local subscriber does not subscribe the node twice.
  assert.equal((await cli(redis.port, 'PUBSUB', 'CHANNELS', `${prefix}*`))
    .sort().join(','), [`${prefix}ra`, `${prefix}rb`, ch].sort().join(','));
  assert.equal(await a1.ask('/unsub t'), 'ok');
  // a2 still there: node A keeps the channel.
  await waitFor(async () => (await stats(a)).topics === 2 &&
                            (await numsub(redis.port, ch)) === 2,
                'node A to keep the channel');
  await a2.close(); // leaving by closing counts too
  await waitNumsub(redis.port, ch, 1);
  assert.equal(await b1.ask('/unsub t'), 'ok');
  await waitNumsub(redis.port, ch, 0);
  await waitFor(async () => !(await cli(redis.port, 'PUBSUB', 'CHANNELS',
                                        `${prefix}*`)).includes(ch),
                `${ch} to leave PUBSUB CHANNELS`);
  await a1.close();
  await b1.close();
  await waitFor(async () => (await cli(redis.port, 'PUBSUB', 'CHANNELS',
                                       `${prefix}*`)).length === 0,
                'every channel to go');
}));

test('a node keeps a channel while any of its loops has a subscriber', () => withCluster(async ({ redis, prefix, a, b }) => {
  // The kernel spreads connections over the node's loops (one registry
  // shard each, each telling the bridge of its own first and last
  // subscriber): of eight, some land on each loop unless the node has one.
  await waitConnected(a);
  await waitConnected(b);
  const ch = `${prefix}t`;
  const members = [];
  for (let i = 0; i < 8; ++i) {
    const c = await Client.connect(a.ws(`/?name=m${i}&room=r${i}`));
    assert.equal(await c.ask('/sub t'), 'ok');
    members.push(c);
  }
  await waitNumsub(redis.port, ch, 1);
  for (const c of members.slice(1))
    await c.close();
  await waitCount(a, 't', 1);
  // The loops whose members all left told the bridge; the channel stays for
  // the one that is left, and what node B publishes reaches it.
  assert.equal(await numsub(redis.port, ch), 1);
  await publish(b, 't', 'still here');
  const m = await members[0].next(10000);
  assert.equal(m.text, 'still here');
  await members[0].close();
  await waitNumsub(redis.port, ch, 0);
}));

test('Redis killed and restarted: local delivery goes on, cross-node resumes by itself', async () => {
  let redis = await startRedis(await freePort());
  const port = redis.port;
  const prefix = uniquePrefix();
  const [a, b] = await startNodes(redis.url, prefix);
  try {
    const room = 'outage';
    const a1 = await Client.connect(a.ws(`/?name=a1&room=${room}`));
    const a2 = await Client.connect(a.ws(`/?name=a2&room=${room}`));
    const b1 = await Client.connect(b.ws(`/?name=b1&room=${room}`));
    await waitConnected(a);
    await waitConnected(b);
    await waitNumsub(port, prefix + room, 2);
    await waitCount(a, room, 2);
    await waitCount(b, room, 1);
    await a1.send('before');
    assert.equal(await a2.nextText(), 'a1: before');
    assert.equal(await b1.nextText(10000), 'a1: before');
    // Acknowledged too: a PUBLISH whose reply is lost with the connection
    // counts as dropped (a node cannot know it crossed), and a loaded
    // machine may kill Redis before node a has read the reply.
    await waitFor(async () => (await stats(a)).cross_node_sent >= 1,
                  "node a's publish to be acknowledged");

    await redis.kill();
    await waitConnected(a, 0);
    await waitConnected(b, 0);
    // Local delivery is not affected; nothing crosses.
    await a1.send('during');
    assert.equal(await a2.nextText(), 'a1: during');
    await b1.send('during-b');
    await waitFor(async () => (await stats(a)).cross_node_dropped >= 1 &&
                              (await stats(b)).cross_node_dropped >= 1,
                  'the drops to be counted');

    redis = await startRedis(port);
    await waitConnected(a);
    await waitConnected(b);
    // Both nodes subscribed again by themselves.
    await waitNumsub(port, prefix + room, 2);
    await a1.send('after');
    assert.equal(await a2.nextText(), 'a1: after');
    // What could not cross during the outage is lost (at most once).
    assert.equal(await b1.nextText(10000), 'a1: after');
    await b1.send('after-b');
    assert.equal(await a1.nextText(10000), 'b1: after-b');
    assert.equal(await a2.nextText(10000), 'b1: after-b');

    const sa = await stats(a);
    assert.equal(sa.redis_outages, 1);
    assert.equal(sa.cross_node_dropped, 1);
    // One line when the outage starts, one when it ends.
    assert.equal(a.stderr().match(/unreachable/g)?.length, 1, a.stderr());
    assert.equal(a.stderr().match(/again; cross-node delivery resumes \(1 /g)
      ?.length, 1, a.stderr());
    await Promise.all([a1, a2, b1].map((c) => c.close()));
  } finally {
    await stopServer(a);
    await stopServer(b);
    await redis.kill();
  }
});

test('Redis down at start: nodes serve locally, then join when it comes up', async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const prefix = uniquePrefix();
  const [a, b] = await startNodes(url, prefix);
  let redis;
  try {
    const room = 'late';
    const a1 = await Client.connect(a.ws(`/?name=a1&room=${room}`));
    const a2 = await Client.connect(a.ws(`/?name=a2&room=${room}`));
    const b1 = await Client.connect(b.ws(`/?name=b1&room=${room}`));
    await waitFor(async () => (await stats(a)).redis_outages === 1,
                  'node A to notice that Redis is not there');
    await waitCount(a, room, 2);
    await waitCount(b, room, 1);
    await a1.send('alone');
    assert.equal(await a2.nextText(), 'a1: alone');
    assert.match(a.stderr(), /unreachable/);

    redis = await startRedis(port);
    await waitConnected(a);
    await waitConnected(b);
    await waitNumsub(port, prefix + room, 2);
    await a1.send('together');
    assert.equal(await a2.nextText(), 'a1: together');
    assert.equal(await b1.nextText(10000), 'a1: together');
    await b1.send('hi');
    assert.equal(await a1.nextText(10000), 'b1: hi');
    await Promise.all([a1, a2, b1].map((c) => c.close()));
  } finally {
    await stopServer(a);
    await stopServer(b);
    if (redis)
      await redis.kill();
  }
});

test('a server publish reaches another node that has the only subscribers', () => withCluster(async ({ redis, prefix, a, b }) => {
  const b1 = await Client.connect(b.ws('/?name=b1&room=only-b'));
  await waitConnected(a);
  await waitNumsub(redis.port, `${prefix}only-b`, 1);
  await waitCount(b, 'only-b', 1);
  const r = await publish(a, 'only-b', 'to b');
  assert.ok(Number(r.body) > 0, 'server.publish skipped the topic');
  assert.equal(await b1.nextText(10000), 'to b');
  await b1.close();
}));

test('a Redis that stops answering counts as gone until it answers again', () => withCluster(async ({ redis, prefix, a, b }) => {
  const room = 'stopped';
  const a1 = await Client.connect(a.ws(`/?name=a1&room=${room}`));
  const a2 = await Client.connect(a.ws(`/?name=a2&room=${room}`));
  const b1 = await Client.connect(b.ws(`/?name=b1&room=${room}`));
  await waitConnected(a);
  await waitConnected(b);
  await waitNumsub(redis.port, prefix + room, 2);
  await waitCount(a, room, 2);
  await waitCount(b, room, 1);
  // Its TCP connections stay open: only the unanswered PING tells.
  redis.signal('SIGSTOP');
  await waitFor(async () => (await stats(a)).redis_outages === 1,
                'node A to give up on the stopped Redis', 20000);
  await a1.send('local');
  assert.equal(await a2.nextText(), 'a1: local');
  redis.signal('SIGCONT');
  await waitConnected(a);
  await waitConnected(b);
  await waitNumsub(redis.port, prefix + room, 2);
  await a1.send('across');
  assert.equal(await a2.nextText(), 'a1: across');
  // 'local' may or may not have crossed (at most once); 'across' does.
  let got = await b1.nextText(10000);
  if (got === 'a1: local')
    got = await b1.nextText(10000);
  assert.equal(got, 'a1: across');
  await Promise.all([a1, a2, b1].map((c) => c.close()));
}));
