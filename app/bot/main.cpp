// herald-bot: composing actors with topics. Clients join a room with
// ws://HOST:PORT/?name=NAME&room=ROOM and talk; besides them:
//   - a bot actor (a plain CAF actor) subscribed to "lobby" answers
//     "!ping" with "bot: pong", "!echo X" with "bot: X" and "!count" with
//     the number of messages it has seen there;
//   - a ticker actor publishes "tick N" to the topic "ticks" on a timer;
//   - a plain thread publishes "clock <ms>" to the topic "clock" each
//     second through server.publish;
//   - POST /broadcast?room=ROOM publishes the request body from fetch.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>

namespace {

struct member {
  std::string name;
  std::string room;
};

// The bot: an ordinary actor that subscribes through the registry, receives
// deliveries as typed messages and publishes back into the room.
caf::behavior bot(caf::event_based_actor* self,
                  herald::topic_registry registry) {
  // Linked to the registry: when the server stops, the bot stops too.
  self->link_to(registry.actor());
  herald::subscribe(registry, "lobby", caf::actor_cast<caf::actor>(self));
  auto seen = std::make_shared<int>(0);
  auto answer = [=](const std::string& topic, std::string_view text) {
    ++*seen;
    // Messages arrive as "name: text"; look at the text part.
    auto colon = text.find(": ");
    auto body = colon == std::string_view::npos ? text : text.substr(colon + 2);
    std::string reply;
    if (body == "!ping")
      reply = "bot: pong";
    else if (body.rfind("!echo ", 0) == 0)
      reply = "bot: " + std::string{body.substr(6)};
    else if (body == "!count")
      reply = "bot: " + std::to_string(*seen);
    if (!reply.empty())
      herald::publish_text(registry, topic, reply, self->address());
  };
  return {
    // A delivery holds every message the topic got in one burst.
    [=](const herald::msg::delivery& d) {
      d.each(self->address(), [&](const herald::msg::topic_message& m) {
        if (!m.binary())
          answer(*d.topic, m.text());
      });
    },
  };
}

// The ticker: publishes from a timer.
caf::behavior ticker(caf::event_based_actor* self,
                     herald::topic_registry registry,
                     std::chrono::milliseconds every) {
  auto n = std::make_shared<long>(0);
  self->link_to(registry.actor());
  self->delayed_send(self, every, caf::tick_atom::value);
  return {
    [=](caf::tick_atom) {
      herald::publish_text(registry, "ticks", "tick " + std::to_string(++*n));
      self->delayed_send(self, every, caf::tick_atom::value);
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 3001;
  long tick_ms = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    if (arg == "--help" || arg == "-h") {
      std::puts("usage: herald-bot [--host ADDR] [--port N] [--tick-ms MS]");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "herald-bot: %s needs a value\n", argv[i]);
      return 2;
    }
    if (arg == "--host")
      host = argv[++i];
    else if (arg == "--port")
      port = std::strtol(argv[++i], nullptr, 10);
    else if (arg == "--tick-ms")
      tick_ms = std::strtol(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "herald-bot: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || tick_ms <= 0) {
    std::fprintf(stderr, "herald-bot: invalid option value\n");
    return 2;
  }
  herald::runtime rt;
  try {
    auto server = herald::serve<member>(
      rt,
      {
        .hostname = host,
        .port = static_cast<std::uint16_t>(port),
        .fetch = [](herald::request& req,
                    herald::server<member>& srv) -> herald::fetch_result {
          if (req.path() == "/broadcast" && req.method() == "POST") {
            auto room = req.query("room").value_or("lobby");
            auto n = srv.subscriber_count(room);
            srv.publish(room, req.body());
            return herald::response{200, "sent to " + std::to_string(n) + "\n"};
          }
          auto m = member{req.query("name").value_or("anon"),
                          req.query("room").value_or("lobby")};
          if (srv.upgrade(req, std::move(m)))
            return herald::upgraded;
          return std::nullopt;
        },
        .websocket = {
          .open =
            [](herald::socket<member>& ws) { ws.subscribe(ws.data().room); },
          .message =
            [](herald::socket<member>& ws, herald::message msg) {
              if (msg.is_text())
                ws.publish(ws.data().room,
                           ws.data().name + ": " + std::string{msg.text()});
            },
          .publish_to_self = true,
        },
      });
    auto& sys = rt.system();
    sys.spawn(bot, server.registry());
    sys.spawn(ticker, server.registry(), std::chrono::milliseconds{tick_ms});
    std::atomic<bool> done{false};
    std::thread clock{[&] {
      while (!done) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
        server.publish("clock", "clock " + std::to_string(ms));
        std::this_thread::sleep_for(std::chrono::seconds{1});
      }
    }};
    std::printf("herald-bot listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    rt.run();
    done = true;
    clock.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herald-bot: %s\n", e.what());
    return 1;
  }
  return 0;
}
