// The Redis bridge with credentials and databases, against a real
// redis-server started here with a password (--requirepass) or with an ACL
// user: nodes log in, also after every reconnection, and share topics; a
// wrong password is one log line while the node serves locally and retries,
// and it connects once the server accepts the password; a database keeps
// its nodes to themselves; an IPv6 host in brackets works; a malformed URL
// stops a program at start with one line. Every node logs at debug level
// here, and no log line, /stats or /metrics ever shows a password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';

import {
  Client, startServer, stopServer, httpRequest, waitFor, withTimeout,
  freePort, startRedis,
} from './helpers.mjs';

// Inherited by every server started below: debug lines (each retry) must
// keep the password out too.
process.env.HERALD_LOG = 'debug';

/** A password with characters a URL must percent-encode. */
const secret = (tag) => `${tag}-p@ss:w/rd%+?#${crypto.randomBytes(4).toString('hex')}`;
const enc = encodeURIComponent;

/**
 * Runs redis-cli against `redis`, logged in as `auth` ({ user, pass }, or
 * { pass } for the default user); resolves with its output lines.
 */
function cli(redis, auth, ...args) {
  const login = !auth ? [] : auth.user
    ? ['--user', auth.user, '--pass', auth.pass] : ['-a', auth.pass];
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', redis.host, '-p', String(redis.port),
                           '--no-auth-warning', ...login, ...args],
             (err, stdout) => (err ? reject(err) : resolve(
               stdout.split('\n').filter((l) => l !== ''))));
  });
}

const numsub = async (redis, auth, channel) =>
  Number((await cli(redis, auth, 'PUBSUB', 'NUMSUB', channel))[1]);

const waitNumsub = (redis, auth, channel, n) =>
  waitFor(async () => (await numsub(redis, auth, channel)) === n,
          `PUBSUB NUMSUB ${channel} to be ${n}`, 20000);

/** CLIENT LIST as objects ({ db, user, cmd, ... }), without redis-cli's. */
async function clients(redis, auth) {
  return (await cli(redis, auth, 'CLIENT', 'LIST'))
    .map((line) => Object.fromEntries(line.split(' ').map((kv) => {
      const i = kv.indexOf('=');
      return [kv.slice(0, i), kv.slice(i + 1)];
    })))
    .filter((c) => c.cmd !== 'client|list');
}

const stats = async (server) =>
  JSON.parse((await httpRequest(`${server.httpUrl}/stats`)).body);

const waitStats = (server, what, pred, ms = 20000) =>
  waitFor(async () => pred(await stats(server)), what, ms);

const waitConnected = (server) =>
  waitStats(server, 'redis_connected to be 1', (s) => s.redis_connected === 1);

/** Pubsub test servers sharing topics through `url` under `prefix`. */
async function startNodes(url, prefix, n = 2) {
  const nodes = [];
  for (let i = 0; i < n; ++i)
    nodes.push(await startServer('HERALD_PUBSUB_SERVER',
                                 ['--redis', url, '--redis-prefix', prefix]));
  return nodes;
}

const uniquePrefix = () => `t${crypto.randomBytes(4).toString('hex')}:`;

const count = (text, re) => (text.match(re) ?? []).length;

/** Fails when a password, raw or percent-encoded, shows anywhere. */
async function assertNoSecret(node, secrets) {
  const places = {
    stderr: node.stderr(),
    stdout: node.stdout(),
    stats: (await httpRequest(`${node.httpUrl}/stats`)).body,
  };
  if (node.bin === process.env.HERALD_CHAT)
    places.metrics = (await httpRequest(`${node.httpUrl}/metrics`)).body;
  for (const s of secrets)
    for (const [where, text] of Object.entries(places))
      for (const form of [s, enc(s)])
        assert.ok(!text.includes(form), `${form} in the ${where}:\n${text}`);
}

/** Runs `fn(nodes)` and stops the nodes (clean exits) and Redis after. */
async function withNodes(redis, start, fn) {
  const nodes = [];
  try {
    await start(nodes);
    await fn(nodes);
  } finally {
    for (const n of nodes)
      await stopServer(n);
    await redis.kill();
  }
}

// -- tests --------------------------------------------------------------------

test('a password: nodes log in, a publish crosses, they log in again after a reconnection', async () => {
  const pass = secret('pw');
  const admin = { pass };
  const redis = await startRedis(await freePort(),
                                 { args: ['--requirepass', pass] });
  const url = `redis://:${enc(pass)}@127.0.0.1:${redis.port}`;
  const prefix = uniquePrefix();
  await withNodes(redis, async (nodes) => {
    nodes.push(...await startNodes(url, prefix));
  }, async ([a, b]) => {
    const room = 'auth';
    const a1 = await Client.connect(a.ws(`/?name=a1&room=${room}`));
    const b1 = await Client.connect(b.ws(`/?name=b1&room=${room}`));
    await waitConnected(a);
    await waitConnected(b);
    await waitNumsub(redis, admin, prefix + room, 2);
    await a1.send('hello');
    assert.equal(await b1.nextText(10000), 'a1: hello');
    await b1.send('back');
    assert.equal(await a1.nextText(10000), 'b1: back');
    // Every node connection is logged in (as the default user).
    const before = await clients(redis, admin);
    assert.equal(before.length, 4, JSON.stringify(before));

    // Redis drops the publish connections (in one command, so none made
    // since is hit): each node drops its subscriber connection with it,
    // reconnects both and must log in again on both.
    await cli(redis, admin, 'CLIENT', 'KILL', 'TYPE', 'normal');
    for (const n of [a, b])
      await waitStats(n, 'a reconnection after CLIENT KILL',
                      (s) => s.redis_outages === 1 && s.redis_connected === 1);
    await waitNumsub(redis, admin, prefix + room, 2);
    await a1.send('again');
    assert.equal(await b1.nextText(10000), 'a1: again');
    assert.equal((await clients(redis, admin)).length, 4);
    for (const n of [a, b]) {
      assert.equal(count(n.stderr(), /connected to 127\.0\.0\.1:\d+ again/g),
                   1, n.stderr());
      assert.match(n.stderr(), new RegExp(
        `shares topics through redis://:\\*\\*\\*@127\\.0\\.0\\.1:${redis.port} `));
      await assertNoSecret(n, [pass]);
    }
    await a1.close();
    await b1.close();
  });
});

test('an ACL user with only the commands and channels it needs, on database 5, in herald-chat', async () => {
  const pass = secret('acl');
  const adminPass = secret('admin');
  const admin = { pass: adminPass };
  const redis = await startRedis(await freePort(),
                                 { args: ['--requirepass', adminPass] });
  // README's recipe: PING, SELECT and pub/sub, on the channels of db 5.
  assert.deepEqual(await cli(redis, admin, 'ACL', 'SETUSER', 'herald', 'on',
                             `>${pass}`, 'resetchannels', '&db5:herald:*',
                             '-@all', '+ping', '+select', '+publish',
                             '+subscribe', '+unsubscribe'), ['OK']);
  const url = `redis://herald:${enc(pass)}@127.0.0.1:${redis.port}/5`;
  await withNodes(redis, async (nodes) => {
    nodes.push(await startServer('HERALD_CHAT', ['--redis', url]));
    // The other takes the URL from the environment (not shown by ps).
    process.env.HERALD_REDIS_URL = url;
    try {
      nodes.push(await startServer('HERALD_CHAT'));
    } finally {
      delete process.env.HERALD_REDIS_URL;
    }
  }, async ([a, b]) => {
    const room = `acl${crypto.randomBytes(3).toString('hex')}`;
    const ann = await Client.connect(a.ws(`/ws?name=ann&room=${room}`));
    await waitFor(async () => (await httpRequest(`${b.httpUrl}/metrics`))
      .body.match(/^herald_redis_connected 1$/m), 'node B to connect', 20000);
    await waitNumsub(redis, admin, `db5:herald:${room}`, 1);
    const post = await httpRequest(`${b.httpUrl}/rooms/${room}/messages`,
                                   { method: 'POST', body: 'from B' });
    assert.equal(post.status, 200);
    for (;;) {
      const e = JSON.parse(await ann.nextText(10000));
      if (e.type === 'message') {
        assert.equal(e.text, 'from B');
        break;
      }
    }
    // Four connections, logged in as herald, on database 5.
    const list = await clients(redis, admin);
    assert.deepEqual(list.map((c) => `${c.user} ${c.db}`),
                     Array(4).fill('herald 5'));
    for (const n of [a, b]) {
      assert.match(n.stderr(), new RegExp(
        `through redis://herald:\\*\\*\\*@127\\.0\\.0\\.1:${redis.port}/5 ` +
        '\\(channels db5:herald:<topic>\\)'));
      await assertNoSecret(n, [pass]);
    }
    await ann.close();
  });
});

test('a wrong password: one log line, local delivery goes on, it connects once Redis takes the password', async () => {
  const right = secret('right');
  const wrong = secret('wrong');
  const admin = { pass: right };
  const redis = await startRedis(await freePort(),
                                 { args: ['--requirepass', right] });
  const at = `127.0.0.1:${redis.port}`;
  const prefix = uniquePrefix();
  await withNodes(redis, async (nodes) => {
    nodes.push(...await startNodes(`redis://:${enc(wrong)}@${at}`, prefix, 1));
    nodes.push(...await startNodes(`redis://:${enc(right)}@${at}`, prefix, 1));
    // No credentials at all.
    nodes.push(...await startNodes(`redis://${at}`, prefix, 1));
  }, async ([a, b, c]) => {
    const room = 'wrong';
    const a1 = await Client.connect(a.ws(`/?name=a1&room=${room}`));
    const a2 = await Client.connect(a.ws(`/?name=a2&room=${room}`));
    const b1 = await Client.connect(b.ws(`/?name=b1&room=${room}`));
    await waitConnected(b);
    // Several attempts have failed (each a debug line), one was reported.
    const retries = /DEBUG .*redis: reconnect to 127\.0\.0\.1:\d+ failed \(WRONGPASS/g;
    await waitFor(() => count(a.stderr(), retries) >= 3,
                  'node A to retry three times', 20000);
    const refused = new RegExp(`ERROR .*redis: ${at} refused the password ` +
                               '\\(WRONGPASS [^)]*\\); delivering locally ' +
                               'only, retrying in the background\\n', 'g');
    assert.equal(count(a.stderr(), refused), 1, a.stderr());
    await waitFor(() => count(c.stderr(), /reconnect to .* failed \(NOAUTH/g) >= 3,
                  'node C to retry three times', 20000);
    assert.equal(count(c.stderr(), new RegExp(
      `ERROR .*redis: ${at} wants credentials \\(NOAUTH [^)]*\\); give them ` +
      'in the URL', 'g')), 1, c.stderr());
    let s = await stats(a);
    assert.equal(s.redis_connected, 0);
    assert.equal(s.redis_outages, 1);
    // Local delivery is not affected.
    await a1.send('local');
    assert.equal(await a2.nextText(), 'a1: local');

    // The default user gets A's password as a second one: B stays in, A
    // gets in on its next attempt.
    assert.deepEqual(await cli(redis, admin, 'ACL', 'SETUSER', 'default',
                               `>${wrong}`), ['OK']);
    await waitConnected(a);
    await waitNumsub(redis, admin, prefix + room, 2);
    await a1.send('across');
    assert.equal(await a2.nextText(), 'a1: across');
    assert.equal(await b1.nextText(10000), 'a1: across');
    assert.equal(count(a.stderr(), refused), 1, a.stderr());
    assert.match(a.stderr(), /WARN .*redis: connected to 127\.0\.0\.1:\d+ again; cross-node delivery resumes \(1 messages/);
    s = await stats(a);
    assert.equal(s.redis_outages, 1);
    for (const n of [a, b, c])
      await assertNoSecret(n, [right, wrong]);
    await Promise.all([a1, a2, b1].map((x) => x.close()));
  });
});

test('an unknown ACL user and a database Redis lacks: one log line each', async () => {
  const redis = await startRedis(await freePort());
  const at = `127.0.0.1:${redis.port}`;
  const pass = secret('nobody');
  const prefix = uniquePrefix();
  await withNodes(redis, async (nodes) => {
    nodes.push(...await startNodes(`redis://nobody:${enc(pass)}@${at}`,
                                   prefix, 1));
    nodes.push(...await startNodes(`redis://${at}/99`, prefix, 1));
  }, async ([user, db]) => {
    await waitFor(() => count(user.stderr(), /reconnect to .* failed/g) >= 3,
                  'the node with the user to retry three times', 20000);
    await waitFor(() => count(db.stderr(), /reconnect to .* failed/g) >= 3,
                  'the node on database 99 to retry three times', 20000);
    assert.equal(count(user.stderr(), new RegExp(
      `ERROR .*redis: ${at} refused the password of user 'nobody' ` +
      '\\(WRONGPASS [^)]*\\); delivering locally only', 'g')), 1,
    user.stderr());
    assert.equal(count(db.stderr(), new RegExp(
      `ERROR .*redis: ${at} refused the connection setup \\(SELECT 99: ` +
      'ERR DB index is out of range\\); delivering locally only', 'g')), 1,
    db.stderr());
    for (const n of [user, db])
      assert.equal((await stats(n)).redis_connected, 0);
    await assertNoSecret(user, [pass]);
  });
});

test('nodes on different databases share no topics, also after reconnecting', async () => {
  const redis = await startRedis(await freePort());
  const prefix = uniquePrefix();
  const on = (db) => `redis://127.0.0.1:${redis.port}/${db}`;
  await withNodes(redis, async (nodes) => {
    nodes.push(...await startNodes(on(1), prefix));
    nodes.push(...await startNodes(on(2), prefix));
  }, async ([a1n, a2n, b1n, b2n]) => {
    const room = 'db';
    const a1 = await Client.connect(a1n.ws(`/?name=a1&room=${room}`));
    const a2 = await Client.connect(a2n.ws(`/?name=a2&room=${room}`));
    const b1 = await Client.connect(b1n.ws(`/?name=b1&room=${room}`));
    const b2 = await Client.connect(b2n.ws(`/?name=b2&room=${room}`));
    const settle = async () => {
      for (const n of [a1n, a2n, b1n, b2n])
        await waitConnected(n);
      await waitNumsub(redis, null, `db1:${prefix}${room}`, 2);
      await waitNumsub(redis, null, `db2:${prefix}${room}`, 2);
      // SELECTed: two connections per node on its database.
      const dbs = (await clients(redis, null)).map((c) => c.db).sort();
      assert.deepEqual(dbs, ['1', '1', '1', '1', '2', '2', '2', '2']);
    };
    // Redis sends a channel's messages to each subscriber in PUBLISH
    // order: had b1's message leaked to database 1, a2 would get it before
    // a1's marker, published after b2 had it.
    const isolated = async (tag) => {
      await a1.send(`${tag}-1`);
      assert.equal(await a2.nextText(10000), `a1: ${tag}-1`);
      await b1.send(`${tag}-2`);
      assert.equal(await b2.nextText(10000), `b1: ${tag}-2`);
      await a1.send(`${tag}-end1`);
      await b1.send(`${tag}-end2`);
      assert.equal(await a2.nextText(10000), `a1: ${tag}-end1`);
      assert.equal(await b2.nextText(10000), `b1: ${tag}-end2`);
    };
    await settle();
    await isolated('first');
    await cli(redis, null, 'CLIENT', 'KILL', 'TYPE', 'normal');
    for (const n of [a1n, a2n, b1n, b2n])
      await waitStats(n, 'a reconnection', (s) => s.redis_outages === 1);
    await settle();
    await isolated('second');
    await Promise.all([a1, a2, b1, b2].map((x) => x.close()));
  });
});

test('an IPv6 host in brackets', async () => {
  const pass = secret('v6');
  const redis = await startRedis(await freePort(),
                                 { bind: '::1', args: ['--requirepass', pass] });
  const prefix = uniquePrefix();
  const url = `redis://:${enc(pass)}@[::1]:${redis.port}/3`;
  await withNodes(redis, async (nodes) => {
    nodes.push(...await startNodes(url, prefix));
  }, async ([a, b]) => {
    const a1 = await Client.connect(a.ws('/?name=a1&room=v6'));
    const b1 = await Client.connect(b.ws('/?name=b1&room=v6'));
    await waitConnected(a);
    await waitConnected(b);
    await waitNumsub(redis, { pass }, `db3:${prefix}v6`, 2);
    await a1.send('over ::1');
    assert.equal(await b1.nextText(10000), 'a1: over ::1');
    assert.match(a.stderr(), new RegExp(
      `redis: connected to \\[::1\\]:${redis.port}\\n`));
    await assertNoSecret(a, [pass]);
    await a1.close();
    await b1.close();
  });
});

/** Runs a program that must refuse to start; resolves { code, stderr }. */
function refuses(bin, args) {
  const proc = spawn(bin, ['--port', '0', ...args],
                     { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return withTimeout(new Promise((resolve) => proc.on('exit', (code) => {
    assert.equal(stdout, '', 'it must not start listening');
    resolve({ code, stderr });
  })), 10000, `${bin} to exit`);
}

test('a malformed URL stops herald-chat and herald-echo at start with one line', async () => {
  const cases = [
    ['redis://u:hunter2@127.0.0.1:99999',
     'redis: bad URL redis://***@127.0.0.1:99999 (the port is a number ' +
     'from 1 to 65535)'],
    ['redis://:hunter2%zz@127.0.0.1',
     'redis: bad URL redis://***@127.0.0.1 (bad percent-encoding in the ' +
     'credentials)'],
    ['redis://hunter2@127.0.0.1',
     'redis: bad URL redis://***@127.0.0.1 (credentials are ' +
     'user:password@ or :password@)'],
    ['redis://::1',
     'redis: bad URL redis://::1 (an IPv6 host goes in brackets, as in ' +
     'redis://[::1]:6379)'],
    ['redis://127.0.0.1/x', 'redis: bad URL redis://127.0.0.1/x (the ' +
     'database after \'/\' is a number (0 to 2147483647))'],
  ];
  for (const [name, env] of [['herald-chat', 'HERALD_CHAT'],
                             ['herald-echo', 'HERALD_ECHO']]) {
    for (const [url, line] of cases) {
      const { code, stderr } = await refuses(process.env[env],
                                             ['--redis', url]);
      assert.notEqual(code, 0);
      assert.equal(stderr, `${name}: ${line}\n`);
    }
  }
});
