// herald-chat: the bundled chat application. The page at /, a WebSocket per
// tab at /ws?name=NAME&room=ROOM, rooms as topics, a presence actor and a
// history actor per room; POST /rooms/ROOM/messages, /health, /metrics.
// Protocol and endpoints: docs/chat-protocol.md.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>

#include "room.hpp"

#ifndef HERALD_CHAT_PUBLIC_DIR
#define HERALD_CHAT_PUBLIC_DIR "app/chat/public"
#endif

namespace {

void usage(std::FILE* out) {
  std::fputs(
    "usage: herald-chat [options]\n"
    "  --host ADDR          address to listen on (default 127.0.0.1)\n"
    "  --port N             port, 0 picks a free one (default 3000)\n"
    "  --history N          messages kept per room for joiners (default 50,\n"
    "                       0: none)\n"
    "  --history-ttl SECS   how long a room's history outlives its last\n"
    "                       member (default 3600)\n"
    "  --token SECRET       require ?token=SECRET or 'Authorization: Bearer\n"
    "                       SECRET' for /ws and POST /rooms/... (401 without)\n"
    "  --deflate MODE       permessage-deflate: off (default), shared or\n"
    "                       dedicated\n"
    "  --redis URL          share rooms with other instances through Redis\n"
    "                       pub/sub (redis://host:port); presence and history\n"
    "                       stay per instance\n"
    "  --idle-timeout SECS  close connections silent this long (default 120)\n"
    "  --stop-deadline-ms N on SIGTERM/SIGINT let connections go on for N ms,\n"
    "                       then close the rest with 1001 (default 10000);\n"
    "                       a second signal closes them at once\n"
    "  --linger MS          rooms of 1,000 members or more gather messages\n"
    "                       for up to MS ms into one write per member\n"
    "                       (default 20, 0: off)\n"
    "  --public DIR         directory of the page (default: the source tree)\n"
    "  --help               this text\n",
    out);
}

[[noreturn]] void bad(const char* what) {
  std::fprintf(stderr, "herald-chat: %s\n", what);
  usage(stderr);
  std::exit(2);
}

// A whole non-negative decimal number no larger than `max`.
unsigned long number(const char* s, unsigned long max, const char* what) {
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoul(s, &end, 10);
  if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v > max)
    bad(what);
  return v;
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned long port = 3000;
  std::string public_dir = HERALD_CHAT_PUBLIC_DIR;
  std::string token;
  chat::presence_options presence_opts;
  herald::deflate_options deflate;
  std::chrono::seconds idle{120};
  herald::redis_options redis;
  herald::runtime_options rt_opts;
  herald::topic_options topics{.linger = std::chrono::milliseconds{20}};
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc)
      bad(("unknown option or missing value: " + std::string{arg}).c_str());
    const char* v = argv[++i];
    if (arg == "--host") {
      host = v;
    } else if (arg == "--port") {
      port = number(v, 65535, "--port: 0 to 65535");
    } else if (arg == "--history") {
      presence_opts.history = number(v, 1000000, "--history: 0 to 1000000");
    } else if (arg == "--history-ttl") {
      presence_opts.history_ttl = std::chrono::seconds{
        number(v, 10u * 365 * 24 * 3600, "--history-ttl: seconds")};
    } else if (arg == "--token") {
      token = v;
    } else if (arg == "--deflate") {
      std::string_view mode{v};
      if (mode != "off" && mode != "shared" && mode != "dedicated")
        bad("--deflate: off, shared or dedicated");
      deflate.enabled = mode != "off";
      deflate.dedicated_compressor = mode == "dedicated";
    } else if (arg == "--idle-timeout") {
      idle = std::chrono::seconds{number(v, 86400, "--idle-timeout: seconds")};
    } else if (arg == "--linger") {
      topics.linger =
        std::chrono::milliseconds{number(v, 10000, "--linger: 0 to 10000 ms")};
    } else if (arg == "--redis") {
      redis.url = v;
    } else if (arg == "--stop-deadline-ms") {
      rt_opts.stop_deadline = std::chrono::milliseconds{
        number(v, 86400000, "--stop-deadline-ms: milliseconds")};
    } else if (arg == "--public") {
      public_dir = v;
    } else {
      bad(("unknown option " + std::string{arg}).c_str());
    }
  }
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
          });
    chat::attach_registry(presence, server.registry());
    chat::attach_registry(auth, server.registry());
    auto url = server.url(); // ws://host:port/
    std::printf("herald-chat listening on http://%s\n", url.substr(5).c_str());
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
