#include "herald/net/handshake.hpp"

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/detail/sha1.hpp>

#include "herald/net/text.hpp"

namespace herald::net {

namespace {

constexpr std::string_view ws_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// A key is valid when it is base64 for exactly 16 bytes (RFC 6455 4.2.1).
bool valid_key(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=')
    return false;
  for (std::size_t i = 0; i < 22; ++i) {
    auto c = static_cast<unsigned char>(key[i]);
    if (!std::isalnum(c) && c != '+' && c != '/')
      return false;
  }
  // The last character before padding carries 2 bits; the rest must be 0.
  auto last = key[21];
  return std::string_view{"AQgw"}.find(last) != std::string_view::npos;
}

namespace d = boost::beast::detail;

// Sec-WebSocket-Accept for `key`, into `out`; returns its length (28).
using accept_buffer =
  std::array<char, d::base64::encoded_size(d::sha1_context::digest_size)>;

std::size_t write_accept_key(std::string_view key, accept_buffer& out) {
  d::sha1_context ctx;
  d::init(ctx);
  d::update(ctx, key.data(), key.size());
  d::update(ctx, ws_guid.data(), ws_guid.size());
  std::array<unsigned char, d::sha1_context::digest_size> digest;
  d::finish(ctx, digest.data());
  return d::base64::encode(out.data(), digest.data(), digest.size());
}

} // namespace

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = trim(list.substr(0, comma));
    if (iequals(item, token))
      return true;
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool is_upgrade_attempt(const request& req) {
  return req.is_upgrade() || req.header("sec-websocket-key").has_value();
}

handshake_verdict check_upgrade(const request& req) {
  if (req.method() != "GET")
    return {400, "WebSocket upgrade requires GET"};
  if (req.version() < 11)
    return {400, "WebSocket upgrade requires HTTP/1.1"};
  // The first of each header, as request::header finds it, in one pass.
  std::optional<std::string_view> host, upgrade, connection, version, key;
  for (auto& [k, v] : req.headers()) {
    auto* slot = iequals(k, "host")                    ? &host
                 : iequals(k, "upgrade")               ? &upgrade
                 : iequals(k, "connection")            ? &connection
                 : iequals(k, "sec-websocket-version") ? &version
                 : iequals(k, "sec-websocket-key")     ? &key
                                                       : nullptr;
    if (slot != nullptr && !*slot)
      *slot = std::string_view{v};
  }
  if (!host)
    return {400, "missing Host"};
  if (!upgrade || !has_token(*upgrade, "websocket"))
    return {400, "missing Upgrade: websocket"};
  if (!connection || !has_token(*connection, "upgrade"))
    return {400, "missing Connection: upgrade"};
  if (!version)
    return {426, "missing Sec-WebSocket-Version"};
  if (trim(*version) != "13")
    return {426, "unsupported Sec-WebSocket-Version"};
  if (!key || !valid_key(trim(*key)))
    return {400, "missing or invalid Sec-WebSocket-Key"};
  return {};
}

std::string accept_key(std::string_view key) {
  accept_buffer buf;
  return std::string{buf.data(), write_accept_key(key, buf)};
}

std::string switching_protocols(const request& req) {
  std::string out;
  out.reserve(256);
  out += "HTTP/1.1 101 Switching Protocols\r\n"
         "Upgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Accept: ";
  accept_buffer accept;
  auto n = write_accept_key(trim(req.header("sec-websocket-key").value_or("")),
                            accept);
  out.append(accept.data(), n);
  out += "\r\n";
  for (auto& [name, value] : req.upgrade_headers()) {
    // Never let a handler's header break the response apart.
    if (name.find_first_of("\r\n:") != std::string::npos
        || value.find_first_of("\r\n") != std::string::npos)
      continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

} // namespace herald::net
