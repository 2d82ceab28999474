// Flow control and limits with real sockets: slow and stalled readers,
// floods, backpressure results, connection limits, slow handshakes and
// half-open peers. Memory is checked as the server's resident size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import {
  Client, RawClient, OP, startServer, stopServer, httpRequest,
  expectRefusedUpgrade, waitFor, sleep, withTimeout,
} from './helpers.mjs';

const stats = async (server) =>
  JSON.parse((await httpRequest(`${server.httpUrl}/stats`)).body);

const rssBytes = (server) => {
  const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
};

const MiB = 1 << 20;

// Under AddressSanitizer freed memory sits in a quarantine (256 MiB), so
// resident size says nothing there: memory bounds are checked only in the
// normal build.
const sanitized = Boolean(process.env.HERALD_SANITIZED);

test('a stalled subscriber is dropped alone; the others get everything; memory stays bounded', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--backpressure-limit', String(2 * MiB)]);
  try {
    const room = 'slow';
    const fast = [];
    for (let i = 0; i < 3; ++i)
      fast.push(await Client.connect(server.ws(`/?name=f${i}&room=${room}`)));
    const stalled = await RawClient.connect(server, {
      path: `/?name=stalled&room=${room}`,
    });
    stalled.sock.pause(); // stops reading: its receive window fills up
    const pub = await Client.connect(server.ws(`/?name=p&room=${room}`));
    await sleep(100);
    const rssBefore = rssBytes(server);
    const count = 12000;
    const size = 4096; // 12000 x 4 KiB = 47 MiB for the stalled reader
    const body = 'y'.repeat(size);
    // The publisher goes as fast as the fast readers read: batches of 100
    // (400 KiB, under each reader's 2 MiB limit) that everyone takes.
    const t0 = Date.now();
    for (let k = 0; k < count; k += 100) {
      for (let j = k; j < k + 100; ++j)
        pub.send(`${j} ${body}`);
      await Promise.all(fast.map(async (c, i) => {
        for (let j = k; j < k + 100; ++j) {
          const t = await c.nextText(10000);
          assert.equal(t.slice(0, t.indexOf(' ', 3)), `p: ${j}`,
                       `fast reader ${i} message ${j}`);
        }
      }));
    }
    const seconds = (Date.now() - t0) / 1000;
    // The stalled reader does not slow the others down.
    assert.ok(seconds < 30, `took ${seconds} s`);
    const grew = rssBytes(server) - rssBefore;
    const s = await stats(server);
    assert.ok(s.dropped > 0, `drops are counted (stats: ${JSON.stringify(s)})`);
    // Nobody closed: every drop was one over the stalled reader's limit.
    assert.equal(s.dropped_over_limit, s.dropped);
    // Without the limit the stalled reader alone would hold ~47 MiB.
    assert.ok(sanitized || grew < 24 * MiB,
              `server memory grew by ${(grew / MiB).toFixed(1)} MiB`);
    stalled.destroy();
    await Promise.all([...fast, pub].map((c) => c.close()));
  } finally {
    await stopServer(server);
  }
});

test('a slow reader over its limit is not closed as idle while it reads; a stalled one is', async () => {
  // Over the limit and dropping, the server stops reading a peer until its
  // backlog is written, so it cannot hear the peer's pings: the slow reader
  // must count as alive while it takes its backlog.
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--idle-timeout', '2',
                                    '--backpressure-limit', String(MiB),
                                    '--send-buffer', '16384']);
  let pacer, pinger, publishing = true;
  try {
    const room = 'paced';
    const stalled = await RawClient.connect(server, {
      path: `/?name=stalled&room=${room}`,
    });
    stalled.sock.pause(); // takes nothing
    const slow = await RawClient.connect(server, {
      path: `/?name=slow&room=${room}`,
    });
    // Takes 256 KiB per second, in small reads, and pings twice a second.
    slow.sock.pause();
    let tokens = 0;
    pacer = setInterval(() => {
      tokens = Math.min(tokens + 2560, 65536);
      while (tokens > 0) {
        const d = slow.sock.read(); // emits 'data' for the frame parser
        if (!d)
          break;
        tokens -= d.length;
      }
      slow.frames.length = 0;
    }, 10);
    pinger = setInterval(() => slow.sendFrame(OP.ping, ''), 500);
    const pub = await Client.connect(server.ws(`/?name=p&room=${room}`));
    const body = 'q'.repeat(4096);
    // About 1.2 MiB/s, far more than the slow reader takes.
    const publisher = (async () => {
      while (publishing) {
        for (let j = 0; j < 30; ++j)
          pub.send(body);
        await sleep(100);
      }
    })();
    // The stalled reader is closed as idle (1001) ...
    await waitFor(async () => ((await stats(server)).closes['1001'] ?? 0) >= 1,
                  'the stalled reader to be closed as idle', 30000, 100);
    // ... while the slow one, over its limit the whole time, stays open
    // through three more idle timeouts.
    await sleep(6000);
    const s = await stats(server);
    assert.ok(s.dropped_over_limit > 0, `over the limit (${JSON.stringify(s)})`);
    assert.deepEqual(s.closes, { 1001: 1 }, JSON.stringify(s));
    assert.equal(slow.ended, false, 'the slow reader was closed');
    publishing = false;
    await publisher;
    stalled.destroy();
    slow.destroy();
    await pub.close();
  } finally {
    publishing = false;
    clearInterval(pacer);
    clearInterval(pinger);
    await stopServer(server);
  }
});

test('a reader over its limit that pauses for longer than the idle timeout but pings is not idle', async () => {
  // While it takes nothing, its backlog does not move, and the server does
  // not read it (over the limit and dropping); its pings still reach the
  // server's socket, so the server hears from it. Each pause lasts while
  // two stalled readers in turn (which send nothing) are closed as idle:
  // two quiet ticks each.
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--idle-timeout', '2',
                                    '--backpressure-limit', '65536',
                                    '--send-buffer', '16384']);
  let pinger, publishing = true;
  try {
    const room = 'pauses';
    const slow = await RawClient.connect(server, {
      path: `/?name=slow&room=${room}`,
    });
    slow.sock.pause();
    let pings = 0, pongs = 0;
    const countPongs = () => {
      pongs += slow.frames.filter((f) => f.opcode === OP.pong).length;
      slow.frames.length = 0;
    };
    pinger = setInterval(() => {
      ++pings;
      slow.sendFrame(OP.ping, 'alive');
    }, 200);
    const pub = await Client.connect(server.ws(`/?name=p&room=${room}`));
    const body = 'q'.repeat(4096);
    // About 2.4 MB/s.
    const publisher = (async () => {
      while (publishing) {
        for (let j = 0; j < 30; ++j)
          pub.send(body);
        await sleep(50);
      }
    })();
    await waitFor(async () => (await stats(server)).dropped_over_limit > 0,
                  'the slow reader to be over its limit', 30000, 100);
    let stalledClosed = 0;
    for (let round = 0; round < 3; ++round) {
      for (let k = 0; k < 2; ++k) {
        const stalled = await RawClient.connect(server, {
          path: `/?name=stalled${round}${k}&room=${room}`,
        });
        stalled.sock.pause();
        ++stalledClosed;
        await waitFor(async () =>
          ((await stats(server)).closes['1001'] ?? 0) >= stalledClosed,
        'a stalled reader to be closed as idle', 30000, 100);
        stalled.destroy();
      }
      assert.equal(slow.ended, false, `closed in pause ${round}`);
      // A burst of reading: 1 MiB.
      for (let taken = 0; taken < MiB && !slow.ended;) {
        const d = slow.sock.read(); // emits 'data' for the frame parser
        if (d)
          taken += d.length;
        else
          await sleep(5);
        countPongs();
      }
    }
    publishing = false;
    await publisher;
    clearInterval(pinger);
    // At full speed now: every ping is answered, so each reached the server.
    slow.sock.resume();
    await waitFor(() => {
      countPongs();
      return pongs === pings;
    }, `pongs for all ${pings} pings (got ${pongs})`, 30000);
    const s = await stats(server);
    assert.ok(s.dropped_over_limit > 0, JSON.stringify(s));
    assert.deepEqual(s.closes, { 1001: stalledClosed }, JSON.stringify(s));
    assert.equal(slow.ended, false, 'the slow reader was closed');
    slow.destroy();
    await pub.close();
  } finally {
    publishing = false;
    clearInterval(pinger);
    await stopServer(server);
  }
});

test('with close_on_backpressure_limit the stalled subscriber is closed', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--backpressure-limit', String(2 * MiB),
                                    '--close-on-backpressure']);
  try {
    const room = 'slowclose';
    const fast = await Client.connect(server.ws(`/?name=f&room=${room}`));
    const stalled = await RawClient.connect(server, {
      path: `/?name=stalled&room=${room}`,
    });
    stalled.sock.pause();
    const pub = await Client.connect(server.ws(`/?name=p&room=${room}`));
    await sleep(100);
    const body = 'z'.repeat(8192);
    for (let k = 0; k < 2000; k += 100) {
      for (let j = k; j < k + 100; ++j)
        pub.send(`${j} ${body}`);
      for (let j = k; j < k + 100; ++j)
        assert.match(await fast.nextText(10000), new RegExp(`^p: ${j} `));
    }
    // The server gave up on the stalled peer: 3 connections -> 2 open.
    await waitFor(async () => (await stats(server)).open === 2,
                  'the stalled subscriber to be closed', 8000);
    // Reading again, it finds the close (1008) after its backlog, or a
    // reset when the backlog could not be flushed in time.
    stalled.sock.resume();
    await stalled.waitEnd(8000);
    const close = stalled.frames.find((f) => f.opcode === OP.close);
    if (close)
      assert.equal(close.code, 1008);
    await Promise.all([fast.close(), pub.close()]);
  } finally {
    await stopServer(server);
  }
});

test('send reports written bytes, then drops past the backpressure limit', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--backpressure-limit', String(MiB)]);
  try {
    const c = await Client.connect(server.ws('/?name=f&room=flood'));
    // 100 x 64 KiB in one handler: 1 MiB is accepted, the rest dropped.
    await c.send('/flood 100 65536');
    let floods = 0;
    for (;;) {
      const m = await c.next(1000).catch(() => null);
      if (!m)
        break;
      assert.equal(m.text.length, 65536);
      ++floods;
    }
    // The summary comes with the next command (the flood's own would be
    // dropped as well).
    const summary = await c.ask('/last');
    const [written, queued, dropped] = summary.split(' ').slice(1).map(Number);
    assert.equal(written + queued + dropped, 100);
    assert.ok(written >= 15 && written <= 17, `written ${written}`);
    assert.ok(dropped > 80, `dropped ${dropped}`);
    assert.equal(floods, written + queued, 'exactly the accepted ones arrive');
    await c.close();
  } finally {
    await stopServer(server);
  }
});

test('a client that floods without reading is paused, memory stays bounded', async () => {
  const server = await startServer('HERALD_ECHO');
  try {
    const bystander = await Client.connect(server.url);
    const flooder = await RawClient.connect(server);
    flooder.sock.pause(); // never reads the echoes
    const rssBefore = rssBytes(server);
    const chunk = Buffer.concat(
      Array.from({ length: 64 }, () => frameOf('q'.repeat(16 * 1024))));
    // Write until the socket pushes back for a while: the server stopped
    // reading once its backlog for this client passed the limit.
    let written = 0;
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && written < 256 * MiB) {
      if (!flooder.sock.write(chunk)) {
        const drained = await Promise.race([
          new Promise((r) => flooder.sock.once('drain', () => r(true))),
          sleep(1000).then(() => false),
        ]);
        if (!drained)
          break; // the server is not reading: paused
      }
      written += chunk.length;
    }
    assert.ok(written < 256 * MiB, 'the server kept reading without bound');
    const grew = rssBytes(server) - rssBefore;
    // The echo backlog is capped by the 16 MiB default limit.
    assert.ok(sanitized || grew < 48 * MiB,
              `server memory grew by ${(grew / MiB).toFixed(1)} MiB`);
    // Everybody else is still served at once.
    const t0 = Date.now();
    assert.equal(await bystander.ask('still there?'), 'still there?');
    assert.ok(Date.now() - t0 < 2000);
    flooder.destroy();
    await bystander.close();
  } finally {
    await stopServer(server);
  }
});

// A masked text frame (the RawClient's builder is per connection).
function frameOf(text) {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  let header;
  if (payload.length < 126)
    header = Buffer.from([0x81, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.from([0x81, 0x80 | 126, 0, 0]);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; ++i)
    masked[i] ^= mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}

test('max_connections: beyond it upgrades get 503 and the server stays healthy', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--max-connections', '3']);
  try {
    const clients = [];
    for (let i = 0; i < 3; ++i)
      clients.push(await Client.connect(server.ws(`/?name=m${i}`)));
    const refused = await expectRefusedUpgrade(server.ws('/?name=late'));
    assert.equal(refused.status, 503);
    assert.equal((await httpRequest(`${server.httpUrl}/stats`)).status, 200);
    await clients.pop().close();
    await waitFor(async () => (await stats(server)).open === 2, 'a free slot');
    clients.push(await Client.connect(server.ws('/?name=again')));
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await stopServer(server);
  }
});

test('a thousand silent or partial handshakes do not block new clients and are dropped', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--request-timeout-ms', '4000']);
  const socks = [];
  try {
    let closed = 0;
    for (let i = 0; i < 1000; ++i) {
      const s = net.connect({ host: server.host, port: server.port });
      s.on('error', () => {});
      s.on('close', () => ++closed);
      // Half of them send nothing, half an unfinished request.
      if (i % 2 === 1)
        s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n'));
      socks.push(s);
    }
    await sleep(200);
    // Served while the stalled ones are still held (none has timed out
    // yet), not after the server has dropped them.
    const c = await Client.connect(server.ws('/?name=newcomer&room=q'));
    assert.equal(closed, 0, 'the new client was served before any stalled ' +
                 'handshake was dropped');
    await c.close();
    await waitFor(() => closed >= 1000, `the stalled sockets to be dropped ` +
                  `(${closed} so far)`, 15000, 100);
  } finally {
    for (const s of socks)
      s.destroy();
    await stopServer(server);
  }
});

test('a half-open peer (silent, not reading) is closed by the idle timeout', async () => {
  const server = await startServer('HERALD_PUBSUB_SERVER',
                                   ['--idle-timeout', '2']);
  try {
    const ghost = await RawClient.connect(server, { path: '/?name=ghost' });
    ghost.sock.pause();
    const live = await Client.connect(server.ws('/?name=live'));
    await waitFor(async () => (await stats(server)).open === 1,
                  'the silent peer to be closed', 6000, 100);
    // The live client answers pings and stays.
    await sleep(2500);
    assert.equal((await stats(server)).open, 1);
    assert.equal(live.closeInfo, undefined);
    ghost.destroy();
    await live.close();
  } finally {
    await stopServer(server);
  }
});
