// herald-pubsub-test-server: rooms over topics, with the flow-control and
// compression options on flags, for the integration tests of topics,
// backpressure, limits and permessage-deflate.
//
//   ws://HOST:PORT/?name=N&room=R   joins room R (default "room")
//   text "/sub T" "/unsub T"        joins or leaves topic T (reply "ok")
//   text "/subs"                    replies the subscriptions, comma-joined
//   text "/is T"                    replies "yes" or "no"
//   text "/flood N SIZE"            sends N messages of SIZE bytes to self
//   text "/last"                    replies "sent A B C": how many sends of
//                                   the last flood returned bytes, -1, 0
//   any other text m                publishes "N: m" to the room (binary
//                                   messages are published as they are)
//   POST /publish?room=R            publishes the body (server.publish)
//   GET /stats                      JSON counters (server_stats)
//   GET /count?room=R               subscribers of R on this node
//
//   --redis redis://HOST:PORT       shares topics with other instances
//   --redis-prefix P                Redis channel prefix (default herald:)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <herald/actors/herald.hpp>

namespace {

struct member {
  std::string name;
  std::string room;
  std::string last_flood;
};

long long arg_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return std::strtoll(argv[++i], nullptr, 10);
}

// "1000":N,... for the close codes seen ("other" for the rest).
std::string closes(const herald::server_stats& st) {
  std::string out;
  for (std::size_t i = 0; i < st.closes.size(); ++i) {
    auto n = st.closes[i].load();
    if (n == 0)
      continue;
    out += (out.empty() ? "\"" : ",\"")
           + (i < 16 ? std::to_string(1000 + i) : std::string{"other"})
           + "\":" + std::to_string(n);
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  long long port = 0;
  herald::websocket_handlers<member> ws;
  herald::net::http_limits http;
  std::size_t max_connections = 0;
  bool compress = false;
  herald::redis_options redis;
  for (int i = 1; i < argc; ++i) {
    std::string_view a{argv[i]};
    if (a == "--port")
      port = arg_value(i, argc, argv);
    else if (a == "--backpressure-limit")
      ws.backpressure_limit =
        static_cast<std::size_t>(arg_value(i, argc, argv));
    else if (a == "--close-on-backpressure")
      ws.close_on_backpressure_limit = true;
    else if (a == "--publish-to-self")
      ws.publish_to_self = true;
    else if (a == "--max-payload")
      ws.max_payload_length =
        static_cast<std::size_t>(arg_value(i, argc, argv));
    else if (a == "--idle-timeout")
      ws.idle_timeout = std::chrono::seconds{arg_value(i, argc, argv)};
    else if (a == "--max-connections")
      max_connections = static_cast<std::size_t>(arg_value(i, argc, argv));
    else if (a == "--send-buffer")
      http.websocket_send_buffer =
        static_cast<std::size_t>(arg_value(i, argc, argv));
    else if (a == "--request-timeout-ms")
      http.request_timeout =
        std::chrono::milliseconds{arg_value(i, argc, argv)};
    else if (a == "--redis" && i + 1 < argc)
      redis.url = argv[++i];
    else if (a == "--redis-prefix" && i + 1 < argc)
      redis.channel_prefix = argv[++i];
    else if (a == "--deflate") {
      std::string_view mode = i + 1 < argc ? argv[++i] : "";
      ws.per_message_deflate.enabled = true;
      ws.per_message_deflate.dedicated_compressor = mode == "dedicated";
      compress = true;
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  ws.open = [](herald::socket<member>& s) { s.subscribe(s.data().room); };
  ws.message = [compress](herald::socket<member>& s, herald::message m) {
    if (m.is_binary()) {
      s.publish(s.data().room, m.bytes(), compress);
      return;
    }
    auto t = m.text();
    auto arg = [&](std::size_t n) { return std::string{t.substr(n)}; };
    if (t.rfind("/sub ", 0) == 0) {
      s.subscribe(arg(5));
      s.send_text("ok");
    } else if (t.rfind("/unsub ", 0) == 0) {
      s.unsubscribe(arg(7));
      s.send_text("ok");
    } else if (t.rfind("/is ", 0) == 0) {
      s.send_text(s.is_subscribed(arg(4)) ? "yes" : "no");
    } else if (t == "/subs") {
      std::string out;
      for (auto& x : s.subscriptions())
        out += (out.empty() ? "" : ",") + x;
      s.send_text(out);
    } else if (t.rfind("/flood ", 0) == 0) {
      long n = 0, size = 0;
      std::sscanf(std::string{t}.c_str(), "/flood %ld %ld", &n, &size);
      std::string payload(static_cast<std::size_t>(size), 'f');
      long written = 0, queued = 0, dropped = 0;
      for (long k = 0; k < n; ++k) {
        auto r = s.send_text(payload);
        (r > 0 ? written : r < 0 ? queued : dropped) += 1;
      }
      s.data().last_flood = "sent " + std::to_string(written) + " "
                            + std::to_string(queued) + " "
                            + std::to_string(dropped);
    } else if (t == "/last") {
      s.send_text(s.data().last_flood);
    } else {
      s.publish(s.data().room, s.data().name + ": " + std::string{t}, compress);
    }
  };
  // SIGTERM closes every connection with 1001 at once, as the tests
  // expect (no graceful period).
  herald::runtime rt{herald::runtime_options{.stop_deadline = {}}};
  try {
    auto server = herald::serve<member>(
      rt,
      {
        .hostname = "127.0.0.1",
        .port = static_cast<std::uint16_t>(port),
        .fetch = [compress](herald::request& req, herald::server<member>& srv)
          -> herald::fetch_result {
          if (req.path() == "/publish" && req.method() == "POST") {
            auto room = req.query("room").value_or("room");
            auto n = srv.publish(room, req.body(), compress);
            return herald::response{200, std::to_string(n)};
          }
          if (req.path() == "/count") {
            auto room = req.query("room").value_or("room");
            return herald::response{200,
                                    std::to_string(srv.subscriber_count(room))};
          }
          if (req.path() == "/stats") {
            auto& st = srv.stats();
            std::string body =
              "{\"open\":" + std::to_string(st.open_connections)
              + ",\"connections_total\":" + std::to_string(st.connections_total)
              + ",\"dropped\":" + std::to_string(st.dropped)
              + ",\"dropped_over_limit\":"
              + std::to_string(st.dropped_over_limit)
              + ",\"messages_in\":" + std::to_string(st.messages_in)
              + ",\"messages_out\":" + std::to_string(st.messages_out)
              + ",\"http_requests\":" + std::to_string(st.http_requests)
              + ",\"closes\":{" + closes(st) + "}"
              + ",\"topics\":" + std::to_string(srv.topic_count())
              + ",\"deflated\":" + std::to_string(herald::net::deflate_count())
              + ",\"cross_node_sent\":" + std::to_string(st.cross_node_sent)
              + ",\"cross_node_received\":"
              + std::to_string(st.cross_node_received)
              + ",\"cross_node_dropped\":"
              + std::to_string(st.cross_node_dropped)
              + ",\"redis_connected\":" + std::to_string(st.redis_connected)
              + ",\"redis_outages\":" + std::to_string(st.redis_outages) + "}";
            return herald::response{200,
                                    body,
                                    {{"Content-Type", "application/json"}}};
          }
          auto m = member{req.query("name").value_or("anon"),
                          req.query("room").value_or("room"),
                          {}};
          if (srv.upgrade(req, std::move(m)))
            return herald::upgraded;
          return std::nullopt;
        },
        .websocket = ws,
        .http = http,
        .max_connections = max_connections,
        .redis = redis,
        .topics = {},
      });
    std::printf("listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    rt.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pubsub server: %s\n", e.what());
    return 1;
  }
  return 0;
}
