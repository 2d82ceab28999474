// Connection lifecycles driven by time and by the process: idle timeouts
// with and without pings, the close timeout after a server close that the
// peer never answers, and SIGTERM/SIGINT shutdown (graceful with a
// deadline, then at once on a second signal). The slow cases run
// concurrently so the file takes a few seconds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Client, OP, RawClient, WebSocket, httpRequest, sleep, startServer,
  stopServer, uniqueName, waitCloseRecord, waitFor, withTimeout,
} from './helpers.mjs';

const T = { timeout: 20000 };

/** Milliseconds from `t0` until `c` (RawClient) ended. */
const endedAfter = (c, t0) => c.endedAt - t0;
// Lower bounds count from before the connect (the server's clock starts at
// its open, which a client slowed by load may see much later), upper
// bounds from after it: the server is never early, nor late by more.

describe('timeouts', { concurrency: true }, () => {
  let quiet;   // --idle-timeout 2 --no-pings
  let pinging; // --idle-timeout 2 (pings on)
  let plain;   // defaults
  before(async () => {
    [quiet, pinging, plain] = await Promise.all([
      startServer('HERALD_TEST_SERVER', ['--idle-timeout', '2', '--no-pings']),
      startServer('HERALD_TEST_SERVER', ['--idle-timeout', '2']),
      startServer('HERALD_TEST_SERVER'),
    ]);
  });
  after(async () => {
    await Promise.all([quiet, pinging, plain].map(stopServer));
  });

  test('no pings: a silent raw client is closed with 1001 "idle timeout" ' +
       'after about 2 s', T, async () => {
    const name = uniqueName('idle-raw');
    const before = Date.now();
    const c = await RawClient.connect(quiet, { path: `/echo?name=${name}` });
    const t0 = Date.now();
    try {
      const f = await c.expectClose(1001, { reason: 'idle timeout', ms: 6000,
                                            thenEnd: false });
      const ms = Date.now() - t0;
      const sinceBefore = Date.now() - before;
      assert.ok(sinceBefore >= 1900 && ms <= 4500,
                `closed after ${ms} ms (${sinceBefore} from before connecting)`);
      assert.equal(f.fin, true);
      await c.waitEnd();
      const rec = await waitCloseRecord(quiet, name);
      assert.deepEqual([rec.code, rec.reason], [1001, 'idle timeout']);
    } finally {
      c.destroy();
    }
  });

  test('no pings: a silent ws client is closed with 1001 too', T,
       async () => {
         const before = Date.now();
         const c = await Client.connect(quiet.ws('/echo'));
         const t0 = Date.now();
         const info = await c.waitClose(6000);
         const ms = Date.now() - t0;
         const sinceBefore = Date.now() - before;
         assert.deepEqual(info, { code: 1001, reason: 'idle timeout' });
         assert.ok(sinceBefore >= 1900 && ms <= 4500,
                   `closed after ${ms} ms (${sinceBefore} from before connecting)`);
         assert.equal(c.pings.length, 0, 'no pings with --no-pings');
       });

  test('no pings: 300 silent clients opened together are all closed with ' +
       '1001, each after about the timeout', T, async () => {
    // One idle clock ticks every connection of the server; connections
    // opened within a few milliseconds share its wake-ups.
    const before = Date.now();
    const clients = await Promise.all(
      Array.from({ length: 300 }, () => Client.connect(quiet.ws('/echo'))));
    const t0 = Date.now();
    try {
      const infos = await Promise.all(clients.map((c) => c.waitClose(8000)));
      const ms = Date.now() - t0;
      const sinceBefore = Date.now() - before;
      for (const info of infos)
        assert.deepEqual(info, { code: 1001, reason: 'idle timeout' });
      assert.ok(sinceBefore >= 1900 && ms <= 6000,
                `last closed after ${ms} ms (${sinceBefore} from before connecting)`);
    } finally {
      for (const c of clients)
        if (c.closeInfo === undefined)
          c.ws.terminate();
    }
  });

  test('no pings: a client that keeps talking stays open past 2x the ' +
       'timeout', T, async () => {
    const c = await Client.connect(quiet.ws('/echo'));
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < 5000; ++i) {
      assert.equal(await c.ask(`tick ${i}`), `tick ${i}`);
      await sleep(300);
    }
    assert.equal(c.closeInfo, undefined, 'still open');
    await c.close();
  });

  test('pings: a ws client (answering pings) stays open past 2x the ' +
       'timeout', T, async () => {
    const c = await Client.connect(pinging.ws('/echo'));
    await sleep(5000);
    assert.equal(c.closeInfo, undefined,
                 `closed: ${JSON.stringify(c.closeInfo)}`);
    assert.ok(c.pings.length >= 1, `pinged ${c.pings.length} times`);
    assert.equal(await c.ask('alive'), 'alive');
    await c.close();
  });

  test('pings: a raw client that never answers gets a ping, then 1001', T,
       async () => {
         const before = Date.now();
         const c = await RawClient.connect(pinging, { path: '/echo' });
         const t0 = Date.now();
         try {
           const ping = await c.expectFrame(OP.ping, 4000);
           assert.equal(ping.payload.length, 0);
           const pingMs = Date.now() - t0;
           const pingBefore = Date.now() - before;
           assert.ok(pingBefore >= 950 && pingMs <= 3000,
                     `pinged after ${pingMs} ms (${pingBefore} from before connecting)`);
           await c.expectClose(1001, { reason: 'idle timeout', ms: 4000 });
           const ms = endedAfter(c, t0);
           const endBefore = endedAfter(c, before);
           assert.ok(endBefore >= 1900 && ms <= 5000,
                     `closed after ${ms} ms (${endBefore} from before connecting)`);
         } finally {
           c.destroy();
         }
       });

  test('pings: a raw client that answers pings stays open', T, async () => {
    const c = await RawClient.connect(pinging, { path: '/echo' });
    try {
      const t0 = Date.now();
      let pings = 0;
      while (Date.now() - t0 < 4500) {
        const f = await c.nextFrame(3000);
        assert.ok(f, 'connection ended');
        assert.equal(f.opcode, OP.ping);
        ++pings;
        await c.sendFrame(OP.pong, f.payload);
      }
      assert.ok(pings >= 2, `${pings} pings`);
      await c.echo('still open');
    } finally {
      c.destroy();
    }
  });

  test('a server close the peer never answers: TCP dropped after the ' +
       'close timeout (5 s), close handler sees 1006', T, async () => {
    const name = uniqueName('unanswered');
    const c = await RawClient.connect(plain, { path: `/api?name=${name}` });
    try {
      await c.expectFrame(OP.text); // open message
      await c.sendFrame(OP.text, 'close 4000 answer me');
      const t0 = Date.now();
      await c.expectClose(4000, { thenEnd: false });
      // Never answer the close.
      await c.waitEnd(10000);
      const ms = endedAfter(c, t0);
      assert.ok(ms >= 3000 && ms <= 9000, `dropped after ${ms} ms`);
      const rec = await waitCloseRecord(plain, name);
      assert.equal(rec.code, 1006);
    } finally {
      c.destroy();
    }
  });
});

describe('shutdown by signal', { concurrency: true }, () => {
  for (const [sig, bin, path] of [
    ['SIGTERM', 'HERALD_TEST_SERVER', '/echo'],
    ['SIGINT', 'HERALD_TEST_SERVER', '/api'],
    ['SIGTERM', 'HERALD_ECHO', '/'],
    ['SIGINT', 'HERALD_ECHO', '/'],
  ]) {
    test(`${bin} on ${sig}: clients get 1001, the process exits 0`, T,
         async () => {
           const server = await startServer(bin);
           const a = await Client.connect(server.ws(path));
           const b = await Client.connect(server.ws(path));
           const t0 = Date.now();
           const exit = await server.stop(sig);
           const [ia, ib] = await Promise.all([a.waitClose(), b.waitClose()]);
           assert.equal(ia.code, 1001);
           assert.equal(ib.code, 1001);
           assert.equal(ia.reason, 'server shutting down');
           assert.deepEqual(exit, { code: 0, signal: null },
                            `stderr:\n${server.stderr()}`);
           assert.ok(Date.now() - t0 < 3000,
                     `took ${Date.now() - t0} ms with answering clients`);
         });
  }

  test('SIGTERM with a client that never answers the close: still exits 0',
       T, async () => {
         const server = await startServer('HERALD_TEST_SERVER');
         const c = await RawClient.connect(server, { path: '/echo' });
         try {
           const exiting = server.stop('SIGTERM', 10000);
           await c.expectClose(1001, { reason: 'server shutting down',
                                       thenEnd: false });
           const exit = await exiting;
           assert.deepEqual(exit, { code: 0, signal: null },
                            `stderr:\n${server.stderr()}`);
           await c.waitEnd(3000);
         } finally {
           c.destroy();
         }
       });

  // Upgrades keep arriving while the server shuts down: a connection made
  // after the shutdown started (an upgrade already past the check when the
  // signal came) must hear the 1001 too, not be dropped when the shutdown
  // timeout (3 s) runs out. Every client that saw its 101 gets a close
  // frame with 1001; the others are refused (503) or find no listener.
  // (Without the fix in server_core::upgraded about one run in twelve had
  // a client dropped after 3 s.)
  test('SIGTERM during a storm of upgrades: every opened client hears 1001',
       T, async () => {
         const server = await startServer('HERALD_TEST_SERVER');
         const opened = [];
         let stopping = false;
         const loop = async () => {
           while (!stopping) {
             const ws = new WebSocket(server.ws('/echo'));
             const record = { code: null, reason: null };
             const done = new Promise((resolve) => {
               ws.on('open', () => opened.push(record));
               ws.on('error', () => {});
               ws.on('close', (code, reason) => {
                 record.code = code;
                 record.reason = reason.toString();
                 resolve();
               });
             });
             // Open connections stay open until the server closes them.
             await Promise.race([done, new Promise((r) => ws.once('open', r))]);
           }
         };
         const loops = Array.from({ length: 16 }, loop);
         let exit;
         try {
           // A storm is under way once many upgrades went through, however
           // slow the build.
           await waitFor(() => opened.length > 50, 'more than 50 upgrades',
                         12000);
         } finally {
           exit = await server.stop('SIGTERM');
           stopping = true;
           await Promise.all(loops);
         }
         await waitFor(() => opened.every((r) => r.code !== null),
                       'every opened client to see its close', 3000);
         const bad = opened.filter((r) => r.code !== 1001);
         assert.deepEqual(bad, [], `${bad.length} of ${opened.length} ` +
                          'opened clients did not get 1001');
         assert.deepEqual(exit, { code: 0, signal: null },
                          `stderr:\n${server.stderr()}`);
       });

  test('SIGTERM with no clients: exits 0 at once', T, async () => {
    const server = await startServer('HERALD_TEST_SERVER');
    const t0 = Date.now();
    const exit = await server.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });

  test('SIGTERM while HTTP clients are connected (idle and mid-request)', T,
       async () => {
         const server = await startServer('HERALD_TEST_SERVER');
         const net = await import('node:net');
         const idle = net.connect({ host: server.host, port: server.port });
         const partial = net.connect({ host: server.host, port: server.port });
         await Promise.all([idle, partial].map((s) =>
           withTimeout(new Promise((r) => s.once('connect', r)), 3000,
                       'connect')));
         partial.write('GET /info HTTP/1.1\r\nHost: x\r\n');
         idle.on('error', () => {});
         partial.on('error', () => {});
         const exit = await server.stop('SIGTERM');
         assert.deepEqual(exit, { code: 0, signal: null },
                          `stderr:\n${server.stderr()}`);
         idle.destroy();
         partial.destroy();
       });
});

describe('graceful stop on the first signal', { concurrency: true }, () => {
  /** Resolves once a new TCP connection to `server` is refused. */
  const refused = (server) => waitFor(async () => {
    const net = await import('node:net');
    return new Promise((resolve) => {
      const s = net.connect({ host: server.host, port: server.port });
      s.on('connect', () => { s.destroy(); resolve(false); });
      s.on('error', () => resolve(true));
    });
  }, 'new connections to be refused', 5000);

  test('open clients go on until they close; then the process exits 0',
       T, async () => {
         // A deadline far beyond the test's time: the exit comes from the
         // last client closing.
         const server = await startServer('HERALD_TEST_SERVER',
                                           ['--stop-deadline-ms', '600000']);
         const a = await Client.connect(server.ws('/echo'));
         const b = await Client.connect(server.ws('/echo'));
         server.proc.kill('SIGTERM');
         await refused(server);
         assert.equal(await a.ask('still here'), 'still here');
         assert.equal(await b.ask('me too'), 'me too');
         assert.equal(server.proc.exitCode, null, 'exited with clients open');
         assert.deepEqual(await a.close(), { code: 1000, reason: '' });
         assert.equal(await b.ask('last one'), 'last one');
         assert.deepEqual(await b.close(), { code: 1000, reason: '' });
         const exit = await server.stop('SIGTERM', 8000);
         assert.deepEqual(exit, { code: 0, signal: null },
                          `stderr:\n${server.stderr()}`);
       });

  test('clients still open at the deadline get 1001', T, async () => {
    const server = await startServer('HERALD_TEST_SERVER',
                                     ['--stop-deadline-ms', '1500']);
    const a = await Client.connect(server.ws('/echo'));
    server.proc.kill('SIGTERM');
    await refused(server);
    assert.equal(await a.ask('before the deadline'), 'before the deadline');
    const info = await a.waitClose(10000);
    assert.deepEqual(info, { code: 1001, reason: 'server shutting down' });
    const exit = await withTimeout(server.exited, 8000, 'the exit');
    assert.deepEqual(exit, { code: 0, signal: null },
                     `stderr:\n${server.stderr()}`);
    server.checkSanitizers();
  });

  for (const bin of ['HERALD_TEST_SERVER', 'HERALD_ECHO']) {
    test(`${bin}: a second signal closes the rest with 1001 at once`, T,
         async () => {
           const server = await startServer(bin,
                                            ['--stop-deadline-ms', '600000']);
           const path = bin === 'HERALD_ECHO' ? '/' : '/echo';
           const a = await Client.connect(server.ws(path));
           server.proc.kill('SIGTERM');
           await refused(server);
           assert.equal(await a.ask('graceful'), 'graceful');
           server.proc.kill('SIGTERM');
           const info = await a.waitClose(5000);
           assert.deepEqual(info, { code: 1001,
                                    reason: 'server shutting down' });
           const exit = await withTimeout(server.exited, 8000, 'the exit');
           assert.deepEqual(exit, { code: 0, signal: null },
                            `stderr:\n${server.stderr()}`);
           server.checkSanitizers();
         });
  }
});

describe('server.stop() from fetch', { concurrency: true }, () => {
  test('graceful: the request is answered at once, the open client goes ' +
       'on, the process exits when it closes', T, async () => {
    const server = await startServer('HERALD_TEST_SERVER');
    const a = await Client.connect(server.ws('/echo'));
    const r = await httpRequest(`${server.httpUrl}/stop?mode=graceful`);
    assert.deepEqual([r.status, r.body], [200, 'stopping\n']);
    assert.equal(await a.ask('after stop'), 'after stop');
    assert.equal(server.proc.exitCode, null, 'exited with a client open');
    assert.deepEqual(await a.close(), { code: 1000, reason: '' });
    const exit = await withTimeout(server.exited, 8000, 'the exit');
    assert.deepEqual(exit, { code: 0, signal: null },
                     `stderr:\n${server.stderr()}`);
    server.checkSanitizers();
  });

  test('immediate: the open client gets 1001, the process exits', T,
       async () => {
         const server = await startServer('HERALD_TEST_SERVER');
         const a = await Client.connect(server.ws('/echo'));
         const r = await httpRequest(`${server.httpUrl}/stop?mode=immediate`);
         assert.deepEqual([r.status, r.body], [200, 'stopping\n']);
         assert.deepEqual(await a.waitClose(),
                          { code: 1001, reason: 'server shutting down' });
         const exit = await withTimeout(server.exited, 8000, 'the exit');
         assert.deepEqual(exit, { code: 0, signal: null },
                          `stderr:\n${server.stderr()}`);
         server.checkSanitizers();
       });
});
