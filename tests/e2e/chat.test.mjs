// End-to-end test of the chat page (app/chat/public) in a real browser:
// playwright-core drives Debian's Chromium (/usr/bin/chromium, headless)
// against app/herald-chat (HERALD_CHAT, set by CTest).
//
//   1. two pages join one room and see each other's messages and presence;
//      a third page joins later and gets the history in order; a page that
//      closes is shown as left on the others (and "Leave room" works)
//   2. permessage-deflate: with --deflate shared Chromium negotiates it and
//      messages still flow; with --deflate off it is not negotiated
//   3. reconnect: the server stops (SIGTERM: close 1001), the pages show it,
//      a new server starts on the same port, the pages reconnect by
//      themselves and chat again
//   4. --token: a page without the token is refused (401) and says so; with
//      ?token= it joins
//   5. a room bigger than the member list's page (520 members made with the
//      npm `ws` client, then one page): the page lists the first 500 names
//      and the count, follows joins and leaves, shows the rest on request,
//      skips join notices in a big room, and still chats
//   6. over TLS (--tls-cert/--tls-key, a certificate made now with the
//      openssl CLI; the browser context ignores certificate errors): the
//      page loads over https://, connects with wss:// and two pages chat
//
// Screenshots land in tests/e2e/artifacts/ (PNG). Everything waits on
// conditions in the page (data attributes the page keeps up to date), never
// on fixed sleeps; the timeouts are generous because CI machines are slow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  httpRequest, makeCertificate, startServer, stopServer, WebSocket,
} from '../integration/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!fs.existsSync(path.join(here, 'node_modules/playwright-core/package.json')))
  throw new Error('tests/e2e/node_modules/playwright-core is missing: run ' +
                  '`npm ci` in tests/e2e (scripts/setup.sh browser does)');
const { chromium } = await import('playwright-core');

const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(here, 'artifacts');
// Waits in the page; scaled for sanitizer builds and slow machines.
const WAIT = Number(process.env.HERALD_E2E_WAIT_MS || 45000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- the server --------------------------------------------------------------

/**
 * Starts herald-chat (HERALD_CHAT) with `args` (port 0 unless `args` give
 * one) through the integration tests' starter, which also kills it when
 * this process ends and checks its stderr for sanitizer reports on stop.
 * `url` is the page's http://HOST:PORT.
 */
async function startChatOnce(args) {
  const server = await startServer('HERALD_CHAT', args);
  return Object.assign(server, { url: server.httpUrl });
}

/**
 * startChatOnce, retried while the port is still taken (a restart on the
 * same port right after the previous server exited).
 */
async function startChat(args = []) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      return await startChatOnce(args);
    } catch (e) {
      const busy = /in use|EADDRINUSE|bind/i.test(e.message ?? '');
      if (!busy || Date.now() > deadline)
        throw e;
      await sleep(250);
    }
  }
}

const stopChat = stopServer;

/** The status of a WebSocket upgrade request to `path` (no upgrade: 101 never expected). */
function upgradeStatus(server, pathAndQuery) {
  return new Promise((resolve, reject) => {
    const u = new URL(server.url);
    const req = http.request({
      host: u.hostname, port: u.port, path: pathAndQuery, agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
      },
    });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
}

// -- the browser -------------------------------------------------------------

let browser;
const pageErrors = [];

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM),
            `${CHROMIUM} is missing: scripts/setup.sh browser installs it`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // playwright-core starts Chromium with a fresh temporary user data dir
  // (--user-data-dir=<new temp dir>, removed when the browser closes) and
  // one isolated context per page below, so nothing is shared between runs
  // or between the test's users.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
});

after(async () => {
  await browser?.close();
});

/**
 * Opens the chat page of `server` in a new browser context, logs in as
 * `name` into `room` and (unless `online: false`) waits until connected.
 */
async function openChat(server, name, room, { token, viewport, online = true, loginShot } = {}) {
  // The TLS test's certificate is self-signed.
  const context = await browser.newContext({ viewport: viewport ?? { width: 1100, height: 720 },
                                             ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  await page.goto(`${server.url}/${query}#${encodeURIComponent(room)}`);
  await page.waitForFunction(() => window.chat && document.body.dataset.view === 'login');
  // The room comes from the address (#room); the name is typed in.
  assert.equal(await page.inputValue('#room'), room);
  await page.fill('#name', name);
  if (loginShot)
    await shot(page, loginShot);
  await page.click('#join');
  await page.waitForFunction(() => document.body.dataset.view === 'room');
  if (online)
    await waitStatus(page, 'online');
  return page;
}

function waitStatus(page, status) {
  return page.waitForFunction((s) => document.body.dataset.status === s, status,
                              { polling: 100, timeout: WAIT });
}

/** Waits until the page's member list is exactly `names` (sorted). */
async function waitMembers(page, names) {
  const want = [...names].sort();
  try {
    await page.waitForFunction((w) => {
      const got = [...document.querySelectorAll('#members li')].map((li) => li.dataset.name);
      return JSON.stringify(got) === JSON.stringify(w);
    }, want, { polling: 100, timeout: WAIT });
  } catch (e) {
    throw new Error(`member list is ${JSON.stringify(await members(page))}, ` +
                    `expected ${JSON.stringify(want)}: ${e.message}`);
  }
}

const members = (page) => page.$$eval('#members li', (lis) => lis.map((li) => li.dataset.name));

/** Messages shown in the page, in order. */
const messages = (page) => page.$$eval('#messages .msg', (els) => els.map((e) => ({
  id: e.dataset.id,
  name: e.dataset.name,
  text: e.querySelector('.text').textContent,
  mine: e.classList.contains('mine'),
  server: e.dataset.server === 'true',
  history: e.dataset.history === '1',
})));

/** Waits until a message with `text` is shown; returns it. */
async function waitMessage(page, text) {
  try {
    await page.waitForFunction((t) =>
      [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
    text, { polling: 100, timeout: WAIT });
  } catch (e) {
    throw new Error(`no message ${JSON.stringify(text)} in ` +
                    `${JSON.stringify(await messages(page))}: ${e.message}`);
  }
  return (await messages(page)).find((m) => m.text === text);
}

/** Waits until a join/leave notice about `name` is shown. */
function waitNotice(page, event, name) {
  return page.waitForFunction(([ev, n]) =>
    [...document.querySelectorAll(`#messages .notice[data-event="${ev}"]`)]
      .some((e) => e.dataset.name === n),
  [event, name], { polling: 100, timeout: WAIT });
}

/** Types `text` into the composer and sends it with Enter. */
async function say(page, text) {
  await page.waitForFunction(() => document.body.dataset.status === 'online',
                             null, { polling: 100, timeout: WAIT });
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await page.waitForFunction(() => document.querySelector('#text').value === '',
                             null, { polling: 100, timeout: WAIT });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

function noPageErrors() {
  assert.deepEqual(pageErrors.splice(0), [], 'uncaught errors in the page');
}

// -- 1. two pages, a late third one, a page that closes ------------------------

test('two pages chat, a third gets the history, a closed page is shown as left',
     { timeout: 240000 }, async () => {
  const server = await startChat(['--deflate', 'shared']);
  const contexts = [];
  try {
    const room = 'lobby';
    const alice = await openChat(server, 'alice', room, { loginShot: '1-login' });
    contexts.push(alice.context());
    await waitMembers(alice, ['alice']);
    await waitNotice(alice, 'join', 'alice');

    const bob = await openChat(server, 'bob', room);
    contexts.push(bob.context());
    await waitMembers(bob, ['alice', 'bob']);
    await waitMembers(alice, ['alice', 'bob']);
    await waitNotice(alice, 'join', 'bob');

    // Messages both ways; markup in a message stays text.
    const texts = [
      ['alice', 'Hi Bob 👋'],
      ['bob', 'Hello Alice! <b>not bold</b> & <img src=x onerror=alert(1)>'],
      ['alice', 'Multi-line\nworks too'],
      ['bob', 'Great, see you at 5'],
    ];
    for (const [who, text] of texts) {
      await say(who === 'alice' ? alice : bob, text);
      await waitMessage(alice, text);
      await waitMessage(bob, text);
    }
    for (const page of [alice, bob]) {
      const shown = await messages(page);
      assert.deepEqual(shown.map((m) => [m.name, m.text]), texts);
      const me = page === alice ? 'alice' : 'bob';
      assert.deepEqual(shown.map((m) => m.mine), texts.map(([who]) => who === me));
      assert.equal(new Set(shown.map((m) => m.id)).size, texts.length, 'ids are unique');
      assert.equal(await page.$$eval('#messages .text b, #messages .text img', (e) => e.length), 0,
                   'user text is never parsed as HTML');
    }

    // A message posted over HTTP shows as a server message.
    const res = await fetch(`${server.url}/rooms/${room}/messages?name=announcer`,
                            { method: 'POST', body: 'Maintenance tonight at 23:00' });
    assert.equal(res.status, 200, await res.text());
    const announcement = await waitMessage(alice, 'Maintenance tonight at 23:00');
    assert.equal(announcement.server, true);
    assert.equal(announcement.mine, false);
    await waitMessage(bob, 'Maintenance tonight at 23:00');
    texts.push(['announcer', 'Maintenance tonight at 23:00']);

    await shot(alice, '1-alice-chatting');
    await shot(bob, '1-bob-chatting');
    const aliceIds = (await messages(alice)).map((m) => m.id);

    // A third page (a phone-sized one) joins later and gets the history in order.
    const carol = await openChat(server, 'carol', room, { viewport: { width: 390, height: 780 } });
    contexts.push(carol.context());
    await waitMembers(carol, ['alice', 'bob', 'carol']);
    await waitMembers(alice, ['alice', 'bob', 'carol']);
    await waitMembers(bob, ['alice', 'bob', 'carol']);
    await waitNotice(bob, 'join', 'carol');
    await waitMessage(carol, texts.at(-1)[1]);
    let history = await messages(carol);
    assert.deepEqual(history.map((m) => [m.name, m.text]), texts, 'history in order');
    assert.deepEqual(history.map((m) => m.id), aliceIds, 'same ids as the live messages');
    assert.ok(history.every((m) => m.history), 'rendered from the history');
    assert.ok(history.every((m) => !m.mine));
    // History goes before carol's own join notice, live messages after it.
    await say(carol, 'Hi all, carol here');
    await waitMessage(alice, 'Hi all, carol here');
    await waitMessage(bob, 'Hi all, carol here');
    const order = await carol.$$eval('#messages > *', (els) => els.map((e) =>
      e.classList.contains('msg') ? 'msg' : e.dataset.event));
    assert.deepEqual(order.slice(-3), ['msg', 'join', 'msg'], `order: ${order}`);
    await shot(carol, '1-carol-phone-history');
    await carol.click('#members-toggle');
    await carol.waitForFunction(() => document.body.classList.contains('sidebar-open'));
    await shot(carol, '1-carol-phone-members');
    await carol.click('#members-toggle');

    // bob closes his page: the others show that he left.
    await bob.context().close();
    await waitNotice(alice, 'leave', 'bob');
    await waitNotice(carol, 'leave', 'bob');
    await waitMembers(alice, ['alice', 'carol']);
    await waitMembers(carol, ['alice', 'carol']);
    await shot(alice, '1-alice-bob-left');

    // carol leaves with the button: back on the login form, alice sees it.
    await carol.click('#leave');
    await carol.waitForFunction(() => document.body.dataset.view === 'login' &&
                                      document.body.dataset.status === 'idle');
    await waitNotice(alice, 'leave', 'carol');
    await waitMembers(alice, ['alice']);
    assert.equal(await carol.inputValue('#name'), 'carol', 'the name is remembered');
    // No reconnect after leaving.
    assert.notEqual(await carol.evaluate(() => window.chat.state.status), 'connecting');
    history = await messages(alice);
    assert.equal(new Set(history.map((m) => m.id)).size, history.length, 'no duplicates');
    noPageErrors();
  } finally {
    for (const c of contexts)
      await c.close().catch(() => {});
    await stopChat(server);
  }
});

// -- 2. permessage-deflate in Chromium -----------------------------------------

test('Chromium negotiates permessage-deflate with --deflate shared', { timeout: 180000 }, async () => {
  for (const mode of ['shared', 'off']) {
    const server = await startChat(['--deflate', mode]);
    const contexts = [];
    try {
      const room = `deflate-${mode}`;
      const a = await openChat(server, 'dora', room);
      const b = await openChat(server, 'dave', room);
      contexts.push(a.context(), b.context());
      for (const page of [a, b]) {
        const ext = await page.evaluate(() => window.chat.socket.extensions);
        if (mode === 'shared') {
          assert.match(ext, /permessage-deflate/, `extensions: ${JSON.stringify(ext)}`);
          assert.equal(await page.evaluate(() => document.body.dataset.extensions), ext);
        } else {
          assert.equal(ext, '', `--deflate off negotiated ${JSON.stringify(ext)}`);
        }
      }
      // Compressible and incompressible text, both ways.
      const long = 'All work and no play makes Jack a dull boy. '.repeat(80);
      const noise = crypto.randomBytes(1500).toString('base64');
      // (Each message is seen on both pages before the next one is sent:
      // messages of different senders have no order of their own.)
      for (const [page, text] of [[a, long], [b, noise], [a, 'short one']]) {
        await say(page, text);
        await waitMessage(a, text);
        await waitMessage(b, text);
      }
      assert.deepEqual((await messages(b)).map((m) => m.text).slice(0, 3), [long, noise, 'short one']);
      if (mode === 'shared') {
        // An error answer is shown and the connection stays open.
        await a.evaluate(() => window.chat.socket.send('{"type":"no-such-type"}'));
        await a.waitForSelector('#messages .error-line');
        await say(a, 'still here');
        await waitMessage(b, 'still here');
        assert.equal(await a.evaluate(() => document.body.dataset.status), 'online');
        await shot(a, '2-deflate');
      }
      noPageErrors();
    } finally {
      for (const c of contexts)
        await c.close().catch(() => {});
      await stopChat(server);
    }
  }
});

// -- 3. reconnect after a server restart ---------------------------------------

test('pages reconnect by themselves when the server comes back', { timeout: 240000 }, async () => {
  let server = await startChat(['--deflate', 'shared']);
  const port = server.port;
  const contexts = [];
  try {
    const room = 'ops';
    const erin = await openChat(server, 'erin', room);
    const frank = await openChat(server, 'frank', room);
    contexts.push(erin.context(), frank.context());
    await waitMembers(erin, ['erin', 'frank']);
    await say(erin, 'before the restart');
    await waitMessage(frank, 'before the restart');

    // The server goes away: every socket is closed with 1001.
    await stopChat(server);
    server = null;
    for (const page of [erin, frank]) {
      await page.waitForFunction(() => document.body.dataset.status !== 'online',
                                 null, { polling: 100, timeout: WAIT });
      const close = await page.evaluate(() => window.chat.state.lastClose);
      assert.equal(close?.code, 1001, `close: ${JSON.stringify(close)}`);
      await page.waitForSelector('#banner:not([hidden])');
    }
    await waitStatus(erin, 'offline');
    await shot(erin, '3-offline');
    assert.equal(await erin.isDisabled('#send'), true, 'no sending while offline');

    // A new server on the same port: the pages come back by themselves.
    server = await startChat(['--deflate', 'shared', '--port', String(port)]);
    assert.equal(server.port, port);
    await waitStatus(erin, 'online');
    await waitStatus(frank, 'online');
    await waitMembers(erin, ['erin', 'frank']);
    await waitMembers(frank, ['erin', 'frank']);
    await erin.waitForSelector('#banner', { state: 'hidden' });
    await say(frank, 'after the restart');
    await waitMessage(erin, 'after the restart');
    await say(erin, 'welcome back');
    await waitMessage(frank, 'welcome back');
    // Erin sees her own line when the room echoes it, which may come after
    // Frank's copy (another socket, possibly another loop).
    await waitMessage(erin, 'welcome back');
    for (const page of [erin, frank]) {
      const shown = await messages(page);
      assert.deepEqual(shown.map((m) => m.text),
                       ['before the restart', 'after the restart', 'welcome back']);
      assert.equal(await page.$$eval('#messages .notice.conn', (e) => e.length) >= 2, true,
                   'connection lost and reconnected notices');
    }
    await shot(erin, '3-reconnected');
    noPageErrors();
  } finally {
    for (const c of contexts)
      await c.close().catch(() => {});
    if (server)
      await stopChat(server);
  }
});

// -- 4. --token ----------------------------------------------------------------

test('with --token the page needs ?token= to join', { timeout: 180000 }, async () => {
  const secret = 's3cret-token';
  const server = await startChat(['--deflate', 'shared', '--token', secret]);
  const contexts = [];
  try {
    assert.equal(await upgradeStatus(server, '/ws?name=gina&room=vip'), 401);
    assert.equal(await upgradeStatus(server, '/ws?name=gina&room=vip&token=wrong'), 401);
    // The page itself stays open.
    assert.equal((await fetch(`${server.url}/`)).status, 200);

    // Without the token: refused, the page says so and does not join.
    const stranger = await openChat(server, 'mallory', 'vip', { online: false });
    contexts.push(stranger.context());
    await stranger.waitForFunction(() => document.body.dataset.error === 'unauthorized',
                                   null, { polling: 100, timeout: WAIT });
    assert.equal(await stranger.evaluate(() => document.body.dataset.status), 'offline');
    assert.match(await stranger.textContent('#banner'), /token/i);
    assert.deepEqual(await members(stranger), []);
    await shot(stranger, '4-no-token');

    // With the token (from the page's own address) it joins and chats.
    const gina = await openChat(server, 'gina', 'vip', { token: secret });
    contexts.push(gina.context());
    assert.match(await gina.evaluate(() => window.chat.socket.url),
                 new RegExp(`[?&]token=${secret}(&|$)`));
    await waitMembers(gina, ['gina']);
    await say(gina, 'only invited people here');
    const m = await waitMessage(gina, 'only invited people here');
    assert.equal(m.mine, true);
    // The refused page got nothing.
    assert.deepEqual(await messages(stranger), []);
    await shot(gina, '4-with-token');
    noPageErrors();
  } finally {
    for (const c of contexts)
      await c.close().catch(() => {});
    await stopChat(server);
  }
});

// -- 5. a room bigger than the member list's page --------------------------------

/** A member made with the npm `ws` client; resolves once it is in the room. */
function wsMember(server, name, room) {
  return new Promise((resolve, reject) => {
    const u = new URL(server.url);
    const ws = new WebSocket(`ws://${u.host}/ws?name=${name}&room=${room}`,
                             { perMessageDeflate: false });
    const got = [];
    ws.on('message', (d) => {
      const e = JSON.parse(d.toString());
      got.push(e);
      if (e.type === 'history')
        resolve({ ws, got, name });
    });
    ws.once('error', reject);
  });
}

test('a room bigger than the member page lists the first names and the count',
     { timeout: 240000 }, async () => {
  const server = await startChat();
  const room = 'stadium';
  const crowd = [];
  const contexts = [];
  const name = (i) => `m${String(i).padStart(3, '0')}`;
  try {
    for (let i = 0; i < 520; i += 40) {
      const batch = [];
      for (let j = i; j < i + 40; ++j)
        batch.push(wsMember(server, name(j), room));
      crowd.push(...await Promise.all(batch));
    }
    const ada = await openChat(server, 'ada', room);
    contexts.push(ada.context());
    const count = () => ada.evaluate(() => document.querySelector('#member-count').textContent);
    // The first page: ada and the first 499 of the crowd, sorted; the count.
    await ada.waitForFunction(() => document.querySelectorAll('#members li').length === 500 &&
                                    document.querySelector('#member-count').textContent === '521',
                              null, { polling: 100, timeout: WAIT });
    const first = await members(ada);
    assert.deepEqual(first, ['ada', ...Array.from({ length: 499 }, (_, i) => name(i))]);
    assert.equal(await ada.textContent('#member-more-text'), 'and 21 more');
    assert.equal(await ada.isVisible('#member-more-button'), true);
    assert.match(await ada.textContent('#status-text'), /521 people here/);
    await shot(ada, '5-big-room');

    // Someone who sorts into the list joins: listed, the last one drops
    // out of it; someone past the list's end: counted only. No notices in
    // a room this big.
    crowd.push(await wsMember(server, 'bea', room));
    crowd.push(await wsMember(server, 'zed', room));
    await ada.waitForFunction(() => document.querySelector('#member-count').textContent === '523',
                              null, { polling: 100, timeout: WAIT });
    const listed = await members(ada);
    assert.equal(listed.length, 500);
    assert.deepEqual(listed.slice(0, 3), ['ada', 'bea', 'm000']);
    assert.equal(listed.at(-1), name(497));
    assert.ok(!listed.includes('zed'));
    assert.equal(await ada.$$eval('#messages .notice[data-event="join"]', (e) => e.length), 1,
                 'only ada\'s own join notice');

    // A listed member leaves: gone from the list and the count.
    crowd[0].ws.close();
    await ada.waitForFunction(() => document.querySelector('#member-count').textContent === '522' &&
                                    !document.querySelector('#members li[data-name="m000"]'),
                              null, { polling: 100, timeout: WAIT });

    // "Show more" loads the rest of the list.
    await ada.click('#member-more-button');
    await ada.waitForFunction(() => document.querySelectorAll('#members li').length === 522,
                              null, { polling: 100, timeout: WAIT });
    const all = await members(ada);
    assert.deepEqual(all, [...all].sort());
    assert.equal(all.at(-1), 'zed');
    assert.equal(await ada.isVisible('#member-more'), false);
    assert.equal(await count(), '522');

    // The room still chats both ways.
    await say(ada, 'hello stadium');
    await waitMessage(ada, 'hello stadium');
    const listener = crowd[1];
    await new Promise((resolve) => {
      const check = () => (listener.got.some((e) => e.type === 'message' &&
                                                    e.text === 'hello stadium')
        ? resolve() : setTimeout(check, 50));
      check();
    });
    crowd[2].ws.send(JSON.stringify({ type: 'message', text: 'hi ada' }));
    await waitMessage(ada, 'hi ada');
    await ada.evaluate(() => { document.querySelector('#members').scrollTop = 1e6; });
    await shot(ada, '5-big-room-all');
    noPageErrors();
  } finally {
    for (const c of contexts)
      await c.close().catch(() => {});
    for (const m of crowd)
      m.ws.terminate();
    await stopChat(server);
  }
});

// -- 6. https:// and wss:// ------------------------------------------------------

test('over TLS the page loads over https and chats over wss', { timeout: 180000 }, async () => {
  const { cert, key } = makeCertificate('localhost', { file: 'e2e' });
  const server = await startChat(['--tls-cert', cert, '--tls-key', key]);
  const contexts = [];
  try {
    assert.match(server.url, /^https:/);
    const alice = await openChat(server, 'alice', 'secure');
    contexts.push(alice.context());
    const bob = await openChat(server, 'bob', 'secure');
    contexts.push(bob.context());
    assert.equal(await alice.evaluate(() => location.protocol), 'https:');
    await waitMembers(alice, ['alice', 'bob']);
    await say(alice, 'over TLS 🔒');
    await waitMessage(bob, 'over TLS 🔒');
    await say(bob, 'both ways');
    await waitMessage(alice, 'both ways');
    await shot(alice, '6-tls');
    // Both pages' WebSockets (and this request) are TLS connections.
    const res = await httpRequest(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    const m = res.body.match(/^herald_tls_connections (\d+)$/m);
    assert.ok(m && Number(m[1]) >= 2, `tls_connections: ${m?.[1]}`);
    noPageErrors();
  } finally {
    for (const c of contexts)
      await c.close();
    await stopChat(server);
  }
});
