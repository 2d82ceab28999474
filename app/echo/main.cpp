// herald-echo: echoes every WebSocket message back, text as text and binary
// as binary. Used for protocol conformance checks.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

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
    "  --help               this text\n",
    out);
}

struct no_data {};

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 9001;
  long long max_payload = 16 << 20;
  long idle = 120;
  herald::deflate_options deflate;
  herald::redis_options redis;
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
  herald::runtime rt;
  try {
    auto server = herald::serve<no_data>(rt, {
      .hostname = host,
      .port = static_cast<std::uint16_t>(port),
      .fetch = [](herald::request& req, herald::server<no_data>& srv)
        -> herald::fetch_result {
        if (srv.upgrade(req))
          return herald::upgraded;
        return herald::response{200, "herald-echo: connect with WebSocket\n"};
      },
      .websocket = {
        .message = [](herald::socket<no_data>& ws, herald::message m) {
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herald-echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
