#include "herald/net/handshake.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include <boost/beast/core/detail/base64.hpp>

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

// -- SHA-1 (FIPS 180-4) of a key and the GUID -------------------------------
//
// The server hashes one kind of message: a key (24 bytes when valid) and
// the GUID, 60 bytes, two blocks. The second block then holds only padding
// and the length, so its message schedule is a constant.

using sha1_state = std::array<std::uint32_t, 5>;
using sha1_schedule = std::array<std::uint32_t, 80>;
using sha1_digest = std::array<unsigned char, 20>;

constexpr std::uint32_t rotl(std::uint32_t x, int n) noexcept {
  return (x << n) | (x >> (32 - n));
}

constexpr void expand(sha1_schedule& w) noexcept {
  for (std::size_t t = 16; t < 80; ++t)
    w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
}

// The schedule of the block after a 60-byte message: zeros, then the
// message's length in bits.
constexpr sha1_schedule tail_of_60 = [] {
  sha1_schedule w{};
  w[15] = 60 * 8;
  expand(w);
  return w;
}();

void rounds(sha1_state& h, const sha1_schedule& w) noexcept {
  auto a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  // Five rounds a step: the variables trade roles instead of values.
  // Inlined, or each step is a call that passes them all in memory.
  auto step = [&](auto f, std::uint32_t k, std::size_t t)
    __attribute__((always_inline)) {
    e += rotl(a, 5) + f(b, c, d) + k + w[t];
    b = rotl(b, 30);
    d += rotl(e, 5) + f(a, b, c) + k + w[t + 1];
    a = rotl(a, 30);
    c += rotl(d, 5) + f(e, a, b) + k + w[t + 2];
    e = rotl(e, 30);
    b += rotl(c, 5) + f(d, e, a) + k + w[t + 3];
    d = rotl(d, 30);
    a += rotl(b, 5) + f(c, d, e) + k + w[t + 4];
    c = rotl(c, 30);
  };
  auto choose = [](std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    return z ^ (x & (y ^ z));
  };
  auto parity = [](std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    return x ^ y ^ z;
  };
  auto majority = [](std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    return (x & y) | (z & (x | y));
  };
  for (std::size_t t = 0; t < 20; t += 5)
    step(choose, 0x5A827999, t);
  for (std::size_t t = 20; t < 40; t += 5)
    step(parity, 0x6ED9EBA1, t);
  for (std::size_t t = 40; t < 60; t += 5)
    step(majority, 0x8F1BBCDC, t);
  for (std::size_t t = 60; t < 80; t += 5)
    step(parity, 0xCA62C1D6, t);
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void compress(sha1_state& h, const unsigned char* block) noexcept {
  sha1_schedule w;
  for (std::size_t t = 0; t < 16; ++t)
    w[t] = std::uint32_t{block[4 * t]} << 24
           | std::uint32_t{block[4 * t + 1]} << 16
           | std::uint32_t{block[4 * t + 2]} << 8 | block[4 * t + 3];
  expand(w);
  rounds(h, w);
}

sha1_digest sha1_with_guid(std::string_view key) noexcept {
  sha1_state h{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  unsigned char block[64];
  std::size_t used = 0;
  auto feed = [&](std::string_view s) {
    while (!s.empty()) {
      auto n = std::min(s.size(), sizeof block - used);
      std::memcpy(block + used, s.data(), n);
      used += n;
      s.remove_prefix(n);
      if (used == sizeof block) {
        compress(h, block);
        used = 0;
      }
    }
  };
  feed(key);
  feed(ws_guid);
  auto bits = (std::uint64_t{key.size()} + ws_guid.size()) * 8;
  // Padding: a 1 bit, zeros, and the length in the last 8 bytes.
  block[used++] = 0x80;
  bool done = false;
  if (used > 56) {
    std::memset(block + used, 0, sizeof block - used);
    compress(h, block);
    used = 0;
    if (bits == 60 * 8) {
      rounds(h, tail_of_60);
      done = true;
    }
  }
  if (!done) {
    std::memset(block + used, 0, 56 - used);
    for (std::size_t i = 0; i < 8; ++i)
      block[56 + i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
    compress(h, block);
  }
  sha1_digest out;
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      out[4 * i + j] = static_cast<unsigned char>(h[i] >> (24 - 8 * j));
  return out;
}

namespace b64 = boost::beast::detail::base64;

// Sec-WebSocket-Accept for `key`, into `out`; returns its length (28).
using accept_buffer = std::array<char, b64::encoded_size(20)>;

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
