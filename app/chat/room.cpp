#include "room.hpp"

#include <chrono>

#include <boost/json.hpp>

namespace json = boost::json;

namespace chat {

namespace {

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

} // namespace

bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > max_name)
    return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7F)
      return false;
  return true;
}

herald::fetch_result open_socket(herald::request& req,
                                 herald::server<member>& srv) {
  auto name = req.query("name").value_or("");
  auto room = req.query("room").value_or("general");
  if (!valid_label(name) || !valid_label(room))
    return herald::response{400, "name and room: 1 to 32 characters\n"};
  if (srv.upgrade(req, member{name, room}))
    return herald::upgraded;
  return herald::response{400, "WebSocket upgrade expected\n"};
}

herald::websocket_handlers<member> handlers() {
  herald::websocket_handlers<member> h;
  h.open = [](herald::socket<member>& ws) {
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
  };
  h.message = [](herald::socket<member>& ws, herald::message msg) {
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
  };
  h.close = [](herald::socket<member>& ws, int, std::string_view) {
    ws.publish(ws.data().room, event("leave", ws.data()));
  };
  return h;
}

} // namespace chat
