// TLS on the server port: the npm ws client over wss:// (text, binary,
// fragments, permessage-deflate, close codes, large messages), HTTPS on the
// same port, ALPN, SNI, client certificates, certificate reload while
// clients stay connected, bad input (plain HTTP and plain WebSocket
// upgrades, a stalled handshake, a garbage ClientHello, renegotiation, a
// reset in the middle of a record) with a bystander served throughout,
// /metrics, and the one-line errors at start. Certificates are made now
// with the openssl CLI.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';

import {
  Bystander, Client, certDirectory, dial, expectRefusedUpgrade, httpRequest,
  makeCertificate, makeExpiredCertificate, rawHttp, sleep, startServer,
  stopServer, upgradeRequest, waitFor, withTimeout,
} from './helpers.mjs';

const T = { timeout: 30000 };

/** The certificate's common name the server shows for `servername`. */
function peerName(server, servername) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = dial({ host: '127.0.0.1', port: server.port, secure: true,
                     servername });
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(cn);
    });
    s.once('error', reject);
  }), 5000, `a handshake naming ${servername}`);
}

/** One Prometheus sample of the server's /metrics. */
async function metric(server, name) {
  const r = await httpRequest(`${server.httpUrl}/metrics`);
  assert.equal(r.status, 200);
  const m = r.body.match(new RegExp(`^herald_${name} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

/** Runs `bin` with `args` to its exit; resolves { code, stderr }. */
function runToExit(bin, args) {
  return withTimeout(new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stderr }));
  }), 10000, `${bin} to exit`);
}

describe('wss:// with the ws client (herald-echo --deflate shared)', () => {
  let server;
  before(async () => {
    const { cert, key } = makeCertificate('localhost', { file: 'echo' });
    server = await startServer('HERALD_ECHO', ['--deflate', 'shared',
                                               '--tls-cert', cert,
                                               '--tls-key', key]);
    assert.match(server.url, /^wss:/);
  });
  after(() => stopServer(server));

  test('text, binary and a close code', T, async () => {
    const c = await Client.connect(server.url);
    assert.equal(await c.ask('héllo'), 'héllo');
    const bin = crypto.randomBytes(1000);
    await c.send(bin, { binary: true });
    const m = await c.next();
    assert.equal(m.isBinary, true);
    assert.ok(m.data.equals(bin));
    c.ws.close(4000, 'done here');
    const info = await c.waitClose();
    assert.equal(info.code, 4000);
  });

  test('a fragmented message arrives whole', T, async () => {
    const c = await Client.connect(server.url);
    await c.send('part one, ', { fin: false });
    await c.send('part two, ', { fin: false });
    await c.send('the end', { fin: true });
    assert.equal(await c.nextText(), 'part one, part two, the end');
    await c.close();
  });

  test('permessage-deflate is negotiated and round-trips', T, async () => {
    const c = await Client.connect(server.url, undefined,
                                   { perMessageDeflate: true });
    assert.match(c.ws.extensions, /permessage-deflate/);
    const text = 'compress me '.repeat(5000);
    assert.equal(await c.ask(text), text);
    await c.close();
  });

  test('16 MiB messages echo intact', T, async () => {
    const c = await Client.connect(server.url, undefined,
                                   { maxPayload: 64 << 20,
                                     perMessageDeflate: false });
    const big = crypto.randomBytes(16 << 20);
    await c.send(big, { binary: true });
    const m = await c.next(20000);
    assert.equal(m.data.length, big.length);
    assert.ok(m.data.equals(big));
    await c.close();
  });

  test('HTTP on the same port, with ALPN http/1.1', T, async () => {
    const r = await httpRequest(`${server.httpUrl}/`);
    assert.equal(r.status, 200);
    assert.match(r.body, /herald-echo/);
    const alpn = await withTimeout(new Promise((resolve, reject) => {
      const s = dial({ port: server.port, secure: true });
      s.once('secureConnect', () => {
        resolve(s.alpnProtocol);
        s.end();
      });
      s.once('error', reject);
    }), 5000, 'a handshake');
    // Node offers no ALPN unless asked; ask with h2 first.
    assert.equal(alpn, false);
    const chosen = await withTimeout(new Promise((resolve, reject) => {
      const s = net.connect({ port: server.port, host: '127.0.0.1' });
      s.once('connect', async () => {
        const { connect } = await import('node:tls');
        const t = connect({ socket: s, rejectUnauthorized: false,
                            ALPNProtocols: ['h2', 'http/1.1'] });
        t.once('secureConnect', () => {
          resolve(t.alpnProtocol);
          t.end();
        });
        t.once('error', reject);
      });
    }), 5000, 'an ALPN handshake');
    assert.equal(chosen, 'http/1.1');
  });
});

describe('SNI, reload, bad input and /metrics (herald-test-server)', () => {
  let server;
  let bystander;
  let dir;
  let main;
  before(async () => {
    dir = fs.mkdtempSync(path.join(certDirectory(), 'reload-'));
    const first = makeCertificate('localhost', { file: 'first' });
    const other = makeCertificate('other.test', { file: 'other' });
    main = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
    fs.copyFileSync(first.cert, main.cert);
    fs.copyFileSync(first.key, main.key);
    server = await startServer('HERALD_TEST_SERVER', [
      '--tls-cert', main.cert, '--tls-key', main.key,
      '--tls-sni', `Other.Test,${other.cert},${other.key}`,
      '--request-timeout-ms', '500']);
    bystander = await Bystander.start(server.ws('/echo'));
  });
  after(async () => {
    await bystander?.close();
    await stopServer(server);
  });

  test('SNI picks the certificate; unknown names get the default', T,
       async () => {
         assert.equal(await peerName(server, 'other.test'), 'other.test');
         assert.equal(await peerName(server, 'OTHER.test'), 'other.test');
         assert.equal(await peerName(server, 'unknown.test'), 'localhost');
         assert.equal(await peerName(server, undefined), 'localhost');
         await bystander.check();
       });

  test('plain HTTP on the TLS port gets a plain 400', T, async () => {
    const r = await rawHttp(server.port,
                            'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
                            { secure: false });
    assert.equal(r.responses.length, 1);
    assert.equal(r.responses[0].status, 400);
    assert.match(r.responses[0].body, /TLS only: use https:\/\/ or wss:\/\//);
    assert.ok(r.closed, 'the server closes');
    await bystander.check();
  });

  test('a plain WebSocket upgrade on the TLS port gets a 400', T,
       async () => {
         const r = await expectRefusedUpgrade(
           `ws://127.0.0.1:${server.port}/echo`);
         assert.equal(r.status, 400);
         await bystander.check();
       });

  test('a stalled handshake is closed at the request timeout', T,
       async () => {
         // Half a ClientHello record, then nothing.
         const r = await rawHttp(server.port,
                                 Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00,
                                              0x01, 0x00]),
                                 { secure: false, parse: false, ms: 10000 });
         assert.ok(r.closed, 'closed by the server');
         assert.equal(r.raw.length, 0, 'nothing answered');
         await bystander.check();
       });

  test('a garbage ClientHello gets a TLS alert and a close', T, async () => {
    const before = await metric(server, 'tls_handshake_failures_total');
    const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]),
                                crypto.randomBytes(64)]);
    const r = await rawHttp(server.port, junk,
                            { secure: false, parse: false, ms: 5000 });
    assert.ok(r.closed, 'closed by the server');
    // An alert record: content type 21.
    assert.equal(r.raw[0], 21, 'a TLS alert');
    await waitFor(async () =>
      (await metric(server, 'tls_handshake_failures_total')) > before,
    'the failure in /metrics');
    await bystander.check();
  });

  test('renegotiation (TLS 1.2) is refused with an alert', T, async () => {
    // openssl s_client renegotiates when it reads "R" on a line.
    const p = spawn('openssl', ['s_client', '-tls1_2', '-connect',
                                `127.0.0.1:${server.port}`],
                    { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const exited = new Promise((r) => p.on('exit', r));
    await waitFor(() => /Verify return code/.test(out), 'the handshake', 5000);
    p.stdin.write('R\n');
    await waitFor(() => /no renegotiation/.test(out),
                  'the no_renegotiation alert', 5000);
    p.kill();
    await exited;
    await waitFor(() => /refused TLS renegotiation from 127\.0\.0\.1/
                          .test(server.stderr()), 'the log line');
    await bystander.check();
  });

  test('a peer that resets in the middle of a record', T, async () => {
    const open = await metric(server, 'tls_connections');
    const sock = net.connect({ port: server.port, host: '127.0.0.1' });
    await withTimeout(new Promise((r) => sock.once('connect', r)), 5000,
                      'TCP connect');
    const { connect } = await import('node:tls');
    const t = connect({ socket: sock, rejectUnauthorized: false });
    t.on('error', () => {});
    await withTimeout(new Promise((r) => t.once('secureConnect', r)), 5000,
                      'the handshake');
    t.write(upgradeRequest({ path: '/echo' }));
    await withTimeout(new Promise((r) => t.once('data', r)), 5000,
                      'the 101');
    // A record header announcing 16 KiB, 100 bytes of it, then RST.
    sock.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x40, 0x00]),
                              crypto.randomBytes(100)]));
    await sleep(50);
    sock.resetAndDestroy();
    await waitFor(async () => (await metric(server, 'tls_connections'))
                                <= open,
    'the connection to be gone');
    await bystander.check();
  });

  test('/metrics counts TLS connections and handshakes', T, async () => {
    const handshakes = await metric(server, 'tls_handshakes_total');
    const clients = [];
    for (let i = 0; i < 3; ++i)
      clients.push(await Client.connect(server.ws('/echo')));
    // The bystander, three clients and this request's own connection.
    await waitFor(async () => (await metric(server, 'tls_connections')) === 5,
                  'tls_connections 5');
    assert.ok(await metric(server, 'tls_handshakes_total') >= handshakes + 3);
    for (const c of clients)
      await c.close();
  });

  test('reload while clients are connected; a broken file keeps the old',
       T, async () => {
         const c = await Client.connect(server.ws('/echo'));
         assert.equal(await peerName(server, 'localhost'), 'localhost');
         const second = makeCertificate('second.test', { file: 'second' });
         fs.copyFileSync(second.cert, main.cert);
         fs.copyFileSync(second.key, main.key);
         server.proc.kill('SIGHUP');
         await waitFor(async () => (await metric(server, 'tls_reloads_total'))
                                   === 1, 'the reload');
         assert.equal(await peerName(server, 'localhost'), 'second.test');
         assert.equal(await peerName(server, 'other.test'), 'other.test');
         // The connection made before the reload goes on.
         assert.equal(await c.ask('still here'), 'still here');
         // A broken certificate: refused, logged, the old one stays.
         fs.writeFileSync(main.cert, 'not a certificate\n');
         server.proc.kill('SIGHUP');
         await waitFor(async () =>
           (await metric(server, 'tls_reload_failures_total')) === 1,
         'the refused reload');
         // The counter moves before the line is written, and the line
         // reaches this process through a pipe: wait for it.
         await waitFor(() => /TLS reload failed, keeping the old certificates: certificate .*cert\.pem: no start line/
                               .test(server.stderr()),
                       'the reload failure to be logged', 10000);
         assert.equal(await peerName(server, 'localhost'), 'second.test');
         assert.equal(await c.ask('and now'), 'and now');
         await c.close();
         await bystander.check();
       });
});

describe('certificates that cannot be used stop the start', () => {
  const bin = () => process.env.HERALD_ECHO;
  let good;
  before(() => {
    good = makeCertificate('localhost', { file: 'start' });
  });

  const cases = [
    ['a missing certificate', () => ['/nonexistent/cert.pem', good.key],
     /cannot read certificate \/nonexistent\/cert\.pem: No such file/],
    ['a missing key', () => [good.cert, '/nonexistent/key.pem'],
     /cannot read key \/nonexistent\/key\.pem: No such file/],
    ['a file that is no certificate', () => {
      const f = path.join(certDirectory(), 'junk.pem');
      fs.writeFileSync(f, 'junk\n');
      return [f, good.key];
    }, /certificate .*junk\.pem: no start line/],
    ['an expired certificate', () => {
      const e = makeExpiredCertificate('expired');
      return [e.cert, e.key];
    }, /certificate .*expired\.crt expired on Jan  2 00:00:00 2020 GMT/],
    ['a key of another certificate', () => {
      const other = makeCertificate('mismatch', { file: 'mismatch' });
      return [good.cert, other.key];
    }, /key .*mismatch\.key does not match certificate .*start\.crt/],
  ];
  for (const [what, files, pattern] of cases) {
    test(`${what}: one line, exit 1`, T, async () => {
      const [cert, key] = files();
      const r = await runToExit(bin(), ['--port', '0', '--tls-cert', cert,
                                        '--tls-key', key]);
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^herald-echo: /);
      assert.match(lines[0], pattern);
    });
  }

  test('an unreadable key: one line, exit 1', T, async (t) => {
    if (process.getuid?.() === 0)
      return t.skip('root reads files whatever their mode');
    const key = path.join(certDirectory(), 'locked.key');
    fs.copyFileSync(good.key, key);
    fs.chmodSync(key, 0o000);
    const r = await runToExit(bin(), ['--port', '0', '--tls-cert', good.cert,
                                      '--tls-key', key]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read key .*locked\.key: Permission denied/);
  });
});

/**
 * An EC P-256 key encrypted with AES-256 under `pass` by the openssl CLI and
 * a self-signed certificate for `name`; returns { cert, key }.
 */
function makeEncryptedKey(name, pass) {
  const dir = certDirectory();
  const key = path.join(dir, `${name}.enc.key`);
  const cert = path.join(dir, `${name}.enc.crt`);
  const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt',
           'ec_paramgen_curve:P-256', '-aes256', '-pass', `pass:${pass}`,
           '-out', key]);
  openssl(['req', '-x509', '-key', key, '-passin', `pass:${pass}`, '-subj',
           `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-days',
           '2', '-out', cert]);
  assert.match(fs.readFileSync(key, 'utf8'), /ENCRYPTED PRIVATE KEY/);
  return { cert, key };
}

describe('an encrypted key (herald-echo --tls-key-passphrase-file)', () => {
  const bin = () => process.env.HERALD_ECHO;
  const pass = 'correct horse battery';
  let enc;
  let passFile;
  before(() => {
    enc = makeEncryptedKey('localhost', pass);
    passFile = path.join(certDirectory(), 'passphrase');
    fs.writeFileSync(passFile, `${pass}\n`, { mode: 0o600 });
  });

  test('with the right passphrase wss:// works; SIGHUP reads the file again',
       T, async () => {
         // Files the server reloads from, rotated below.
         const cert = path.join(certDirectory(), 'rotating.crt');
         const key = path.join(certDirectory(), 'rotating.key');
         const file = path.join(certDirectory(), 'rotating.pass');
         fs.copyFileSync(enc.cert, cert);
         fs.copyFileSync(enc.key, key);
         fs.copyFileSync(passFile, file);
         const server = await startServer('HERALD_ECHO', [
           '--tls-cert', cert, '--tls-key', key,
           '--tls-key-passphrase-file', file]);
         try {
           assert.match(server.url, /^wss:/);
           const c = await Client.connect(server.url);
           assert.equal(await c.ask('sealed'), 'sealed');
           assert.equal(await peerName(server, 'localhost'), 'localhost');
           // A new key under a new passphrase, both files replaced.
           const next = makeEncryptedKey('rotated.test', 'another one');
           fs.copyFileSync(next.cert, cert);
           fs.copyFileSync(next.key, key);
           fs.writeFileSync(file, 'another one\r\n');
           server.proc.kill('SIGHUP');
           await waitFor(() => /TLS certificates reloaded/
                                 .test(server.stderr()), 'the reload');
           assert.equal(await peerName(server, 'localhost'), 'rotated.test');
           assert.equal(await c.ask('still here'), 'still here');
           await c.close();
           assert.doesNotMatch(server.stderr(), /correct horse|another one/);
         } finally {
           await stopServer(server);
         }
       });

  const cases = [
    ['a wrong passphrase', () => {
      const f = path.join(certDirectory(), 'wrong.pass');
      fs.writeFileSync(f, 'incorrect horse\n');
      return ['--tls-key-passphrase-file', f];
    }, /^herald-echo: key .*localhost\.enc\.key: wrong passphrase$/],
    ['no passphrase', () => [],
     /^herald-echo: key .*localhost\.enc\.key is encrypted and no passphrase was given$/],
    ['a missing passphrase file', () => ['--tls-key-passphrase-file',
                                         '/nonexistent/pass'],
     /^herald-echo: cannot read key passphrase file \/nonexistent\/pass: No such file/],
    ['an empty passphrase file', () => {
      const f = path.join(certDirectory(), 'empty.pass');
      fs.writeFileSync(f, '\n');
      return ['--tls-key-passphrase-file', f];
    }, /^herald-echo: key passphrase file .*empty\.pass is empty$/],
  ];
  for (const [what, extra, pattern] of cases) {
    test(`${what}: one line, exit 1`, T, async () => {
      const r = await runToExit(bin(), ['--port', '0', '--tls-cert', enc.cert,
                                        '--tls-key', enc.key, ...extra()]);
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], pattern);
      assert.doesNotMatch(r.stderr, /horse/);
    });
  }
});

describe('client certificates (--tls-ca)', () => {
  let server;
  let client;
  before(async () => {
    const ca = makeCertificate('Herald Test CA', { file: 'ca', isCa: true });
    const leaf = makeCertificate('localhost', { file: 'ca-server', ca });
    client = makeCertificate('client', { file: 'client', ca });
    server = await startServer('HERALD_TEST_SERVER', [
      '--tls-cert', leaf.cert, '--tls-key', leaf.key, '--tls-ca', ca.cert]);
  });
  after(() => stopServer(server));

  test('without a client certificate the connection fails', T, async () => {
    await assert.rejects(
      withTimeout(new Client(server.ws('/echo')).opened, 5000, 'a failure'));
  });

  test('with one signed by the CA it is served', T, async () => {
    const c = await Client.connect(server.ws('/echo'), undefined, {
      cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) });
    assert.equal(await c.ask('signed'), 'signed');
    await c.close();
  });

  test('with a self-signed one the connection fails', T, async () => {
    const self = makeCertificate('stranger', { file: 'stranger' });
    await assert.rejects(withTimeout(
      new Client(server.ws('/echo'), undefined, {
        cert: fs.readFileSync(self.cert), key: fs.readFileSync(self.key) })
        .opened, 5000, 'a failure'));
  });
});
