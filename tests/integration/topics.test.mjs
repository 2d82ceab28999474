// Topics with real clients: fan-out exactly once and in order per sender,
// exclusion of the sender, server-level publish, cleanup, and the bot
// example (actors publishing from timers, threads and fetch).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  Client, startServer, stopServer, httpRequest, waitFor,
} from './helpers.mjs';

const stats = async (server) =>
  JSON.parse((await httpRequest(`${server.httpUrl}/stats`)).body);

let server;
before(async () => {
  server = await startServer('HERALD_PUBSUB_SERVER');
});
after(async () => {
  await stopServer(server);
});

test('every message reaches every other member exactly once, in order per sender', async () => {
  const n = 8;
  const perSender = 25;
  const room = `order-${Date.now()}`;
  const clients = [];
  for (let i = 0; i < n; ++i)
    clients.push(await Client.connect(server.ws(`/?name=c${i}&room=${room}`)));
  // Subscriptions are in place once a server publish reaches everyone.
  await waitFor(async () => {
    const r = await httpRequest(`${server.httpUrl}/publish?room=${room}`,
                                { method: 'POST', body: 'sync' });
    return Number(r.body) > 0;
  }, 'the room to exist', 10000);
  for (const c of clients)
    assert.equal(await c.nextText(), 'sync');
  await Promise.all(clients.map(async (c, i) => {
    for (let k = 0; k < perSender; ++k)
      await c.send(`${k}`);
  }));
  for (const [i, c] of clients.entries()) {
    const got = new Map();
    for (let k = 0; k < (n - 1) * perSender; ++k) {
      const text = await c.nextText();
      const [sender, seq] = text.split(': ');
      assert.notEqual(sender, `c${i}`, 'a sender got its own message');
      const list = got.get(sender) ?? [];
      list.push(Number(seq));
      got.set(sender, list);
    }
    assert.equal(got.size, n - 1);
    for (const [sender, list] of got)
      assert.deepEqual(list, [...Array(perSender).keys()],
                       `order of ${sender} as seen by c${i}`);
  }
  // Nothing more: no duplicates.
  await assert.rejects(clients[0].next(300), /timed out/);
  await Promise.all(clients.map((c) => c.close()));
});

test('what open subscribes to is in place when the client sees the upgrade', async () => {
  // As in Bun: the 101 leaves after the open handler ran, so a publish the
  // client causes once it is open reaches it, with no wait.
  for (let i = 0; i < 40; ++i) {
    const room = `early-${Date.now()}-${i}`;
    const c = await Client.connect(server.ws(`/?name=e&room=${room}`));
    const r = await httpRequest(`${server.httpUrl}/publish?room=${room}`,
                                { method: 'POST', body: `hello ${i}` });
    assert.equal(r.status, 200);
    assert.equal(await c.nextText(), `hello ${i}`);
    await c.close();
  }
});

test('subscribe, unsubscribe, is_subscribed and subscriptions', async () => {
  const c = await Client.connect(server.ws('/?name=s&room=home'));
  assert.equal(await c.ask('/subs'), 'home');
  assert.equal(await c.ask('/sub news'), 'ok');
  assert.equal(await c.ask('/is news'), 'yes');
  assert.equal(await c.ask('/subs'), 'home,news');
  const r = await httpRequest(`${server.httpUrl}/publish?room=news`,
                              { method: 'POST', body: 'breaking' });
  assert.ok(Number(r.body) > 0);
  assert.equal(await c.nextText(), 'breaking');
  assert.equal(await c.ask('/unsub news'), 'ok');
  assert.equal(await c.ask('/is news'), 'no');
  // The topic is gone with its last subscriber: publishing costs nothing.
  await waitFor(async () => {
    const r2 = await httpRequest(`${server.httpUrl}/publish?room=news`,
                                 { method: 'POST', body: 'nobody' });
    return r2.body === '0';
  }, 'news to have no subscribers', 10000);
  await assert.rejects(c.next(300), /timed out/);
  await c.close();
});

test('binary publishes stay binary', async () => {
  const room = `bin-${Date.now()}`;
  const a = await Client.connect(server.ws(`/?name=a&room=${room}`));
  const b = await Client.connect(server.ws(`/?name=b&room=${room}`));
  // Open has subscribed both by now (the upgrade is answered after it).
  await a.send(Buffer.from([0, 1, 2, 255]));
  const m = await b.next();
  assert.equal(m.isBinary, true);
  assert.deepEqual([...m.data], [0, 1, 2, 255]);
  await Promise.all([a.close(), b.close()]);
});

test('a client that disconnects mid-stream leaves the others unaffected', async () => {
  const room = `drop-${Date.now()}`;
  const sender = await Client.connect(server.ws(`/?name=s&room=${room}`));
  const stay = await Client.connect(server.ws(`/?name=k&room=${room}`));
  const leave = await Client.connect(server.ws(`/?name=l&room=${room}`));
  const total = 300;
  const sending = (async () => {
    for (let k = 0; k < total; ++k) {
      await sender.send(`${k}`);
      if (k === 100)
        leave.ws.terminate(); // gone without a close frame
    }
  })();
  for (let k = 0; k < total; ++k)
    assert.equal(await stay.nextText(), `s: ${k}`);
  await sending;
  await waitFor(async () => (await stats(server)).open === 2,
                'the dropped client to be gone', 10000);
  await Promise.all([sender.close(), stay.close()]);
});

test('closing every connection leaves no topic behind', async () => {
  const clients = [];
  for (let i = 0; i < 20; ++i)
    clients.push(await Client.connect(server.ws(`/?name=x${i}&room=t${i}`)));
  assert.ok((await stats(server)).topics >= 20);
  await Promise.all(clients.map((c) => c.close()));
  await waitFor(async () => {
    const s = await stats(server);
    return s.open === 0 && s.topics === 0;
  }, 'all topics to go away', 10000);
});

test('publish_to_self includes the sender', async () => {
  const own = await startServer('HERALD_PUBSUB_SERVER', ['--publish-to-self']);
  try {
    const a = await Client.connect(own.ws('/?name=a&room=r'));
    await a.send('hello');
    assert.equal(await a.nextText(), 'a: hello');
    await a.close();
  } finally {
    await stopServer(own);
  }
});

test('actors publish from handlers, timers, threads and fetch (herald-bot)', async () => {
  const bot = await startServer('HERALD_BOT', ['--tick-ms', '100']);
  try {
    const lobby = await Client.connect(bot.ws('/?name=ann&room=lobby'));
    const ticks = await Client.connect(bot.ws('/?name=t&room=ticks'));
    const clock = await Client.connect(bot.ws('/?name=c&room=clock'));
    assert.equal(await lobby.ask('!ping'), 'ann: !ping');
    assert.equal(await lobby.nextText(), 'bot: pong');
    await lobby.send('!echo composed');
    assert.equal(await lobby.nextText(), 'ann: !echo composed');
    assert.equal(await lobby.nextText(), 'bot: composed');
    const t1 = await ticks.nextText();
    const t2 = await ticks.nextText();
    assert.match(t1, /^tick \d+$/);
    assert.equal(Number(t2.split(' ')[1]), Number(t1.split(' ')[1]) + 1);
    assert.match(await clock.nextText(3000), /^clock \d+$/);
    const r = await httpRequest(`${bot.httpUrl}/broadcast?room=lobby`,
                                { method: 'POST', body: 'from fetch' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'sent to 2\n'); // ann and the bot
    assert.equal(await lobby.nextText(), 'from fetch');
    await Promise.all([lobby.close(), ticks.close(), clock.close()]);
  } finally {
    await stopServer(bot);
  }
});

test('a member joining while a topic lingers gets what came after its join, once', async () => {
  // The topic holds a publish for a second: b's subscribe arrives while
  // "1" waits, and "2" goes out together with it.
  const own = await startServer('HERALD_PUBSUB_SERVER',
                                ['--linger-ms', '1000', '--linger-min', '1']);
  try {
    const room = 'lingering';
    const post = (body) => httpRequest(`${own.httpUrl}/publish?room=${room}`,
                                       { method: 'POST', body });
    // A 101 comes after the subscribe of `open` went to the registry, so
    // the publishes that follow find the member there.
    const a = await Client.connect(own.ws(`/?name=a&room=${room}`));
    await post('1');
    const b = await Client.connect(own.ws(`/?name=b&room=${room}`));
    await post('2');
    assert.equal(await a.nextText(5000), '1');
    assert.equal(await a.nextText(5000), '2');
    assert.equal(await b.nextText(5000), '2');
    await post('3');
    assert.equal(await a.nextText(5000), '3');
    assert.equal(await b.nextText(5000), '3');
    await assert.rejects(a.next(300), /timed out/);
    await assert.rejects(b.next(300), /timed out/);
    await Promise.all([a.close(), b.close()]);
  } finally {
    await stopServer(own);
  }
});
