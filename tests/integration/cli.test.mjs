// The command lines of every program (app/cli/options.hpp): --help lists
// the options and exits 0; an unknown option, a malformed or missing value
// and a stray argument each get one line on stderr that names them, and
// status 2, before anything starts; "--name=VALUE" and a repeated option
// (the last one counts) are taken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';

import { sanitizerReports } from './helpers.mjs';

// Each program with the options its callers use (scripts, tests, bench/,
// README), which --help must list, and a value it must refuse.
const programs = [
  {
    env: 'HERALD_ECHO', name: 'herald-echo',
    options: ['--host', '--port', '--max-payload', '--idle-timeout',
              '--deflate', '--redis', '--auth-delay-ms', '--stop-deadline-ms'],
    malformed: ['--port', 'abc'],
    server: true,
  },
  {
    env: 'HERALD_CHAT', name: 'herald-chat',
    options: ['--host', '--port', '--history', '--history-ttl', '--token',
              '--deflate', '--redis', '--idle-timeout', '--stop-deadline-ms',
              '--linger', '--public'],
    malformed: ['--history', '12x'],
    server: true,
  },
  {
    env: 'HERALD_BOT', name: 'herald-bot',
    options: ['--host', '--port', '--tick-ms'],
    malformed: ['--port', 'abc'],
    server: true,
  },
  {
    env: 'HERALD_BENCH_SERVER', name: 'herald-bench-server',
    options: ['--host', '--port', '--clients', '--threads', '--redis',
              '--defer', '--send-buffer', '--release-check'],
    malformed: ['--port', 'abc'],
    server: true,
  },
  {
    env: 'HERALD_TEST_SERVER', name: 'herald-test-server',
    options: ['--host', '--port', '--idle-timeout', '--no-pings',
              '--max-payload', '--max-header', '--max-body',
              '--request-timeout-ms', '--keep-alive-ms', '--max-connections',
              '--backpressure-limit', '--close-on-backpressure-limit',
              '--deferred-timeout-ms', '--max-deferred', '--stop-deadline-ms',
              '--message-rate', '--message-burst', '--rate-limit-close',
              '--max-subscriptions'],
    malformed: ['--port', '70000'],
    server: true,
  },
  {
    env: 'HERALD_PUBSUB_SERVER', name: 'herald-pubsub-test-server',
    options: ['--port', '--backpressure-limit', '--close-on-backpressure',
              '--close-on-backpressure-limit', '--publish-to-self',
              '--max-payload', '--idle-timeout', '--max-connections',
              '--send-buffer', '--request-timeout-ms', '--redis',
              '--redis-prefix', '--deflate'],
    malformed: ['--port', 'abc'],
    server: true,
  },
  {
    env: 'HERALD_BENCH_CLIENT', name: 'herald-bench-client',
    options: ['--host', '--port', '--port2', '--mode', '--clients',
              '--messages', '--payload', '--duration', '--warmup',
              '--server-pid', '--interval-ms', '--connect-parallel',
              '--settle', '--timeout', '--quiet', '--verbose'],
    malformed: ['--duration', '1.5s'],
  },
  {
    env: 'HERALD_CHAT_LOAD', name: 'herald-chat-load',
    options: ['--port', '--members', '--room', '--rate', '--duration',
              '--senders', '--server-pid', '--connect-parallel', '--timeout'],
    malformed: ['--members', 'many'],
  },
  {
    env: 'HERALD_BENCH_SENDPATH', name: 'herald-bench-sendpath',
    options: ['--mode', '--conns', '--frame', '--seconds', '--batch'],
    malformed: ['--conns', '-1'],
  },
];

// Bounds a run of a program that should exit at once: one still running
// then (a load client trying to connect) has taken the command line.
const GUARD_MS = 20000;

/**
 * Runs `bin args` until it exits, prints that it is listening (then it is
 * killed) or GUARD_MS pass (killed too); resolves with { code, stdout,
 * stderr, listening, hung }.
 */
function run(bin, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let listening = false;
    let hung = false;
    const guard = setTimeout(() => {
      hung = true;
      proc.kill('SIGKILL');
    }, GUARD_MS);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      stdout += d;
      if (!listening && /listening on/.test(stdout)) {
        listening = true;
        proc.kill('SIGKILL');
      }
    });
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr, listening, hung });
    });
  });
}

function binary(p) {
  const bin = process.env[p.env];
  assert.ok(bin, `${p.env} is not set (tests/integration/CMakeLists.txt)`);
  assert.ok(fs.existsSync(bin), `${p.env}=${bin} does not exist`);
  return bin;
}

/** Asserts a refused command line: status 2, one stderr line naming `what`. */
function assertRefused(p, r, what) {
  assert.equal(r.listening, false, `${p.name} started serving anyway`);
  assert.equal(r.hung, false, `${p.name} still ran after ${GUARD_MS} ms`);
  assert.deepEqual(sanitizerReports(r.stderr), []);
  assert.equal(r.code, 2, `${p.name}: status ${r.code}, stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line expected:\n${r.stderr}`);
  assert.ok(lines[0].startsWith(`${p.name}: `), lines[0]);
  assert.ok(lines[0].includes(what), `"${what}" not named: ${lines[0]}`);
  assert.equal(r.stdout, '');
}

for (const p of programs) {
  const skip = process.env[p.env] ? false : `${p.env} not set (not built)`;

  test(`${p.name} --help lists the options and exits 0`, { skip },
       async () => {
    const bin = binary(p);
    for (const flag of ['--help', '-h']) {
      const r = await run(bin, [flag]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`^usage: ${p.name} \\[options\\]\n`));
      for (const opt of [...p.options, '--help'])
        assert.match(r.stdout, new RegExp(`^  (-h \\[ )?${opt}( |$)`, 'm'),
                     `${opt} missing from ${flag}:\n${r.stdout}`);
    }
  });

  test(`${p.name} refuses an unknown option`, { skip }, async () => {
    const r = await run(binary(p), ['--no-such-option', '1']);
    assertRefused(p, r, "'--no-such-option'");
  });

  test(`${p.name} refuses a malformed value`, { skip }, async () => {
    const [opt, value] = p.malformed;
    const r = await run(binary(p), [opt, value]);
    assertRefused(p, r, `'${opt}'`);
    assert.ok(r.stderr.includes(`'${value}'`), r.stderr);
  });

  test(`${p.name} refuses a missing value`, { skip }, async () => {
    const opt = p.malformed[0];
    const r = await run(binary(p), [opt]);
    assertRefused(p, r, `'${opt}'`);
  });

  test(`${p.name} refuses a stray argument`, { skip }, async () => {
    const r = await run(binary(p), ['stray']);
    assertRefused(p, r, "'stray'");
  });

  if (p.server) {
    test(`${p.name} takes --name=VALUE and the last of a repeated option`,
         { skip }, async () => {
      // 70000 is no port: only the last --port counts.
      const r = await run(binary(p), ['--port', '70000', '--port=0']);
      assert.equal(r.listening, true,
                   `${p.name} did not start (${r.code}):\n${r.stderr}`);
      assert.deepEqual(sanitizerReports(r.stderr), []);
    });
  }
}

test('an out-of-range value names the range', async () => {
  const p = programs[0];
  const r = await run(binary(p), ['--port', '65536']);
  assertRefused(p, r, "'--port'");
  assert.match(r.stderr, /from 0 to 65535/);
});

test('a word outside the choices names them', async () => {
  const p = programs[0];
  const r = await run(binary(p), ['--deflate', 'maybe']);
  assertRefused(p, r, "'--deflate'");
  assert.match(r.stderr, /one of off, shared, dedicated/);
});
