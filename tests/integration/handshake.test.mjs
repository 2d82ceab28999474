// The WebSocket opening handshake: valid and malformed upgrade requests
// (400, 426, 431), fetch deciding about upgrades (404, 401), subprotocols
// and the connection limit (503). Every bad input is followed by a check
// that another client connected to the same server meanwhile is still
// served.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Client, expectRefusedUpgrade, frame, httpRequest, OP, RawClient, rawUpgrade,
  serveWithBystander, sleep, startServer, stats, stopServer,
} from './helpers.mjs';

const T = { timeout: 15000 };

describe('handshake against herald-echo', () => {
  let server;

  serveWithBystander('HERALD_ECHO', {}, (s) => { server = s; });

  test('a ws client upgrades and its messages are echoed', T, async () => {
    const c = await Client.connect(server.url);
    assert.equal(c.ws.protocol, '');
    assert.equal(c.ws.extensions, '', 'no extension is negotiated');
    await c.send('hello');
    assert.equal(await c.nextText(), 'hello');
    assert.deepEqual(await c.close(1000, 'done'), { code: 1000, reason: '' });
  });

  test('the 101 response is well formed', T, async () => {
    const c = await RawClient.connect(server, { path: '/any/path?x=1' });
    const res = c.response;
    assert.match(res.statusLine, /^HTTP\/1\.1 101 /);
    assert.equal(res.headers.upgrade.toLowerCase(), 'websocket');
    assert.match(res.headers.connection, /upgrade/i);
    assert.equal(res.headers['sec-websocket-protocol'], undefined);
    assert.equal(res.headers['sec-websocket-extensions'], undefined);
    await c.echo('raw hello');
    c.destroy();
  });

  test('header tokens are case-insensitive; Connection may list several',
       T, async () => {
         const c = await RawClient.connect(server, {
           headers: { Upgrade: 'WebSocket', Connection: 'keep-alive, Upgrade' },
         });
         await c.echo('tokens');
         c.destroy();
       });

  test('frames sent in the same write as the request are not lost', T,
       async () => {
         const after = Buffer.concat([
           frame(OP.text, 'first'), frame(OP.binary, Buffer.from([1, 2, 3])),
         ]);
         const c = await RawClient.connect(server, { after });
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'first');
         assert.deepEqual([...(await c.expectFrame(OP.binary)).payload],
                          [1, 2, 3]);
         c.destroy();
       });

  test('frames with the request and right after the 101 stay in order', T,
       async () => {
         // The first ones are read before the connection's actor exists,
         // the next ones while it starts: all must arrive once, in order.
         const texts = Array.from({ length: 100 }, (_, i) => `early ${i}`);
         const f = texts.map((t) => frame(OP.text, t));
         const c = await RawClient.connect(server,
                                           { after: Buffer.concat(f.slice(0, 50)) });
         await c.write(Buffer.concat(f.slice(50)));
         for (const t of texts)
           assert.equal((await c.expectFrame(OP.text)).payload.toString(), t);
         c.destroy();
       });

  test('a frame split between the request\'s write and a later one', T,
       async () => {
         const f = frame(OP.text, 'x'.repeat(300));
         const c = await RawClient.connect(server, { after: f.subarray(0, 7) });
         await sleep(50);
         await c.write(f.subarray(7));
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'x'.repeat(300));
         c.destroy();
       });

  test('an upgrade after a plain request on the same connection', T,
       async () => {
         const c = await RawClient.connect(server, {
           before: 'GET /first HTTP/1.1\r\nHost: x\r\n\r\n',
         });
         assert.equal(c.earlier.length, 1);
         assert.equal(c.earlier[0].status, 200);
         await c.echo('after keep-alive');
         c.destroy();
       });

  test('HTTP/1.0 upgrade request -> 400 (RFC 6455 4.2.1: HTTP/1.1 or ' +
       'higher)', T, async () => {
    const r = await rawUpgrade(server, { version: 'HTTP/1.0' });
    assert.equal(r.status, 400);
  });

  test('upgrade request without Host -> 400 (RFC 6455 4.2.1 item 2)', T,
       async () => {
         const r = await rawUpgrade(server, { headers: { Host: null } });
         assert.equal(r.status, 400);
       });

  test('missing Sec-WebSocket-Key -> 400', T, async () => {
    const r = await rawUpgrade(server,
                               { headers: { 'Sec-WebSocket-Key': null } });
    assert.equal(r.status, 400);
    assert.equal(r.closed, true, 'a refused upgrade closes the connection');
  });

  for (const [what, key] of [
    ['too short', 'dGhlIHNhbXBsZQ=='],                        // 11 bytes
    ['17 bytes', Buffer.alloc(17, 1).toString('base64')],
    ['not base64', '!!!!!!!!!!!!!!!!!!!!!A=='],
    ['no padding', 'AAAAAAAAAAAAAAAAAAAAAA'],
    ['empty', ''],
  ]) {
    test(`invalid Sec-WebSocket-Key (${what}) -> 400`, T, async () => {
      const r = await rawUpgrade(server, { key });
      assert.equal(r.status, 400);
    });
  }

  test('POST upgrade -> 400', T, async () => {
    const r = await rawUpgrade(server, { method: 'POST',
                                         headers: { 'Content-Length': '0' } });
    assert.equal(r.status, 400);
  });

  test('missing Upgrade header -> 400', T, async () => {
    const r = await rawUpgrade(server, { headers: { Upgrade: null } });
    assert.equal(r.status, 400);
  });

  test('Upgrade without the websocket token -> 400', T, async () => {
    const r = await rawUpgrade(server, { headers: { Upgrade: 'h2c' } });
    assert.equal(r.status, 400);
  });

  test('missing Connection header -> 400', T, async () => {
    const r = await rawUpgrade(server, { headers: { Connection: null } });
    assert.equal(r.status, 400);
  });

  test('Connection without the upgrade token -> 400', T, async () => {
    const r = await rawUpgrade(server,
                               { headers: { Connection: 'keep-alive' } });
    assert.equal(r.status, 400);
  });

  test('Sec-WebSocket-Version 8 -> 426 with Sec-WebSocket-Version: 13', T,
       async () => {
         const r = await rawUpgrade(server,
                                    { headers: { 'Sec-WebSocket-Version': '8' } });
         assert.equal(r.status, 426);
         assert.equal(r.headers['sec-websocket-version'], '13');
       });

  test('missing Sec-WebSocket-Version -> 426', T, async () => {
    const r = await rawUpgrade(server,
                               { headers: { 'Sec-WebSocket-Version': null } });
    assert.equal(r.status, 426);
    assert.equal(r.headers['sec-websocket-version'], '13');
  });

  test('a ws client asking for version 8 is refused with 426', T,
       async () => {
         const r = await expectRefusedUpgrade(server.url, undefined,
                                              { protocolVersion: 8 });
         assert.equal(r.status, 426);
         assert.equal(r.headers['sec-websocket-version'], '13');
       });

  test('request headers over the default limit (16 KiB) -> 431', T,
       async () => {
         const r = await rawUpgrade(server,
                                    { headers: { 'X-Big': 'a'.repeat(20000) } });
         assert.equal(r.status, 431);
       });

});

describe('handshake against herald-test-server', () => {
  let server;

  serveWithBystander('HERALD_TEST_SERVER', { path: '/echo' },
                     (s) => { server = s; });

  test('unknown path with an upgrade -> 404, no WebSocket', T, async () => {
    const before = (await stats(server)).opens;
    const r = await expectRefusedUpgrade(server.ws('/no/such/path'));
    assert.equal(r.status, 404);
    assert.equal((await stats(server)).opens, before);
  });

  test('/auth without a token -> 401, no WebSocket opened', T, async () => {
    const before = await stats(server);
    const r = await expectRefusedUpgrade(server.ws('/auth'));
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    const wrong = await expectRefusedUpgrade(
      server.ws('/auth'), undefined,
      { headers: { Authorization: 'Bearer wrong' } });
    assert.equal(wrong.status, 401);
    const now = await stats(server);
    assert.equal(now.opens, before.opens);
    assert.equal(now.connections_total, before.connections_total);
  });

  test('/auth with "Authorization: Bearer secret" upgrades', T, async () => {
    const c = await Client.connect(server.ws('/auth'), undefined,
                                   { headers: { Authorization: 'Bearer secret' } });
    assert.equal(await c.ask('authorized'), 'authorized');
    await c.close();
  });

  test('a valid upgrade with a bad handshake on a route -> 400', T,
       async () => {
         const r = await rawUpgrade(server, {
           path: '/auth',
           headers: { Authorization: 'Bearer secret',
                      'Sec-WebSocket-Key': 'short' },
         });
         assert.equal(r.status, 400);
       });

  test('subprotocol "chat" is chosen when offered', T, async () => {
    const c = await Client.connect(server.ws('/api'), ['superchat', 'chat']);
    assert.equal(c.ws.protocol, 'chat');
    const open = JSON.parse(await c.nextText());
    assert.equal(open.protocol, 'chat', 'ws.protocol() on the server');
    assert.equal(await c.ask('protocol'), 'protocol chat');
    await c.close();
  });

  test('no subprotocol when "chat" is not offered', T, async () => {
    const raw = await RawClient.connect(server, {
      path: '/echo', headers: { 'Sec-WebSocket-Protocol': 'other, more' },
    });
    assert.equal(raw.response.headers['sec-websocket-protocol'], undefined);
    await raw.echo('x');
    raw.destroy();
    const c = await Client.connect(server.ws('/api'));
    assert.equal(c.ws.protocol, '');
    await c.nextText();
    assert.equal(await c.ask('protocol'), 'protocol ');
    await c.close();
  });

});

describe('connection limit (--max-connections 1)', () => {
  let server;
  before(async () => {
    server = await startServer('HERALD_TEST_SERVER',
                               ['--max-connections', '1']);
  });
  after(async () => {
    await stopServer(server);
  });

  test('a WebSocket beyond the limit gets 503; plain HTTP still works', T,
       async () => {
         const first = await Client.connect(server.ws('/echo'));
         const r = await expectRefusedUpgrade(server.ws('/echo'));
         assert.equal(r.status, 503);
         assert.equal((await httpRequest(`${server.httpUrl}/`)).status, 200);
         assert.equal(await first.ask('still here'), 'still here');
         await first.close();
         // Once the first is gone, a new one is accepted.
         let second;
         for (let i = 0; i < 40 && !second; ++i) {
           try {
             second = await Client.connect(server.ws('/echo'));
           } catch {
             await sleep(50);
           }
         }
         assert.ok(second, 'a connection is accepted after the first closed');
         await second.close();
       });
});
