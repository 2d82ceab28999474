#include "protocol.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include <boost/json.hpp>

#include <herald/net/utf8.hpp>

namespace json = boost::json;

namespace chat {

bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > max_name || !herald::net::valid_utf8(s))
    return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7F)
      return false;
  return true;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string next_id() {
  static const std::string prefix = [] {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x-", static_cast<unsigned>(rd()));
    return std::string{buf};
  }();
  static std::atomic<std::uint64_t> counter{0};
  return prefix + std::to_string(counter.fetch_add(1) + 1);
}

std::string welcome_event(std::string_view room, std::string_view name,
                          std::size_t history) {
  json::object o;
  o["type"] = "welcome";
  o["room"] = room;
  o["name"] = name;
  o["history"] = history;
  return json::serialize(o);
}

std::string message_event(std::string_view room, std::string_view name,
                          std::string_view text, bool from_server) {
  json::object o;
  // "type" first: is_message_event relies on it.
  o["type"] = "message";
  o["id"] = next_id();
  o["room"] = room;
  o["name"] = name;
  o["text"] = text;
  o["time"] = now_ms();
  if (from_server)
    o["server"] = true;
  return json::serialize(o);
}

std::string presence_event(std::string_view type, std::string_view room,
                           std::string_view name, std::size_t connections,
                           std::size_t count, std::uint64_t seq) {
  json::object o;
  o["type"] = type;
  o["room"] = room;
  o["name"] = name;
  o["connections"] = connections;
  o["count"] = count;
  o["seq"] = seq;
  o["time"] = now_ms();
  return json::serialize(o);
}

std::string members_event(std::string_view room,
                          std::span<const std::string_view> members,
                          std::size_t count, bool more, std::uint64_t seq,
                          const std::string* after) {
  json::object o;
  o["type"] = "members";
  o["room"] = room;
  json::array a;
  a.reserve(members.size());
  for (auto m : members)
    a.emplace_back(m);
  o["members"] = std::move(a);
  o["count"] = count;
  o["more"] = more;
  o["seq"] = seq;
  if (after)
    o["after"] = *after;
  return json::serialize(o);
}

std::string history_event(std::string_view room,
                          std::span<const std::string_view> messages) {
  std::string out = R"({"type":"history","room":)";
  out += json::serialize(json::value(json::string(room)));
  out += R"(,"messages":[)";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0)
      out += ',';
    out += messages[i];
  }
  out += "]}";
  return out;
}

std::string error_event(std::string_view what) {
  json::object o;
  o["type"] = "error";
  o["error"] = what;
  return json::serialize(o);
}

bool is_message_event(std::string_view s) noexcept {
  return s.starts_with(R"({"type":"message",)");
}

client_request parse_request(std::string_view text) {
  client_request r;
  json::error_code ec;
  auto v = json::parse(text, ec);
  auto* o = ec ? nullptr : v.if_object();
  auto* type = o ? o->if_contains("type") : nullptr;
  if (!type || !type->is_string()) {
    r.error = R"(expected a JSON object with a "type")";
    return r;
  }
  auto t = std::string_view{type->get_string()};
  if (t == "members") {
    if (auto* after = o->if_contains("after")) {
      if (!after->is_string() || after->get_string().size() > max_name) {
        r.error = R"("after" must be a name)";
        return r;
      }
      r.after = std::string{after->get_string()};
    }
    if (auto* limit = o->if_contains("limit")) {
      auto n = limit->is_int64() ? limit->get_int64() : 0;
      if (n < 1 || n > static_cast<std::int64_t>(max_members_page)) {
        r.error = R"("limit" must be 1 to 500)";
        return r;
      }
      r.limit = static_cast<std::size_t>(n);
    }
    r.kind = client_request::members;
    return r;
  }
  if (t != "message") {
    r.error = "unknown type";
    return r;
  }
  auto* body = o->if_contains("text");
  if (!body || !body->is_string()) {
    r.error = R"(a message needs a "text" string)";
    return r;
  }
  auto s = std::string_view{body->get_string()};
  if (s.empty() || s.size() > max_text) {
    r.error = "text must be 1 to 4000 characters";
    return r;
  }
  r.kind = client_request::message;
  r.text = s;
  return r;
}

} // namespace chat
