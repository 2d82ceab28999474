// herald-echo: echoes every WebSocket message back, text as text and binary
// as binary. Used for protocol conformance checks.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>

namespace {

void usage(std::FILE* out) {
  std::fputs(
    "usage: herald-echo [options]\n"
    "  --host ADDR          address to listen on (default 127.0.0.1)\n"
    "  --port N             port, 0 picks a free one (default 9001)\n"
    "  --max-payload BYTES  largest message accepted (default 16777216)\n"
    "  --idle-timeout SECS  close connections idle this long, 0: never "
    "(default 120)\n"
    "  --deflate MODE       permessage-deflate: off, shared or dedicated "
    "(default off)\n"
    "  --redis URL          share topics with other instances through "
    "Redis\n"
    "                       (redis://host:port); herald-echo has no topics "
    "of its\n"
    "                       own, so this only checks the option\n"
    "  --auth-delay-ms N    complete every upgrade N ms later from an actor\n"
    "                       (a slow auth service; others are not held up)\n"
    "  --stop-deadline-ms N on SIGTERM/SIGINT let connections go on for N ms,\n"
    "                       then close the rest with 1001 (default 10000);\n"
    "                       a second signal closes them at once\n"
    "  --help               this text\n",
    out);
}

struct no_data {};

using approve_atom = caf::atom_constant<caf::atom("approve")>;

// Completes every upgrade `delay` after it arrived, as a slow auth service
// would: the request waits in a timer, no thread waits for it.
caf::behavior slow_auth(caf::event_based_actor* self,
                        std::chrono::milliseconds delay) {
  return {
    [=](herald::deferred_request<no_data>& d) {
      self->delayed_send(self, delay, approve_atom::value, std::move(d));
    },
    [](approve_atom, herald::deferred_request<no_data>& d) {
      // False when the client left meanwhile: nothing to do.
      d.upgrade();
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 9001;
  long long max_payload = 16 << 20;
  long idle = 120;
  herald::deflate_options deflate;
  herald::redis_options redis;
  long auth_delay = -1; // no auth step
  herald::runtime_options rt_opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "herald-echo: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--host") {
      host = value();
    } else if (arg == "--port") {
      port = std::strtol(value(), nullptr, 10);
    } else if (arg == "--max-payload") {
      max_payload = std::strtoll(value(), nullptr, 10);
    } else if (arg == "--idle-timeout") {
      idle = std::strtol(value(), nullptr, 10);
    } else if (arg == "--redis") {
      redis.url = value();
    } else if (arg == "--auth-delay-ms") {
      auth_delay = std::strtol(value(), nullptr, 10);
      if (auth_delay < 0) {
        std::fprintf(stderr, "herald-echo: --auth-delay-ms N >= 0\n");
        return 2;
      }
    } else if (arg == "--stop-deadline-ms") {
      auto ms = std::strtol(value(), nullptr, 10);
      if (ms < 0) {
        std::fprintf(stderr, "herald-echo: --stop-deadline-ms N >= 0\n");
        return 2;
      }
      rt_opts.stop_deadline = std::chrono::milliseconds{ms};
    } else if (arg == "--deflate") {
      std::string_view mode{value()};
      if (mode == "shared" || mode == "dedicated") {
        deflate.enabled = true;
        deflate.dedicated_compressor = mode == "dedicated";
      } else if (mode != "off") {
        std::fprintf(stderr, "herald-echo: --deflate off|shared|dedicated\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "herald-echo: unknown option %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || max_payload <= 0 || idle < 0) {
    std::fprintf(stderr, "herald-echo: invalid option value\n");
    return 2;
  }
  herald::runtime rt{rt_opts};
  caf::actor auth;
  if (auth_delay >= 0)
    auth = rt.system().spawn(slow_auth, std::chrono::milliseconds{auth_delay});
  try {
    auto server = herald::serve<no_data>(
      rt,
      {
        .hostname = host,
        .port = static_cast<std::uint16_t>(port),
        .fetch = [auth](herald::request& req,
                        herald::server<no_data>& srv) -> herald::fetch_result {
          if (auth && req.is_upgrade())
            return srv.defer_to(req, auth);
          if (srv.upgrade(req))
            return herald::upgraded;
          return herald::response{200, "herald-echo: connect with WebSocket\n"};
        },
        .websocket =
          {
            .message =
              [](herald::socket<no_data>& ws, herald::message m) {
                // Compressed when the client agreed to permessage-deflate.
                if (m.is_text())
                  ws.send_text(m.text(), true);
                else
                  ws.send_binary(m.bytes(), true);
              },
            .max_payload_length = static_cast<std::size_t>(max_payload),
            .idle_timeout = std::chrono::seconds{idle},
            .per_message_deflate = deflate,
          },
        .redis = redis,
        .topics = {},
      });
    std::printf("herald-echo listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    rt.run();
    if (auth)
      caf::anon_send_exit(auth, caf::exit_reason::user_shutdown);
  } catch (const std::exception& e) {
    if (auth)
      caf::anon_send_exit(auth, caf::exit_reason::user_shutdown);
    std::fprintf(stderr, "herald-echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
