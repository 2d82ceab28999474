// Unit tests of the RFC 6455 frame parser (net/frame_parser.hpp).
//
// Frames are built byte by byte by `build` below, independently of
// net/frame.cpp, so that any header bit, mask and length encoding can be
// produced, including invalid ones. A recorder logs the parser's events as
// strings, in order, which makes whole event sequences easy to compare.
#define CAF_SUITE frame_parser

#include "herald/net/frame_parser.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "caf/test/dsl.hpp"

using namespace herald::net;

namespace {

using bytes = std::vector<std::byte>;
using strings = std::vector<std::string>;
using role = frame_parser::role;

// -- building frames ----------------------------------------------------------

bytes to_bytes(std::string_view s) {
  auto p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string to_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Every field of a frame header, valid or not.
struct header {
  bool fin = true;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  std::uint8_t op = 0x1;
  bool masked = true;
  // 0 picks the shortest encoding; 7, 16 or 64 forces one.
  int len_bits = 0;
  // When set, the header announces this length instead of the real one.
  std::optional<std::uint64_t> declared;
  std::array<std::uint8_t, 4> key = {0x5A, 0xC3, 0x0F, 0x96};
};

// Encodes a frame: header, masking key and (masked) payload.
bytes build(const header& h, std::span<const std::byte> payload) {
  bytes out;
  auto b0 = static_cast<std::uint8_t>((h.fin ? 0x80 : 0) | (h.rsv1 ? 0x40 : 0)
                                      | (h.rsv2 ? 0x20 : 0)
                                      | (h.rsv3 ? 0x10 : 0) | (h.op & 0x0F));
  out.push_back(std::byte{b0});
  auto len = h.declared.value_or(payload.size());
  auto bits = h.len_bits;
  if (bits == 0)
    bits = len < 126 ? 7 : (len <= 0xFFFF ? 16 : 64);
  std::uint8_t mask_bit = h.masked ? 0x80 : 0;
  if (bits == 7) {
    out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | len)});
  } else if (bits == 16) {
    out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | 126)});
    out.push_back(std::byte{static_cast<std::uint8_t>(len >> 8)});
    out.push_back(std::byte{static_cast<std::uint8_t>(len)});
  } else {
    out.push_back(std::byte{static_cast<std::uint8_t>(mask_bit | 127)});
    for (int i = 7; i >= 0; --i)
      out.push_back(std::byte{static_cast<std::uint8_t>(len >> (8 * i))});
  }
  if (h.masked)
    for (auto k : h.key)
      out.push_back(std::byte{k});
  for (std::size_t i = 0; i < payload.size(); ++i)
    out.push_back(h.masked ? payload[i] ^ std::byte{h.key[i % 4]} : payload[i]);
  return out;
}

bytes build(const header& h, std::string_view payload) {
  return build(h, std::span<const std::byte>{to_bytes(payload)});
}

// A masked frame as a client sends it; the key changes from frame to frame.
bytes client(std::uint8_t op, std::string_view payload, bool fin = true) {
  static std::uint8_t n = 0;
  header h;
  h.op = op;
  h.fin = fin;
  ++n;
  h.key = {static_cast<std::uint8_t>(0x11 * n), static_cast<std::uint8_t>(n),
           static_cast<std::uint8_t>(0xFF - n), 0x3C};
  return build(h, payload);
}

// An unmasked frame as a server sends it.
bytes server(std::uint8_t op, std::string_view payload, bool fin = true) {
  header h;
  h.op = op;
  h.fin = fin;
  h.masked = false;
  return build(h, payload);
}

// The payload of a close frame.
std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out += reason;
  return out;
}

// Concatenates byte buffers.
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Deterministic bytes covering all values.
bytes pattern(std::size_t n, unsigned seed = 0) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = std::byte{static_cast<std::uint8_t>(i * 31 + (i >> 9) + seed)};
  return out;
}

// Deterministic ASCII text.
std::string text_pattern(std::size_t n) {
  std::string out(n, ' ');
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return out;
}

// -- recording events ---------------------------------------------------------

// Renders a payload: small ones literally (escaped), large ones as size and
// hash, so that logs of big messages stay comparable and short.
std::string render(std::span<const std::byte> p) {
  std::string out;
  if (p.size() <= 64) {
    out += '\'';
    for (auto b : p) {
      auto c = std::to_integer<unsigned char>(b);
      if (c >= 0x20 && c < 0x7F && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char buf[5];
        std::snprintf(buf, sizeof(buf), "\\x%02X", c);
        out += buf;
      }
    }
    out += '\'';
    return out;
  }
  std::uint64_t h = 14695981039346656037ull; // FNV-1a
  for (auto b : p)
    h = (h ^ std::to_integer<std::uint64_t>(b)) * 1099511628211ull;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "<%zu bytes %016llx>", p.size(),
                static_cast<unsigned long long>(h));
  return buf;
}

std::string render(std::string_view s) {
  return render(
    std::span<const std::byte>{reinterpret_cast<const std::byte*>(s.data()),
                               s.size()});
}

std::string op_name(opcode op) {
  switch (op) {
    case opcode::text:
      return "text";
    case opcode::binary:
      return "binary";
    default:
      return "op" + std::to_string(static_cast<int>(op));
  }
}

struct message {
  opcode op;
  bytes data;
  bool compressed;
  const std::byte* ptr; // where the parser's view pointed
};

class recorder final : public parser_events {
public:
  strings log;
  std::vector<message> messages;
  std::vector<bytes> pings;
  std::vector<bytes> pongs;
  std::vector<std::string> whys;

  void on_message(opcode op, std::span<std::byte> payload,
                  bool compressed) override {
    log.push_back(op_name(op) + (compressed ? "(rsv1) " : " ")
                  + render(payload));
    messages.push_back(
      {op, bytes{payload.begin(), payload.end()}, compressed, payload.data()});
  }

  void on_ping(std::span<const std::byte> payload) override {
    log.push_back("ping " + render(payload));
    pings.emplace_back(payload.begin(), payload.end());
  }

  void on_pong(std::span<const std::byte> payload) override {
    log.push_back("pong " + render(payload));
    pongs.emplace_back(payload.begin(), payload.end());
  }

  void on_close(std::uint16_t code, std::string_view reason) override {
    log.push_back("close " + std::to_string(code) + " " + render(reason));
  }

  void on_protocol_error(std::uint16_t code, std::string_view why) override {
    log.push_back("error " + std::to_string(code));
    whys.emplace_back(why);
  }
};

// Log entries for expectations.
std::string text(std::string_view s) {
  return "text " + render(s);
}
std::string binary(std::span<const std::byte> b) {
  return "binary " + render(b);
}
std::string binary(std::string_view s) {
  return "binary " + render(s);
}
std::string ping(std::string_view s) {
  return "ping " + render(s);
}
std::string pong(std::string_view s) {
  return "pong " + render(s);
}
std::string closed(std::uint16_t code, std::string_view reason = {}) {
  return "close " + std::to_string(code) + " " + render(reason);
}
std::string error(std::uint16_t code) {
  return "error " + std::to_string(code);
}

// -- parsing ------------------------------------------------------------------

// A parser and a recorder. `feed` hands the parser a copy, since the parser
// unmasks in place and tests often reuse their input.
struct fixture {
  frame_parser parser{role::server};
  recorder rec;

  void feed(bytes data) { parser.feed(data, rec); }

  // Feeds the bytes [from, to) of `stream`.
  void feed(const bytes& stream, std::size_t from, std::size_t to) {
    feed(bytes{stream.begin() + static_cast<std::ptrdiff_t>(from),
               stream.begin() + static_cast<std::ptrdiff_t>(to)});
  }
};

struct options {
  role r = role::server;
  std::size_t max_message = 16u << 20;
  bool rsv1 = false;
};

// The events of parsing `stream` cut into pieces at the offsets in `cuts`
// (ascending).
strings parse(const bytes& stream, std::vector<std::size_t> cuts = {},
              options opts = {}) {
  frame_parser p{opts.r, opts.max_message};
  p.allow_rsv1(opts.rsv1);
  recorder rec;
  std::size_t from = 0;
  cuts.push_back(stream.size());
  for (auto to : cuts) {
    bytes piece{stream.begin() + static_cast<std::ptrdiff_t>(from),
                stream.begin() + static_cast<std::ptrdiff_t>(to)};
    p.feed(piece, rec);
    from = to;
  }
  return rec.log;
}

strings parse(const bytes& stream, options opts) {
  return parse(stream, {}, opts);
}

// The events of parsing `stream` one byte at a time.
strings parse_bytewise(const bytes& stream, options opts = {}) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < stream.size(); ++i)
    cuts.push_back(i);
  return parse(stream, std::move(cuts), opts);
}

// Checks that every two-piece split and the byte-by-byte feed of `stream`
// produce `expected`.
void check_every_split(const bytes& stream, const strings& expected,
                       options opts = {}) {
  CAF_CHECK_EQUAL(parse(stream, opts), expected);
  std::size_t bad = 0;
  for (std::size_t at = 0; at <= stream.size(); ++at) {
    auto got = parse(stream, {at}, opts);
    if (got != expected) {
      if (bad++ == 0)
        CAF_CHECK_EQUAL(got, expected);
      CAF_MESSAGE("split at " << at << " of " << stream.size()
                              << " bytes differs");
    }
  }
  CAF_CHECK_EQUAL(bad, 0u);
  CAF_CHECK_EQUAL(parse_bytewise(stream, opts), expected);
}

// True when `p` (n bytes) lies inside `buf`.
bool points_into(const std::byte* p, std::size_t n, const bytes& buf) {
  return p >= buf.data() && p + n <= buf.data() + buf.size();
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(frame_parser_tests, fixture)

// -- lengths and encodings ----------------------------------------------------

CAF_TEST(every payload length class parses in every encoding that fits) {
  for (std::size_t n :
       {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 65537u, 3u << 20}) {
    for (int bits : {7, 16, 64}) {
      if ((bits == 7 && n > 125) || (bits == 16 && n > 0xFFFF))
        continue;
      CAF_MESSAGE(n << " bytes, " << bits << "-bit length");
      auto payload = pattern(n, static_cast<unsigned>(n));
      header h;
      h.op = 0x2;
      h.len_bits = bits;
      auto buf = build(h, payload);
      CAF_CHECK_EQUAL(buf.size(),
                      n + 6 + (bits == 16 ? 2 : 0) + (bits == 64 ? 8 : 0));
      recorder r;
      frame_parser p;
      p.feed(buf, r);
      CAF_REQUIRE_EQUAL(r.log.size(), 1u);
      CAF_REQUIRE_EQUAL(r.messages.size(), 1u);
      CAF_CHECK(r.messages[0].op == opcode::binary);
      CAF_CHECK(!r.messages[0].compressed);
      CAF_CHECK(r.messages[0].data == payload);
      // Text the same way.
      auto txt = text_pattern(n);
      h.op = 0x1;
      auto tbuf = build(h, txt);
      recorder rt;
      frame_parser pt;
      pt.feed(tbuf, rt);
      CAF_REQUIRE_EQUAL(rt.messages.size(), 1u);
      CAF_CHECK(rt.messages[0].op == opcode::text);
      CAF_CHECK(to_string(rt.messages[0].data) == txt);
      CAF_CHECK(!pt.stopped());
    }
  }
}

CAF_TEST(a multi megabyte message arrives in odd sized reads) {
  auto payload = pattern(3u << 20, 7);
  header h;
  h.op = 0x2;
  auto buf = build(h, payload);
  // 65537-byte reads keep the mask position and the eight-byte unmasking
  // loop out of step with the read boundaries.
  for (std::size_t i = 0; i < buf.size(); i += 65537)
    feed(buf, i, std::min(buf.size(), i + 65537));
  CAF_REQUIRE_EQUAL(rec.messages.size(), 1u);
  CAF_CHECK(rec.messages[0].data == payload);
  CAF_CHECK_EQUAL(rec.log.size(), 1u);
  CAF_CHECK_EQUAL(parser.buffered(), 0u);
  // The same as text with multi-byte characters cut by the reads.
  std::string txt;
  while (txt.size() < (3u << 20))
    txt += "ascii \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 ";
  auto tbuf = client(0x1, txt);
  for (std::size_t i = 0; i < tbuf.size(); i += 4099)
    feed(tbuf, i, std::min(tbuf.size(), i + 4099));
  CAF_REQUIRE_EQUAL(rec.messages.size(), 2u);
  CAF_CHECK(rec.messages[1].op == opcode::text);
  CAF_CHECK(to_string(rec.messages[1].data) == txt);
  CAF_CHECK_EQUAL(rec.log.size(), 2u);
}

CAF_TEST(many frames in one read arrive in order) {
  auto big = pattern(70000, 3);
  header h64;
  h64.op = 0x2;
  auto stream =
    cat({client(0x1, "first"), client(0x2, "\x01\x02"), client(0x9, "ping!"),
         client(0xA, ""), build(h64, big), client(0x1, ""),
         client(0x1, "fr", false), client(0x0, "ag", false),
         client(0x0, "ment"), client(0x2, std::string(200, 'x')),
         client(0x8, close_payload(1000, "bye"))});
  auto copy = stream;
  parser.feed(copy, rec);
  CAF_CHECK_EQUAL(rec.log,
                  (strings{text("first"), binary("\x01\x02"), ping("ping!"),
                           pong(""), binary(big), text(""), text("fragment"),
                           binary(std::string(200, 'x')),
                           closed(1000, "bye")}));
  CAF_CHECK(parser.stopped());
}

// -- splitting ----------------------------------------------------------------

CAF_TEST(frames split at every byte boundary give the same events) {
  header h16;
  h16.op = 0x2;
  h16.len_bits = 16;
  header h64;
  h64.op = 0x1;
  h64.len_bits = 64;
  auto stream = cat({
    client(0x1, "Hello, \xE2\x82\xAC!"),
    client(0x9, "are you there?"),
    build(h16, pattern(300, 1)),
    build(h64, "sixty-four bit length \xF0\x9F\x98\x80"),
    client(0x1, "frag \xC3", false),
    client(0xA, "pong in between"),
    client(0x0, "\xA9 mid ", false),
    client(0x9, ""),
    client(0x0, "end"),
    client(0x2, ""),
    client(0x8, close_payload(1001, "going \xE2\x98\x83")),
  });
  check_every_split(stream, {text("Hello, \xE2\x82\xAC!"),
                             ping("are you there?"), binary(pattern(300, 1)),
                             text("sixty-four bit length \xF0\x9F\x98\x80"),
                             pong("pong in between"), ping(""),
                             text("frag \xC3\xA9 mid end"), binary(""),
                             closed(1001, "going \xE2\x98\x83")});
}

CAF_TEST(a frame of every length class survives every split) {
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u}) {
    CAF_MESSAGE(n << " bytes");
    header h;
    h.op = 0x2;
    auto payload = pattern(n, 9);
    check_every_split(build(h, payload), {binary(payload)});
  }
  // Large frames: every split near the header, the ends and a few more.
  for (std::size_t n : {65535u, 65536u}) {
    header h;
    h.op = 0x2;
    auto payload = pattern(n, 5);
    auto buf = build(h, payload);
    strings expected{binary(payload)};
    for (std::size_t at = 0; at <= buf.size(); ++at) {
      if (at > 40 && at + 40 < buf.size() && at % 4099 != 0)
        continue;
      CAF_CHECK_EQUAL(parse(buf, {at}), expected);
    }
  }
}

CAF_TEST(empty reads change nothing) {
  auto stream =
    cat({client(0x1, "abc"), client(0x9, "pi"), client(0x1, "x", false),
         client(0x0, "yz"), client(0x8, close_payload(1000))});
  // An empty span (null data) before and after every byte.
  for (std::size_t i = 0; i < stream.size(); ++i) {
    parser.feed({}, rec);
    feed(stream, i, i + 1);
  }
  parser.feed({}, rec);
  CAF_CHECK_EQUAL(rec.log, (strings{text("abc"), ping("pi"), text("xyz"),
                                    closed(1000)}));
}

// -- fragmentation and control frames -----------------------------------------

CAF_TEST(fragmented messages with control frames in between) {
  auto stream = cat(
    {client(0x1, "Hel", false), client(0x9, "p1"), client(0x0, "lo ", false),
     client(0xA, "p2"), client(0x0, "", false), client(0x9, "p3"),
     client(0x0, "world"), client(0x2, std::string_view{"\x00\x01", 2}, false),
     client(0xA, ""), client(0x0, "\xFF\xFE")});
  check_every_split(stream, {ping("p1"), pong("p2"), ping("p3"),
                             text("Hello world"), pong(""),
                             binary(std::string_view{"\x00\x01\xFF\xFE", 4})});
  // Events arrive as soon as their frame is complete: the pings before the
  // message's final fragment.
  auto first = cat({client(0x1, "a", false), client(0x9, "now")});
  feed(first);
  CAF_CHECK_EQUAL(rec.log, (strings{ping("now")}));
  CAF_CHECK_EQUAL(parser.buffered(), 1u);
  feed(client(0x0, "b"));
  CAF_CHECK_EQUAL(rec.log, (strings{ping("now"), text("ab")}));
  CAF_CHECK_EQUAL(parser.buffered(), 0u);
}

CAF_TEST(ping and pong payloads are delivered intact) {
  std::string all;
  for (int i = 0; i < 125; ++i)
    all += static_cast<char>(i * 2 + 1);
  feed(cat({client(0x9, all), client(0xA, all), client(0x9, ""),
            client(0xA, std::string_view{"\x00", 1})}));
  CAF_REQUIRE_EQUAL(rec.pings.size(), 2u);
  CAF_REQUIRE_EQUAL(rec.pongs.size(), 2u);
  CAF_CHECK(rec.pings[0] == to_bytes(all));
  CAF_CHECK(rec.pongs[0] == to_bytes(all));
  CAF_CHECK(rec.pings[1].empty());
  CAF_CHECK(rec.pongs[1] == bytes{std::byte{0}});
  // A ping split across reads in the middle of its payload.
  auto buf = client(0x9, all);
  feed(buf, 0, 50);
  CAF_CHECK_EQUAL(rec.pings.size(), 2u);
  feed(buf, 50, buf.size());
  CAF_REQUIRE_EQUAL(rec.pings.size(), 3u);
  CAF_CHECK(rec.pings[2] == to_bytes(all));
}

// -- protocol errors ----------------------------------------------------------

CAF_TEST(control frames over 125 bytes are protocol errors) {
  for (std::uint8_t op : {0x8, 0x9, 0xA}) {
    CAF_CHECK_EQUAL(parse(client(op, std::string(126, 'x'))),
                    (strings{error(1002)}));
    // Reported at the header, before the payload arrives.
    header h;
    h.op = op;
    h.declared = 126;
    CAF_CHECK_EQUAL(parse(build(h, "")), (strings{error(1002)}));
    h.declared = 1000000;
    CAF_CHECK_EQUAL(parse(build(h, "")), (strings{error(1002)}));
  }
  // 125 bytes is fine.
  CAF_CHECK_EQUAL(parse(client(0x9, std::string(125, 'x'))),
                  (strings{ping(std::string(125, 'x'))}));
}

CAF_TEST(fragmented control frames are protocol errors) {
  for (std::uint8_t op : {0x8, 0x9, 0xA})
    CAF_CHECK_EQUAL(parse(client(op, "x", false)), (strings{error(1002)}));
  // Also inside a fragmented message.
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), client(0x9, "p", false),
                             client(0x0, "b")})),
                  (strings{error(1002)}));
}

CAF_TEST(reserved bits without an extension are protocol errors) {
  for (int bit = 0; bit < 3; ++bit) {
    for (std::uint8_t op : {0x1, 0x2, 0x9}) {
      header h;
      h.op = op;
      h.rsv1 = bit == 0;
      h.rsv2 = bit == 1;
      h.rsv3 = bit == 2;
      CAF_CHECK_EQUAL(parse(build(h, "x")), (strings{error(1002)}));
    }
  }
  // On a continuation frame too.
  header h;
  h.op = 0x0;
  h.rsv3 = true;
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), build(h, "b")})),
                  (strings{error(1002)}));
}

CAF_TEST(RSV1 with permessage - deflate) {
  options deflate;
  deflate.rsv1 = true;
  header h;
  h.op = 0x1;
  h.rsv1 = true;
  // Compressed text is not UTF-8 checked here (it is after inflating).
  std::string_view junk{"\xFF\x00\xC0", 3};
  auto compressed = build(h, junk);
  CAF_CHECK_EQUAL(parse(compressed, deflate),
                  (strings{"text(rsv1) " + render(junk)}));
  // RSV1 on the first fragment marks the whole message.
  h.fin = false;
  auto msg = cat({build(h, "ab"), client(0x0, "cd")});
  CAF_CHECK_EQUAL(parse(msg, deflate),
                  (strings{"text(rsv1) " + render("abcd")}));
  // The next message is not compressed unless it says so.
  CAF_CHECK_EQUAL(parse(cat({compressed, client(0x1, "plain")}), deflate),
                  (strings{"text(rsv1) " + render(junk), text("plain")}));
  // RSV1 on a continuation frame or a control frame is an error.
  header cont;
  cont.op = 0x0;
  cont.rsv1 = true;
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), build(cont, "b")}),
                        deflate),
                  (strings{error(1002)}));
  header ctl;
  ctl.op = 0x9;
  ctl.rsv1 = true;
  CAF_CHECK_EQUAL(parse(build(ctl, "p"), deflate), (strings{error(1002)}));
  // RSV2 and RSV3 stay reserved.
  header r2;
  r2.rsv2 = true;
  CAF_CHECK_EQUAL(parse(build(r2, "x"), deflate), (strings{error(1002)}));
  header r3;
  r3.rsv3 = true;
  r3.rsv1 = true;
  CAF_CHECK_EQUAL(parse(build(r3, "x"), deflate), (strings{error(1002)}));
}

CAF_TEST(reserved opcodes are protocol errors) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    CAF_MESSAGE("opcode " << int{op});
    CAF_CHECK_EQUAL(parse(client(op, "x")), (strings{error(1002)}));
    CAF_CHECK_EQUAL(parse(client(op, "")), (strings{error(1002)}));
    // In the middle of a fragmented message too.
    CAF_CHECK_EQUAL(parse(cat({client(0x2, "a", false), client(op, "x")})),
                    (strings{error(1002)}));
  }
}

CAF_TEST(a continuation without a message is a protocol error) {
  CAF_CHECK_EQUAL(parse(client(0x0, "x")), (strings{error(1002)}));
  CAF_CHECK_EQUAL(parse(client(0x0, "x", false)), (strings{error(1002)}));
  // After a complete message there is nothing to continue.
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), client(0x0, "b"),
                             client(0x0, "c")})),
                  (strings{text("ab"), error(1002)}));
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a"), client(0x0, "b")})),
                  (strings{text("a"), error(1002)}));
}

CAF_TEST(a new message inside a fragmented one is a protocol error) {
  for (std::uint8_t first : {0x1, 0x2})
    for (std::uint8_t next : {0x1, 0x2})
      for (bool fin : {true, false})
        CAF_CHECK_EQUAL(parse(cat(
                          {client(first, "a", false), client(next, "b", fin)})),
                        (strings{error(1002)}));
  // Also after a control frame between the fragments.
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), client(0x9, "p"),
                             client(0x1, "b")})),
                  (strings{ping("p"), error(1002)}));
}

CAF_TEST(unmasked client frames are protocol errors) {
  for (std::uint8_t op : {0x1, 0x2, 0x8, 0x9, 0xA})
    CAF_CHECK_EQUAL(parse(server(op, "")), (strings{error(1002)}));
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "a", false), server(0x0, "b")})),
                  (strings{error(1002)}));
}

CAF_TEST(a 64 - bit length with the top bit set is a protocol error) {
  header h;
  h.op = 0x2;
  h.declared = 0x8000000000000000ull;
  CAF_CHECK_EQUAL(parse(build(h, "")), (strings{error(1002)}));
  h.declared = 0xFFFFFFFFFFFFFFFFull;
  CAF_CHECK_EQUAL(parse(build(h, "")), (strings{error(1002)}));
  // The largest legal length passes the header and hits the size limit.
  h.declared = 0x7FFFFFFFFFFFFFFFull;
  CAF_CHECK_EQUAL(parse(build(h, "")), (strings{error(1009)}));
}

CAF_TEST(nothing is reported after a protocol error) {
  auto stream =
    cat({client(0x1, "ok"), client(0x3, "bad"), client(0x1, "after"),
         client(0x9, "p"), client(0x8, close_payload(1000))});
  check_every_split(stream, {text("ok"), error(1002)});
  feed(stream);
  CAF_CHECK(parser.stopped());
  feed(client(0x1, "more"));
  feed(client(0x3, "another error"));
  CAF_CHECK_EQUAL(rec.log, (strings{text("ok"), error(1002)}));
  CAF_CHECK_EQUAL(parser.buffered(), 0u);
  // An error drops the partial message it interrupts.
  fixture f;
  f.feed(client(0x1, "abc", false));
  CAF_CHECK_EQUAL(f.parser.buffered(), 3u);
  f.feed(client(0x7, ""));
  CAF_CHECK_EQUAL(f.rec.log, (strings{error(1002)}));
  CAF_CHECK_EQUAL(f.parser.buffered(), 0u);
  CAF_CHECK(!f.rec.whys.empty() && !f.rec.whys.front().empty());
}

// -- UTF-8 --------------------------------------------------------------------

CAF_TEST(invalid UTF - 8 in text messages fails with 1007) {
  // Whole frames.
  for (std::string_view bad :
       {"\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "abc\x80", "\xFF",
        "abc\xE2\x82", "\xF0\x9F\x98"}) {
    CAF_CHECK_EQUAL(parse(client(0x1, bad)), (strings{error(1007)}));
    // Binary messages carry any bytes.
    CAF_CHECK_EQUAL(parse(client(0x2, bad)), (strings{binary(bad)}));
  }
  // A valid character split across fragments is fine...
  check_every_split(cat({client(0x1, "\xE2", false), client(0x0, "\x82", false),
                         client(0x0, "\xAC")}),
                    {text("\xE2\x82\xAC")});
  // ...an invalid sequence split across fragments is not.
  check_every_split(cat({client(0x1, "ok \xE2\x82", false),
                         client(0x0, "( rest")}),
                    {error(1007)});
  check_every_split(cat({client(0x1, "\xED", false), client(0x0, "\xA0\x80")}),
                    {error(1007)});
  // A sequence cut off by the end of the final fragment.
  check_every_split(cat({client(0x1, "abc", false), client(0x0, "\xE2\x82")}),
                    {error(1007)});
  check_every_split(cat({client(0x1, "abc\xF0", false), client(0x0, "")}),
                    {error(1007)});
  // Control frames in between do not disturb the validation.
  check_every_split(cat({client(0x1, "\xF0\x9F", false), client(0x9, "\xFF"),
                         client(0x0, "\x98\x80")}),
                    {ping("\xFF"), text("\xF0\x9F\x98\x80")});
}

CAF_TEST(invalid UTF - 8 fails before the final fragment arrives) {
  feed(client(0x1, "fine so far \xC0\xAF", false));
  CAF_CHECK_EQUAL(rec.log, (strings{error(1007)}));
  CAF_CHECK(parser.stopped());
  CAF_CHECK_EQUAL(parser.buffered(), 0u);
  // The same inside a second fragment.
  fixture f2;
  f2.feed(client(0x1, "one ", false));
  f2.feed(client(0x0, "\xF5 two", false));
  CAF_CHECK_EQUAL(f2.rec.log, (strings{error(1007)}));
  // And inside a single frame split across reads: the first read fails.
  fixture f3;
  auto buf = client(0x1, "abc\xED\xBF\xBF" + std::string(1000, 'x'));
  f3.feed(buf, 0, 20);
  CAF_CHECK_EQUAL(f3.rec.log, (strings{error(1007)}));
  // A fragment that ends inside a character that may still be valid does
  // not fail yet.
  fixture f4;
  f4.feed(client(0x1, "abc\xE2\x82", false));
  CAF_CHECK(f4.rec.log.empty());
  f4.feed(client(0x0, "\xAC"));
  CAF_CHECK_EQUAL(f4.rec.log, (strings{text("abc\xE2\x82\xAC")}));
}

// -- close frames -------------------------------------------------------------

CAF_TEST(close frames) {
  // No payload: 1005, no reason.
  CAF_CHECK_EQUAL(parse(client(0x8, "")), (strings{closed(1005)}));
  // One byte cannot hold a code, even when an earlier control frame left
  // the byte that would complete a valid code (0x03E8 = 1000) behind.
  CAF_CHECK_EQUAL(parse(client(0x8, "\x03")), (strings{error(1002)}));
  CAF_CHECK_EQUAL(parse(cat({client(0x9, "\x03\xE8"), client(0x8, "\x03")})),
                  (strings{ping("\x03\xE8"), error(1002)}));
  // Codes a peer must not send.
  for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
                             2000, 2999, 5000, 65535}) {
    CAF_MESSAGE("code " << code);
    CAF_CHECK_EQUAL(parse(client(0x8, close_payload(code))),
                    (strings{error(1002)}));
    CAF_CHECK_EQUAL(parse(client(0x8, close_payload(code, "why"))),
                    (strings{error(1002)}));
  }
  // Codes a peer may send, with and without a reason.
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
    CAF_MESSAGE("code " << code);
    CAF_CHECK_EQUAL(parse(client(0x8, close_payload(code))),
                    (strings{closed(code)}));
    CAF_CHECK_EQUAL(parse(client(0x8, close_payload(code, "caf\xC3\xA9"))),
                    (strings{closed(code, "caf\xC3\xA9")}));
  }
  // The longest reason: 123 bytes.
  auto longest = std::string(121, 'r') + "\xC3\xA9";
  check_every_split(client(0x8, close_payload(4321, longest)),
                    {closed(4321, longest)});
  // A reason that is not UTF-8.
  for (std::string_view bad : {"\xFF", "ab\xC3", "\xED\xA0\x80"})
    CAF_CHECK_EQUAL(parse(client(0x8, close_payload(1000, bad))),
                    (strings{error(1007)}));
}

CAF_TEST(bytes after a close frame are ignored) {
  auto stream =
    cat({client(0x1, "before"), client(0x8, close_payload(1000, "bye")),
         client(0x1, "after"), client(0x9, "p"), client(0x3, "even errors")});
  check_every_split(stream, {text("before"), closed(1000, "bye")});
  feed(stream);
  CAF_CHECK(parser.stopped());
  feed(client(0x1, "later"));
  feed(to_bytes("garbage \xFF\xFF\xFF"));
  CAF_CHECK_EQUAL(rec.log, (strings{text("before"), closed(1000, "bye")}));
  // The same after a close frame without payload.
  check_every_split(cat({client(0x8, ""), client(0x1, "after"),
                         client(0x8, close_payload(1000))}),
                    {closed(1005)});
  // Also when the close frame ends a fragmented message early: the partial
  // message is dropped, not delivered.
  CAF_CHECK_EQUAL(parse(cat({client(0x1, "part", false),
                             client(0x8, close_payload(1001)),
                             client(0x0, "rest")})),
                  (strings{closed(1001)}));
}

// -- size limit ---------------------------------------------------------------

CAF_TEST(max_message bounds whole messages) {
  options lim;
  lim.max_message = 1000;
  CAF_CHECK_EQUAL(parse(client(0x2, std::string(1000, 'x')), lim),
                  (strings{binary(std::string(1000, 'x'))}));
  CAF_CHECK_EQUAL(parse(client(0x1, std::string(1000, 'x')), lim),
                  (strings{text(std::string(1000, 'x'))}));
  CAF_CHECK_EQUAL(parse(client(0x2, std::string(1001, 'x')), lim),
                  (strings{error(1009)}));
  // The error comes with the header, before any payload byte.
  frame_parser p{role::server, 1000};
  recorder r;
  auto buf = client(0x2, std::string(1001, 'x'));
  bytes hdr{buf.begin(), buf.begin() + 8}; // 2 + 2 (length) + 4 (mask)
  p.feed(hdr, r);
  CAF_CHECK_EQUAL(r.log, (strings{error(1009)}));
  CAF_CHECK(p.stopped());
  // The limit can change between messages.
  parser.max_message(10);
  CAF_CHECK_EQUAL(parser.max_message(), 10u);
  feed(client(0x1, "0123456789"));
  feed(client(0x1, "0123456789A"));
  CAF_CHECK_EQUAL(rec.log, (strings{text("0123456789"), error(1009)}));
  // Control frames do not count against a tiny limit.
  options tiny;
  tiny.max_message = 1;
  CAF_CHECK_EQUAL(parse(client(0x9, "ping payload"), tiny),
                  (strings{ping("ping payload")}));
}

CAF_TEST(max_message bounds the sum of fragments) {
  options lim;
  lim.max_message = 100;
  auto a = std::string(60, 'a');
  auto b = std::string(40, 'b');
  check_every_split(cat({client(0x1, a, false), client(0x9, "p"),
                         client(0x0, b)}),
                    {ping("p"), text(a + b)}, lim);
  check_every_split(cat({client(0x2, std::string(30, 'x'), false),
                         client(0x0, std::string(30, 'y'), false),
                         client(0x0, std::string(40, 'z'))}),
                    {binary(std::string(30, 'x') + std::string(30, 'y')
                            + std::string(40, 'z'))},
                    lim);
  // One byte over in the last fragment: 1009 at that fragment's header.
  frame_parser p{role::server, 100};
  recorder r;
  auto first = client(0x1, a, false);
  p.feed(first, r);
  CAF_CHECK(r.log.empty());
  auto over = client(0x0, b + "!");
  bytes hdr{over.begin(), over.begin() + 6};
  p.feed(hdr, r);
  CAF_CHECK_EQUAL(r.log, (strings{error(1009)}));
  // Three fragments adding up to one byte over.
  CAF_CHECK_EQUAL(parse(cat({client(0x2, std::string(40, 'x'), false),
                             client(0x0, std::string(40, 'y'), false),
                             client(0x0, std::string(21, 'z'))}),
                        lim),
                  (strings{error(1009)}));
  // Messages after a fragmented one start counting from zero.
  CAF_CHECK_EQUAL(parse(cat({client(0x1, a, false), client(0x0, b),
                             client(0x1, std::string(100, 'c'))}),
                        lim),
                  (strings{text(a + b), text(std::string(100, 'c'))}));
}

CAF_TEST(a huge announced length fails at the header) {
  header h;
  h.op = 0x2;
  h.declared = 1ull << 40;
  bytes buf = build(h, ""); // header only
  feed(buf);
  CAF_CHECK_EQUAL(rec.log, (strings{error(1009)}));
  CAF_CHECK_EQUAL(parser.buffered(), 0u);
}

// -- client role --------------------------------------------------------------

CAF_TEST(the client role takes unmasked frames and refuses masked ones) {
  options cl;
  cl.r = role::client;
  auto stream =
    cat({server(0x1, "hello"), server(0x9, "p"), server(0x2, "bin", false),
         server(0xA, "q"), server(0x0, "ary"),
         server(0x8, close_payload(1000, "done"))});
  check_every_split(stream,
                    {text("hello"), ping("p"), pong("q"), binary("binary"),
                     closed(1000, "done")},
                    cl);
  for (std::uint8_t op : {0x1, 0x2, 0x8, 0x9, 0xA})
    CAF_CHECK_EQUAL(parse(client(op, "x"), cl), (strings{error(1002)}));
  CAF_CHECK_EQUAL(parse(cat({server(0x1, "a", false), client(0x0, "b")}), cl),
                  (strings{error(1002)}));
  // Unmasked frames also get the UTF-8 check.
  CAF_CHECK_EQUAL(parse(server(0x1, "\xC0\xAF"), cl), (strings{error(1007)}));
}

// -- zero copy ----------------------------------------------------------------

CAF_TEST(unfragmented frames in one read are views into the read buffer) {
  auto big = pattern(70000, 11);
  header h;
  h.op = 0x2;
  auto buf = cat({client(0x1, "hello"), client(0x9, "p"), build(h, big),
                  client(0x2, "tail")});
  parser.feed(buf, rec);
  CAF_REQUIRE_EQUAL(rec.messages.size(), 3u);
  CAF_CHECK_EQUAL(to_string(rec.messages[0].data), "hello");
  CAF_CHECK(points_into(rec.messages[0].ptr, 5, buf));
  CAF_CHECK(rec.messages[1].data == big);
  CAF_CHECK(points_into(rec.messages[1].ptr, big.size(), buf));
  CAF_CHECK_EQUAL(to_string(rec.messages[2].data), "tail");
  CAF_CHECK(points_into(rec.messages[2].ptr, 4, buf));
  // The view is unmasked in place: the buffer now holds the clear text
  // right where the view points.
  CAF_CHECK_EQUAL(to_string({rec.messages[0].ptr, 5}), "hello");
  // Fragmented messages are assembled elsewhere, but still correct.
  auto frag = cat({client(0x1, "ab", false), client(0x0, "cd")});
  parser.feed(frag, rec);
  CAF_REQUIRE_EQUAL(rec.messages.size(), 4u);
  CAF_CHECK_EQUAL(to_string(rec.messages[3].data), "abcd");
}

CAF_TEST_FIXTURE_SCOPE_END()
