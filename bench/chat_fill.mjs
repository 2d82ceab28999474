// Fills one herald-chat room with the npm `ws` client, as a new user would
// try it (bench/README.md, "Chat rooms"): N members join, 50 at a time, then
// 20 of them send one message each. Reports the bytes each member received
// while the room filled and the time until every member saw the room full.
//
//   node bench/chat_fill.mjs --port 3000 --members 250,500,1000
//
// Understands both protocols: join events with the whole member list
// (before issue #24) and with a member count.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../tests/integration/package.json'));
const WebSocket = require('ws');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(opt('port', '3000'));
const sizes = opt('members', '250,500,1000').split(',').map(Number);
const batch = Number(opt('batch', '50'));
const senders = Number(opt('senders', '20'));

function roomSize(e) {
  if (typeof e.count === 'number') return e.count;
  if (Array.isArray(e.members)) return e.members.length;
  return -1;
}

async function fill(n, run) {
  const room = `fill-${n}-${run}-${process.pid}`;
  const members = [];
  let full = 0;
  let fullAt = 0;
  let onFull = null;
  const started = performance.now();
  for (let i = 0; i < n; i += batch) {
    const opening = [];
    for (let j = i; j < Math.min(n, i + batch); ++j) {
      const m = { bytes: 0, bytesFull: 0, full: false, got: 0 };
      const ws = new WebSocket(
        `ws://127.0.0.1:${port}/ws?name=m${j}&room=${room}`,
        { perMessageDeflate: false });
      m.ws = ws;
      ws.on('message', (data) => {
        m.bytes += data.length;
        const e = JSON.parse(data.toString());
        if ((e.type === 'join' || e.type === 'members'
             || e.type === 'welcome') && roomSize(e) === n && !m.full) {
          m.full = true;
          m.bytesFull = m.bytes;
          if (++full === n) {
            fullAt = performance.now();
            if (onFull) onFull();
          }
        }
        if (e.type === 'message') ++m.got;
      });
      opening.push(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      }));
      members.push(m);
    }
    await Promise.all(opening);
  }
  if (full < n)
    await new Promise((resolve) => { onFull = resolve; });
  const joinSeconds = (fullAt - started) / 1000;
  for (let s = 0; s < Math.min(senders, n); ++s)
    members[s].ws.send(JSON.stringify({ type: 'message', text: `hello ${s}` }));
  const want = Math.min(senders, n);
  const deadline = Date.now() + 60000;
  while (members.some((m) => m.got < want) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  const delivered = members.every((m) => m.got >= want);
  const kb = members.reduce((a, m) => a + m.bytesFull, 0) / n / 1024;
  for (const m of members) m.ws.terminate();
  await new Promise((r) => setTimeout(r, 500));
  return { n, kb, joinSeconds, delivered };
}

console.log('members\tKB per client while filling\tseconds until all joined\tmessages delivered');
for (const n of sizes) {
  const r = await fill(n, 0);
  console.log(`${r.n}\t${r.kb.toFixed(0)}\t${r.joinSeconds.toFixed(2)}\t${r.delivered}`);
}
process.exit(0);
