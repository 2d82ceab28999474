// Shared helpers of the integration tests: starting and stopping server
// binaries, a queue-based wrapper around `ws` clients, a raw RFC 6455 client
// on plain TCP sockets (for input `ws` refuses to produce), and raw HTTP.
//
// Servers come from environment variables set by CTest:
//   HERALD_ECHO         app/herald-echo
//   HERALD_TEST_SERVER  tests/integration/herald-test-server
// HERALD_TLS=1 runs a suite over TLS: servers that take --tls-cert get a
// self-signed certificate made at test time with the openssl CLI, and every
// client here (ws, raw sockets, HTTP) speaks TLS to them.
import { after, afterEach, before } from 'node:test';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import assert from 'node:assert/strict';

// -- the ws package ---------------------------------------------------------

const wsPackage = new URL('./node_modules/ws/package.json', import.meta.url);
if (!fs.existsSync(wsPackage)) {
  throw new Error(
    'tests/integration/node_modules/ws is missing: run `npm ci` in ' +
      'tests/integration before running the integration tests');
}
export const { default: WebSocket } = await import('ws');

// -- TLS --------------------------------------------------------------------

/** True when the suite runs over TLS (HERALD_TLS=1). */
export const TLS = process.env.HERALD_TLS === '1';

/**
 * A client socket to host:port, over TLS when `secure` (accepting the
 * test's certificates); emits 'connect' as net sockets do.
 */
export function dial({ host = '127.0.0.1', port, secure = TLS,
                       servername } = {}) {
  if (!secure)
    return net.connect({ host, port });
  return tls.connect({ host, port, rejectUnauthorized: false,
                       servername: servername ?? (net.isIP(host) ? undefined
                                                                 : host) });
}
// Programs that take --tls-cert and --tls-key.
const TLS_SERVERS = new Set(['HERALD_TEST_SERVER', 'HERALD_ECHO',
                             'HERALD_CHAT']);

let certDir;
/** A fresh directory for certificates, removed at exit. */
export function certDirectory() {
  if (!certDir) {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-tls-'));
    process.on('exit', () => fs.rmSync(certDir, { recursive: true,
                                                 force: true }));
  }
  return certDir;
}

/**
 * Makes a certificate for `name` (and 127.0.0.1) with the openssl CLI: an
 * EC P-256 key, self-signed, or signed by `ca` ({ cert, key }) when given;
 * `isCa` makes a CA. Returns { cert, key } file names.
 */
export function makeCertificate(name, { ca, days = 2, file = name,
                                        isCa = false } = {}) {
  const dir = certDirectory();
  const cert = path.join(dir, `${file}.crt`);
  const key = path.join(dir, `${file}.key`);
  const ext = path.join(dir, `${file}.ext`);
  const csr = path.join(dir, `${file}.csr`);
  fs.writeFileSync(ext, isCa
    ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n'
    : `subjectAltName=DNS:${name},IP:127.0.0.1\n`);
  const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out',
           key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-out', cert, '-extfile', ext,
           '-days', String(days),
           ...(ca ? ['-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial']
                  : ['-key', key])]);
  return { cert, key };
}

/**
 * A certificate for `name` that expired in 2020 (openssl x509 cannot
 * backdate; openssl ca can). Returns { cert, key }.
 */
export function makeExpiredCertificate(name) {
  const dir = fs.mkdtempSync(path.join(certDirectory(), 'ca-'));
  const key = path.join(dir, 'expired.key');
  const csr = path.join(dir, 'expired.csr');
  const cert = path.join(dir, 'expired.crt');
  const cnf = path.join(dir, 'ca.cnf');
  fs.writeFileSync(path.join(dir, 'index.txt'), '');
  fs.writeFileSync(path.join(dir, 'serial'), '01\n');
  fs.writeFileSync(cnf, `[ca]\ndefault_ca=d\n[d]\ndatabase=${dir}/index.txt\n` +
                        `new_certs_dir=${dir}\nserial=${dir}/serial\n` +
                        'default_md=sha256\npolicy=p\n[p]\n' +
                        'commonName=supplied\n');
  const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out',
           key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
  openssl(['ca', '-batch', '-config', cnf, '-selfsign', '-keyfile', key,
           '-in', csr, '-out', cert, '-notext', '-startdate',
           '20200101000000Z', '-enddate', '20200102000000Z']);
  return { cert, key };
}

let testCert;
/** The certificate servers get under HERALD_TLS=1 (made once). */
export function testCertificate() {
  testCert ??= makeCertificate('localhost', { file: 'server' });
  return testCert;
}

// -- timing -----------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
      ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `fn` until it returns a truthy value (returned) or time runs out. */
export async function waitFor(fn, what, ms = 3000, every = 25) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last)
      return last;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// -- servers ----------------------------------------------------------------

const running = new Set();
process.on('exit', () => {
  for (const proc of running)
    proc.kill('SIGKILL');
});

const sanitizerPattern =
  /ERROR: (AddressSanitizer|LeakSanitizer)|(ERROR|WARNING): ThreadSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
// HERALD_SANITIZER_IGNORE: a regular expression; stderr lines matching it are
// not treated as sanitizer reports (for known reports in third-party code).
const sanitizerIgnore = process.env.HERALD_SANITIZER_IGNORE
  ? new RegExp(process.env.HERALD_SANITIZER_IGNORE) : null;

/** Sanitizer report lines in `text` (minus ignored ones). */
export function sanitizerReports(text) {
  return text.split('\n').filter((line) =>
    sanitizerPattern.test(line) &&
    !(sanitizerIgnore && sanitizerIgnore.test(line)));
}

/**
 * Starts the server binary named by environment variable `envVar` with
 * `--port 0` and `args`; resolves once it printed its URL (ws:// or
 * http://). Programs that stop gracefully on SIGTERM get
 * `--stop-deadline-ms 0` unless `args` choose a deadline: most tests stop
 * them with clients open and expect the 1001 at once.
 */
const GRACEFUL = new Set(['HERALD_TEST_SERVER', 'HERALD_ECHO', 'HERALD_CHAT']);
export async function startServer(envVar, args = []) {
  if (GRACEFUL.has(envVar) && !args.includes('--stop-deadline-ms'))
    args = [...args, '--stop-deadline-ms', '0'];
  if (TLS && TLS_SERVERS.has(envVar) && !args.includes('--tls-cert')) {
    const { cert, key } = testCertificate();
    args = [...args, '--tls-cert', cert, '--tls-key', key];
  }
  const bin = process.env[envVar];
  if (!bin)
    throw new Error(`${envVar} is not set: it must name the server binary ` +
                    '(CTest sets it; see tests/integration/CMakeLists.txt)');
  if (!fs.existsSync(bin))
    throw new Error(`${envVar}=${bin} does not exist: build it first`);
  const proc = spawn(bin, ['--port', '0', ...args],
                     { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.HERALD_TEST_VERBOSE)
      process.stderr.write(d);
  });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      running.delete(proc);
      resolve({ code, signal });
    });
  });
  const url = await withTimeout(new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      stdout += d;
      // ws://host:port/ (or http://host:port/ from programs with a page;
      // wss:// and https:// over TLS).
      const m = stdout.match(/((?:wss?|https?):\/\/\S+)\n/);
      if (m)
        resolve(m[1].replace(/^http/, 'ws'));
    });
    proc.on('error', reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`${bin} exited (${code ?? signal}) before listening:` +
                       `\n${stderr}`)));
  }), 10000, `${bin} to print its URL`);
  const u = new URL(url);
  const secure = u.protocol === 'wss:';
  const server = {
    bin,
    url,                                    // ws://127.0.0.1:PORT/
    host: u.hostname,
    port: Number(u.port),
    secure,                                 // TLS on the port
    httpUrl: `${secure ? 'https' : 'http'}://${u.hostname}:${u.port}`,
    proc,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    /** ws URL of `path` ("/echo?x=1"). */
    ws: (path = '/') => `${u.protocol}//${u.hostname}:${u.port}${path}`,
    /** Fails when the server's stderr shows a sanitizer report. */
    checkSanitizers() {
      if (sanitizerReports(stderr).length > 0)
        throw new Error(`sanitizer report from ${bin}:\n${stderr}`);
    },
    /**
     * Sends `signal` and waits for the exit; SIGKILL after `ms`. Resolves
     * with { code, signal }; throws on sanitizer reports.
     */
    async stop(sig = 'SIGTERM', ms = 8000) {
      if (proc.exitCode === null && proc.signalCode === null)
        proc.kill(sig);
      let result;
      try {
        result = await withTimeout(exited, ms, `${bin} to exit on ${sig}`);
      } catch (e) {
        proc.kill('SIGKILL');
        await exited;
        throw e;
      }
      server.checkSanitizers();
      return result;
    },
  };
  return server;
}

/** Stops `server` (SIGTERM) and asserts a clean exit (code 0). */
export async function stopServer(server) {
  if (!server)
    return;
  const { code, signal } = await server.stop();
  assert.equal(signal, null, `${server.bin} died of ${signal}`);
  assert.equal(code, 0,
               `${server.bin} exited with ${code}; stderr:\n${server.stderr()}`);
}

// -- ws clients -------------------------------------------------------------

/**
 * A `ws` client with a message queue: messages are buffered from the start
 * (also those sent in the server's open handler) and taken with `next`.
 */
export class Client {
  constructor(url, protocols, options = {}) {
    this.ws = new WebSocket(url, protocols, tlsOptions(url, options));
    this.queue = [];
    this.waiters = [];
    this.pongs = [];
    this.pings = [];
    this.ws.on('message', (data, isBinary) => {
      const m = { data, isBinary, text: isBinary ? null : data.toString() };
      const w = this.waiters.shift();
      if (w)
        w.resolve(m);
      else
        this.queue.push(m);
    });
    this.ws.on('ping', (d) => this.pings.push(d));
    this.ws.on('pong', (d) => this.pongs.push(d));
    this.errors = [];
    this.ws.on('error', (e) => this.errors.push(e));
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0))
          w.reject(new Error(`connection closed (${code}) while waiting ` +
                             'for a message'));
        resolve(this.closeInfo);
      });
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) =>
        reject(new Error(`unexpected response ${res.statusCode}`)));
    });
    this.opened.catch(() => {});
  }

  /** Opens a connection; resolves with the open Client. */
  static async connect(url, protocols, options) {
    const c = new Client(url, protocols, options);
    await withTimeout(c.opened, 5000, `WebSocket open of ${url}`);
    return c;
  }

  /** The next message ({ data, isBinary, text }). */
  next(ms = 5000) {
    if (this.queue.length > 0)
      return Promise.resolve(this.queue.shift());
    if (this.closeInfo)
      return Promise.reject(
        new Error(`connection closed (${this.closeInfo.code})`));
    const waiter = {};
    const p = new Promise((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.waiters.push(waiter);
    return withTimeout(p, ms, 'a WebSocket message').finally(() => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0)
        this.waiters.splice(i, 1);
    });
  }

  /** The next message, which must be text; returns the text. */
  async nextText(ms) {
    const m = await this.next(ms);
    assert.equal(m.isBinary, false, 'expected a text message');
    return m.text;
  }

  send(data, opts) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, opts ?? {}, (e) => (e ? reject(e) : resolve())));
  }

  /** Sends `text` and returns the next text message. */
  async ask(text, ms) {
    await this.send(text);
    return this.nextText(ms);
  }

  /** Waits for the close; resolves with { code, reason }. */
  waitClose(ms = 5000) {
    return withTimeout(this.closed, ms, 'the WebSocket to close');
  }

  /** Closes (if open) and waits for the close. */
  async close(code = 1000, reason) {
    if (this.ws.readyState === WebSocket.OPEN)
      this.ws.close(code, reason);
    else if (this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate();
    return this.waitClose();
  }
}

/**
 * Attempts a WebSocket handshake that the server should refuse; resolves
 * with { status, headers, body } of the response.
 */
export function expectRefusedUpgrade(url, protocols, options) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, tlsOptions(url, options));
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`upgrade of ${url} succeeded; expected a refusal`));
    });
    ws.on('error', (e) => reject(e));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode, headers: res.headers, body });
        req.destroy();
      });
    });
  }), 5000, `refusal of ${url}`);
}

/**
 * Another client of the same server, to show that bad input on one
 * connection leaves the others served.
 */
export class Bystander {
  static async start(url) {
    const b = new Bystander();
    b.client = await Client.connect(url);
    b.n = 0;
    return b;
  }
  /** Asserts an echo round trip (the /echo route, or herald-echo). */
  async check() {
    assert.equal(this.client.closeInfo, undefined,
                 `bystander was closed: ${JSON.stringify(this.client.closeInfo)}`);
    const text = `bystander ${++this.n} ${'é'.repeat(this.n % 5)}`;
    await this.client.send(text);
    const m = await this.client.next(3000);
    assert.equal(m.isBinary, false);
    assert.equal(m.text, text, 'bystander echo');
  }
  close() {
    return this.client.close();
  }
}

/**
 * Inside a describe: starts the server of `envVar` with `args` before the
 * tests and a Bystander on its WebSocket path `path` (an echo), hands both
 * to `use(server, bystander)`, runs `cleanup` and checks the bystander after
 * each test, and stops both at the end.
 */
export function serveWithBystander(envVar, { args = [], path = '/', cleanup } = {},
                                   use = () => {}) {
  let server;
  let bystander;
  before(async () => {
    server = await startServer(envVar, args);
    bystander = await Bystander.start(server.ws(path));
    use(server, bystander);
  });
  after(async () => {
    await bystander?.close();
    await stopServer(server);
  });
  afterEach(async () => {
    await cleanup?.();
    await bystander.check();
  });
}

// -- plain HTTP -------------------------------------------------------------

/**
 * Client options for `url`: wss:// and https:// accept the test's
 * self-signed certificates unless `options` say otherwise.
 */
export function tlsOptions(url, options = {}) {
  if (!/^(wss|https):/.test(String(url)))
    return options;
  return { rejectUnauthorized: false, ...options };
}

/** An HTTP request with Node's client; resolves { status, headers, body }. */
export function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const mod = String(url).startsWith('https:') ? https : http;
    const opts = tlsOptions(url, { method, headers, agent: false });
    const req = mod.request(url, opts, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined)
      req.write(body);
    req.end();
  }), 5000, `${method} ${url}`);
}

/** Parses one HTTP response at the start of `buf`; null if incomplete. */
export function parseHttpResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0)
    return null;
  const head = buf.subarray(0, end).toString('latin1');
  const [statusLine, ...lines] = head.split('\r\n');
  const m = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
  if (!m)
    throw new Error(`bad status line: ${JSON.stringify(statusLine)}`);
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const status = Number(m[1]);
  const len = status === 101 ? 0 : Number(headers['content-length'] ?? 0);
  if (buf.length < end + 4 + len)
    return null;
  return {
    status,
    statusLine,
    headers,
    body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
    rest: buf.subarray(end + 4 + len),
  };
}

/**
 * Sends raw bytes on a new TCP connection and collects what comes back until
 * the server closes or `ms` passes. Resolves { responses, raw, closed, ms }:
 * every complete response parsed, the raw bytes, whether the server closed
 * and how long that took.
 */
export function rawHttp(port, data, { ms = 3000, host = '127.0.0.1',
                                     parse = true, secure = TLS } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock = dial({ port, host, secure });
    let raw = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done)
        return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const responses = [];
      let rest = raw;
      try {
        // A caller that sends HEAD reads `raw` itself: a HEAD response has a
        // Content-Length but no body, which the generic parser cannot know.
        for (let r; parse && rest.length > 0 && (r = parseHttpResponse(rest));) {
          responses.push(r);
          rest = r.rest;
        }
      } catch (e) {
        return reject(e);
      }
      resolve({ responses, raw, leftover: rest, closed,
                ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('connect', () => {
      for (const piece of [].concat(data))
        sock.write(piece);
    });
    sock.on('data', (d) => {
      raw = Buffer.concat([raw, d]);
      // After a 101 the server waits for frames: nothing more will come.
      if (/^HTTP\/1\.1 101 [^]*\r\n\r\n/.test(raw.toString('latin1')))
        finish(false);
    });
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('end', () => finish(true));
  });
}

/** A random valid Sec-WebSocket-Key. */
export const newKey = () => crypto.randomBytes(16).toString('base64');

/** The Sec-WebSocket-Accept for `key`. */
export const acceptFor = (key) =>
  crypto.createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');

/**
 * An upgrade request. `headers` entries override the defaults; a value of
 * null drops that header.
 */
export function upgradeRequest({ path = '/', method = 'GET', host = 'x',
                                 key = newKey(), headers = {},
                                 version = 'HTTP/1.1' } = {}) {
  const h = {
    Host: host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  let out = `${method} ${path} ${version}\r\n`;
  for (const [k, v] of Object.entries(h))
    if (v !== null)
      out += `${k}: ${v}\r\n`;
  return out + '\r\n';
}

/** Sends one raw upgrade request; resolves with the (single) response. */
export async function rawUpgrade(server, opts) {
  const r = await rawHttp(server.port, upgradeRequest(opts));
  assert.equal(r.responses.length, 1,
               `expected one response, got: ${r.raw.toString()}`);
  return { ...r.responses[0], closed: r.closed };
}

// -- raw WebSocket frames ---------------------------------------------------

export const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/**
 * Builds one client frame. `payload` is a Buffer or string (UTF-8); frames
 * are masked unless `mask: false`. `rsv` sets RSV1..3 (bits 4..6 of the
 * first byte, e.g. 4 for RSV1).
 */
export function frame(opcode, payload = Buffer.alloc(0),
                      { fin = true, rsv = 0, mask = true,
                        maskKey = crypto.randomBytes(4) } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.from([0, len]);
  } else if (len <= 0xffff) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask)
    return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; ++i)
    masked[i] = data[i] ^ maskKey[i & 3];
  return Buffer.concat([header, maskKey, masked]);
}

/** The payload of a close frame. */
export function closePayload(code, reason = '') {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/**
 * A WebSocket client on a raw TCP socket: sends arbitrary bytes, parses the
 * server's frames (checking they are unmasked and have no RSV bits) and
 * reports when the server closes the TCP connection.
 */
export class RawClient {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.handshakeDone = false;
    this.frames = [];
    this.waiters = [];
    this.ended = false;   // the server sent FIN (or the socket closed)
    this.destroyed = false;
    this.bad = [];        // malformed server frames
    this.ends = new Promise((resolve) => {
      this._resolveEnd = resolve;
    });
    this.handshake = new Promise((resolve, reject) => {
      this._resolveHs = resolve;
      this._rejectHs = reject;
    });
    this.handshake.catch(() => {});
    sock.on('data', (d) => this._onData(d));
    const end = (how) => {
      this._rejectHs(new Error(`connection ${how} during the handshake`));
      if (!this.ended) {
        this.ended = true;
        this.endedHow = how;
        this.endedAt = Date.now();
      }
      for (const w of this.waiters.splice(0))
        w.resolve(null);
      this._resolveEnd(how);
    };
    sock.on('end', () => end('end'));
    sock.on('close', () => end('close'));
    sock.on('error', (e) => {
      this.error = e;
      end('error');
    });
  }

  /**
   * Connects and performs the opening handshake. `after` holds bytes sent in
   * the same write as the handshake request (pipelined first frames).
   */
  static async connect(server, { path = '/', headers = {}, after,
                                 before } = {}) {
    const key = newKey();
    const sock = dial({ host: server.host, port: server.port,
                        secure: server.secure });
    sock.setNoDelay(true);
    const c = new RawClient(sock);
    await withTimeout(new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    }), 5000, 'TCP connect');
    const req = Buffer.from(upgradeRequest({ path, key, headers }));
    if (before) {
      // Plain keep-alive requests first, on the same connection; their
      // responses end up in `earlier`.
      c.expectEarlier = true;
      sock.write(before);
    }
    sock.write(after ? Buffer.concat([req, after]) : req);
    const res = await withTimeout(c.handshake, 5000, 'the 101 response');
    assert.equal(res.status, 101, `handshake refused: ${res.statusLine}`);
    assert.equal(res.headers['sec-websocket-accept'], acceptFor(key));
    c.response = res;
    return c;
  }

  _onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.handshakeDone) {
      let res;
      try {
        res = parseHttpResponse(this.buf);
      } catch (e) {
        this._rejectHs(e);
        return;
      }
      if (!res)
        return;
      if (res.status !== 101 && this.expectEarlier) {
        (this.earlier ??= []).push(res);
        this.buf = res.rest;
        return this._onData(Buffer.alloc(0));
      }
      this.handshakeDone = true;
      this.buf = res.rest;
      this._resolveHs(res);
    }
    this._parse();
  }

  _parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2)
        return;
      let len = b[1] & 0x7f;
      let pos = 2;
      if (len === 126) {
        if (b.length < 4)
          return;
        len = b.readUInt16BE(2);
        pos = 4;
      } else if (len === 127) {
        if (b.length < 10)
          return;
        len = Number(b.readBigUInt64BE(2));
        pos = 10;
      }
      const masked = (b[1] & 0x80) !== 0;
      if (masked)
        pos += 4;
      if (b.length < pos + len)
        return;
      const f = {
        fin: (b[0] & 0x80) !== 0,
        rsv: (b[0] >> 4) & 7,
        opcode: b[0] & 0x0f,
        masked,
        headerLength: pos,
        payload: Buffer.from(b.subarray(pos, pos + len)),
      };
      if (f.masked || f.rsv !== 0)
        this.bad.push(f);
      if (f.opcode === OP.close && len >= 2) {
        f.code = f.payload.readUInt16BE(0);
        f.reason = f.payload.subarray(2).toString();
      }
      this.buf = b.subarray(pos + len);
      const w = this.waiters.shift();
      if (w)
        w.resolve(f);
      else
        this.frames.push(f);
    }
  }

  /** Writes raw bytes. */
  write(buf) {
    return new Promise((resolve) => {
      if (this.sock.destroyed || this.sock.writableEnded)
        return resolve(false);
      this.sock.write(buf, () => resolve(true));
    });
  }

  /** Builds and writes one frame (see `frame`). */
  sendFrame(opcode, payload, opts) {
    return this.write(frame(opcode, payload, opts));
  }

  /** Writes `buf` in pieces of `chunk` bytes with `delay` ms between. */
  async writeSlowly(buf, { chunk = 1, delay = 1 } = {}) {
    for (let i = 0; i < buf.length; i += chunk) {
      await this.write(buf.subarray(i, i + chunk));
      if (delay > 0)
        await sleep(delay);
    }
  }

  /**
   * The next server frame, or null when the connection ended first.
   * Throws on timeout or when the server sent a masked frame or RSV bits.
   */
  async nextFrame(ms = 3000) {
    let f;
    if (this.frames.length > 0)
      f = this.frames.shift();
    else if (this.ended)
      f = null;
    else {
      const waiter = {};
      const p = new Promise((resolve, reject) => {
        waiter.resolve = resolve;
        waiter.reject = reject;
      });
      this.waiters.push(waiter);
      try {
        f = await withTimeout(p, ms, 'a frame from the server');
      } finally {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0)
          this.waiters.splice(i, 1);
      }
    }
    assert.deepEqual(this.bad, [], 'server frames must be unmasked, no RSV');
    return f;
  }

  /** The next frame, which must exist and be of `opcode`. */
  async expectFrame(opcode, ms) {
    const f = await this.nextFrame(ms);
    assert.ok(f, `expected a frame of opcode ${opcode}; the connection ended`);
    assert.equal(f.opcode, opcode,
                 `expected opcode ${opcode}, got ${f.opcode} ` +
                 `(${JSON.stringify(f.payload.toString().slice(0, 80))})`);
    assert.equal(f.fin, true);
    return f;
  }

  /**
   * Expects a close frame with `code` (and `reason` if given), skipping
   * pings when `skipPings`; then (by default) expects the server to close
   * the TCP connection. Resolves with the close frame.
   */
  async expectClose(code, { reason, ms = 3000, skipPings = false,
                            thenEnd = true } = {}) {
    let f;
    for (;;) {
      f = await this.nextFrame(ms);
      if (!(skipPings && f && f.opcode === OP.ping))
        break;
    }
    assert.ok(f, `expected close ${code}; the connection ended without one`);
    assert.equal(f.opcode, OP.close,
                 `expected a close frame, got opcode ${f.opcode}: ` +
                 JSON.stringify(f.payload.toString().slice(0, 80)));
    if (code === undefined)
      assert.equal(f.payload.length, 0, 'expected an empty close frame');
    else
      assert.equal(f.code, code,
                   `close code (reason ${JSON.stringify(f.reason)})`);
    if (reason !== undefined)
      assert.equal(f.reason, reason);
    if (thenEnd)
      await this.waitEnd(ms);
    return f;
  }

  /** Resolves once the server closed the TCP connection. */
  waitEnd(ms = 3000) {
    return withTimeout(this.ends, ms, 'the server to close the TCP connection');
  }

  /** Asserts that no frame arrives within `ms` (the end is allowed). */
  async expectNoFrame(ms = 300) {
    await sleep(ms);
    assert.deepEqual(this.frames.map((f) => [f.opcode, f.payload.toString()]),
                     [], 'expected no frame');
  }

  /** Sends a masked text frame and expects it echoed. */
  async echo(text) {
    await this.sendFrame(OP.text, text);
    const f = await this.expectFrame(OP.text);
    assert.equal(f.payload.toString(), text);
  }

  destroy() {
    this.destroyed = true;
    this.sock.destroy();
  }
}

/** A raw TCP connection without a handshake. */
export async function tcpConnect(server) {
  const sock = dial({ host: server.host, port: server.port,
                      secure: server.secure });
  await withTimeout(new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  }), 5000, 'TCP connect');
  const state = { closed: false, data: Buffer.alloc(0) };
  state.closedP = new Promise((resolve) => sock.on('close', () => {
    state.closed = true;
    state.closedAt = Date.now();
    resolve();
  }));
  sock.on('data', (d) => (state.data = Buffer.concat([state.data, d])));
  sock.on('error', () => {});
  return { sock, state };
}

/** Fetches the test server's GET /stats as JSON. */
export async function stats(server) {
  const r = await httpRequest(`${server.httpUrl}/stats`);
  assert.equal(r.status, 200);
  return JSON.parse(r.body);
}

/** Waits until GET /stats lists a close of connection `name`. */
export function waitCloseRecord(server, name, ms = 3000) {
  return waitFor(async () =>
    (await stats(server)).closes.find((c) => c.name === name),
  `the close handler of ${name}`, ms);
}

/** A unique connection name. */
let nameCounter = 0;
export const uniqueName = (prefix = 'c') =>
  `${prefix}-${process.pid}-${++nameCounter}`;

// -- redis-server -------------------------------------------------------------

/** A free loopback port (free when asked; redis binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Killed when the test file's process ends, like the servers.
const redises = new Set();
process.on('exit', () => {
  for (const r of redises)
    r.proc.kill('SIGKILL');
});

/**
 * Starts redis-server on `port` of `bind` (a loopback address) with the
 * extra command-line `args` (e.g. ['--requirepass', pw]); resolves once it
 * accepts connections.
 */
export async function startRedis(port, { bind = '127.0.0.1', args = [] } = {}) {
  const proc = spawn('redis-server', [
    '--port', String(port), '--bind', bind, '--save', '',
    '--appendonly', 'no', '--dir', os.tmpdir(), '--daemonize', 'no', ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  await withTimeout(new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out))
        resolve();
    });
    proc.on('error', reject);
    exited.then(() => reject(new Error(`redis-server exited:\n${out}`)));
  }), 10000, 'redis-server to start');
  const r = {
    proc,
    port,
    host: bind,
    url: `redis://${bind.includes(':') ? `[${bind}]` : bind}:${port}`,
    /** Sends `sig` (SIGSTOP: Redis stops answering, sockets stay open). */
    signal(sig) {
      proc.kill(sig);
    },
    /** SIGKILL: Redis vanishes without a goodbye. */
    async kill() {
      redises.delete(r);
      if (proc.exitCode === null && proc.signalCode === null)
        proc.kill('SIGKILL');
      await exited;
    },
  };
  redises.add(r);
  return r;
}
