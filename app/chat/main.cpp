// herald-chat: the bundled chat application. A web page at / and a
// WebSocket at /ws?name=NAME&room=ROOM; rooms are topics. The room logic
// and its protocol are in room.hpp.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <herald/actors/herald.hpp>

#include "room.hpp"

#ifndef HERALD_CHAT_PUBLIC_DIR
#  define HERALD_CHAT_PUBLIC_DIR "app/chat/public"
#endif

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void usage(std::FILE* out) {
  std::fputs(
    "usage: herald-chat [options]\n"
    "  --host ADDR     address to listen on (default 127.0.0.1)\n"
    "  --port N        port, 0 picks a free one (default 3000)\n"
    "  --public DIR    directory of the web page (default: the source tree)\n"
    "  --help          this text\n",
    out);
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 3000;
  std::string public_dir = HERALD_CHAT_PUBLIC_DIR;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "herald-chat: %s needs a value\n", argv[i]);
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
    } else if (arg == "--public") {
      public_dir = value();
    } else {
      std::fprintf(stderr, "herald-chat: unknown option %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "herald-chat: invalid port\n");
    return 2;
  }
  auto page = read_file(public_dir + "/index.html");
  if (page.empty()) {
    std::fprintf(stderr, "herald-chat: cannot read %s/index.html\n",
                 public_dir.c_str());
    return 1;
  }
  herald::runtime rt;
  try {
    auto server = herald::serve<chat::member>(rt, {
      .hostname = host,
      .port = static_cast<std::uint16_t>(port),
      .fetch = [&page](herald::request& req, herald::server<chat::member>& srv)
        -> herald::fetch_result {
        if (req.path() == "/ws")
          return chat::open_socket(req, srv);
        if (req.path() == "/" && req.method() == "GET")
          return herald::response{
            200, page, {{"Content-Type", "text/html; charset=utf-8"}}};
        if (req.path() == "/health")
          return herald::response{200, "ok\n"};
        return std::nullopt;
      },
      .websocket = chat::handlers(),
    });
    auto url = server.url();
    std::printf("herald-chat listening on http://%s\n",
                url.substr(5).c_str());
    std::fflush(stdout);
    rt.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herald-chat: %s\n", e.what());
    return 1;
  }
  return 0;
}
