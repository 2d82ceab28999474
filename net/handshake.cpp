#include "herald/net/handshake.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <string_view>

#include <boost/beast/core/detail/base64.hpp>
// SHA1_Init and the rest are deprecated in OpenSSL 3 for EVP, which is
// slower for one small message (see sha1_with_guid).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "herald/net/text.hpp"

namespace herald::net {

namespace {

constexpr std::string_view ws_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// The base64 alphabet (ASCII letters and digits, '+', '/'), by byte.
constexpr auto base64_chars = [] {
  std::array<bool, 256> in{};
  for (int c = 0; c < 256; ++c)
    in[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '+' || c == '/';
  return in;
}();

// A key is valid when it is base64 for exactly 16 bytes (RFC 6455 4.2.1).
bool valid_key(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=')
    return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (!base64_chars[static_cast<unsigned char>(key[i])])
      return false;
  // The last character before padding carries 2 bits; the rest must be 0.
  auto last = key[21];
  return std::string_view{"AQgw"}.find(last) != std::string_view::npos;
}

// -- SHA-1 of a key and the GUID --------------------------------------------
//
// OpenSSL's block function: it picks the CPU's SHA extensions or vector
// code at run time (a handshake's two blocks in a fraction of portable
// code's time). The low-level calls, not SHA1() or EVP: in OpenSSL 3 those
// look the algorithm up on every call.

using sha1_digest = std::array<unsigned char, SHA_DIGEST_LENGTH>;

sha1_digest sha1_with_guid(std::string_view key) noexcept {
  SHA_CTX ctx;
  SHA1_Init(&ctx);
  SHA1_Update(&ctx, key.data(), key.size());
  SHA1_Update(&ctx, ws_guid.data(), ws_guid.size());
  sha1_digest out;
  SHA1_Final(out.data(), &ctx);
  return out;
}

namespace b64 = boost::beast::detail::base64;

// Sec-WebSocket-Accept for `key`, into `out`; returns its length (28).
using accept_buffer = std::array<char, b64::encoded_size(SHA_DIGEST_LENGTH)>;

std::size_t write_accept_key(std::string_view key, accept_buffer& out) {
  auto digest = sha1_with_guid(key);
  return b64::encode(out.data(), digest.data(), digest.size());
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
  for (auto& h : req.headers()) {
    const auto& k = h.first;
    const auto& v = h.second;
    // By length first: one comparison per header at most. (A structured
    // binding cannot be captured in C++20 by clang 14.)
    auto is = [&k](std::string_view name, auto& slot) {
      return iequals(k, name) ? &slot : nullptr;
    };
    std::optional<std::string_view>* slot = nullptr;
    switch (k.size()) {
      case 4:
        slot = is("host", host);
        break;
      case 7:
        slot = is("upgrade", upgrade);
        break;
      case 10:
        slot = is("connection", connection);
        break;
      case 17:
        slot = is("sec-websocket-key", key);
        break;
      case 21:
        slot = is("sec-websocket-version", version);
        break;
    }
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

namespace {

constexpr std::string_view response_head =
  "HTTP/1.1 101 Switching Protocols\r\n"
  "Upgrade: websocket\r\n"
  "Connection: Upgrade\r\n"
  "Sec-WebSocket-Accept: ";

// Never let a handler's header break the response apart.
bool writable(const std::pair<std::string, std::string>& h) {
  return h.first.find_first_of("\r\n:") == std::string::npos
         && h.second.find_first_of("\r\n") == std::string::npos;
}

// The 101 for `req` with `accept` as its Sec-WebSocket-Accept: measured
// first (`out` null), then written to `out`, so that it is made in one
// buffer of its final size.
std::size_t write_response(const request& req, std::string_view accept,
                           char* out) {
  std::size_t n = 0;
  auto put = [&](std::string_view s) {
    if (out)
      std::memcpy(out + n, s.data(), s.size());
    n += s.size();
  };
  put(response_head);
  put(accept);
  put("\r\n");
  for (auto& h : req.upgrade_headers()) {
    if (!writable(h))
      continue;
    put(h.first);
    put(": ");
    put(h.second);
    put("\r\n");
  }
  put("\r\n");
  return n;
}

std::string_view request_accept(const request& req, accept_buffer& buf) {
  auto n =
    write_accept_key(trim(req.header("sec-websocket-key").value_or("")), buf);
  return {buf.data(), n};
}

} // namespace

std::string switching_protocols(const request& req) {
  accept_buffer buf;
  auto accept = request_accept(req, buf);
  std::string out(write_response(req, accept, nullptr), '\0');
  write_response(req, accept, out.data());
  return out;
}

frame_ptr switching_protocols_frame(const request& req) {
  accept_buffer buf;
  auto accept = request_accept(req, buf);
  auto n = write_response(req, accept, nullptr);
  std::byte* out = nullptr;
  auto f = make_raw(n, out);
  write_response(req, accept, reinterpret_cast<char*>(out));
  return f;
}

} // namespace herald::net
