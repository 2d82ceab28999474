// The chat room of Bun's WebSocket benchmark on Bun.serve (see bench/README.md).
//   bun bench/bun/server.mjs [--host ADDR] [--port N] [--clients N]
//                            [--tls-cert FILE --tls-key FILE]
// A client connects to /?name=NAME and joins the topic "room"; once --clients
// members are connected the server publishes "ready"; every message m from
// NAME goes to the whole room, sender included, as "NAME: m".
function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const hostname = option("host", "127.0.0.1");
const port = parseInt(option("port", "4001"), 10);
const expected = parseInt(option("clients", "32"), 10);
const tlsCert = option("tls-cert", "");
const tlsKey = option("tls-key", "");
let connected = 0;

const server = Bun.serve({
  hostname,
  port,
  // Bun's own TLS (wss://) on the same certificate as Herald's run.
  tls: tlsCert ? { cert: Bun.file(tlsCert), key: Bun.file(tlsKey) } : undefined,
  fetch(req, server) {
    const name = new URL(req.url).searchParams.get("name") ?? "anonymous";
    if (server.upgrade(req, { data: { name } })) return;
    return new Response("WebSocket upgrade expected\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    publishToSelf: true,
    open(ws) {
      ws.subscribe("room");
      if (++connected === expected) {
        // As in Bun's own benchmark server: "ready" 100 ms after the last join.
        setTimeout(() => server.publish("room", "ready"), 100);
      }
    },
    message(ws, msg) {
      // publishText returns 0 when the message was dropped.
      if (ws.publishText("room", `${ws.data.name}: ${msg}`) === 0) {
        throw new Error("publish dropped a message");
      }
    },
    close() {
      connected--;
    },
  },
});

console.log(`bun ${Bun.version} listening on ${tlsCert ? "wss" : "ws"}://${server.hostname}:${server.port}/ (ready at ${expected} clients)`);
