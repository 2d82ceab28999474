// RFC 6455 framing against herald-echo: payload lengths, frames split and
// batched across TCP writes, fragmentation, control frames, every protocol
// error the server must catch (with its exact close code), UTF-8 validation,
// the closing handshake and the message size limit. Malformed input comes
// from raw sockets; after each case a bystander client must still be served.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  Client, closePayload, frame, OP, RawClient, serveWithBystander, sleep,
  withTimeout,
} from './helpers.mjs';

const T = { timeout: 15000 };
const PROTOCOL_ERROR = 1002;
const INVALID_PAYLOAD = 1007;
const TOO_BIG = 1009;

describe('RFC 6455 against herald-echo', () => {
  let server;
  const raws = [];

  /** A raw client, destroyed after the test. */
  async function raw(opts) {
    const c = await RawClient.connect(server, opts);
    raws.push(c);
    return c;
  }

  const cleanup = () => {
    for (const c of raws.splice(0))
      c.destroy();
  };
  serveWithBystander('HERALD_ECHO', { cleanup }, (s) => { server = s; });

  // -- payload lengths ------------------------------------------------------

  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 65537,
                   5 * 1024 * 1024 + 3]) {
    test(`ws client: ${n}-byte text and binary messages echo intact`, T,
         async () => {
           const c = await Client.connect(server.url, undefined,
                                          { maxPayload: 64 << 20 });
           const bin = crypto.randomBytes(n);
           await c.send(bin, { binary: true });
           const b = await c.next(10000);
           assert.equal(b.isBinary, true);
           assert.equal(b.data.length, n);
           assert.ok(b.data.equals(bin), 'binary payload intact');
           // Text with multi-byte characters, cut to n bytes on a boundary.
           let text = 'aé€😀'.repeat(Math.ceil(n / 10) + 1);
           while (Buffer.byteLength(text) > n)
             text = text.slice(0, -1);
           text += 'x'.repeat(n - Buffer.byteLength(text));
           assert.equal(Buffer.byteLength(text), n);
           await c.send(text);
           const t = await c.next(10000);
           assert.equal(t.isBinary, false);
           assert.equal(t.text, text, 'text payload intact');
           await c.close();
         });
  }

  test('server frames use the shortest length encoding, unmasked', T,
       async () => {
         const c = await raw();
         for (const [n, header] of [[0, 2], [125, 2], [126, 4], [65535, 4],
                                    [65536, 10]]) {
           await c.sendFrame(OP.binary, Buffer.alloc(n, 7));
           const f = await c.expectFrame(OP.binary);
           assert.equal(f.payload.length, n);
           assert.equal(f.headerLength, header, `header size for ${n} bytes`);
           assert.equal(f.masked, false);
           assert.equal(f.rsv, 0);
         }
       });

  // -- TCP segmentation -----------------------------------------------------

  test('frames written one byte at a time are reassembled', T, async () => {
    const c = await raw();
    const text = 'héllo wörld, one byte at a time ✓';
    const bin = crypto.randomBytes(300); // 16-bit extended length
    await c.writeSlowly(Buffer.concat([frame(OP.text, text),
                                       frame(OP.binary, bin)]),
                        { chunk: 1, delay: 1 });
    assert.equal((await c.expectFrame(OP.text)).payload.toString(), text);
    assert.ok((await c.expectFrame(OP.binary)).payload.equals(bin));
  });

  test('control frames written one byte at a time', T, async () => {
    const c = await raw();
    const ping = crypto.randomBytes(125);
    await c.writeSlowly(frame(OP.ping, ping), { chunk: 1, delay: 1 });
    assert.ok((await c.expectFrame(OP.pong)).payload.equals(ping));
    await c.writeSlowly(Buffer.concat([
      frame(OP.text, 'a', { fin: false }),
      frame(OP.ping, 'mid'),
      frame(OP.cont, 'b'),
      frame(OP.close, closePayload(3001, 'split ✓')),
    ]), { chunk: 3, delay: 1 });
    assert.equal((await c.expectFrame(OP.pong)).payload.toString(), 'mid');
    assert.equal((await c.expectFrame(OP.text)).payload.toString(), 'ab');
    await c.expectClose(3001);
  });

  test('a 64 KiB frame in uneven pieces with delays is reassembled', T,
       async () => {
         const c = await raw();
         const bin = crypto.randomBytes(70000); // 64-bit extended length
         const f = frame(OP.binary, bin);
         // The header alone cut in three, then the payload in odd chunks.
         await c.write(f.subarray(0, 1));
         await sleep(5);
         await c.write(f.subarray(1, 5));
         await sleep(5);
         await c.write(f.subarray(5, 14));
         await sleep(5);
         for (let i = 14; i < f.length; i += 9999) {
           await c.write(f.subarray(i, i + 9999));
           await sleep(2);
         }
         assert.ok((await c.expectFrame(OP.binary, 5000)).payload.equals(bin));
       });

  test('many frames in one write are all answered, in order', T, async () => {
    const c = await raw();
    const texts = Array.from({ length: 300 }, (_, i) => `message ${i}`);
    await c.write(Buffer.concat(texts.map((t) => frame(OP.text, t))));
    for (const t of texts)
      assert.equal((await c.expectFrame(OP.text)).payload.toString(), t);
  });

  test('fragments, pings and whole messages mixed in one write', T,
       async () => {
         const c = await raw();
         await c.write(Buffer.concat([
           frame(OP.text, 'one'),
           frame(OP.text, 'tw', { fin: false }),
           frame(OP.ping, 'p1'),
           frame(OP.cont, 'o', { fin: true }),
           frame(OP.binary, Buffer.from([1]), { fin: false }),
           frame(OP.cont, Buffer.from([2]), { fin: false }),
           frame(OP.cont, Buffer.from([3])),
           frame(OP.text, 'three'),
         ]));
         assert.equal((await c.expectFrame(OP.text)).payload.toString(), 'one');
         assert.equal((await c.expectFrame(OP.pong)).payload.toString(), 'p1');
         assert.equal((await c.expectFrame(OP.text)).payload.toString(), 'two');
         assert.deepEqual([...(await c.expectFrame(OP.binary)).payload],
                          [1, 2, 3]);
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'three');
       });

  test('50 clients exchanging 20 messages each at the same time', T,
       async () => {
         const clients = await Promise.all(
           Array.from({ length: 50 }, () => Client.connect(server.url)));
         await Promise.all(clients.map(async (c, i) => {
           for (let k = 0; k < 20; ++k) {
             const text = `client ${i} message ${k}`;
             const bin = Buffer.from(text);
             await c.send(text);
             await c.send(bin, { binary: true });
             assert.equal(await c.nextText(), text);
             const b = await c.next();
             assert.equal(b.isBinary, true);
             assert.ok(b.data.equals(bin));
           }
         }));
         await Promise.all(clients.map((c) => c.close()));
       });

  // -- fragmentation and control frames -------------------------------------

  test('a fragmented message is echoed whole, as one message', T,
       async () => {
         const c = await raw();
         await c.sendFrame(OP.text, 'Hel', { fin: false });
         await sleep(20);
         await c.sendFrame(OP.cont, '', { fin: false });
         await c.sendFrame(OP.cont, 'lo, ', { fin: false });
         await sleep(20);
         await c.sendFrame(OP.cont, 'world');
         const f = await c.expectFrame(OP.text);
         assert.equal(f.payload.toString(), 'Hello, world');
       });

  test('a ping inside a fragmented message: pong first, then the message',
       T, async () => {
         const c = await raw();
         await c.sendFrame(OP.text, 'frag', { fin: false });
         await c.sendFrame(OP.ping, 'interleaved ping');
         const pong = await c.expectFrame(OP.pong);
         assert.equal(pong.payload.toString(), 'interleaved ping');
         await c.sendFrame(OP.cont, 'mented');
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'fragmented');
       });

  test('ping payloads of 0 and 125 bytes come back in the pong', T,
       async () => {
         const c = await raw();
         await c.sendFrame(OP.ping, '');
         assert.equal((await c.expectFrame(OP.pong)).payload.length, 0);
         const data = crypto.randomBytes(125);
         await c.sendFrame(OP.ping, data);
         assert.ok((await c.expectFrame(OP.pong)).payload.equals(data));
       });

  test('an unsolicited pong gets no answer', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.pong, 'unsolicited');
    await c.expectNoFrame(200);
    await c.echo('still fine');
  });

  test('binary data that is not UTF-8 is fine', T, async () => {
    const c = await raw();
    const bad = Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80]);
    await c.sendFrame(OP.binary, bad);
    assert.ok((await c.expectFrame(OP.binary)).payload.equals(bad));
  });

  test('valid UTF-8 split inside a code point across fragments', T,
       async () => {
         const c = await raw();
         const bytes = Buffer.from('κόσμε 😀');
         await c.sendFrame(OP.text, bytes.subarray(0, 1), { fin: false });
         await c.sendFrame(OP.cont, bytes.subarray(1, 8), { fin: false });
         await c.sendFrame(OP.cont, bytes.subarray(8, 13), { fin: false });
         await c.sendFrame(OP.cont, bytes.subarray(13));
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'κόσμε 😀');
       });

  // -- protocol errors: 1002 ------------------------------------------------

  const protocolErrors = [
    ['ping over 125 bytes', () => frame(OP.ping, Buffer.alloc(126))],
    ['pong over 125 bytes', () => frame(OP.pong, Buffer.alloc(200))],
    ['close over 125 bytes',
     () => frame(OP.close, closePayload(1000, 'x'.repeat(124)))],
    ['fragmented ping', () => frame(OP.ping, 'a', { fin: false })],
    ['fragmented close',
     () => frame(OP.close, closePayload(1000), { fin: false })],
    ['RSV1 without an extension', () => frame(OP.text, 'x', { rsv: 4 })],
    ['RSV2', () => frame(OP.text, 'x', { rsv: 2 })],
    ['RSV3', () => frame(OP.binary, 'x', { rsv: 1 })],
    ['RSV1 on a ping', () => frame(OP.ping, 'x', { rsv: 4 })],
    ['continuation without a message', () => frame(OP.cont, 'x')],
    ['unfinished continuation without a message',
     () => frame(OP.cont, 'x', { fin: false })],
    ['text frame inside a fragmented message',
     () => Buffer.concat([frame(OP.text, 'a', { fin: false }),
                          frame(OP.text, 'b')])],
    ['binary frame inside a fragmented message',
     () => Buffer.concat([frame(OP.binary, 'a', { fin: false }),
                          frame(OP.binary, 'b', { fin: false })])],
    ['unmasked text frame', () => frame(OP.text, 'x', { mask: false })],
    ['unmasked ping', () => frame(OP.ping, 'x', { mask: false })],
    ['unmasked empty frame', () => frame(OP.binary, '', { mask: false })],
    ['64-bit length with the most significant bit set',
     () => Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1,
                        1, 2, 3, 4, 0, 0, 0, 0])],
    ['close payload of one byte', () => frame(OP.close, Buffer.from([0x03]))],
  ];
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    protocolErrors.push([`reserved opcode ${op}`, () => frame(op, 'x')]);

  for (const [what, bytes] of protocolErrors) {
    test(`${what} -> close 1002`, T, async () => {
      const c = await raw();
      await c.write(bytes());
      await c.expectClose(PROTOCOL_ERROR);
    });
  }

  test('a protocol error after valid messages: those are answered first', T,
       async () => {
         const c = await raw();
         await c.write(Buffer.concat([frame(OP.text, 'ok 1'),
                                      frame(OP.text, 'ok 2'),
                                      frame(5, 'bad')]));
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'ok 1');
         assert.equal((await c.expectFrame(OP.text)).payload.toString(),
                      'ok 2');
         await c.expectClose(PROTOCOL_ERROR);
       });

  // -- UTF-8: 1007 ----------------------------------------------------------

  const badUtf8 = [
    ['0xFF', [0xff]],
    ['lone continuation byte', [0x80]],
    ['overlong "/"', [0xc0, 0xaf]],
    ['overlong NUL (3 bytes)', [0xe0, 0x80, 0x80]],
    ['surrogate U+D800', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['truncated at the end', [...Buffer.from('hello'), 0xe2, 0x82]],
    ['bad byte in the middle', [...Buffer.from('abc'), 0xce, 0x28, 0x61]],
  ];
  for (const [what, bytes] of badUtf8) {
    test(`invalid UTF-8 text (${what}) -> close 1007`, T, async () => {
      const c = await raw();
      await c.sendFrame(OP.text, Buffer.from(bytes));
      await c.expectClose(INVALID_PAYLOAD);
    });
  }

  test('invalid UTF-8 across fragments -> close 1007', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.text, Buffer.from([0x61, 0xce]), { fin: false });
    await c.sendFrame(OP.cont, Buffer.from([0x28, 0x62]));
    await c.expectClose(INVALID_PAYLOAD);
  });

  test('invalid UTF-8 in the first fragment fails fast (before the end)', T,
       async () => {
         const c = await raw();
         await c.sendFrame(OP.text, Buffer.from([0x61, 0xff, 0x62]),
                           { fin: false });
         // No final fragment is ever sent.
         await c.expectClose(INVALID_PAYLOAD);
       });

  test('text truncated inside a code point at the last fragment -> 1007', T,
       async () => {
         const c = await raw();
         await c.sendFrame(OP.text, Buffer.from([0x61, 0xe2]), { fin: false });
         await c.sendFrame(OP.cont, Buffer.from([0x82]), { fin: false });
         await c.sendFrame(OP.cont, Buffer.alloc(0));
         await c.expectClose(INVALID_PAYLOAD);
       });

  test('invalid UTF-8 in a text frame split across TCP writes -> 1007', T,
       async () => {
         const c = await raw();
         const f = frame(OP.text, Buffer.from([0x61, 0x62, 0xed, 0xbf, 0xbf]));
         await c.writeSlowly(f, { chunk: 2, delay: 2 });
         await c.expectClose(INVALID_PAYLOAD);
       });

  test('close reason that is not UTF-8 -> close 1007', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.close,
                      closePayload(1000, Buffer.from([0x61, 0xff])));
    await c.expectClose(INVALID_PAYLOAD);
  });

  // -- the closing handshake ------------------------------------------------

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000,
                      2999, 5000, 65535]) {
    test(`close code ${code} is invalid -> close 1002`, T, async () => {
      const c = await raw();
      await c.sendFrame(OP.close, closePayload(code));
      await c.expectClose(PROTOCOL_ERROR);
    });
  }

  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                      3000, 3999, 4000, 4999]) {
    test(`close code ${code} is echoed, then TCP is closed`, T, async () => {
      const c = await raw();
      await c.sendFrame(OP.close, closePayload(code, 'bye ✓'));
      const f = await c.expectClose(code, { thenEnd: false });
      assert.equal(f.fin, true);
      await c.waitEnd();
      assert.equal(c.frames.length, 0, 'nothing after the close frame');
    });
  }

  test('an empty close frame is answered with an empty close frame', T,
       async () => {
         const c = await raw();
         await c.sendFrame(OP.close, '');
         await c.expectClose(undefined);
       });

  test('the server ends TCP after the close handshake (FIN, not a hang)', T,
       async () => {
         const c = await raw();
         await c.echo('before close');
         await c.sendFrame(OP.close, closePayload(1000));
         await c.expectClose(1000, { thenEnd: false });
         const how = await c.waitEnd(3000);
         assert.ok(['end', 'close'].includes(how), how);
       });

  test('data after a close frame in the same write is ignored', T,
       async () => {
         const c = await raw();
         await c.write(Buffer.concat([
           frame(OP.close, closePayload(1000)),
           frame(OP.text, 'after close'),
           frame(OP.ping, 'after close'),
         ]));
         await c.expectClose(1000);
         await sleep(100);
         assert.equal(c.frames.length, 0, 'no answer to data after close');
       });

  test('data sent after the close handshake is ignored', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.close, closePayload(1000));
    await c.expectClose(1000, { thenEnd: false });
    await c.sendFrame(OP.text, 'too late');
    await c.sendFrame(OP.ping, 'too late');
    await c.waitEnd();
    await sleep(100);
    assert.equal(c.frames.length, 0, 'no answer to data after close');
  });

  test('a ws client closing with a code and reason gets the code back', T,
       async () => {
         const c = await Client.connect(server.url);
         c.ws.close(4321, 'client reason');
         const info = await c.waitClose();
         assert.equal(info.code, 4321);
       });
});

describe('message size limit (herald-echo --max-payload 1024)', () => {
  let server;
  const raws = [];

  async function raw(opts) {
    const c = await RawClient.connect(server, opts);
    raws.push(c);
    return c;
  }

  const cleanup = () => {
    for (const c of raws.splice(0))
      c.destroy();
  };
  serveWithBystander('HERALD_ECHO', { args: ['--max-payload', '1024'], cleanup },
                     (s) => { server = s; });

  test('a message of exactly the limit is accepted', T, async () => {
    const c = await raw();
    const data = crypto.randomBytes(1024);
    await c.sendFrame(OP.binary, data);
    assert.ok((await c.expectFrame(OP.binary)).payload.equals(data));
  });

  test('one byte over the limit -> close 1009', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.binary, Buffer.alloc(1025));
    await c.expectClose(TOO_BIG);
  });

  test('a huge declared length -> 1009 at once, without the payload', T,
       async () => {
         const c = await raw();
         const whole = frame(OP.binary, Buffer.alloc(100000));
         const started = Date.now();
         // Header (10 bytes) + mask (4) + a little payload; the rest never
         // comes: the server must not wait for it.
         await c.write(whole.subarray(0, 14 + 10));
         await c.expectClose(TOO_BIG, { ms: 2000 });
         assert.ok(Date.now() - started < 2000);
       });

  test('a 2^62-byte declared length -> 1009', T, async () => {
    const c = await raw();
    await c.write(Buffer.from([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0,
                               1, 2, 3, 4, 9, 9]));
    await c.expectClose(TOO_BIG);
  });

  test('fragments adding up to more than the limit -> 1009', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.text, 'a'.repeat(600), { fin: false });
    await sleep(20);
    // The second fragment's header already breaks the limit; send it with
    // only part of its payload.
    const second = frame(OP.cont, 'b'.repeat(600));
    await c.write(second.subarray(0, 8 + 10));
    await c.expectClose(TOO_BIG);
  });

  test('control frames do not count against the limit', T, async () => {
    const c = await raw();
    await c.sendFrame(OP.text, 'a'.repeat(1000), { fin: false });
    await c.sendFrame(OP.ping, 'p'.repeat(125));
    assert.equal((await c.expectFrame(OP.pong)).payload.length, 125);
    await c.sendFrame(OP.cont, 'b'.repeat(24));
    assert.equal((await c.expectFrame(OP.text)).payload.length, 1024);
  });

  test('a ws client sending too much sees close 1009', T, async () => {
    const c = await Client.connect(server.url);
    await c.send(Buffer.alloc(5000), { binary: true });
    const info = await c.waitClose();
    assert.equal(info.code, TOO_BIG);
  });

  test('many clients over the limit at once; the bystander survives', T,
       async () => {
         const clients = await Promise.all(
           Array.from({ length: 10 }, () => raw()));
         await Promise.all(clients.map((c) =>
           c.sendFrame(OP.binary, Buffer.alloc(4096))));
         await withTimeout(Promise.all(clients.map((c) =>
           c.expectClose(TOO_BIG))), 5000, 'ten 1009 closes');
       });
});
