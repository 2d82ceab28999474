// permessage-deflate with real clients: the `ws` client in both server
// modes and with its context options, compress-once fan-out, RSV1 only on
// compressed frames, and the deflate bomb.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import fs from 'node:fs';
import crypto from 'node:crypto';

import {
  Client, RawClient, OP, startServer, stopServer, httpRequest, sleep,
} from './helpers.mjs';

const stats = async (server) =>
  JSON.parse((await httpRequest(`${server.httpUrl}/stats`)).body);

const messages = [
  'a'.repeat(1000),
  'short',
  Buffer.alloc(200000, 7),
  JSON.stringify({ hello: 'world', list: Array.from({ length: 50 }, (_, i) => i) }),
  'é€😀'.repeat(300),
];

async function roundTrip(server, perMessageDeflate) {
  const c = new Client(server.url, undefined, { perMessageDeflate });
  let ext = '';
  c.ws.on('upgrade', (res) => {
    ext = res.headers['sec-websocket-extensions'] ?? '';
  });
  await c.opened;
  for (const m of messages) {
    await c.send(m);
    const got = await c.next();
    if (typeof m === 'string') {
      assert.equal(got.isBinary, false);
      assert.equal(got.text, m);
    } else {
      assert.equal(got.isBinary, true);
      assert.ok(Buffer.compare(got.data, m) === 0);
    }
  }
  await c.close();
  return ext;
}

for (const mode of ['shared', 'dedicated']) {
  test(`ws client interop, ${mode} mode, with and without context takeover`, async () => {
    const server = await startServer('HERALD_ECHO', ['--deflate', mode]);
    try {
      let ext = await roundTrip(server, true);
      assert.equal(ext, mode === 'shared'
        ? 'permessage-deflate; server_no_context_takeover'
        : 'permessage-deflate');
      ext = await roundTrip(server, { serverNoContextTakeover: true,
                                      clientNoContextTakeover: true });
      assert.equal(ext, 'permessage-deflate; server_no_context_takeover; ' +
                        'client_no_context_takeover');
      ext = await roundTrip(server, { clientMaxWindowBits: 10 });
      assert.match(ext, /^permessage-deflate/);
      if (mode === 'dedicated') {
        ext = await roundTrip(server, { serverMaxWindowBits: 11 });
        assert.equal(ext, 'permessage-deflate; server_max_window_bits=11');
      }
      assert.equal(await roundTrip(server, false), '');
    } finally {
      await stopServer(server);
    }
  });
}

test('with compression off an offer is ignored', async () => {
  const server = await startServer('HERALD_ECHO');
  try {
    const c = await RawClient.connect(server, {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' },
    });
    assert.equal(c.response.headers['sec-websocket-extensions'], undefined);
    await c.echo('plain');
    c.destroy();
  } finally {
    await stopServer(server);
  }
});

test('an offer the server cannot honour is declined, not failed', async () => {
  const server = await startServer('HERALD_ECHO', ['--deflate', 'shared']);
  try {
    const c = await RawClient.connect(server, {
      headers: {
        'Sec-WebSocket-Extensions':
          'permessage-deflate; server_max_window_bits=8, permessage-deflate; x=1',
      },
    });
    assert.equal(c.response.headers['sec-websocket-extensions'], undefined);
    await c.echo('still works');
    c.destroy();
  } finally {
    await stopServer(server);
  }
});

// A raw client that agreed to permessage-deflate; RawClient flags RSV bits
// as bad frames, so compressed frames are read from `frames` directly.
async function deflateClient(server, path = '/') {
  const c = await RawClient.connect(server, {
    path,
    headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' },
  });
  assert.match(c.response.headers['sec-websocket-extensions'],
               /^permessage-deflate/);
  return c;
}

async function nextRawFrame(c, ms = 3000) {
  const deadline = Date.now() + ms;
  while (c.frames.length === 0) {
    if (c.ended || Date.now() > deadline)
      return null;
    await sleep(10);
  }
  return c.frames.shift();
}

const deflateRaw = (buf) => {
  const d = zlib.deflateRawSync(buf,
                                { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return d.subarray(0, d.length - 4);
};
const inflateRaw = (buf) =>
  zlib.inflateRawSync(Buffer.concat([buf, Buffer.from([0, 0, 0xff, 0xff])]),
                      { finishFlush: zlib.constants.Z_SYNC_FLUSH });

test('RSV1 is set only on compressed messages', async () => {
  const server = await startServer('HERALD_ECHO', ['--deflate', 'shared']);
  try {
    const c = await deflateClient(server);
    await c.sendFrame(OP.text, 'tiny'); // under the threshold: plain
    let f = await nextRawFrame(c);
    assert.equal(f.rsv, 0);
    assert.equal(f.payload.toString(), 'tiny');
    const big = 'compress me '.repeat(100);
    await c.sendFrame(OP.text, deflateRaw(Buffer.from(big)), { rsv: 4 });
    f = await nextRawFrame(c);
    assert.equal(f.rsv, 4);
    assert.ok(f.payload.length < big.length);
    assert.equal(inflateRaw(f.payload).toString(), big);
    c.destroy();
  } finally {
    await stopServer(server);
  }
});

test('a compressed publish is compressed once for all subscribers', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER', ['--deflate', 'shared']);
  try {
    const subs = [];
    for (let i = 0; i < 10; ++i)
      subs.push(await Client.connect(server.ws(`/?name=s${i}&room=z`),
                                     undefined, { perMessageDeflate: true }));
    await sleep(100);
    const before = (await stats(server)).deflated;
    const text = 'the same words again and again '.repeat(40);
    const r = await httpRequest(`${server.httpUrl}/publish?room=z`,
                                { method: 'POST', body: text });
    assert.ok(Number(r.body) > 0);
    for (const s of subs)
      assert.equal(await s.nextText(), text);
    assert.equal((await stats(server)).deflated - before, 1,
                 'one compression for ten subscribers');
    await Promise.all(subs.map((s) => s.close()));
  } finally {
    await stopServer(server);
  }
});

test('an incompressible message of exactly the limit round-trips compressed', async () => {
  // Deflate makes random bytes a little longer: the compressed frame is
  // over the 16 MiB limit on the wire while the message is not.
  const server = await startServer('HERALD_ECHO', ['--deflate', 'shared',
                                                   '--max-payload', String(1 << 20)]);
  try {
    const c = new Client(server.url, undefined,
                         { perMessageDeflate: true, maxPayload: 4 << 20 });
    await c.opened;
    const exact = crypto.randomBytes(1 << 20);
    await c.send(exact);
    const got = await c.next();
    assert.ok(Buffer.compare(got.data, exact) === 0);
    // One byte more is over the limit once inflated: 1009.
    await c.send(crypto.randomBytes((1 << 20) + 1));
    assert.equal((await c.waitClose(20000)).code, 1009);
  } finally {
    await stopServer(server);
  }
});

test('a deflate bomb closes with 1009 and costs no more than the limit', async () => {
  const server = await startServer('HERALD_ECHO', ['--deflate', 'shared']);
  try {
    // 2 GiB of zeros: the first MiB compressed, then identical chunks.
    const zeros = Buffer.alloc(1 << 20);
    const stream = zlib.createDeflateRaw({ level: 9 });
    const chunks = [];
    stream.on('data', (d) => chunks.push(d));
    const flushChunk = () => new Promise((resolve) => {
      stream.write(zeros);
      stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        resolve(Buffer.concat(chunks.splice(0)));
      });
    });
    const first = await flushChunk();
    const second = await flushChunk();
    const third = await flushChunk();
    assert.ok(Buffer.compare(second, third) === 0);
    const parts = [first];
    for (let i = 1; i < 2048; ++i)
      parts.push(second);
    const bomb = Buffer.concat(parts);
    const payload = bomb.subarray(0, bomb.length - 4);
    assert.ok(payload.length < 4 << 20, `bomb of ${payload.length} bytes`);
    const bystander = await Client.connect(server.url);
    const c = await deflateClient(server);
    const rssBefore = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8')
      .match(/VmRSS:\s+(\d+)/)[1] * 1024;
    const t0 = Date.now();
    await c.sendFrame(OP.binary, payload, { rsv: 4 });
    const f = await nextRawFrame(c, 5000);
    assert.ok(f, 'a close frame');
    assert.equal(f.opcode, OP.close);
    assert.equal(f.code, 1009);
    assert.ok(Date.now() - t0 < 3000, 'closed promptly');
    const rssAfter = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8')
      .match(/VmRSS:\s+(\d+)/)[1] * 1024;
    assert.ok(process.env.HERALD_SANITIZED || rssAfter - rssBefore < 128 << 20,
              `memory grew by ${(rssAfter - rssBefore) >> 20} MiB`);
    assert.equal(await bystander.ask('fine?'), 'fine?');
    await bystander.close();
    c.destroy();
  } finally {
    await stopServer(server);
  }
});

test('corrupt compressed data closes with 1007', async () => {
  const server = await startServer('HERALD_ECHO', ['--deflate', 'dedicated']);
  try {
    const c = await deflateClient(server);
    await c.sendFrame(OP.text, Buffer.alloc(64, 0xff), { rsv: 4 });
    const f = await nextRawFrame(c);
    assert.equal(f.opcode, OP.close);
    assert.equal(f.code, 1007);
    c.destroy();
  } finally {
    await stopServer(server);
  }
});
