#include "room.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <caf/all.hpp>

#include <herald/net/utf8.hpp>

namespace chat {

namespace {

constexpr std::string_view rooms_prefix = "/rooms/";
constexpr std::string_view messages_suffix = "/messages";

// Compares without an early exit, so the time taken does not tell how much
// of a guessed token was right (only whether its length was).
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

herald::response json_response(int status, std::string body) {
  return herald::response{status,
                          std::move(body),
                          {{"Content-Type", "application/json"}}};
}

herald::fetch_result post_message(herald::request& req,
                                  herald::server<member>& srv,
                                  std::string_view room,
                                  std::string_view token) {
  if (req.method() != "POST")
    return herald::response{405, "POST only\n", {{"Allow", "POST"}}};
  if (!authorized(req, token))
    return herald::response{401,
                            "token required\n",
                            {{"WWW-Authenticate", "Bearer"}}};
  auto name = req.query("name").value_or("server");
  auto& text = req.body();
  if (!valid_label(room))
    return json_response(400, error_event("room: 1 to 32 characters"));
  if (!valid_label(name))
    return json_response(400, error_event("name: 1 to 32 characters"));
  if (text.empty() || text.size() > max_text || !herald::net::valid_utf8(text))
    return json_response(400,
                         error_event("body: 1 to 4000 bytes of UTF-8 text"));
  auto subscribers = srv.subscriber_count(room);
  srv.publish(room, message_event(room, name, text, true), true);
  return json_response(200,
                       "{\"subscribers\":" + std::to_string(subscribers) + "}");
}

herald::response get_only() {
  return herald::response{405, "GET only\n", {{"Allow", "GET, HEAD"}}};
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

herald::websocket_handlers<member> handlers(caf::actor presence,
                                            std::size_t history) {
  herald::websocket_handlers<member> h;
  h.open = [presence, history](herald::socket<member>& ws) {
    auto& m = ws.data();
    ws.subscribe(m.room);
    ws.send_text(welcome_event(m.room, m.name, history));
    // Presence announces the join to the room (this connection included)
    // and then has the history sent here.
    caf::anon_send(presence, join_atom::value, m.room, m.name, ws.actor());
  };
  h.message = [presence](herald::socket<member>& ws, herald::message msg) {
    if (!msg.is_text()) {
      ws.close(1003, "text messages only");
      return;
    }
    auto req = parse_request(msg.text());
    switch (req.kind) {
      case client_request::message:
        // publish_to_self: the sender gets its message from the topic, in
        // the same order as everyone else.
        ws.publish(ws.data().room,
                   message_event(ws.data().room, ws.data().name, req.text),
                   true);
        break;
      case client_request::members:
        caf::anon_send(presence, members_atom::value, ws.data().room,
                       ws.actor(), req.after.value_or(std::string{}),
                       req.limit);
        break;
      case client_request::invalid:
        ws.send_text(error_event(req.error));
        break;
    }
  };
  h.close = [presence](herald::socket<member>& ws, int, std::string_view) {
    caf::anon_send(presence, leave_atom::value, ws.actor());
  };
  h.limited = [](herald::socket<member>& ws, herald::message) {
    ws.send_text(error_event(rate_limit_error));
  };
  h.max_payload_length = max_message_bytes;
  h.publish_to_self = true;
  h.message_rate = {message_rate, message_burst,
                    herald::rate_limit_policy::drop_and_notify};
  // One room per connection; nothing else subscribes.
  h.max_subscriptions = 1;
  return h;
}

bool authorized(const herald::request& req, std::string_view token) {
  if (token.empty())
    return true;
  if (auto q = req.query("token"); q && same_secret(*q, token))
    return true;
  if (auto a = req.header("Authorization");
      a && a->starts_with("Bearer ") && same_secret(a->substr(7), token))
    return true;
  return false;
}

namespace {

// What /ws answers; `up(member)` upgrades.
template <class Upgrade>
herald::fetch_result decide(const herald::request& req, std::string_view token,
                            Upgrade&& up) {
  if (!authorized(req, token))
    return herald::response{401,
                            "token required\n",
                            {{"WWW-Authenticate", "Bearer"}}};
  auto name = req.query("name").value_or("");
  auto room = req.query("room").value_or("general");
  if (!valid_label(name) || !valid_label(room))
    return herald::response{400, "name and room: 1 to 32 characters\n"};
  if (up(member{name, room}))
    return herald::upgraded;
  return herald::response{400, "WebSocket upgrade expected\n"};
}

} // namespace

herald::fetch_result open_socket(herald::request& req,
                                 herald::server<member>& srv,
                                 const caf::actor& auth) {
  if (auth)
    return srv.defer_to(req, auth);
  return decide(req, {},
                [&](member m) { return srv.upgrade(req, std::move(m)); });
}

void admit(const herald::deferred_request<member>& d, std::string_view token) {
  auto r =
    decide(d.req(), token, [&](member m) { return d.upgrade(std::move(m)); });
  // A malformed upgrade is answered by the server already (respond is a
  // no-op then), as is a request whose client left.
  if (r && r->status != 101)
    d.respond(std::move(*r));
}

caf::actor spawn_auth(caf::actor_system& sys, std::string token) {
  // The token as a spawn argument: CAF 0.17 dereferences a null argument
  // tuple for actors spawned without any.
  return sys.spawn(
    [](caf::event_based_actor* self, const std::string& secret) {
      return caf::behavior{
        [=](const herald::deferred_request<member>& d) { admit(d, secret); },
        [=](const herald::topic_registry& registry) {
          self->link_to(registry.actor());
        },
      };
    },
    std::move(token));
}

site::site(const std::string& dir) {
  struct entry {
    const char* path;
    const char* file;
    const char* type;
  };
  for (auto [path, file, type] : {
         entry{"/", "index.html", "text/html; charset=utf-8"},
         entry{"/app.js", "app.js", "text/javascript; charset=utf-8"},
         entry{"/style.css", "style.css", "text/css; charset=utf-8"},
       })
    files_.emplace(path, herald::response{200,
                                          read_file(dir + "/" + file),
                                          {{"Content-Type", type},
                                           {"Cache-Control", "no-cache"}}});
}

const herald::response* site::file(std::string_view path) const {
  auto i = files_.find(path == "/index.html" ? std::string_view{"/"} : path);
  return i == files_.end() ? nullptr : &i->second;
}

herald::fetch_result route(herald::request& req, herald::server<member>& srv,
                           const site& pages, std::string_view token,
                           const caf::actor& auth) {
  auto path = std::string_view{req.path()};
  if (path == "/ws")
    return open_socket(req, srv, token.empty() ? caf::actor{} : auth);
  if (path.starts_with(rooms_prefix) && path.ends_with(messages_suffix)
      && path.size() > rooms_prefix.size() + messages_suffix.size())
    return post_message(req, srv,
                        path.substr(rooms_prefix.size(),
                                    path.size() - rooms_prefix.size()
                                      - messages_suffix.size()),
                        token);
  auto get = req.method() == "GET" || req.method() == "HEAD";
  if (path == "/health")
    return get ? herald::response{200, "ok\n"} : get_only();
  if (path == "/metrics") {
    if (!get)
      return get_only();
    return herald::response{200,
                            herald::prometheus_text(srv),
                            {{"Content-Type",
                              std::string{herald::prometheus_type}}}};
  }
  if (auto* f = pages.file(path)) {
    if (!get)
      return get_only();
    return *f;
  }
  return std::nullopt; // 404
}

} // namespace chat
