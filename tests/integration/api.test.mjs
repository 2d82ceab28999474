// The server-side API seen from real clients, through herald-test-server:
// message types, per-connection data, close/terminate/ping from the server,
// the open/message/close/ping/pong/error handlers, ready_state,
// remote_address, buffered_amount, send's return value, cork, topics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  Client, closePayload, httpRequest, OP, RawClient, serveWithBystander, sleep,
  startServer, stats, stopServer, uniqueName, waitCloseRecord, waitFor,
} from './helpers.mjs';

const T = { timeout: 15000 };

/**
 * Asks `c`'s server for buffered_amount until it is 0 (a "drain" note on
 * the way is skipped): frames written after the last one the client saw may
 * still be queued when a single answer is made.
 */
async function bufferEmpties(c) {
  let last;
  try {
    await waitFor(async () => {
      await c.send('buffered');
      do
        last = await c.nextText();
      while (last === 'drain');
      return last === 'buffered 0';
    }, 'buffered_amount to reach 0', 10000, 50);
  } catch (e) {
    assert.fail(`${e.message}; last answer: ${last}`);
  }
}

describe('server API (herald-test-server)', () => {
  let server;
  const clients = [];

  /** A ws client of /api named `name`; its open message is consumed. */
  async function api(name = uniqueName(), protocols, options) {
    const c = await Client.connect(server.ws(`/api?name=${name}`), protocols,
                                   options);
    clients.push(c);
    c.name = name;
    c.open = JSON.parse(await c.nextText());
    assert.equal(c.open.type, 'open');
    return c;
  }

  const cleanup = () => {
    for (const c of clients.splice(0))
      if (c.ws.readyState !== c.ws.CLOSED)
        c.ws.terminate();
  };
  serveWithBystander('HERALD_TEST_SERVER', { path: '/echo', cleanup },
                     (s) => { server = s; });

  // -- open and per-connection data -----------------------------------------

  test('open sees the upgrade request and the socket', T, async () => {
    const name = uniqueName('open');
    const c = new Client(server.ws(`/api?name=${name}&x=%C3%A9`), undefined,
                         { headers: { 'User-Agent': 'herald-itest/1.0' } });
    clients.push(c);
    let localPort;
    c.ws.once('upgrade', (res) => (localPort = res.socket.localPort));
    await c.opened;
    const open = JSON.parse(await c.nextText());
    assert.equal(open.type, 'open');
    assert.equal(open.name, name);
    assert.equal(open.route, 'api');
    assert.equal(open.method, 'GET');
    assert.equal(open.path, '/api');
    assert.equal(open.target, `/api?name=${name}&x=%C3%A9`);
    assert.equal(open.user_agent, 'herald-itest/1.0');
    assert.equal(open.remote, `127.0.0.1:${localPort}`);
    assert.equal(open.remote_endpoint, open.remote,
                 'ws.remote_endpoint() matches the request');
    assert.equal(open.remote_address, '127.0.0.1',
                 "ws.remote_address() is the address, as Bun's remoteAddress");
    assert.equal(open.protocol, '');
    assert.equal(open.ready_state, 1, 'open in the open handler');
    assert.equal(open.counter, 0);
  });

  test('per-connection data: each connection counts on its own', T,
       async () => {
         const a = await api();
         const b = await api();
         assert.equal(await a.ask('count'), 'count 1');
         assert.equal(await a.ask('count'), 'count 2');
         assert.equal(await b.ask('count'), 'count 1');
         assert.equal(await a.ask('count'), 'count 3');
         assert.equal(await b.ask('count'), 'count 2');
         const who = JSON.parse(await a.ask('whoami'));
         assert.equal(who.name, a.name);
         assert.equal(who.counter, 3);
       });

  test('text stays text and binary stays binary (/echo)', T, async () => {
    const c = await Client.connect(server.ws('/echo'));
    clients.push(c);
    await c.send('text ✓');
    const t = await c.next();
    assert.equal(t.isBinary, false);
    assert.equal(t.text, 'text ✓');
    const bin = crypto.randomBytes(1000);
    await c.send(bin, { binary: true });
    const b = await c.next();
    assert.equal(b.isBinary, true);
    assert.ok(b.data.equals(bin));
    // Binary that happens to be valid UTF-8 is still binary.
    await c.send(Buffer.from('looks like text'), { binary: true });
    const b2 = await c.next();
    assert.equal(b2.isBinary, true);
    assert.equal(b2.data.toString(), 'looks like text');
  });

  test('the API route echoes binary and answers text commands', T,
       async () => {
         const c = await api();
         await c.send(Buffer.from([0, 1, 2, 255]), { binary: true });
         const b = await c.next();
         assert.equal(b.isBinary, true);
         assert.deepEqual([...b.data], [0, 1, 2, 255]);
         assert.equal(await c.ask('echo hi there'), 'hi there');
         await c.send('binary some bytes');
         const b3 = await c.next();
         assert.equal(b3.isBinary, true, 'send_binary(string_view)');
         assert.equal(b3.data.toString(), 'some bytes');
         assert.equal(await c.ask('nonsense'), 'unknown command nonsense');
       });

  test('handlers reach their server: ws.server().publish and ' +
       'subscriber_count', T, async () => {
    const topic = uniqueName('srv');
    const a = await api();
    const b = await api();
    assert.equal(await a.ask(`sub ${topic}`), `subscribed ${topic}`);
    assert.equal(await b.ask(`sub ${topic}`), `subscribed ${topic}`);
    await a.send(`server-pub ${topic} hello`);
    // The server's publish excludes nobody: a gets it too, besides the
    // reply, in either order.
    const got = [await a.nextText(), await a.nextText()].sort();
    assert.match(got[0], /^hello$/);
    assert.match(got[1], /^server-published \d+ 2$/);
    assert.equal(await b.nextText(), 'hello');
  });

  test('subscriber_count in open counts the subscribe just made (Bun\'s ' +
       '"N users online")', T, async () => {
    const topic = uniqueName('online');
    const n = 6;
    const seen = [];
    const conns = [];
    // One after another: each open subscribes, then reads the count at
    // once, whether or not the registry has the subscription yet.
    for (let i = 0; i < n; ++i) {
      const c = await Client.connect(
        server.ws(`/api?name=${uniqueName('online')}&sub=${topic}`));
      clients.push(c);
      conns.push(c);
      const open = JSON.parse(await c.nextText());
      assert.equal(open.type, 'open');
      seen.push(open.subscribers);
    }
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i + 1));
    const r = await httpRequest(
      `${server.httpUrl}/publish?topic=${topic}&text=all`);
    assert.match(r.body, new RegExp(`^published [1-9]\\d* ${n}\n$`));
    // And each unsubscribe is gone from the count at once.
    const left = [];
    for (const c of conns) {
      assert.equal(await c.nextText(), 'all');
      const reply = await c.ask(`unsub ${topic}`);
      const m = reply.match(new RegExp(`^unsubscribed ${topic} (\\d+)$`));
      assert.ok(m, reply);
      left.push(Number(m[1]));
    }
    assert.deepEqual(left, Array.from({ length: n }, (_, i) => n - 1 - i));
  });

  test('ready_state and remote_address', T, async () => {
    const c = await api();
    assert.equal(await c.ask('state'), 'state 1');
    assert.equal(await c.ask('remote'),
                 `remote 127.0.0.1:${c.ws._socket.localPort} 127.0.0.1`);
  });

  // -- send's return value, buffered_amount, cork ---------------------------

  test('send returns the bytes accepted; buffered_amount covers them', T,
       async () => {
         const c = await api();
         const reply = await c.ask('send-status hello');
         // The sent message arrives first.
         assert.equal(reply, 'hello');
         const [word, status, before, afterSend] =
           (await c.nextText()).split(' ');
         assert.equal(word, 'send-status');
         // A positive byte count (Bun: bytes sent; Herald: frame size).
         assert.ok([5, 7].includes(Number(status)),
                   `send returned ${status} for a 5-byte message`);
         assert.ok(Number(afterSend) >= Number(before) + 5,
                   `buffered_amount ${before} -> ${afterSend}`);
       });

  test('a 4 MiB send: status and buffered_amount, then buffered 0', T,
       async () => {
         const c = await api();
         const n = 4 << 20;
         await c.send(`big ${n}`);
         const data = await c.next(10000);
         assert.equal(data.isBinary, true);
         assert.equal(data.data.length, n);
         const [word, status, buffered] = (await c.nextText()).split(' ');
         assert.equal(word, 'big');
         assert.ok(Number(status) === -1 || Number(status) >= n,
                   `send status ${status}`);
         assert.ok(Number(buffered) >= n,
                   `buffered_amount right after send: ${buffered}`);
         // Everything was delivered: the buffer empties. If the write backed
         // up, the drain handler's "drain" may still be queued when the
         // question is answered, so ask until the answer is 0.
         await bufferEmpties(c);
       });

  test('cork: the messages arrive in order', T, async () => {
    const c = await api();
    await c.send('cork');
    assert.deepEqual([await c.nextText(), await c.nextText(),
                      await c.nextText()],
                     ['cork 1', 'cork 2', 'cork 3']);
  });

  // -- close and terminate from the server ----------------------------------

  test('close(code, reason) from the server reaches the client', T,
       async () => {
         const c = await api();
         await c.send('close 4000 server says bye ✓');
         assert.deepEqual(await c.waitClose(),
                          { code: 4000, reason: 'server says bye ✓' });
         // The client echoed the code; the close handler saw it.
         const rec = await waitCloseRecord(server, c.name);
         assert.equal(rec.code, 4000);
       });

  test('a close reason over 123 bytes is cut on a code point boundary', T,
       async () => {
         // 'é' is 2 bytes: 100 of them make 200 bytes; a close frame holds
         // 123 bytes of reason, so 61 characters (122 bytes) remain.
         const c = await api();
         await c.send(`close 4003 ${'é'.repeat(100)}`);
         const info = await c.waitClose();
         assert.equal(info.code, 4003);
         assert.equal(info.reason, 'é'.repeat(61));
       });

  test('close() without arguments sends 1000', T, async () => {
    const c = await api();
    await c.send('close');
    assert.deepEqual(await c.waitClose(), { code: 1000, reason: '' });
  });

  test('a message sent before close() arrives before the close', T,
       async () => {
         const c = await api();
         await c.send('close-after-send');
         assert.equal(await c.nextText(), 'last words');
         assert.deepEqual(await c.waitClose(),
                          { code: 4001, reason: 'after send' });
       });

  test('after close(): send is dropped (0) and ready_state is closing (2)',
       T, async () => {
         const c = await api();
         await c.send('send-after-close');
         assert.equal((await c.waitClose()).code, 4002);
         const note = await waitFor(async () =>
           (await stats(server)).notes.find((n) => n.name === c.name),
         'the send-after-close note');
         assert.equal(note.data, 'send-after-close 0 2');
         assert.equal(c.queue.length, 0, 'nothing was sent after close()');
       });

  test('a raw client sees the close frame, answers, and TCP ends', T,
       async () => {
         const name = uniqueName('raw-close');
         const c = await RawClient.connect(server, { path: `/api?name=${name}` });
         try {
           await c.expectFrame(OP.text); // the open message
           await c.sendFrame(OP.text, 'close 4500 raw');
           const f = await c.expectClose(4500, { thenEnd: false });
           assert.equal(f.reason, 'raw');
           await c.sendFrame(OP.close, closePayload(4500, 'ack'));
           await c.waitEnd();
           const rec = await waitCloseRecord(server, name);
           assert.deepEqual([rec.code, rec.reason], [4500, 'ack']);
         } finally {
           c.destroy();
         }
       });

  test('terminate() drops the connection without a close frame (1006)', T,
       async () => {
         const c = await api();
         await c.send('terminate');
         assert.equal((await c.waitClose()).code, 1006);
         const rec = await waitCloseRecord(server, c.name);
         assert.equal(rec.code, 1006);
       });

  test('terminate() seen on a raw socket: no close frame, TCP ends', T,
       async () => {
         const c = await RawClient.connect(server, { path: '/api?name=t' });
         try {
           await c.expectFrame(OP.text);
           await c.sendFrame(OP.text, 'terminate');
           await c.waitEnd();
           assert.equal(c.frames.filter((f) => f.opcode === OP.close).length,
                        0, 'no close frame');
         } finally {
           c.destroy();
         }
       });

  test('close() with a code an endpoint may not send: handler fails, 1011',
       T, async () => {
         const c = await api();
         await c.send('close-invalid 1005');
         assert.equal((await c.waitClose()).code, 1011);
         const err = await waitFor(async () =>
           (await stats(server)).errors.find((e) => e.name === c.name),
         'the error handler');
         assert.match(err.what, /close code/);
       });

  // -- handler errors -------------------------------------------------------

  test('a throwing message handler: close 1011, error handler ran, others ' +
       'unaffected', T, async () => {
    const other = await api();
    const c = await api();
    await c.send('throw');
    const info = await c.waitClose();
    assert.equal(info.code, 1011);
    const err = await waitFor(async () =>
      (await stats(server)).errors.find((e) => e.name === c.name),
    'the error handler record');
    assert.equal(err.what, `boom from ${c.name}`);
    await waitFor(() => server.stderr().includes(
      `error handler: boom from ${c.name}`), 'the error handler log line');
    const rec = await waitCloseRecord(server, c.name);
    assert.equal(rec.code, 1011, 'the close handler saw 1011');
    // Other connections keep working, and new ones open.
    assert.equal(await other.ask('count'), 'count 1');
    const fresh = await api();
    assert.equal(await fresh.ask('echo fine'), 'fine');
  });

  test('a throwing open handler: close 1011 and the error handler ran', T,
       async () => {
         const name = uniqueName('open-throw');
         const c = new Client(server.ws(`/api?name=${name}&throw=open`));
         clients.push(c);
         await c.opened;
         assert.equal((await c.waitClose()).code, 1011);
         const err = await waitFor(async () =>
           (await stats(server)).errors.find((e) => e.name === name),
         'the error handler record');
         assert.equal(err.what, `open failed for ${name}`);
       });

  // -- pings and pongs ------------------------------------------------------

  test('server ping(data): the client gets it, its pong reaches the pong ' +
       'handler', T, async () => {
    const c = await api();
    await c.send('ping hello-ping');
    // ping() queued the ping before the reply, so the client has the ping
    // (and answered it automatically) before it reads the reply; the pong
    // handler's message comes after.
    const sent = await c.nextText();
    assert.match(sent, /^ping-sent \d+$/);
    assert.ok(Number(sent.split(' ')[1]) > 0, 'ping() accepted the frame');
    assert.deepEqual(c.pings.map(String), ['hello-ping']);
    assert.equal(await c.nextText(), 'pong hello-ping');
    const st = await stats(server);
    assert.ok(st.pongs.some((p) => p.name === c.name &&
                            p.data === 'hello-ping'));
  });

  test('server ping data is cut to 125 bytes', T, async () => {
    const c = await api();
    await c.send(`ping ${'z'.repeat(200)}`);
    await c.nextText();
    assert.equal(await c.nextText(), `pong ${'z'.repeat(125)}`);
  });

  test('client ping: the pong comes back and the ping handler ran', T,
       async () => {
         const c = await api();
         const pong = new Promise((resolve) => c.ws.once('pong', resolve));
         c.ws.ping('client-ping');
         assert.equal(String(await pong), 'client-ping');
         // Handlers run in order on the connection: the ping handler ran
         // before this command.
         assert.equal(await c.ask('pings'), 'pings\nclient-ping');
         const st = await stats(server);
         assert.ok(st.pings.some((p) => p.name === c.name &&
                                 p.data === 'client-ping'));
       });

  // -- the close handler ----------------------------------------------------

  test('the close handler sees the client\'s code and reason', T, async () => {
    const c = await api();
    c.ws.close(4100, 'client says bye ✓');
    assert.equal((await c.waitClose()).code, 4100);
    const rec = await waitCloseRecord(server, c.name);
    assert.deepEqual([rec.code, rec.reason], [4100, 'client says bye ✓']);
  });

  test('a close without a code reaches the close handler as 1005', T,
       async () => {
         const c = await api();
         c.ws.close();
         await c.waitClose();
         const rec = await waitCloseRecord(server, c.name);
         assert.equal(rec.code, 1005);
         assert.equal(rec.reason, '');
       });

  test('a client that drops TCP reaches the close handler as 1006', T,
       async () => {
         const c = await api();
         c.ws.terminate();
         const rec = await waitCloseRecord(server, c.name);
         assert.equal(rec.code, 1006);
       });

  test('a protocol error reaches the close handler with its code', T,
       async () => {
         const name = uniqueName('proto');
         const c = await RawClient.connect(server, { path: `/api?name=${name}` });
         try {
           await c.expectFrame(OP.text);
           await c.sendFrame(OP.text, Buffer.from([0xff]));
           await c.expectClose(1007);
           const rec = await waitCloseRecord(server, name);
           assert.equal(rec.code, 1007);
         } finally {
           c.destroy();
         }
       });

  // -- topics ---------------------------------------------------------------

  test('publish reaches subscribers, not the publisher', T, async () => {
    const topic = uniqueName('topic');
    const a = await api();
    const b = await api();
    assert.equal(await a.ask(`sub ${topic}`), `subscribed ${topic}`);
    assert.equal(await b.ask(`sub ${topic}`), `subscribed ${topic}`);
    const reply = await b.ask(`pub ${topic} news ✓`);
    assert.match(reply, /^published [1-9]\d*$/);
    assert.equal(await a.nextText(), 'news ✓');
    await sleep(100);
    assert.equal(b.queue.length, 0, 'no copy to the publisher');
  });

  test('server.publish from fetch reaches every subscriber', T, async () => {
    const topic = uniqueName('srv-topic');
    const none = await httpRequest(
      `${server.httpUrl}/publish?topic=${topic}&text=nobody`);
    assert.equal(none.body, 'published 0 0\n', 'no subscribers: nothing sent');
    const a = await api();
    const b = await api();
    await a.ask(`sub ${topic}`);
    await b.ask(`sub ${topic}`);
    // "subscribed" comes back while the subscription may still be on its
    // way to the registry: counted all the same, and the publish, ordered
    // after it, reaches it.
    const r = await httpRequest(
      `${server.httpUrl}/publish?topic=${topic}&text=hello%20all`);
    assert.match(r.body, /^published [1-9]\d* 2\n$/);
    assert.equal(await a.nextText(), 'hello all');
    assert.equal(await b.nextText(), 'hello all');
    // Both got it, so the registry has both subscriptions by now.
    const r2 = await httpRequest(
      `${server.httpUrl}/publish?topic=${topic}&text=both`);
    assert.match(r2.body, /^published [1-9]\d* 2\n$/);
    assert.equal(await a.nextText(), 'both');
    assert.equal(await b.nextText(), 'both');
    // A subscriber that closed no longer counts.
    await b.close();
    await waitFor(async () => (await httpRequest(
      `${server.httpUrl}/publish?topic=${topic}&text=again`)).body
      .endsWith(' 1\n'), 'the subscriber count to drop to 1');
    assert.equal(await a.nextText(), 'again');
  });

  // -- counters -------------------------------------------------------------

  test('open connection count returns to its level after closes', T,
       async () => {
         const before = await stats(server);
         const cs = await Promise.all([api(), api(), api()]);
         const during = await stats(server);
         assert.equal(during.open_connections, before.open_connections + 3);
         assert.equal(during.pending_websockets,
                      before.pending_websockets + 3);
         await Promise.all(cs.map((c) => c.close()));
         await waitFor(async () =>
           (await stats(server)).pending_websockets ===
             before.pending_websockets, 'connections to go');
         const now = await stats(server);
         assert.equal(now.open_connections, before.open_connections);
         assert.equal(now.connections_total, before.connections_total + 3);
       });
});

describe('backpressure (--backpressure-limit 1 MiB)', () => {
  let server;
  let closing; // the same with --close-on-backpressure-limit
  before(async () => {
    [server, closing] = await Promise.all([
      startServer('HERALD_TEST_SERVER', ['--backpressure-limit', '1048576']),
      startServer('HERALD_TEST_SERVER', ['--backpressure-limit', '1048576',
                                         '--close-on-backpressure-limit']),
    ]);
  });
  after(async () => {
    await Promise.all([stopServer(server), stopServer(closing)]);
  });

  /** The "flood" notes of connection `name`, as [ok, bp, dropped, buf]. */
  async function floods(srv, name) {
    return (await stats(srv)).notes
      .filter((n) => n.name === name && n.data.startsWith('flood '))
      .map((n) => n.data.split(' ').slice(1).map(Number));
  }

  /**
   * With the client not reading, floods until `done(totals)`; resolves with
   * the totals { ok, bp, dropped } over all floods.
   */
  async function floodUntil(srv, c, done) {
    const totals = { ok: 0, bp: 0, dropped: 0, rounds: 0 };
    for (let i = 0; i < 150 && !done(totals); ++i) {
      await c.send('flood 4 262144');
      const note = await waitFor(async () => (await floods(srv, c.name))[i],
                                 `flood note ${i}`);
      totals.ok += note[0];
      totals.bp += note[1];
      totals.dropped += note[2];
      totals.rounds = i + 1;
    }
    return totals;
  }

  test('a client that stops reading: sends get -1, then are dropped (0); ' +
       'after it reads again everything accepted arrives, then drain', T,
       async () => {
         const name = uniqueName('bp');
         const c = await Client.connect(server.ws(`/api?name=${name}`));
         c.name = name;
         await c.nextText(); // open
         c.ws._socket.pause(); // stop reading: the server's writes back up
         const totals = await floodUntil(server, c,
                                         (t) => t.bp > 0 && t.dropped > 0);
         assert.ok(totals.bp > 0, `no send returned -1: ${JSON.stringify(totals)}`);
         assert.ok(totals.dropped > 0,
                   `no send was dropped: ${JSON.stringify(totals)}`);
         c.ws._socket.resume();
         // Everything accepted (ok or -1) arrives in order; dropped ones never.
         const expected = totals.ok + totals.bp;
         const seqs = [];
         let drained = false;
         while (!(drained && seqs.length === expected)) {
           const m = await c.next(10000);
           if (m.isBinary) {
             assert.equal(m.data.length, 262144);
             seqs.push(m.data.readUInt32BE(0));
             assert.equal(drained, false, 'binary data after the drain');
           } else {
             assert.equal(m.text, 'drain');
             assert.equal(seqs.length, expected,
                          `drain after ${seqs.length} of ${expected} messages`);
             drained = true;
           }
         }
         for (let i = 1; i < seqs.length; ++i)
           assert.ok(seqs[i] > seqs[i - 1], 'in order');
         assert.equal(seqs.at(-1) < expected + totals.dropped, true);
         await bufferEmpties(c);
         assert.ok((await stats(server)).notes.some(
           (n) => n.name === name && n.data === 'drain'));
         await c.close();
       });

  test('with --close-on-backpressure-limit the connection closes with 1008',
       T, async () => {
         const name = uniqueName('bp-close');
         const c = await Client.connect(closing.ws(`/api?name=${name}`));
         c.name = name;
         await c.nextText();
         c.ws._socket.pause();
         const totals = await floodUntil(closing, c, (t) => t.dropped > 0);
         assert.ok(totals.dropped > 0, JSON.stringify(totals));
         c.ws._socket.resume();
         const info = await c.waitClose(10000);
         assert.deepEqual(info, { code: 1008,
                                  reason: 'backpressure limit reached' });
         const rec = await waitCloseRecord(closing, name);
         assert.equal(rec.code, 1008);
       });
});
