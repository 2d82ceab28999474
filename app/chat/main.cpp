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
#include <herald/app/cli/server.hpp>

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
  std::chrono::seconds idle{120};
  herald::runtime_options rt_opts;
  herald::topic_options topics{.linger = std::chrono::milliseconds{20}};
  herald::cli::server_options server_opts;
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
  server_opts.add_deflate(opts);
  server_opts.add_redis(opts, "; default $HERALD_REDIS_URL; rooms are "
                              "shared, presence and history stay per "
                              "instance");
  opts.add("idle-timeout", "SECS", idle, "close connections silent this long")
    .range(0, 86400);
  server_opts.add_tls(opts);
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
  server_opts.finish("herald-chat");
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
    handlers.per_message_deflate = server_opts.deflate();
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
            .redis = server_opts.redis,
            .topics = topics,
            .tls = server_opts.tls,
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
