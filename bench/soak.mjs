// The soak driver (bench/soak.sh runs it; see bench/README.md, "Soak").
//
// Starts herald-pubsub-test-server and, from this one process, drives:
//   - steady publish load: one publisher per topic, each message confirmed
//     by a round trip ("/is" after it: the reply leaves the connection after
//     the publish went to the registry);
//   - persistent subscribers (their room plus two more topics);
//   - one slow reader subscribed to every topic, which takes fewer bytes
//     per second than it is sent and so loses messages under the server's
//     drop policy (sends over the backpressure limit are dropped);
//   - churn: visitors (connect, subscribe, publish, unsubscribe, close),
//     resetters (connect, subscribe, publish, then a TCP reset, no close
//     frame), stoppers (upgrade, then never read and never close), partial
//     frames (upgrade, half a frame, silence) and partial requests (half an
//     HTTP request, silence); the last three must be reaped by the server's
//     idle and request timeouts.
// Every delivery is checked: per publisher in order, no duplicates, nothing
// the subscriber could not have been sent, and nothing missing from the
// publishes that started after its subscription was confirmed and were
// confirmed before it decided to leave. The slow reader may miss messages,
// but their number must equal the server's count of messages dropped over
// the backpressure limit. Resident memory and open descriptors are sampled
// every minute; after the load both must return to their baselines.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';

const require = createRequire(import.meta.url);
const here = new URL('.', import.meta.url).pathname;
const WebSocket = (() => {
  for (const dir of [`${here}node_modules/ws`,
                     `${here}../tests/integration/node_modules/ws`]) {
    if (fs.existsSync(`${dir}/package.json`))
      return require(dir);
  }
  throw new Error('npm ws not found: run bench/setup.sh npm');
})();

// -- options ------------------------------------------------------------------

const opt = {
  server: '',
  duration: 1800,        // seconds of soak after the warm-up
  warmup: 60,            // seconds of the same load before the baseline
  sample: 60,            // seconds between samples
  topics: 6,
  rate: 40,              // publishes per second per persistent publisher
  payload: 400,          // bytes of padding per message
  churn: 4,              // churn clients started per second
  idleTimeout: 8,        // server idle timeout (s)
  requestTimeoutMs: 3000,
  backpressureLimit: 65536,
  sendBuffer: 16384,
  slowRate: 32768,       // bytes per second the slow reader takes
  rssTolerance: 0.05,    // of the baseline, plus rssSlackKib
  rssSlackKib: 1024,
  settle: 120,           // s to wait for the return to baseline
  selfTestSkip: 0,       // > 0: clients ignore every Nth delivery (the
                         // checks must then fail: a test of the test)
  out: '',               // JSON file for the samples and the summary
  serverLog: '',         // file for the server's log (stderr)
};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  const key = a.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(key in opt) || i + 1 >= process.argv.length) {
    console.error(`soak.mjs: unknown option ${a}`);
    process.exit(2);
  }
  const v = process.argv[++i];
  opt[key] = typeof opt[key] === 'number' ? Number(v) : v;
}
if (!opt.server) {
  console.error('soak.mjs: --server PATH (herald-pubsub-test-server) needed');
  process.exit(2);
}

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`[${(now() / 1000).toFixed(0).padStart(5)}s]`, ...a);
const failures = [];
const fail = (what) => {
  if (failures.length < 200)
    failures.push(what);
  if (failures.length <= 20)
    log(`FAIL: ${what}`);
};

// -- the server ---------------------------------------------------------------

const serverArgs = ['--port', '0',
  '--idle-timeout', String(opt.idleTimeout),
  '--request-timeout-ms', String(opt.requestTimeoutMs),
  '--backpressure-limit', String(opt.backpressureLimit),
  '--send-buffer', String(opt.sendBuffer)];
const proc = spawn(opt.server, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
let serverErr = '';
proc.stderr.on('data', (d) => { if (opt.serverLog) fs.appendFileSync(opt.serverLog, d); serverErr += d; if (serverErr.length > 1e6) serverErr = serverErr.slice(-5e5); });
let serverExited = false;
proc.on('exit', (code, sig) => {
  serverExited = true;
  if (!stopping)
    fail(`server exited (${code ?? sig}) during the run`);
});
let stopping = false;
process.on('exit', () => { if (!serverExited) proc.kill('SIGKILL'); });
const port = await new Promise((resolve, reject) => {
  let out = '';
  const t = setTimeout(() => reject(new Error('server did not start')), 10000);
  proc.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/ws:\/\/[^:]+:(\d+)\//);
    if (m) { clearTimeout(t); resolve(Number(m[1])); }
  });
  proc.on('exit', () => reject(new Error(`server exited: ${serverErr}`)));
});
const pid = proc.pid;

function rssKib() {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(s.match(/VmRSS:\s+(\d+)/)[1]);
}
const fdCount = () => fs.readdirSync(`/proc/${pid}/fd`).length;

function httpReq(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode, body: data }));
      });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(body);
  });
}
const stats = async () => JSON.parse((await httpReq('GET', '/stats')).body);

// -- the publish log ----------------------------------------------------------

// publisher name -> { topic, starts: [], ends: [] }; seq k (from 1) started
// at starts[k-1] and was confirmed at ends[k-1].
const publishers = new Map();
const topicPublishers = new Map(); // topic -> Set of publisher names
const topics = Array.from({ length: opt.topics }, (_, i) => `t${i}`);
for (const t of topics)
  topicPublishers.set(t, new Set());
const pad = 'x'.repeat(opt.payload);
let published = 0;

// Number of entries of the sorted array `a` below (lt) or at most (le) x.
function countBelow(a, x, orEqual) {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x || (orEqual && a[mid] === x)) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// -- a client that reads at a fixed rate ---------------------------------------

// A WebSocket client on a raw TCP socket that takes at most `rate` bytes
// per second from its socket once `throttle` is set: its kernel receive
// buffer fills (the kernel grows it to hundreds of KB) and the server's
// backlog for it grows past the limit and stays there. It speaks what the soak
// needs of `ws`'s interface: open, message, close events; send, ping, close.
class PacedSocket extends EventEmitter {
  constructor(path, rate) {
    super();
    this.rate = rate;
    this.throttle = false;
    this.buf = Buffer.alloc(0);
    this.open = false;
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('error', (e) => this.emit('error', e));
    this.sock.on('connect', () => this.sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n'));
    this.sock.on('close', () => this.finish(1006));
    // Flowing, but paused whenever it took more than its budget: reads
    // are at most one socket read (64 KiB) ahead of `rate`.
    this.tokens = 0;
    let last = now();
    this.sock.on('data', (d) => {
      this.onData(d);
      if (this.throttle) {
        this.tokens -= d.length;
        if (this.tokens < 0)
          this.sock.pause();
      }
    });
    this.timer = setInterval(() => {
      const t = now();
      this.tokens = Math.min(this.tokens + (rate * (t - last)) / 1000, 16384);
      last = t;
      if ((this.tokens >= 0 || !this.throttle) && this.sock.isPaused())
        this.sock.resume();
    }, 10);
  }

  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.open) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!this.buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
        this.sock.destroy();
        return;
      }
      this.open = true;
      this.buf = this.buf.subarray(end + 4);
      this.emit('open');
    }
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const op = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let h = 2;
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); h = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); h = 10; }
      if (b.length < h + len) return;
      const payload = b.subarray(h, h + len);
      this.buf = b.subarray(h + len);
      if (op === 1) this.emit('message', payload);
      else if (op === 9) this.frame(0x8a, payload);
      else if (op === 8) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.closing) this.frame(0x88, payload.subarray(0, 2));
        this.sock.end();
        this.finish(this.closeCode);
        return;
      }
    }
  }

  frame(opcode, payload) {
    if (this.sock.destroyed) return;
    const p = Buffer.from(payload);
    const mask = crypto.randomBytes(4);
    for (let i = 0; i < p.length; ++i) p[i] ^= mask[i & 3];
    const head = p.length < 126
      ? Buffer.from([opcode, 0x80 | p.length])
      : Buffer.from([opcode, 0x80 | 126, p.length >> 8, p.length & 0xff]);
    this.sock.write(Buffer.concat([head, mask, p]));
  }

  finish(code) {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    this.sock.destroy();
    this.emit('close', this.closeCode ?? code);
  }

  send(text) { this.frame(0x81, Buffer.from(text)); }
  ping() { this.frame(0x89, Buffer.alloc(0)); }
  close(code) {
    this.closing = true;
    const c = Buffer.alloc(2);
    c.writeUInt16BE(code);
    this.frame(0x88, c);
  }
}

// -- verified clients -----------------------------------------------------------

const counts = {
  visitors: 0, resetters: 0, stoppers: 0, partialFrames: 0,
  partialRequests: 0, upgrades: 0, reaped: 0, normalCloses: 0,
  verifiedDeliveries: 0, missingSlow: 0, unsubscribes: 0, subscribes: 0,
};
const expectedCloses = { 1000: 0, 1001: 0, 1006: 0 };
let clientSeq = 0;
let skipCounter = 0;

// One ws client with replies in order and per-publisher receive tracking.
class Verified {
  constructor(kind, room, { slow = false } = {}) {
    this.name = `${kind}${++clientSeq}`;
    this.room = room;
    this.slow = slow;
    this.replies = [];            // resolvers, in command order
    this.recv = new Map();        // publisher -> { first, last, count, gaps: [] }
    this.members = new Map();     // topic -> membership
    this.fences = new Set();
    this.closed = false;
    this.closeCode = 0;
    const subSent = now();
    const path = `/?name=${this.name}&room=${room}`;
    this.ws = slow ? new PacedSocket(path, opt.slowRate)
                   : new WebSocket(`ws://127.0.0.1:${port}${path}`);
    this.ws.on('error', (e) => { this.error = e; });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        counts.upgrades += 1;
        // Subscribed in open, before the 101 left.
        this.members.set(room, { topic: room, subSent, confirmed: now() });
        resolve();
      });
      this.ws.once('close', () => reject(new Error(`${this.name} closed before open`)));
    });
    this.closedP = new Promise((resolve) => {
      this.ws.on('close', (code) => {
        this.closed = true;
        this.closeCode = code;
        this.closedAt = now();
        // Replies that can no longer come.
        for (const r of this.replies.splice(0))
          r(null);
        resolve(code);
      });
    });
    this.ws.on('message', (data) => this.onMessage(data.toString()));
  }

  onMessage(t) {
    if (t === 'ok' || t === 'no' || t === 'yes') {
      const r = this.replies.shift();
      if (r) r(t); else fail(`${this.name}: unexpected reply ${t}`);
      return;
    }
    if (t.startsWith('FENCE ')) {
      this.fences.add(t);
      return;
    }
    const colon = t.indexOf(': ');
    const sp = t.indexOf(' ', colon + 2);
    if (colon < 0 || sp < 0) {
      fail(`${this.name}: unexpected message ${t.slice(0, 60)}`);
      return;
    }
    const p = t.slice(0, colon);
    const seq = Number(t.slice(colon + 2, sp));
    const pub = publishers.get(p);
    if (!pub || !(seq >= 1 && seq <= pub.starts.length)) {
      fail(`${this.name}: message ${p} ${seq} was never published`);
      return;
    }
    if (!this.members.has(pub.topic)) {
      fail(`${this.name}: got ${p} ${seq} of ${pub.topic}, never subscribed`);
      return;
    }
    if (opt.selfTestSkip > 0 && ++skipCounter % opt.selfTestSkip === 0)
      return;
    let r = this.recv.get(p);
    if (!r) {
      r = { first: seq, last: seq, count: 1, gaps: [] };
      this.recv.set(p, r);
    } else {
      if (seq <= r.last) {
        fail(`${this.name}: ${p} ${seq} after ${r.last} (duplicate or reordered)`);
        return;
      }
      if (seq !== r.last + 1) {
        if (!this.slow)
          fail(`${this.name}: gap in ${p}: ${r.last + 1}..${seq - 1}`);
        r.gaps.push(r.last + 1, seq - 1);
      }
      r.last = seq;
      r.count += 1;
    }
    counts.verifiedDeliveries += 1;
  }

  command(text) {
    return new Promise((resolve) => {
      this.replies.push(resolve);
      this.ws.send(text);
    });
  }

  async subscribe(topic) {
    const subSent = now();
    this.members.set(topic, { topic, subSent, confirmed: Infinity });
    await this.command(`/sub ${topic}`);
    this.members.get(topic).confirmed = now();
    counts.subscribes += 1;
  }

  // The publishers of `topic` confirmed so far, and how far: the client may
  // leave once it has received all of that.
  snapshot(topic) {
    const m = this.members.get(topic);
    m.decided = now();
    const want = [];
    for (const p of topicPublishers.get(topic) ?? []) {
      if (p === this.name)
        continue;
      const pub = publishers.get(p);
      const b = pub.ends.length;
      const a = countBelow(pub.starts, m.confirmed, true) + 1;
      if (b >= a)
        want.push([p, b]);
    }
    return want;
  }

  // Waits (bounded) until everything confirmed to `topic` before now arrived.
  async catchUp(topic, ms = 15000) {
    const want = this.snapshot(topic);
    const deadline = now() + ms;
    while (now() < deadline && !this.closed) {
      if (want.every(([p, b]) => (this.recv.get(p)?.last ?? 0) >= b))
        return;
      await sleep(20);
    }
  }

  async unsubscribe(topic) {
    await this.catchUp(topic);
    await this.command(`/unsub ${topic}`);
    this.members.get(topic).ended = now();
    counts.unsubscribes += 1;
  }

  // Sends `n` messages to its room, each confirmed by a round trip.
  async publish(n, gapMs = 0) {
    let pub = publishers.get(this.name);
    if (!pub) {
      pub = { topic: this.room, starts: [], ends: [] };
      publishers.set(this.name, pub);
      topicPublishers.get(this.room)?.add(this.name);
    }
    for (let i = 0; i < n && !this.closed; ++i) {
      const seq = pub.starts.length + 1;
      pub.starts.push(now());
      this.ws.send(`${seq} ${pad}`);
      published += 1;
      await this.command('/is _');
      pub.ends.push(now());
      if (gapMs > 0)
        await sleep(gapMs);
    }
  }

  // Checks every membership against the publish log: `endedAt` is when
  // nothing more could arrive (unsubscribe confirmed, close, reset).
  verify(endedAt) {
    let missing = 0;
    for (const m of this.members.values()) {
      const ended = m.ended ?? endedAt;
      const decided = m.decided ?? ended;
      for (const p of topicPublishers.get(m.topic) ?? []) {
        if (p === this.name)
          continue;
        const pub = publishers.get(p);
        const r = this.recv.get(p);
        // Could have been sent: confirmed after the subscribe went out and
        // started before the membership ended.
        const lo = countBelow(pub.ends, m.subSent, true) + 1;
        const hi = countBelow(pub.starts, ended, false);
        // Must have been sent: started after the confirmation, confirmed
        // before the client decided to leave.
        const a = countBelow(pub.starts, m.confirmed, true) + 1;
        const b = countBelow(pub.ends, decided, false);
        if (r && (r.first < lo || r.last > hi))
          fail(`${this.name}: ${p} ${r.first}..${r.last} outside ${lo}..${hi} (${m.topic})`);
        if (b < a)
          continue;
        let got = 0;
        if (r) {
          got = Math.max(0, Math.min(b, r.last) - Math.max(a, r.first) + 1);
          for (let i = 0; i < r.gaps.length; i += 2)
            got -= Math.max(0, Math.min(b, r.gaps[i + 1]) - Math.max(a, r.gaps[i]) + 1);
        }
        const lost = b - a + 1 - got;
        if (lost > 0) {
          missing += lost;
          if (!this.slow)
            fail(`${this.name}: ${lost} of ${p} ${a}..${b} missing (${m.topic}); got ${r ? `${r.first}..${r.last}` : 'none'}`);
        }
      }
    }
    return missing;
  }

  async closeNormally() {
    for (const t of [...this.members.keys()])
      if (t !== this.room && this.members.get(t).ended === undefined)
        await this.unsubscribe(t);
    await this.catchUp(this.room);
    this.ws.close(1000);
    const code = await Promise.race([this.closedP, sleep(10000).then(() => -1)]);
    if (code !== 1000)
      fail(`${this.name}: closed with ${code}, expected 1000`);
    expectedCloses[1000] += 1;
    counts.normalCloses += 1;
    return this.verify(this.closedAt ?? now());
  }

  reset() {
    const at = now();
    expectedCloses[1006] += 1;
    this.ws._socket.resetAndDestroy(); // ws's TCP socket: RST, no close frame
    this.closed = true;
    return this.verify(at);
  }
}

// -- raw sockets: half-open clients -------------------------------------------

function rawUpgrade(path) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const key = crypto.randomBytes(16).toString('base64');
    sock.on('error', reject);
    sock.on('connect', () => sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n'));
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0)
        return;
      sock.off('data', onData);
      if (!buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101'))
        return reject(new Error(`no 101: ${buf.toString().slice(0, 80)}`));
      counts.upgrades += 1;
      resolve({ sock, rest: buf.subarray(end + 4) });
    };
    sock.on('data', onData);
  });
}

// The close code of the first close frame in server bytes `b` (0: none).
function closeCodeIn(b) {
  let i = 0;
  while (i + 2 <= b.length) {
    const op = b[i] & 0x0f;
    let len = b[i + 1] & 0x7f;
    let h = 2;
    if (len === 126) { if (i + 4 > b.length) return 0; len = b.readUInt16BE(i + 2); h = 4; }
    else if (len === 127) { if (i + 10 > b.length) return 0; len = Number(b.readBigUInt64BE(i + 2)); h = 10; }
    if (i + h + len > b.length)
      return 0;
    if (op === 8)
      return len >= 2 ? b.readUInt16BE(i + h) : 1005;
    i += h + len;
  }
  return 0;
}

// Reaping bound: two quiet ticks of half the idle timeout after the last
// activity, the 2 s linger, and slack for a loaded machine.
const reapBoundMs = 1.5 * opt.idleTimeout * 1000 + 2000 + 10000;
const pendingHalfOpen = new Set();

// Upgrades, then never reads again and never closes; after the bound it
// reads what the server left: a close frame (1001) and the end.
async function stopper() {
  counts.stoppers += 1;
  const { sock, rest } = await rawUpgrade(`/?name=s${++clientSeq}&room=quiet${clientSeq}`);
  sock.pause();
  const started = now();
  expectedCloses[1001] += 1;
  const job = (async () => {
    await sleep(reapBoundMs);
    let got = rest;
    const ended = new Promise((resolve) => {
      sock.on('end', () => resolve(true));
      sock.on('close', () => resolve(true));
      sock.on('error', () => resolve(true));
    });
    sock.on('data', (d) => (got = Buffer.concat([got, d])));
    sock.resume();
    const ok = await Promise.race([ended, sleep(5000).then(() => false)]);
    const code = closeCodeIn(got);
    if (!ok || code !== 1001)
      fail(`stopper not reaped within ${((now() - started) / 1000).toFixed(1)} s (close code ${code}, ended ${ok})`);
    else
      counts.reaped += 1;
    sock.destroy();
  })();
  pendingHalfOpen.add(job);
  job.finally(() => pendingHalfOpen.delete(job));
}

// Waits for the server to close `sock` (after it got `rest`); checks the
// close frame when `code` is given.
function awaitReaped(what, sock, rest, code) {
  const started = now();
  let got = rest ?? Buffer.alloc(0);
  const job = new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), reapBoundMs);
    sock.on('data', (d) => (got = Buffer.concat([got, d])));
    const done = () => { clearTimeout(t); resolve(true); };
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', done);
  }).then((ok) => {
    const c = closeCodeIn(got);
    if (!ok || (code && c !== code))
      fail(`${what} not reaped within ${((now() - started) / 1000).toFixed(1)} s (close code ${c})`);
    else
      counts.reaped += 1;
    sock.destroy();
  });
  pendingHalfOpen.add(job);
  job.finally(() => pendingHalfOpen.delete(job));
}

// Upgrades, sends the first half of a masked text frame, goes silent.
async function partialFrame() {
  counts.partialFrames += 1;
  const { sock, rest } = await rawUpgrade(`/?name=f${++clientSeq}&room=quiet${clientSeq}`);
  expectedCloses[1001] += 1;
  const header = Buffer.from([0x81, 0x80 | 100, 1, 2, 3, 4]);
  sock.write(Buffer.concat([header, Buffer.alloc(10, 0x61)]));
  awaitReaped('partial frame', sock, rest, 1001);
}

// Half an HTTP request, then silence: the request timeout drops it.
async function partialRequest() {
  counts.partialRequests += 1;
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.write('GET /?name=half HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web');
  awaitReaped('partial request', sock, null, 0);
}

// -- the load -----------------------------------------------------------------

const pick = (a) => a[Math.floor(Math.random() * a.length)];
const otherTopics = (room, n) =>
  topics.filter((t) => t !== room).sort(() => Math.random() - 0.5).slice(0, n);

let load = null;

async function startLoad() {
  const l = { running: true, persistent: [], pubs: [], churn: new Set(), slow: null };
  // The slow reader first: everything published is for it.
  l.slow = new Verified('slow', topics[0], { slow: true });
  await l.slow.opened;
  for (const t of topics.slice(1))
    await l.slow.subscribe(t);
  l.slow.ws.throttle = true;
  // Persistent clients close only when the load stops.
  const watch = (c) => c.closedP.then((code) => {
    if (l.running)
      fail(`${c.name} closed with ${code} during the load`);
  });
  watch(l.slow);
  // Pings of its own: the server hears them (unread while it does not
  // read this client, over its limit), so it is not idle.
  l.slowPing = setInterval(() => { if (!l.slow.closed) l.slow.ws.ping(); }, 1000);
  for (const t of topics) {
    const s = new Verified('sub', t);
    await s.opened;
    for (const o of otherTopics(t, 2))
      await s.subscribe(o);
    l.persistent.push(s);
    watch(s);
  }
  for (const t of topics) {
    const p = new Verified('pub', t);
    await p.opened;
    l.persistent.push(p);
    watch(p);
    l.pubs.push((async () => {
      // A steady rate: the next publish is due every 1/rate s.
      const every = 1000 / opt.rate;
      let due = now();
      while (l.running && !p.closed) {
        await p.publish(1);
        due += every;
        const wait = due - now();
        if (wait > 0) await sleep(wait); else due = now();
      }
    })());
  }
  l.churnLoop = (async () => {
    const every = 1000 / opt.churn;
    let k = 0;
    while (l.running) {
      const kind = k++ % 10;
      const job = churnOne(kind).catch((e) => fail(`churn ${kind}: ${e.message}`));
      l.churn.add(job);
      job.finally(() => l.churn.delete(job));
      await sleep(every * (0.5 + Math.random()));
    }
  })();
  return l;
}

// Kinds 0-3 visitors, 4-6 resetters, 7 stoppers, 8 partial frames,
// 9 partial requests.
async function churnOne(kind) {
  if (kind <= 3) {
    counts.visitors += 1;
    const c = new Verified('vis', pick(topics));
    await c.opened;
    for (const t of otherTopics(c.room, 1 + (kind % 2)))
      await c.subscribe(t);
    await c.publish(1 + Math.floor(Math.random() * 5), 50);
    await sleep(500 + Math.random() * 4000);
    if (kind === 0 && c.members.size > 1)
      await c.unsubscribe([...c.members.keys()].find((t) => t !== c.room));
    await c.publish(1 + Math.floor(Math.random() * 3), 50);
    await c.closeNormally();
  } else if (kind <= 6) {
    counts.resetters += 1;
    const c = new Verified('rst', pick(topics));
    await c.opened;
    for (const t of otherTopics(c.room, 1))
      await c.subscribe(t);
    await c.publish(1 + Math.floor(Math.random() * 3), 50);
    await sleep(300 + Math.random() * 3000);
    for (const t of c.members.keys())
      await c.catchUp(t);
    c.reset();
  } else if (kind === 7) {
    await stopper();
  } else if (kind === 8) {
    await partialFrame();
  } else {
    await partialRequest();
  }
}

// Stops the load; every client leaves; the slow reader last, once it has
// read everything (fenced by one server publish per topic).
async function stopLoad(l) {
  l.running = false;
  await l.churnLoop;
  await Promise.all(l.pubs);
  await Promise.all([...l.churn]);
  for (const c of l.persistent)
    await c.closeNormally();
  l.slow.ws.throttle = false;
  clearInterval(l.slowPing);
  const slow = l.slow;
  // Reading steadily now: wait until it has been quiet for a second.
  let last = -1;
  for (let i = 0; i < 300; ++i) {
    const n = counts.verifiedDeliveries;
    if (n === last) break;
    last = n;
    await sleep(1000);
  }
  for (let i = 0; i < topics.length; ++i)
    await httpReq('POST', `/publish?room=${topics[i]}`, `FENCE ${i}`);
  const deadline = now() + 15000;
  while (slow.fences.size < topics.length && now() < deadline)
    await sleep(20);
  if (slow.fences.size < topics.length)
    fail(`slow reader got ${slow.fences.size} of ${topics.length} fences`);
  // Everything it could get has arrived: its window covers every publish.
  for (const t of topics)
    slow.snapshot(t);
  const missing = slow.verify(now());
  slow.ws.close(1000);
  await Promise.race([slow.closedP, sleep(10000)]);
  if (slow.closeCode !== 1000)
    fail(`slow reader closed with ${slow.closeCode}`);
  expectedCloses[1000] += 1;
  counts.normalCloses += 1;
  await Promise.all([...pendingHalfOpen]);
  return missing;
}

// -- samples and baselines ------------------------------------------------------

const samples = [];
async function sample(phase) {
  const s = await stats();
  const row = {
    phase, t: Math.round(now() / 1000), rssKib: rssKib(), fds: fdCount(),
    open: s.open, connections: s.connections_total,
    deliveries: counts.verifiedDeliveries, published,
    dropped: s.dropped, droppedOverLimit: s.dropped_over_limit,
  };
  samples.push(row);
  log(`${phase.padEnd(8)} rss ${row.rssKib} KiB, fds ${row.fds}, open ${row.open}, ` +
      `connections ${row.connections}, verified deliveries ${row.deliveries}, ` +
      `published ${published}, dropped ${row.dropped} (${row.droppedOverLimit} over limit)`);
  return row;
}

// Waits (up to opt.settle s) until fds are back to `fds` and RSS is under
// `rssMax`; returns the last reading.
async function settle(fds, rssMax) {
  const deadline = now() + opt.settle * 1000;
  let r;
  for (;;) {
    const s = await stats();
    r = { fds: fdCount(), rssKib: rssKib(), open: s.open, topics: s.topics };
    if (r.fds === fds && r.rssKib <= rssMax && r.open === 0 && r.topics === 0)
      return r;
    if (now() > deadline)
      return r;
    await sleep(1000);
  }
}

async function runPhase(name, seconds) {
  const l = await startLoad();
  const end = now() + seconds * 1000;
  let next = now() + opt.sample * 1000;
  while (now() < end && !serverExited) {
    await sleep(Math.min(1000, end - now()));
    if (now() >= next) {
      await sample(name);
      next += opt.sample * 1000;
    }
  }
  log(`${name}: stopping the load`);
  const missing = await stopLoad(l);
  return missing;
}

// -- the run ------------------------------------------------------------------

await sleep(1000);
const start = await sample('start');
const fds0 = start.fds;
log(`server pid ${pid} port ${port}; ${opt.warmup} s warm-up, ${opt.duration} s soak`);

const s0 = await stats();
let missing = await runPhase('warmup', opt.warmup);
// Let the quiet-time release run, then take the baseline.
const base = await settle(fds0, Infinity);
await sleep(5000);
const baseline = { fds: fdCount(), rssKib: rssKib() };
log(`baseline after warm-up: rss ${baseline.rssKib} KiB, fds ${baseline.fds} (before load: ${fds0})`);
if (base.fds !== fds0)
  fail(`after the warm-up fds are ${base.fds}, not back to ${fds0}`);
await sample('baseline');

missing += await runPhase('soak', opt.duration);
const rssMax = Math.round(baseline.rssKib * (1 + opt.rssTolerance) + opt.rssSlackKib);
const fin = await settle(fds0, rssMax);
await sample('end');
const s1 = await stats();

// -- checks ---------------------------------------------------------------------

if (fin.fds !== fds0)
  fail(`fds ${fin.fds} after the soak, ${fds0} before the load`);
if (fin.rssKib > rssMax)
  fail(`rss ${fin.rssKib} KiB after the soak, over ${rssMax} KiB (baseline ${baseline.rssKib} KiB + ${opt.rssTolerance * 100}% + ${opt.rssSlackKib} KiB)`);
if (fin.open !== 0 || fin.topics !== 0)
  fail(`server still has ${fin.open} connections and ${fin.topics} topics`);
const overLimit = s1.dropped_over_limit - s0.dropped_over_limit;
if (missing !== overLimit)
  fail(`clients missed ${missing} messages; the server dropped ${overLimit} over the limit`);
if (s1.connections_total - s0.connections_total !== counts.upgrades)
  fail(`server counted ${s1.connections_total - s0.connections_total} connections, clients ${counts.upgrades}`);
for (const [code, n] of Object.entries(expectedCloses)) {
  const got = s1.closes[code] ?? 0;
  if (got !== n)
    fail(`server closes with ${code}: ${got}, expected ${n}`);
}
const otherCodes = Object.keys(s1.closes).filter((c) => !(c in expectedCloses));
if (otherCodes.length)
  fail(`unexpected close codes ${JSON.stringify(s1.closes)}`);
const halfOpen = counts.stoppers + counts.partialFrames + counts.partialRequests;
if (counts.reaped !== halfOpen)
  fail(`${counts.reaped} of ${halfOpen} half-open clients reaped`);
if (/AddressSanitizer|runtime error:/.test(serverErr))
  fail('sanitizer report from the server');

stopping = true;
proc.kill('SIGTERM');
await new Promise((r) => (serverExited ? r() : proc.on('exit', r)));

const summary = {
  result: failures.length ? 'FAIL' : 'PASS',
  duration: opt.duration, warmup: opt.warmup,
  published, verifiedDeliveries: counts.verifiedDeliveries,
  slowReaderMissed: missing, droppedOverLimit: overLimit,
  droppedTotal: s1.dropped - s0.dropped,
  connections: s1.connections_total - s0.connections_total,
  closes: s1.closes, expectedCloses, churn: counts,
  fdsBeforeLoad: fds0, baseline, final: fin, rssMaxKib: rssMax,
};
console.log('\nminute | phase    | RSS KiB | fds | open | connections | verified deliveries | published | dropped over limit');
samples.forEach((r) => console.log(
  `${String(Math.round(r.t / 60)).padStart(6)} | ${r.phase.padEnd(8)} | ${String(r.rssKib).padStart(7)} | ` +
  `${String(r.fds).padStart(3)} | ${String(r.open).padStart(4)} | ${String(r.connections).padStart(11)} | ` +
  `${String(r.deliveries).padStart(19)} | ${String(r.published).padStart(9)} | ${r.droppedOverLimit}`));
console.log('\nSUMMARY ' + JSON.stringify(summary));
if (opt.out)
  fs.writeFileSync(opt.out, JSON.stringify({ summary, samples, failures }, null, 1));
if (failures.length) {
  console.log(`\nsoak FAILED (${failures.length} failures):`);
  failures.slice(0, 30).forEach((f) => console.log(`  ${f}`));
  process.exit(1);
}
console.log('\nsoak passed');
process.exit(0);
