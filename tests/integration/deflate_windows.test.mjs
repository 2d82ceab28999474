// permessage-deflate parameters against herald-echo in both modes: every
// combination of server_no_context_takeover, client_no_context_takeover,
// server_max_window_bits and client_max_window_bits (8 to 15), offered by a
// raw client; the echoes are inflated with Node's zlib (not Herald's) using
// exactly the window and context rules the 101 response announced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';

import { RawClient, OP, startServer, stopServer, sleep } from './helpers.mjs';

const TAIL = Buffer.from([0, 0, 0xff, 0xff]);

// Seeded letters, so a failure can be replayed.
function letters(n, seed) {
  let x = seed >>> 0;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; ++i) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = 97 + ((x >>> 16) % 26);
  }
  return b;
}

// A block that recurs after random letters: the only long matches reach
// back 264, 664, ... 20064 bytes, past every window below 15 bits.
const block = letters(64, 1);
const gaps = [200, 600, 1400, 3000, 6200, 12000, 20000];
const big = Buffer.concat([block, ...gaps.flatMap((g, i) =>
  [letters(g, 100 + i), block])]).toString();
// Starts with the end of the last one: context takeover refers back to it.
const small = Buffer.concat([block, letters(500, 9)]).toString();

function parseAnswer(value) {
  const parts = value.split(';').map((s) => s.trim());
  assert.equal(parts[0], 'permessage-deflate');
  const a = { serverNct: false, clientNct: false, serverBits: 0,
              clientBits: 0 };
  for (const p of parts.slice(1)) {
    const [name, v] = p.split('=');
    if (name === 'server_no_context_takeover') a.serverNct = true;
    else if (name === 'client_no_context_takeover') a.clientNct = true;
    else if (name === 'server_max_window_bits') a.serverBits = Number(v);
    else if (name === 'client_max_window_bits') a.clientBits = Number(v);
    else assert.fail(`unknown parameter ${p}`);
  }
  return a;
}

// The smallest output chunk Node allows: zlib checks each back-reference
// against its window plus at most this much output of the same call.
const inflate = (buf, windowBits) =>
  zlib.inflateRawSync(buf, { windowBits, chunkSize: 64,
                             finishFlush: zlib.constants.Z_SYNC_FLUSH });

const deflate = (text, windowBits) => {
  const d = zlib.deflateRawSync(Buffer.from(text), {
    windowBits: Math.max(windowBits, 9),
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  return d.subarray(0, d.length - 4);
};

async function nextRawFrame(c, ms = 5000) {
  const deadline = Date.now() + ms;
  while (c.frames.length === 0) {
    if (c.ended || Date.now() > deadline)
      return null;
    await sleep(2);
  }
  return c.frames.shift();
}

async function check(server, dedicated, offer, expect) {
  const c = await RawClient.connect(server, {
    headers: { 'Sec-WebSocket-Extensions': offer },
  });
  try {
    const ext = c.response.headers['sec-websocket-extensions'];
    if (ext === undefined) {
      assert.ok(!dedicated && expect.serverBits > 0 && expect.serverBits < 15,
                `${offer} declined`);
      return false;
    }
    const a = parseAnswer(ext);
    assert.equal(a.serverNct, expect.serverNct || !dedicated, ext);
    assert.ok(a.clientNct || !expect.clientNct, ext);
    if (expect.serverBits > 0)
      assert.ok(a.serverBits >= 8 && a.serverBits <= expect.serverBits, ext);
    else
      assert.equal(a.serverBits, 0, ext);
    const sent = [big, small];
    for (const m of sent)
      await c.sendFrame(OP.text, deflate(m, expect.clientBits || 15),
                        { rsv: 4 });
    const windowBits = a.serverBits || 15;
    const payloads = [];
    for (let i = 0; i < sent.length; ++i) {
      const f = await nextRawFrame(c);
      assert.ok(f, `${offer}: echo ${i}`);
      assert.equal(f.opcode, OP.text);
      assert.equal(f.rsv, 4, `${offer}: echo ${i} compressed`);
      payloads.push(f.payload, TAIL);
      // With context takeover the echoes so far are one stream.
      const got = a.serverNct
        ? inflate(Buffer.concat([f.payload, TAIL]), windowBits).toString()
        : inflate(Buffer.concat(payloads), windowBits).toString()
            .slice(sent.slice(0, i).join('').length);
      assert.ok(got === sent[i], `${offer} -> ${ext}: echo ${i} differs`);
    }
    return true;
  } catch (e) {
    e.message = `${offer}: ${e.message}`;
    throw e;
  } finally {
    c.destroy();
  }
}

for (const mode of ['shared', 'dedicated']) {
  test(`every parameter combination, ${mode} mode, inflated by Node's zlib`,
       async () => {
    const server = await startServer('HERALD_ECHO', ['--deflate', mode]);
    try {
      let agreed = 0;
      let declined = 0;
      for (const serverNct of [false, true])
        for (const clientNct of [false, true])
          for (let serverBits = 8; serverBits <= 15; ++serverBits)
            for (let clientBits = 8; clientBits <= 15; ++clientBits) {
              let offer = 'permessage-deflate';
              if (serverNct) offer += '; server_no_context_takeover';
              if (clientNct) offer += '; client_no_context_takeover';
              offer += `; server_max_window_bits=${serverBits}`;
              offer += `; client_max_window_bits=${clientBits}`;
              const ok = await check(server, mode === 'dedicated', offer,
                                     { serverNct, clientNct, serverBits,
                                       clientBits });
              if (ok) ++agreed;
              else ++declined;
            }
      assert.equal(declined, mode === 'shared' ? 4 * 7 * 8 : 0);
      assert.equal(agreed + declined, 4 * 8 * 8);
      // As a new user tried it: the shared compressor declines a window
      // below 15 bits.
      const dedicated = mode === 'dedicated';
      assert.equal(await check(server, dedicated,
        'permessage-deflate; server_no_context_takeover; ' +
          'client_no_context_takeover; server_max_window_bits=10; ' +
          'client_max_window_bits',
        { serverNct: true, clientNct: true, serverBits: 10, clientBits: 0 }),
        dedicated);
      // A list: the first offer the server can honour counts.
      assert.ok(await check(server, dedicated,
        'permessage-deflate; server_max_window_bits=10; ' +
          'server_no_context_takeover, permessage-deflate',
        { serverNct: dedicated, clientNct: false,
          serverBits: dedicated ? 10 : 0, clientBits: 0 }));
    } finally {
      await stopServer(server);
    }
  });
}
