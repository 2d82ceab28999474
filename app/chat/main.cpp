// herald-chat: the bundled chat application. The page at /, a WebSocket per
// tab at /ws?name=NAME&room=ROOM, rooms as topics, a presence actor and a
// history actor per room; POST /rooms/ROOM/messages, /health, /metrics.
// Protocol and endpoints: docs/chat-protocol.md.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>
#include <herald/app/cli/options.hpp>

#include "room.hpp"

#ifndef HERALD_CHAT_PUBLIC_DIR
#define HERALD_CHAT_PUBLIC_DIR "app/chat/public"
#endif

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 3000;
  std::string public_dir = HERALD_CHAT_PUBLIC_DIR;
  std::string token;
  chat::presence_options presence_opts;
  std::string deflate_mode = "off";
  std::chrono::seconds idle{120};
  herald::redis_options redis;
  herald::runtime_options rt_opts;
  herald::topic_options topics{.linger = std::chrono::milliseconds{20}};
  herald::net::tls_options tls;
  herald::cli::options opts{
    "herald-chat", "The chat application: its page at /, a WebSocket per tab "
                   "at /ws (docs/chat-protocol.md)."};
  opts.add("host", "ADDR", host, "address to listen on");
  opts.add("port", "N", port, "port, 0 picks a free one").range(0, 65535);
  opts
    .add("history", "N", presence_opts.history,
         "messages kept per room for joiners, 0: none")
    .range(0, 1000000);
  opts
    .add("history-ttl", "SECS", presence_opts.history_ttl,
         "how long a room's history outlives its last member")
    .range(0, 10ll * 365 * 24 * 3600);
  opts.add("token", "SECRET", token,
           "require ?token=SECRET or 'Authorization: Bearer SECRET' for /ws "
           "and POST /rooms/... (401 without)");
  opts
    .add("deflate", "MODE", deflate_mode,
         "permessage-deflate: off, shared or dedicated")
    .one_of({"off", "shared", "dedicated"});
  opts.add("redis", "URL", redis.url,
           "share rooms with other instances through Redis pub/sub "
           "(redis://[user:password@]host[:port][/db], default "
           "$HERALD_REDIS_URL); presence and history stay per instance");
  opts.add("idle-timeout", "SECS", idle, "close connections silent this long")
    .range(0, 86400);
  opts.add("tls-cert", "FILE", tls.cert_file,
           "serve https:// and wss:// with this PEM certificate chain (needs "
           "--tls-key; SIGHUP reloads both)");
  opts.add("tls-key", "FILE", tls.key_file,
           "the PEM private key of --tls-cert");
  opts.add("tls-key-passphrase-file", "FILE", tls.passphrase_file,
           "the passphrase of an encrypted --tls-key: the first line of FILE "
           "(read again on SIGHUP)");
  opts
    .add("stop-deadline-ms", "N", rt_opts.stop_deadline,
         "on SIGTERM/SIGINT let connections go on for N ms, then close the "
         "rest with 1001; a second signal closes them at once")
    .range(0, 86400000);
  opts
    .add("linger", "MS", topics.linger,
         "rooms of 1,000 members or more gather messages for up to MS ms "
         "into one write per member, 0: off")
    .range(0, 10000);
  opts.add("public", "DIR", public_dir, "directory of the page");
  opts.parse_or_exit(argc, argv);
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    std::fprintf(stderr, "herald-chat: --tls-cert and --tls-key go together\n");
    return 2;
  }
  // Unlike arguments, the environment is not shown to other users by ps
  // (read after parsing, so --help does not print it either).
  const char* env_url = std::getenv("HERALD_REDIS_URL");
  if (env_url != nullptr && redis.url.empty())
    redis.url = env_url;
  herald::deflate_options deflate;
  deflate.enabled = deflate_mode != "off";
  deflate.dedicated_compressor = deflate_mode == "dedicated";
  herald::runtime rt{rt_opts};
  // The handlers need the presence actor and presence needs the server's
  // topic registry: presence starts first and waits for it. So does the
  // auth actor, which checks tokens.
  auto presence = chat::spawn_presence(rt.system(), presence_opts);
  auto auth = chat::spawn_auth(rt.system(), token);
  try {
    const chat::site pages{public_dir};
    auto handlers = chat::handlers(presence, presence_opts.history);
    handlers.idle_timeout = idle;
    handlers.per_message_deflate = deflate;
    auto server = herald::serve<chat::member>(
      rt, {
            .hostname = host,
            .port = static_cast<std::uint16_t>(port),
            .fetch =
              [&pages, &token, auth](herald::request& req,
                                     herald::server<chat::member>& srv) {
                return chat::route(req, srv, pages, token, auth);
              },
            .websocket = std::move(handlers),
            .redis = redis,
            .topics = topics,
            .tls = tls,
          });
    chat::attach_registry(presence, server.registry());
    chat::attach_registry(auth, server.registry());
    auto url = server.url(); // ws://host:port/ or wss://host:port/
    std::printf("herald-chat listening on %s://%s\n",
                server.secure() ? "https" : "http",
                url.substr(url.find("://") + 3).c_str());
    std::fflush(stdout);
    rt.run();
  } catch (const std::exception& e) {
    caf::anon_send_exit(presence, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(auth, caf::exit_reason::user_shutdown);
    std::fprintf(stderr, "herald-chat: %s\n", e.what());
    return 1;
  }
  return 0;
}
