// herald-chat: the bundled chat application. A web page at / and a
// WebSocket at /ws?name=NAME&room=ROOM; rooms are topics.
//
// Protocol (JSON text messages):
//   client -> server  {"type":"message","text":"..."}
//   server -> client  {"type":"message","room":R,"name":N,"text":T,"time":MS}
//                     {"type":"join","room":R,"name":N,"time":MS}
//                     {"type":"leave","room":R,"name":N,"time":MS}
//                     {"type":"welcome","room":R,"name":N}
//                     {"type":"error","error":"..."}
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include <herald/actors/herald.hpp>

#ifndef HERALD_CHAT_PUBLIC_DIR
#  define HERALD_CHAT_PUBLIC_DIR "app/chat/public"
#endif

namespace json = boost::json;

namespace {

struct member {
  std::string name;
  std::string room;
};

constexpr std::size_t max_name = 32;
constexpr std::size_t max_text = 4000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string event(std::string_view type, const member& m,
                  std::string_view text = {}) {
  json::object o;
  o["type"] = type;
  o["room"] = m.room;
  o["name"] = m.name;
  if (type == "message")
    o["text"] = text;
  o["time"] = now_ms();
  return json::serialize(o);
}

std::string error_event(std::string_view what) {
  json::object o;
  o["type"] = "error";
  o["error"] = what;
  return json::serialize(o);
}

// Names and rooms: 1..32 printable characters, no control characters.
bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > max_name)
    return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7F)
      return false;
  return true;
}

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
    auto server = herald::serve<member>(rt, {
      .hostname = host,
      .port = static_cast<std::uint16_t>(port),
      .fetch = [&page](herald::request& req, herald::server<member>& srv)
        -> herald::fetch_result {
        if (req.path() == "/ws") {
          auto name = req.query("name").value_or("");
          auto room = req.query("room").value_or("general");
          if (!valid_label(name) || !valid_label(room))
            return herald::response{400, "name and room: 1 to 32 characters\n"};
          if (srv.upgrade(req, member{name, room}))
            return herald::upgraded;
          return herald::response{400, "WebSocket upgrade expected\n"};
        }
        if (req.path() == "/" && req.method() == "GET")
          return herald::response{
            200, page, {{"Content-Type", "text/html; charset=utf-8"}}};
        if (req.path() == "/health")
          return herald::response{200, "ok\n"};
        return std::nullopt;
      },
      .websocket = {
        .open = [](herald::socket<member>& ws) {
          auto& m = ws.data();
          ws.subscribe(m.room);
          json::object w;
          w["type"] = "welcome";
          w["room"] = m.room;
          w["name"] = m.name;
          ws.send_text(json::serialize(w));
          // Everyone in the room (and this member) sees the join.
          auto join = event("join", m);
          ws.publish(m.room, join);
          ws.send_text(join);
        },
        .message = [](herald::socket<member>& ws, herald::message msg) {
          if (!msg.is_text()) {
            ws.close(1003, "text messages only");
            return;
          }
          json::error_code ec;
          auto v = json::parse(msg.text(), ec);
          auto* o = ec ? nullptr : v.if_object();
          auto* type = o ? o->if_contains("type") : nullptr;
          auto* text = o ? o->if_contains("text") : nullptr;
          if (!type || !type->is_string() || type->get_string() != "message"
              || !text || !text->is_string()) {
            ws.send_text(error_event("expected {\"type\":\"message\",\"text\":...}"));
            return;
          }
          auto t = std::string_view{text->get_string()};
          if (t.empty() || t.size() > max_text) {
            ws.send_text(error_event("text must be 1 to 4000 characters"));
            return;
          }
          auto out = event("message", ws.data(), t);
          ws.publish(ws.data().room, out);
          ws.send_text(out);
        },
        .close = [](herald::socket<member>& ws, int, std::string_view) {
          ws.publish(ws.data().room, event("leave", ws.data()));
        },
      },
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
