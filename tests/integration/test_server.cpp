// herald-test-server: a server built on Herald's public API only, with
// routes that let the integration tests (tests/integration/*.test.mjs)
// drive and observe every part of it from real clients.
//
// Prints exactly one line "listening on ws://HOST:PORT/" when ready and runs
// until SIGTERM/SIGINT (then closes WebSockets with 1001 and exits 0).
//
// HTTP routes (no upgrade):
//   GET|POST /info[/...]  JSON: method, target, path, query params, headers,
//                         body, remote address
//   GET /stats            JSON: what the close/error/ping/pong handlers saw,
//                         open connections, server counters
//   GET /headers?name=N&value=V   a response carrying header N: V
//   GET /publish?topic=T&text=X   server.publish(T, X)
//   GET /deferred?ms=N[&deny=1][&name=N]  fetch hands the request to an
//                         actor that answers N ms later: a WebSocket
//                         request is upgraded (route "echo"; 403 with
//                         deny=1), a plain one gets "later NAME"
//   GET /never?id=X       fetch defers and keeps the handle under X, never
//                         answering (the timeout answers 503)
//   GET /held?id=X        JSON: the state of handle X (pending, gone,
//                         timed_out, completed, refused, none) and the
//                         server's pending_requests()
//   GET /complete?id=X    answers handle X now: "complete true|false"
//   GET /stop?mode=graceful|immediate[&deadline_ms=N]  server.stop(...)
//                         from fetch: answers "stopping" at once (stop
//                         never blocks); the process exits once stopped
//   /throw                fetch throws -> 500
//   /fake-upgrade         fetch returns herald::upgraded without upgrading
//   /                     200 text
//   anything else         fetch returns std::nullopt -> 404
//
// WebSocket routes (also choose subprotocol "chat" when offered):
//   /echo      echoes every message (text as text, binary as binary)
//   /auth      like /echo but needs "Authorization: Bearer secret" (else 401)
//   /api       sends an "open" JSON message first; text messages are
//              commands (see on_command), binary messages are echoed
//              ?name=N names the connection (reported in /stats)
//              ?throw=open makes the open handler throw
//              ?sub=T subscribes to T in open; the open message then has
//              "subscribers": the server's subscriber_count(T) right after
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>
#include <herald/app/cli/server.hpp>

namespace {

// -- JSON output ----------------------------------------------------------------

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string bytes_str(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// -- per-connection data ----------------------------------------------------------

struct conn_data {
  std::string route; // "echo", "auth" or "api"
  std::string name;  // ?name=
  int counter = 0;   // incremented by the "count" command
  bool throw_on_open = false;
  std::string sub_on_open; // ?sub=
  // Copied from the upgrade request.
  std::string method;
  std::string path;
  std::string target;
  std::string remote;
  std::string user_agent;
  // What the ping handler saw on this connection.
  std::vector<std::string> pings;
  // Sequence number of the next "flood" message.
  std::uint32_t flood_seq = 0;
};

// -- what handlers saw, for GET /stats ---------------------------------------------

struct event_log {
  std::mutex mtx;
  struct close_rec {
    std::string name;
    std::string route;
    int code;
    std::string reason;
  };
  struct error_rec {
    std::string name;
    std::string what;
  };
  struct data_rec {
    std::string name;
    std::string data;
  };
  std::deque<close_rec> closes;
  std::deque<error_rec> errors;
  std::deque<data_rec> pings;
  std::deque<data_rec> pongs;
  std::deque<data_rec> notes; // free-form observations of commands
  std::atomic<long> opens{0};

  template <class D, class R>
  void add(D& list, R rec) {
    std::lock_guard<std::mutex> guard{mtx};
    list.push_back(std::move(rec));
    if (list.size() > 1000)
      list.pop_front();
  }
};

event_log events;

using server_t = herald::server<conn_data>;
using socket_t = herald::socket<conn_data>;

std::string stats_json(server_t& srv) {
  std::ostringstream os;
  std::lock_guard<std::mutex> guard{events.mtx};
  os << "{\"opens\":" << events.opens.load();
  os << ",\"pending_websockets\":" << srv.pending_websockets();
  auto& st = srv.stats();
  os << ",\"open_connections\":" << st.open_connections.load();
  os << ",\"connections_total\":" << st.connections_total.load();
  os << ",\"http_requests\":" << st.http_requests.load();
  os << ",\"upgrades_refused\":" << st.upgrades_refused.load();
  os << ",\"closes\":[";
  bool first = true;
  for (auto& c : events.closes) {
    os << (first ? "" : ",") << "{\"name\":" << json_str(c.name)
       << ",\"route\":" << json_str(c.route) << ",\"code\":" << c.code
       << ",\"reason\":" << json_str(c.reason) << "}";
    first = false;
  }
  os << "],\"errors\":[";
  first = true;
  for (auto& e : events.errors) {
    os << (first ? "" : ",") << "{\"name\":" << json_str(e.name)
       << ",\"what\":" << json_str(e.what) << "}";
    first = false;
  }
  for (auto [key, list] :
       {std::pair{"pings", &events.pings}, std::pair{"pongs", &events.pongs},
        std::pair{"notes", &events.notes}}) {
    os << "],\"" << key << "\":[";
    first = true;
    for (auto& p : *list) {
      os << (first ? "" : ",") << "{\"name\":" << json_str(p.name)
         << ",\"data\":" << json_str(p.data) << "}";
      first = false;
    }
  }
  os << "]}";
  return os.str();
}

std::string info_json(const herald::request& req) {
  std::ostringstream os;
  os << "{\"method\":" << json_str(req.method())
     << ",\"target\":" << json_str(req.target())
     << ",\"path\":" << json_str(req.path())
     << ",\"query_string\":" << json_str(req.query_string()) << ",\"query\":{";
  // Names come from the raw query string; values through req.query(), which
  // percent-decodes them.
  auto qs = req.query_string();
  bool first = true;
  std::vector<std::string> seen;
  while (!qs.empty()) {
    auto amp = qs.find('&');
    auto pair = qs.substr(0, amp);
    auto name = herald::percent_decode(pair.substr(0, pair.find('=')), true);
    if (!name.empty()
        && std::find(seen.begin(), seen.end(), name) == seen.end()) {
      seen.push_back(name);
      os << (first ? "" : ",") << json_str(name) << ":"
         << json_str(req.query(name).value_or("<missing>"));
      first = false;
    }
    if (amp == std::string_view::npos)
      break;
    qs.remove_prefix(amp + 1);
  }
  os << "},\"headers\":[";
  first = true;
  for (auto& [k, v] : req.headers()) {
    os << (first ? "" : ",") << "[" << json_str(k) << "," << json_str(v) << "]";
    first = false;
  }
  os << "],\"protocols\":[";
  first = true;
  for (auto& p : req.protocols()) {
    os << (first ? "" : ",") << json_str(p);
    first = false;
  }
  os << "],\"is_upgrade\":" << (req.is_upgrade() ? "true" : "false")
     << ",\"body\":" << json_str(req.body())
     << ",\"remote\":" << json_str(req.remote_endpoint())
     << ",\"remote_address\":" << json_str(req.remote_address())
     << ",\"remote_port\":" << req.remote_port() << "}";
  return os.str();
}

// -- WebSocket handlers -------------------------------------------------------------

std::string open_json(socket_t& ws) {
  auto& d = ws.data();
  std::ostringstream os;
  os << "{\"type\":\"open\",\"name\":" << json_str(d.name)
     << ",\"route\":" << json_str(d.route)
     << ",\"method\":" << json_str(d.method) << ",\"path\":" << json_str(d.path)
     << ",\"target\":" << json_str(d.target)
     << ",\"remote\":" << json_str(d.remote)
     << ",\"user_agent\":" << json_str(d.user_agent)
     << ",\"remote_address\":" << json_str(ws.remote_address())
     << ",\"remote_endpoint\":" << json_str(ws.remote_endpoint())
     << ",\"protocol\":" << json_str(ws.protocol())
     << ",\"ready_state\":" << static_cast<int>(ws.ready_state())
     << ",\"counter\":" << d.counter;
  if (!d.sub_on_open.empty())
    os << ",\"subscribers\":" << ws.server().subscriber_count(d.sub_on_open);
  os << "}";
  return os.str();
}

// Splits "word rest of line" into ("word", "rest of line").
std::pair<std::string_view, std::string_view> split1(std::string_view s) {
  auto sp = s.find(' ');
  if (sp == std::string_view::npos)
    return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

// Commands of the /api route. Every reply is one text message.
void on_command(socket_t& ws, std::string_view line) {
  auto [cmd, arg] = split1(line);
  auto& d = ws.data();
  if (cmd == "count") {
    // Per-connection state: each connection counts on its own.
    ++d.counter;
    ws.send_text("count " + std::to_string(d.counter));
  } else if (cmd == "whoami") {
    ws.send_text(open_json(ws));
  } else if (cmd == "echo") {
    ws.send_text(arg);
  } else if (cmd == "close") {
    // "close CODE [REASON...]" or "close" (1000, no reason)
    if (arg.empty()) {
      ws.close();
    } else {
      auto [code, reason] = split1(arg);
      ws.close(std::stoi(std::string{code}), reason);
    }
  } else if (cmd == "close-after-send") {
    // A message, then the close: the message must arrive first.
    ws.send_text("last words");
    ws.close(4001, "after send");
  } else if (cmd == "terminate") {
    ws.terminate();
  } else if (cmd == "ping") {
    // Server ping; the client's automatic pong reaches the pong handler,
    // which replies "pong DATA" after this reply.
    auto status = ws.ping(arg);
    ws.send_text("ping-sent " + std::to_string(status));
  } else if (cmd == "pings") {
    // What the ping handler saw on this connection, one per line.
    std::string out = "pings";
    for (auto& p : d.pings)
      out += "\n" + p;
    ws.send_text(out);
  } else if (cmd == "state") {
    ws.send_text("state " + std::to_string(static_cast<int>(ws.ready_state())));
  } else if (cmd == "remote") {
    ws.send_text("remote " + ws.remote_endpoint() + " " + ws.remote_address());
  } else if (cmd == "protocol") {
    ws.send_text("protocol " + std::string{ws.protocol()});
  } else if (cmd == "send-status") {
    // send's return value for a text message of `arg`.
    auto before = ws.buffered_amount();
    auto status = ws.send_text(arg);
    auto after = ws.buffered_amount();
    ws.send_text("send-status " + std::to_string(status) + " "
                 + std::to_string(before) + " " + std::to_string(after));
  } else if (cmd == "big") {
    // "big N": N bytes of binary data; reports send's return value and
    // buffered_amount() right after it (the frame is queued until the
    // connection flushes, so buffered_amount covers it).
    auto n = std::stoul(std::string{arg});
    std::string payload(n, 'x');
    auto status = ws.send_binary(std::string_view{payload});
    auto buffered = ws.buffered_amount();
    ws.send_text("big " + std::to_string(status) + " "
                 + std::to_string(buffered));
  } else if (cmd == "flood") {
    // "flood N SIZE": N binary messages of SIZE bytes (>= 4), each starting
    // with its big-endian sequence number. Counts what send returned:
    // accepted (> 0), queued behind backpressure (-1), dropped (0); the
    // counts go to GET /stats (notes), as the client may not be reading.
    auto [n_str, size_str] = split1(arg);
    auto n = std::stoul(std::string{n_str});
    auto size = std::max<std::size_t>(4, std::stoul(std::string{size_str}));
    std::string payload(size, 'f');
    long ok = 0, bp = 0, dropped = 0;
    for (std::size_t i = 0; i < n; ++i) {
      auto seq = d.flood_seq++;
      payload[0] = static_cast<char>(seq >> 24);
      payload[1] = static_cast<char>(seq >> 16);
      payload[2] = static_cast<char>(seq >> 8);
      payload[3] = static_cast<char>(seq);
      auto status = ws.send_binary(std::string_view{payload});
      if (status > 0)
        ++ok;
      else if (status == herald::send_backpressure)
        ++bp;
      else
        ++dropped;
    }
    events.add(events.notes,
               event_log::data_rec{d.name,
                                   "flood " + std::to_string(ok) + " "
                                     + std::to_string(bp) + " "
                                     + std::to_string(dropped) + " "
                                     + std::to_string(ws.buffered_amount())});
  } else if (cmd == "buffered") {
    ws.send_text("buffered " + std::to_string(ws.buffered_amount()));
  } else if (cmd == "send-after-close") {
    // After close(), sends are dropped (0) and the state is closing (2).
    ws.close(4002, "closing");
    auto status = ws.send_text("never");
    auto state = static_cast<int>(ws.ready_state());
    // Nothing can be sent any more: report through GET /stats.
    events.add(events.notes,
               event_log::data_rec{d.name, "send-after-close "
                                             + std::to_string(status) + " "
                                             + std::to_string(state)});
  } else if (cmd == "binary") {
    ws.send_binary(arg);
  } else if (cmd == "cork") {
    // Three messages in one write.
    ws.cork([&] {
      ws.send_text("cork 1");
      ws.send_text("cork 2");
      ws.send_text("cork 3");
    });
  } else if (cmd == "throw") {
    throw std::runtime_error("boom from " + d.name);
  } else if (cmd == "close-invalid") {
    // close() with a code an endpoint may not send throws; the handler
    // fails, so the connection closes with 1011.
    ws.close(std::stoi(std::string{arg}), "bad");
  } else if (cmd == "sub") {
    // "refused" past --max-subscriptions.
    auto ok = ws.subscribe(arg);
    ws.send_text((ok ? "subscribed " : "refused ") + std::string{arg});
  } else if (cmd == "unsub") {
    // Bun's usage: leave, then tell how many are left.
    ws.unsubscribe(arg);
    ws.send_text("unsubscribed " + std::string{arg} + " "
                 + std::to_string(ws.server().subscriber_count(arg)));
  } else if (cmd == "pub") {
    auto [topic, text] = split1(arg);
    auto status = ws.publish(topic, text);
    ws.send_text("published " + std::to_string(status));
  } else if (cmd == "server-pub") {
    // The server from inside a handler (Bun's server.publish in message):
    // every subscriber, this connection included.
    auto [topic, text] = split1(arg);
    auto srv = ws.server();
    auto status = srv.publish(topic, text);
    ws.send_text("server-published " + std::to_string(status) + " "
                 + std::to_string(srv.subscriber_count(topic)));
  } else {
    ws.send_text("unknown command " + std::string{cmd});
  }
}

herald::websocket_handlers<conn_data> make_handlers() {
  herald::websocket_handlers<conn_data> h;
  h.open = [](socket_t& ws) {
    events.opens.fetch_add(1);
    if (ws.data().throw_on_open)
      throw std::runtime_error("open failed for " + ws.data().name);
    if (!ws.data().sub_on_open.empty())
      ws.subscribe(ws.data().sub_on_open);
    if (ws.data().route == "api")
      ws.send_text(open_json(ws));
  };
  h.message = [](socket_t& ws, herald::message m) {
    if (ws.data().route != "api" || m.is_binary()) {
      if (m.is_text())
        ws.send_text(m.text());
      else
        ws.send_binary(m.bytes());
      return;
    }
    on_command(ws, m.text());
  };
  h.close = [](socket_t& ws, int code, std::string_view reason) {
    events.add(events.closes,
               event_log::close_rec{ws.data().name, ws.data().route, code,
                                    std::string{reason}});
  };
  h.ping = [](socket_t& ws, std::span<const std::byte> data) {
    ws.data().pings.push_back(bytes_str(data));
    events.add(events.pings,
               event_log::data_rec{ws.data().name, bytes_str(data)});
  };
  h.pong = [](socket_t& ws, std::span<const std::byte> data) {
    events.add(events.pongs,
               event_log::data_rec{ws.data().name, bytes_str(data)});
    if (ws.data().route == "api")
      ws.send_text("pong " + bytes_str(data));
  };
  h.drain = [](socket_t& ws) {
    events.add(events.notes, event_log::data_rec{ws.data().name, "drain"});
    if (ws.data().route == "api")
      ws.send_text("drain");
  };
  h.limited = [](socket_t& ws, herald::message m) {
    ws.send_text("limited " + std::string{m.text()});
  };
  h.error = [](socket_t& ws, std::string_view what) {
    events.add(events.errors,
               event_log::error_rec{ws.data().name, std::string{what}});
    std::fprintf(stderr, "herald-test-server: error handler: %.*s\n",
                 static_cast<int>(what.size()), what.data());
  };
  return h;
}

bool has_protocol(const herald::request& req, std::string_view p) {
  for (auto& x : req.protocols())
    if (x == p)
      return true;
  return false;
}

// -- deferred requests ---------------------------------------------------------------

using later_atom = caf::atom_constant<caf::atom("later")>;
using deferred_t = herald::deferred_request<conn_data>;

// Answers /deferred requests (see answer_later); spawned in main.
caf::actor answerer;

// Handles of /never requests, by id.
std::mutex held_mtx;
std::map<std::string, deferred_t> held;

void answer_deferred(const deferred_t& d, const std::string& route) {
  auto& req = d.req();
  auto name = req.query("name").value_or("");
  if (req.query("deny").value_or("") == "1") {
    d.respond(herald::response{403, "denied " + name + "\n"});
    return;
  }
  conn_data data;
  data.route = route;
  data.name = name;
  data.method = std::string{req.method()};
  data.path = req.path();
  data.target = std::string{req.target()};
  data.remote = req.remote_endpoint();
  if (!d.upgrade(std::move(data)))
    d.respond(herald::response{200, "later " + name + "\n"});
}

// Upgrades get `route` (an argument, not a capture: CAF 0.17 dereferences
// a null argument tuple for actors spawned without any).
caf::behavior answer_later(caf::event_based_actor* self, std::string route) {
  return {
    [=](deferred_t& d) {
      auto ms =
        std::strtol(d.req().query("ms").value_or("0").c_str(), nullptr, 10);
      if (ms <= 0)
        answer_deferred(d, route);
      else
        self->delayed_send(self, std::chrono::milliseconds{ms},
                           later_atom::value, std::move(d));
    },
    [=](later_atom, const deferred_t& d) { answer_deferred(d, route); },
  };
}

std::string held_json(const std::string& id, server_t& srv) {
  std::string state = "none";
  {
    std::lock_guard<std::mutex> guard{held_mtx};
    if (auto i = held.find(id); i != held.end() && i->second.state()) {
      switch (i->second.state()->current()) {
        case herald::deferral::state::pending:
          state = "pending";
          break;
        case herald::deferral::state::completed:
          state = "completed";
          break;
        case herald::deferral::state::gone:
          state = "gone";
          break;
        case herald::deferral::state::timed_out:
          state = "timed_out";
          break;
        case herald::deferral::state::refused:
          state = "refused";
          break;
      }
    }
  }
  return "{\"state\":" + json_str(state) + ",\"pending_requests\":"
         + std::to_string(srv.pending_requests()) + "}";
}

herald::fetch_result fetch(herald::request& req, server_t& srv) {
  const auto& path = req.path();
  auto ws_route = [&](std::string route) -> herald::fetch_result {
    conn_data d;
    d.route = std::move(route);
    d.name = req.query("name").value_or("");
    d.throw_on_open = req.query("throw").value_or("") == "open";
    d.sub_on_open = req.query("sub").value_or("");
    d.method = std::string{req.method()};
    d.path = path;
    d.target = std::string{req.target()};
    d.remote = req.remote_endpoint();
    d.user_agent = std::string{req.header("user-agent").value_or("")};
    herald::header_list extra;
    if (has_protocol(req, "chat"))
      extra.emplace_back("Sec-WebSocket-Protocol", "chat");
    if (srv.upgrade(req, std::move(d), std::move(extra)))
      return herald::upgraded;
    // No upgrade attempt (a malformed one is answered 400/426 by Herald
    // whatever we return here).
    return herald::response{200, "this is a WebSocket endpoint\n"};
  };
  if (path == "/echo")
    return ws_route("echo");
  if (path == "/api")
    return ws_route("api");
  if (path == "/auth") {
    if (req.header("authorization").value_or("") != "Bearer secret")
      return herald::response{401,
                              "unauthorized\n",
                              {{"WWW-Authenticate", "Bearer"}}};
    return ws_route("auth");
  }
  if (path == "/info" || path.starts_with("/info/"))
    return herald::response{200,
                            info_json(req),
                            {{"Content-Type", "application/json"}}};
  if (path == "/metrics")
    return herald::response{200,
                            herald::prometheus_text(srv),
                            {{"Content-Type",
                              std::string{herald::prometheus_type}}}};
  if (path == "/stats")
    return herald::response{200,
                            stats_json(srv),
                            {{"Content-Type", "application/json"}}};
  if (path == "/headers")
    return herald::response{200,
                            "headers\n",
                            {{req.query("name").value_or("X-Empty"),
                              req.query("value").value_or("")},
                             {"X-After", "yes"}}};
  if (path == "/publish") {
    // Server-side publish: GET /publish?topic=T&text=X -> publish's result
    // and the subscriber count.
    auto topic = req.query("topic").value_or("");
    auto count = srv.subscriber_count(topic);
    auto status = srv.publish(topic, req.query("text").value_or(""));
    return herald::response{200, "published " + std::to_string(status) + " "
                                   + std::to_string(count) + "\n"};
  }
  if (path == "/deferred")
    return srv.defer_to(req, answerer);
  if (path == "/never") {
    auto d = srv.defer(req);
    std::lock_guard<std::mutex> guard{held_mtx};
    held[req.query("id").value_or("")] = std::move(d);
    return herald::deferred;
  }
  if (path == "/held")
    return herald::response{200,
                            held_json(req.query("id").value_or(""), srv),
                            {{"Content-Type", "application/json"}}};
  if (path == "/complete") {
    deferred_t d;
    {
      std::lock_guard<std::mutex> guard{held_mtx};
      if (auto i = held.find(req.query("id").value_or("")); i != held.end())
        d = i->second;
    }
    auto ok = d.respond(herald::response{200, "late\n"});
    return herald::response{200, std::string{"complete "}
                                   + (ok ? "true" : "false") + "\n"};
  }
  if (path == "/stop") {
    auto graceful = req.query("mode").value_or("") == "graceful";
    auto ms = std::strtoll(req.query("deadline_ms").value_or("-1").c_str(),
                           nullptr, 10);
    srv.stop(graceful ? herald::stop_mode::graceful
                      : herald::stop_mode::immediate,
             ms < 0 ? std::chrono::milliseconds::max()
                    : std::chrono::milliseconds{ms});
    return herald::response{200, "stopping\n"};
  }
  if (path == "/throw")
    throw std::runtime_error("fetch failed on purpose");
  if (path == "/fake-upgrade")
    return herald::upgraded;
  if (path == "/")
    return herald::response{200, "herald-test-server\n"};
  return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 0;
  std::chrono::seconds idle{120};
  bool no_pings = false;
  std::size_t max_payload = 16 << 20;
  herald::net::http_limits limits;
  std::size_t max_conns = 0;
  std::size_t bp_limit = 16 << 20;
  bool close_on_bp = false;
  herald::runtime_options rt_opts;
  double rate = 0;
  std::size_t burst = 0, max_subs = 0;
  bool rate_close = false;
  herald::cli::server_options server_opts;
  auto& tls = server_opts.tls;
  std::string sni;
  herald::cli::options opts{"herald-test-server",
                            "The integration tests' server (routes in "
                            "tests/integration/test_server.cpp)."};
  opts.add("host", "ADDR", host, "address");
  opts.add("port", "N", port, "port, 0 picks a free one").range(0, 65535);
  opts.add("idle-timeout", "SECS", idle, "WebSocket idle timeout, 0: never");
  opts.flag("no-pings", no_pings, "do not ping quiet connections");
  opts.add("max-payload", "BYTES", max_payload, "largest message").min(1);
  opts.add("max-header", "BYTES", limits.max_header_size,
           "largest HTTP request head");
  opts.add("max-body", "BYTES", limits.max_body_size,
           "largest HTTP request body");
  opts.add("request-timeout-ms", "MS", limits.request_timeout,
           "HTTP request deadline");
  opts.add("keep-alive-ms", "MS", limits.keep_alive_timeout,
           "HTTP keep-alive idle timeout");
  opts.add("max-connections", "N", max_conns,
           "most WebSockets at once, 0: no limit");
  opts.add("backpressure-limit", "BYTES", bp_limit,
           "per-connection send buffer limit");
  opts.flag("close-on-backpressure-limit", close_on_bp,
            "close (1008) instead of dropping");
  opts.add("deferred-timeout-ms", "MS", limits.deferred_timeout,
           "deferred requests' timeout");
  opts.add("max-deferred", "N", limits.max_deferred,
           "most deferred requests waiting");
  opts.add("stop-deadline-ms", "MS", rt_opts.stop_deadline,
           "graceful stop's deadline on the first SIGTERM");
  opts
    .add("message-rate", "N", rate,
         "messages per second per connection, 0: off; over it: "
         "\"limited MESSAGE\"")
    .min(0);
  opts.add("message-burst", "N", burst, "messages at once, 0: one second's");
  opts.flag("rate-limit-close", rate_close, "close (1008) instead of dropping");
  opts.add("max-subscriptions", "N", max_subs,
           "topics per connection, 0: no limit");
  server_opts.add_tls(opts);
  opts.add("tls-passphrase", "PASS", tls.passphrase, "passphrase of the keys");
  opts.add("tls-ca", "FILE", tls.ca_file,
           "require client certificates from these CAs");
  opts.add("tls-sni", "NAME,CERT,KEY", sni,
           "a further certificate for server name NAME");
  opts.parse_or_exit(argc, argv);
  if (!sni.empty()) {
    auto a = sni.find(',');
    auto b = a == std::string::npos ? a : sni.find(',', a + 1);
    if (b == std::string::npos) {
      std::fprintf(stderr, "herald-test-server: --tls-sni NAME,CERT,KEY\n");
      return 2;
    }
    tls.sni.push_back(
      {sni.substr(0, a), sni.substr(a + 1, b - a - 1), sni.substr(b + 1)});
  }
  herald::runtime rt{rt_opts};
  answerer = rt.system().spawn(answer_later, std::string{"echo"});
  try {
    auto handlers = make_handlers();
    handlers.max_payload_length = max_payload;
    handlers.idle_timeout = idle;
    handlers.send_pings = !no_pings;
    handlers.backpressure_limit = bp_limit;
    handlers.close_on_backpressure_limit = close_on_bp;
    handlers.message_rate = {rate, burst,
                             rate_close
                               ? herald::rate_limit_policy::close_1008
                               : herald::rate_limit_policy::drop_and_notify};
    handlers.max_subscriptions = max_subs;
    auto server =
      herald::serve<conn_data>(rt, {
                                     .hostname = host,
                                     .port = static_cast<std::uint16_t>(port),
                                     .fetch = fetch,
                                     .websocket = std::move(handlers),
                                     .http = limits,
                                     .max_connections = max_conns,
                                     .redis = {}, // one node
                                     .topics = {},
                                     .tls = tls,
                                   });
    std::printf("listening on %s://%s:%u/\n", server.secure() ? "wss" : "ws",
                server.hostname().c_str(),
                static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    rt.run();
    caf::anon_send_exit(answerer, caf::exit_reason::user_shutdown);
    std::lock_guard<std::mutex> guard{held_mtx};
    held.clear();
  } catch (const std::exception& e) {
    caf::anon_send_exit(answerer, caf::exit_reason::user_shutdown);
    std::fprintf(stderr, "herald-test-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
