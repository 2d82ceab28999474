// The plain HTTP side of a server: requests fetch answers (status, headers,
// body, what fetch sees of the request), malformed requests, limits and
// timeouts of the HTTP layer, keep-alive. After each case a WebSocket client
// connected to the same server meanwhile must still be served.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import {
  Client, expectRefusedUpgrade, httpRequest, rawHttp, rawUpgrade,
  serveWithBystander, sleep, startServer, stopServer, tcpConnect,
  upgradeRequest, waitFor, withTimeout,
} from './helpers.mjs';

const T = { timeout: 15000 };

describe('HTTP against herald-echo', () => {
  let server;

  serveWithBystander('HERALD_ECHO', {}, (s) => { server = s; });

  for (const [what, bytes] of [
    ['words', 'GARBAGE\r\n\r\n'],
    ['no version', 'GET /\r\n\r\n'],
    ['bad version', 'GET / HTTP/9.9x\r\n\r\n'],
    ['binary', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00,
                            0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['space in target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['bad header line', 'GET / HTTP/1.1\r\nHost x\r\n\r\n'],
  ]) {
    test(`garbage request (${what}) -> 400`, T, async () => {
      const r = await rawHttp(server.port, bytes);
      assert.equal(r.responses.length, 1,
                   `expected one response, got ${JSON.stringify(r.raw.toString())}`);
      assert.equal(r.responses[0].status, 400);
      assert.equal(r.closed, true);
    });
  }

  test('a plain HTTP GET is answered', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/`);
    assert.equal(r.status, 200);
    assert.match(r.body, /WebSocket/);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
  });

  test('keep-alive: two pipelined requests get two responses in order', T,
       async () => {
         const req = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n';
         const r = await rawHttp(server.port,
                                 req + req.replace('/a', '/b').replace(
                                   '\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
         assert.equal(r.responses.length, 2, r.raw.toString());
         assert.deepEqual(r.responses.map((x) => x.status), [200, 200]);
         assert.equal(r.closed, true, 'Connection: close is honoured');
       });

  test('HEAD gets the headers but no body', T, async () => {
    // RFC 9110 9.3.2: a response to HEAD carries no content. Sent on a
    // keep-alive connection followed by a GET: body bytes after the HEAD
    // response would corrupt the connection.
    const r = await rawHttp(
      server.port,
      'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      { parse: false });
    const text = r.raw.toString();
    const first = text.indexOf('\r\n\r\n');
    assert.ok(first > 0, text);
    assert.match(text.slice(0, first), /^HTTP\/1\.1 200 /);
    const afterHead = text.slice(first + 4);
    assert.match(afterHead, /^HTTP\/1\.1 200 /,
                 'the GET response must follow the HEAD response headers ' +
                 `directly; got ${JSON.stringify(afterHead.slice(0, 60))}`);
  });
});

describe('HTTP against herald-test-server', () => {
  let server;
  let bystander;

  const args = [
    '--max-header', '1024', '--max-body', '1000',
    '--request-timeout-ms', '2000', '--keep-alive-ms', '300',
  ];
  serveWithBystander('HERALD_TEST_SERVER', { args, path: '/echo' },
                     (s, b) => { server = s; bystander = b; });

  test('prints exactly one line "listening on ws://HOST:PORT/"', T, () => {
    assert.match(server.stdout(), /^listening on ws:\/\/127\.0\.0\.1:\d+\/\n$/);
    assert.notEqual(server.port, 0);
  });

  test('GET /info shows method, path, query, headers and remote address',
       T, async () => {
         let localPort;
         const r = await withTimeout(new Promise((resolve, reject) => {
           const req = http.request(
             `${server.httpUrl}/info/caf%C3%A9?a=1&b=hello%20world&c=x+y&d`,
             { headers: { 'X-Test': 'abc', 'X-Multi': 'one' }, agent: false },
             (res) => {
               let body = '';
               res.setEncoding('utf8');
               res.on('data', (d) => (body += d));
               res.on('end', () => resolve({ res, body }));
             });
           req.on('socket', (s) => s.on('connect', () => {
             localPort = s.localPort;
           }));
           req.on('error', reject);
           req.end();
         }), 5000, 'GET /info');
         assert.equal(r.res.statusCode, 200);
         assert.equal(r.res.headers['content-type'], 'application/json');
         assert.equal(r.res.headers.server, 'herald');
         const info = JSON.parse(r.body);
         assert.equal(info.method, 'GET');
         assert.equal(info.path, '/info/café', 'the path is percent-decoded');
         assert.equal(info.target, '/info/caf%C3%A9?a=1&b=hello%20world&c=x+y&d');
         assert.equal(info.query_string, 'a=1&b=hello%20world&c=x+y&d');
         assert.deepEqual(info.query,
                          { a: '1', b: 'hello world', c: 'x y', d: '' });
         const headers = Object.fromEntries(
           info.headers.map(([k, v]) => [k.toLowerCase(), v]));
         assert.equal(headers['x-test'], 'abc');
         assert.equal(headers['x-multi'], 'one');
         assert.equal(headers.host, `127.0.0.1:${server.port}`);
         assert.equal(info.is_upgrade, false);
         assert.equal(info.remote, `127.0.0.1:${localPort}`);
         assert.equal(info.remote_address, '127.0.0.1');
         assert.equal(info.remote_port, localPort);
       });

  test('POST /info shows the method and the body', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/info`,
                                { method: 'POST', body: 'name=ann&x=ü',
                                  headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 200);
    const info = JSON.parse(r.body);
    assert.equal(info.method, 'POST');
    assert.equal(info.body, 'name=ann&x=ü');
  });

  // The head and the body arriving in separate reads, as Content-Length
  // or chunks: the whole body reaches fetch.
  for (const [what, head, pieces] of [
    ['Content-Length', 'Content-Length: 11', ['hel', 'lo wo', 'rld']],
    ['chunked', 'Transfer-Encoding: chunked',
     ['5\r\nhel', 'lo\r\n6\r\n wor', 'ld\r\n0\r\n', '\r\n']],
  ]) {
    test(`a body sent in pieces after the head (${what}) is read whole`, T,
         async () => {
           const { sock, state } = await tcpConnect(server);
           sock.write(`POST /info HTTP/1.1\r\nHost: x\r\n${head}\r\n` +
                      'Connection: close\r\n\r\n');
           for (const piece of pieces) {
             await sleep(20);
             sock.write(piece);
           }
           await withTimeout(state.closedP, 3000, 'the server to close');
           const text = state.data.toString();
           assert.match(text, /^HTTP\/1\.1 200 /);
           const info = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
           assert.equal(info.body, 'hello world');
         });
  }

  for (const [what, bytes] of [
    ['in the head', 'GET /info HTTP/1.1\r\nHost: x\r\n'],
    ['in the body', 'POST /info HTTP/1.1\r\nHost: x\r\n' +
                    'Content-Length: 10\r\n\r\nabc'],
  ]) {
    test(`a client that stops sending ${what} and closes its side -> 400`, T,
         async () => {
           const { sock, state } = await tcpConnect(server);
           sock.end(bytes);
           await withTimeout(state.closedP, 3000, 'the server to close');
           assert.match(state.data.toString(), /^HTTP\/1\.1 400 /);
         });
  }

  test('a client that closes its side before sending anything gets nothing',
       T, async () => {
         const { sock, state } = await tcpConnect(server);
         sock.end();
         await withTimeout(state.closedP, 3000, 'the server to close');
         assert.equal(state.data.length, 0);
       });

  test('a body over the limit (--max-body 1000) -> 413', T, async () => {
    const r = await rawHttp(server.port,
                            'POST /info HTTP/1.1\r\nHost: x\r\n' +
                              'Content-Length: 5000\r\n\r\n' + 'x'.repeat(5000));
    assert.equal(r.responses[0]?.status, 413, r.raw.toString().slice(0, 200));
  });

  test('unknown path (fetch returns nullopt) -> 404', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/no/such/path`);
    assert.equal(r.status, 404);
  });

  test('fetch that throws -> 500', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/throw`);
    assert.equal(r.status, 500);
    // Logged on the server's stderr (which may reach us after the response).
    await waitFor(() => /fetch failed on purpose/.test(server.stderr()),
                  'the fetch failure in the server log');
    const ws = await expectRefusedUpgrade(server.ws('/throw'));
    assert.equal(ws.status, 500);
  });

  test('fetch returning upgraded without upgrading -> 500', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/fake-upgrade`);
    assert.equal(r.status, 500);
  });

  test('a route that upgrades answers plain GETs with its own response', T,
       async () => {
         const r = await httpRequest(`${server.httpUrl}/echo`);
         assert.equal(r.status, 200);
         assert.equal(r.body, 'this is a WebSocket endpoint\n');
       });

  test('response headers with CR/LF are dropped, the rest is sent', T,
       async () => {
         const r = await rawHttp(
           server.port,
           'GET /headers?name=X-Evil&value=a%0D%0AInjected:%20yes HTTP/1.1\r\n' +
             'Host: x\r\nConnection: close\r\n\r\n');
         assert.equal(r.responses.length, 1, r.raw.toString());
         const res = r.responses[0];
         assert.equal(res.status, 200);
         assert.equal(res.headers.injected, undefined);
         assert.equal(res.headers['x-evil'], undefined);
         assert.equal(res.headers['x-after'], 'yes');
       });

  test('request head under --max-header 1024 is served, over it -> 431', T,
       async () => {
         const ok = await rawHttp(server.port,
                                  'GET /info HTTP/1.1\r\nHost: x\r\n' +
                                    `X-Pad: ${'a'.repeat(500)}\r\n` +
                                    'Connection: close\r\n\r\n');
         assert.equal(ok.responses[0]?.status, 200);
         const big = await rawUpgrade(server, {
           path: '/echo', headers: { 'X-Pad': 'a'.repeat(1500) },
         });
         assert.equal(big.status, 431);
       });

  test('many small headers adding up to 1.8x --max-header -> 431', T,
       async () => {
         // 60 headers of ~29 bytes: a 1874-byte head against a 1024-byte
         // limit, sent in one write.
         const many = {};
         for (let i = 0; i < 60; ++i)
           many[`X-H${i}`] = 'v'.repeat(20);
         const req = upgradeRequest({ path: '/echo', headers: many });
         assert.ok(req.length > 1800);
         const r = await rawUpgrade(server, { path: '/echo', headers: many });
         assert.equal(r.status, 431,
                      `a ${req.length}-byte request head passed a 1024-byte ` +
                      'limit');
       });

  test('a head over --max-header by folded whitespace -> 431', T,
       async () => {
         // Found by the HTTP fuzzer: the request line and the fields each
         // under the limit, over it together only with the whitespace of an
         // obs-fold, which the parser folds away. Seen whole by the parser
         // (it reads 512 bytes first), such a head was served.
         const small = await startServer('HERALD_TEST_SERVER',
                                         ['--max-header', '256']);
         try {
           const req = `GET /echo?pad=${'p'.repeat(150)} HTTP/1.1\r\n` +
             `Host: x\r\nX-Fold: a\r\n${' '.repeat(100)}b\r\n` +
             'Connection: close\r\n\r\n';
           assert.ok(req.length > 300 && req.length < 512);
           const r = await rawHttp(small.port, req);
           assert.equal(r.responses[0]?.status, 431);
           // Without the fold the same request is served.
           const ok = await rawHttp(small.port,
                                    req.replace(/\r\n {100}b/, ''));
           assert.equal(ok.responses[0]?.status, 200);
         } finally {
           await stopServer(small);
         }
       });

  test('a request head over --max-header trickled in small writes -> 431',
       T, async () => {
         const many = {};
         for (let i = 0; i < 150; ++i)
           many[`X-H${i}`] = 'v'.repeat(20);
         const req = Buffer.from(upgradeRequest({ path: '/echo',
                                                  headers: many }));
         const { sock, state } = await tcpConnect(server);
         for (let i = 0; i < req.length && !state.closed; i += 100) {
           sock.write(req.subarray(i, i + 100));
           await sleep(3);
         }
         await withTimeout(state.closedP, 3000, 'the server to close');
         assert.match(state.data.toString(), /^HTTP\/1\.1 431 /);
         sock.destroy();
       });

  test('a client that sends nothing is dropped after the request timeout ' +
       '(2 s); others are served meanwhile', T, async () => {
    const started = Date.now();
    const silent = await tcpConnect(server);
    const slow = await tcpConnect(server);
    // A slow client trickling a request is dropped at the same deadline.
    let stop = false;
    const trickle = (async () => {
      const req = upgradeRequest({ path: '/echo' });
      for (let i = 0; i < req.length && !stop && !slow.state.closed; ++i) {
        slow.sock.write(req[i]);
        await sleep(100);
      }
    })();
    // Meanwhile: new connections and the bystander work.
    const c = await Client.connect(server.ws('/echo'));
    assert.equal(await c.ask('meanwhile'), 'meanwhile');
    await bystander.check();
    await c.close();
    await withTimeout(silent.state.closedP, 6000, 'the silent client drop');
    await withTimeout(slow.state.closedP, 6000, 'the slow client drop');
    stop = true;
    await trickle;
    const silentMs = silent.state.closedAt - started;
    const slowMs = slow.state.closedAt - started;
    assert.ok(silentMs >= 1500 && silentMs < 5000,
              `silent client dropped after ${silentMs} ms`);
    assert.ok(slowMs >= 1500 && slowMs < 5000,
              `slow client dropped after ${slowMs} ms`);
    assert.equal(silent.state.data.length, 0, 'nothing is sent to it');
  });

  test('an idle keep-alive HTTP connection is closed after --keep-alive-ms',
       T, async () => {
         // http_limits.keep_alive_timeout (300 ms here) is documented as
         // "An idle keep-alive HTTP connection is closed after this long".
         const { sock, state } = await tcpConnect(server);
         const started = Date.now();
         sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
         await withTimeout(state.closedP, 5000, 'the keep-alive close');
         const ms = state.closedAt - started;
         assert.match(state.data.toString(), /^HTTP\/1\.1 200 /);
         assert.ok(ms < 1500,
                   `idle keep-alive connection closed after ${ms} ms; ` +
                   'expected about 300 ms (--keep-alive-ms), not the 2000 ms ' +
                   'request timeout');
       });
});
