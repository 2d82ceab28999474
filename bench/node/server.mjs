// The chat room of Bun's WebSocket benchmark on Node with the `ws` package
// (see bench/README.md).
//   node bench/node/server.mjs [--host ADDR] [--port N] [--clients N]
//                              [--fault drop|duplicate|corrupt]
// `ws` has no topics: the room is a set of sockets and a publish is a loop.
import { WebSocketServer } from "ws";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option("host", "127.0.0.1");
const port = parseInt(option("port", "4001"), 10);
const expected = parseInt(option("clients", "32"), 10);
const room = new Set();

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false });

// For bench/client_check.sh only: --fault drop|duplicate|corrupt breaks
// the 100th chat message (drop: one member never gets it; duplicate: one
// member gets it twice; corrupt: every member gets it with its middle byte
// changed), so that the check can show the load client notices.
const fault = option("fault", "");
let chats = 0;

// The text is encoded once, not once per member.
function publish(text, chat = false) {
  const frame = Buffer.from(text);
  if (fault && chat && ++chats === 100) {
    const sent = Buffer.from(frame);
    if (fault === "corrupt") sent[sent.length >> 1] ^= 1; // ASCII stays ASCII: valid UTF-8
    let first = true;
    for (const ws of room) {
      if (first && fault === "drop") {
        first = false;
        continue;
      }
      if (first && fault === "duplicate") ws.send(sent, { binary: false });
      first = false;
      ws.send(sent, { binary: false });
    }
    return;
  }
  for (const ws of room) ws.send(frame, { binary: false });
}

wss.on("connection", (ws, req) => {
  const name = new URL(req.url, "http://localhost").searchParams.get("name") ?? "anonymous";
  room.add(ws);
  if (room.size === expected) setTimeout(() => publish("ready"), 100);
  ws.on("message", (data) => publish(`${name}: ${data}`, true));
  ws.on("close", () => room.delete(ws));
});

wss.on("listening", () => {
  console.log(`node ${process.version} ws listening on ws://${host}:${wss.address().port}/ (ready at ${expected} clients)`);
});
