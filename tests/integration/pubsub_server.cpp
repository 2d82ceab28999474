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
//   --help lists the options.
#include <cstdio>
#include <string>
#include <string_view>

#include <herald/actors/herald.hpp>
#include <herald/app/cli/server.hpp>

namespace {

struct member {
  std::string name;
  std::string room;
  std::string last_flood;
};

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
  std::string host = "127.0.0.1";
  long port = 0;
  herald::websocket_handlers<member> ws;
  herald::net::http_limits http;
  std::size_t max_connections = 0;
  herald::topic_options topics;
  herald::cli::server_options server_opts;
  auto& redis = server_opts.redis;
  herald::cli::options opts{
    "herald-pubsub-test-server",
    "Rooms over topics for the integration tests of topics, flow control, "
    "limits, permessage-deflate and Redis (commands in "
    "tests/integration/pubsub_server.cpp)."};
  opts.add("host", "ADDR", host, "address");
  opts.add("port", "N", port, "port, 0 picks a free one").range(0, 65535);
  opts.add("backpressure-limit", "BYTES", ws.backpressure_limit,
           "per-connection send buffer limit");
  opts.flag("close-on-backpressure-limit", ws.close_on_backpressure_limit,
            "close (1008) instead of dropping");
  opts.flag("close-on-backpressure", ws.close_on_backpressure_limit,
            "the same as --close-on-backpressure-limit");
  opts.flag("publish-to-self", ws.publish_to_self,
            "a connection's publishes reach itself too");
  opts.add("max-payload", "BYTES", ws.max_payload_length, "largest message")
    .min(1);
  opts.add("idle-timeout", "SECS", ws.idle_timeout,
           "WebSocket idle timeout, 0: never");
  opts.add("max-connections", "N", max_connections,
           "most WebSockets at once, 0: no limit");
  opts.add("send-buffer", "BYTES", http.websocket_send_buffer,
           "SO_SNDBUF of WebSocket sockets, 0: the kernel's autotuning");
  opts.add("request-timeout-ms", "MS", http.request_timeout,
           "HTTP request deadline");
  opts.add("linger-ms", "MS", topics.linger,
           "topics of --linger-min subscribers hold a publish this long");
  opts.add("linger-min", "N", topics.linger_min_subscribers,
           "subscribers from which a topic lingers");
  server_opts.add_redis(opts);
  opts.add("redis-prefix", "P", redis.channel_prefix, "Redis channel prefix");
  server_opts.add_deflate(opts, "; on, publishes are compressed");
  opts.parse_or_exit(argc, argv);
  ws.per_message_deflate = server_opts.deflate();
  bool compress = ws.per_message_deflate.enabled;
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
        .hostname = host,
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
              + ",\"deflated\":" + std::to_string(st.deflated)
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
        .topics = topics,
        .tls = {},
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
