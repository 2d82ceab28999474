// Deferred fetch: fetch hands a request to an actor or keeps its handle, and
// the answer (an upgrade or an HTTP response) comes later. Meanwhile the
// socket waits without a thread: other clients are served; a client that
// leaves is noticed; an unanswered request gets 503 after the timeout; the
// number of waiting requests is bounded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Client, expectRefusedUpgrade, httpRequest, serveWithBystander, tcpConnect,
  uniqueName, waitFor, withTimeout,
} from './helpers.mjs';

const T = { timeout: 30000 };

async function held(server, id) {
  const r = await httpRequest(`${server.httpUrl}/held?id=${id}`);
  assert.equal(r.status, 200);
  return JSON.parse(r.body);
}

/** Sends `GET target` on a raw TCP connection and leaves it waiting. */
async function waitingRequest(server, target, extra = '') {
  const c = await tcpConnect(server);
  c.sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
  return c;
}

const upgradeHeaders = 'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
  'Sec-WebSocket-Version: 13\r\n';

describe('deferred fetch', () => {
  let server;
  serveWithBystander('HERALD_TEST_SERVER', { path: '/echo' },
                     (s) => { server = s; });

  test('100 concurrent deferred upgrades mixed with plain and deferred ' +
       'HTTP requests all complete', T, async () => {
    const opened = [];
    const clients = Array.from({ length: 100 }, (_, i) => {
      const c = new Client(server.ws(`/deferred?ms=1500&name=w${i}`));
      c.opened.then(() => opened.push(i));
      return c;
    });
    // Plain requests are answered while the upgrades wait for the actor.
    const info = await httpRequest(`${server.httpUrl}/info?x=1`);
    assert.equal(info.status, 200);
    assert.equal(opened.length, 0,
                 'a plain request waited for the deferred upgrades');
    const plain = Array.from({ length: 50 }, (_, i) =>
      httpRequest(`${server.httpUrl}/info?i=${i}`));
    const later = Array.from({ length: 50 }, (_, i) =>
      httpRequest(`${server.httpUrl}/deferred?ms=${i * 10}&name=h${i}`));
    for (const r of await Promise.all(plain))
      assert.equal(r.status, 200);
    const answers = await Promise.all(later);
    answers.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.body, `later h${i}\n`);
    });
    await Promise.all(clients.map((c) =>
      withTimeout(c.opened, 10000, 'a deferred upgrade')));
    const echoes = await Promise.all(clients.map((c, i) => c.ask(`m${i}`)));
    echoes.forEach((e, i) => assert.equal(e, `m${i}`));
    await Promise.all(clients.map((c) => c.close()));
  });

  test('a deferred upgrade can be refused later over HTTP', T, async () => {
    const r = await expectRefusedUpgrade(
      server.ws('/deferred?ms=50&deny=1&name=eve'));
    assert.equal(r.status, 403);
    assert.equal(r.body, 'denied eve\n');
  });

  test('a client that leaves while pending is noticed; completing later ' +
       'is harmless', T, async () => {
    for (const extra of ['', upgradeHeaders]) {
      const id = uniqueName('vanish');
      const c = await waitingRequest(server, `/never?id=${id}`, extra);
      await waitFor(async () => (await held(server, id)).state === 'pending',
                    'the request to wait');
      c.sock.destroy();
      await waitFor(async () => (await held(server, id)).state === 'gone',
                    'the server to notice the client left', 15000);
      const r = await httpRequest(`${server.httpUrl}/complete?id=${id}`);
      assert.equal(r.body, 'complete false\n');
    }
    await waitFor(async () =>
      (await held(server, 'none')).pending_requests === 0,
    'no request to wait any more');
  });

  test('a request answered later gets that answer, once', T, async () => {
    const id = uniqueName('late');
    const c = await waitingRequest(server, `/never?id=${id}`);
    await waitFor(async () => (await held(server, id)).state === 'pending',
                  'the request to wait');
    assert.equal((await httpRequest(`${server.httpUrl}/complete?id=${id}`))
      .body, 'complete true\n');
    await waitFor(() => c.state.data.toString().includes('\r\n\r\nlate\n'),
                  'the late answer');
    assert.match(c.state.data.toString(), /^HTTP\/1\.1 200 /);
    assert.equal((await httpRequest(`${server.httpUrl}/complete?id=${id}`))
      .body, 'complete false\n');
    // The connection is kept alive and serves its next request.
    c.sock.write('GET /info HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => (c.state.data.toString().match(/HTTP\/1\.1 200/g) ??
                         []).length === 2, 'the next response');
    c.sock.destroy();
  });
});

describe('deferred fetch timeout', () => {
  let server;
  serveWithBystander('HERALD_TEST_SERVER',
                     { args: ['--deferred-timeout-ms', '1000'], path: '/echo' },
                     (s) => { server = s; });

  test('a request nobody answers gets 503 after the timeout, and a late ' +
       'answer is a no-op', T, async () => {
    const id = uniqueName('timeout');
    const r = await httpRequest(`${server.httpUrl}/never?id=${id}`);
    assert.equal(r.status, 503);
    assert.equal(r.body, 'Service Unavailable: no answer in time\n');
    assert.equal((await held(server, id)).state, 'timed_out');
    assert.equal((await httpRequest(`${server.httpUrl}/complete?id=${id}`))
      .body, 'complete false\n');
    // An upgrade nobody answers is refused the same way.
    const up = await expectRefusedUpgrade(
      server.ws(`/never?id=${uniqueName('timeout-ws')}`));
    assert.equal(up.status, 503);
  });
});

describe('deferred fetch bound', () => {
  let server;
  serveWithBystander('HERALD_TEST_SERVER',
                     { args: ['--max-deferred', '3'], path: '/echo' },
                     (s) => { server = s; });

  test('beyond max_deferred waiting requests a deferral gets 503', T,
       async () => {
         const waiting = [];
         for (let i = 0; i < 3; ++i)
           waiting.push(await waitingRequest(server,
                                             `/never?id=${uniqueName('b')}`));
         await waitFor(async () =>
           (await held(server, 'none')).pending_requests === 3,
         'three requests to wait');
         const over = await httpRequest(`${server.httpUrl}/deferred?name=x`);
         assert.equal(over.status, 503);
         assert.equal(over.body,
                      'Service Unavailable: too many pending requests\n');
         // Plain requests are not limited.
         assert.equal((await httpRequest(`${server.httpUrl}/info`)).status,
                      200);
         waiting[0].sock.destroy();
         await waitFor(async () =>
           (await held(server, 'none')).pending_requests === 2,
         'a place to free up');
         const ok = await httpRequest(`${server.httpUrl}/deferred?name=y`);
         assert.equal(ok.status, 200);
         assert.equal(ok.body, 'later y\n');
         for (const w of waiting)
           w.sock.destroy();
       });
});

describe('herald-echo --auth-delay-ms', () => {
  let server;
  serveWithBystander('HERALD_ECHO', { args: ['--auth-delay-ms', '1500'] },
                     (s) => { server = s; });

  test('upgrades complete after the delay and hold up no one meanwhile', T,
       async () => {
         const opened = [];
         const clients = Array.from({ length: 20 }, (_, i) => {
           const c = new Client(server.ws(`/?i=${i}`));
           c.opened.then(() => opened.push(i));
           return c;
         });
         const r = await httpRequest(`${server.httpUrl}/`);
         assert.equal(r.status, 200);
         assert.equal(opened.length, 0,
                      'a plain request waited for the pending upgrades');
         await Promise.all(clients.map((c) =>
           withTimeout(c.opened, 10000, 'a delayed upgrade')));
         const echoes = await Promise.all(clients.map((c, i) =>
           c.ask(`e${i}`)));
         echoes.forEach((e, i) => assert.equal(e, `e${i}`));
         await Promise.all(clients.map((c) => c.close()));
       });
});
