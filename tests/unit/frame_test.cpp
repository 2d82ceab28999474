// Unit tests of encoded server frames (net/frame.hpp).
#define CAF_SUITE frame

#include "herald/net/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "herald/net/frame_parser.hpp"
#include "herald/net/utf8.hpp"

#include "caf/test/dsl.hpp"

using namespace herald::net;

namespace {

using bytes = std::vector<std::byte>;

bytes pattern(std::size_t n) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = std::byte{static_cast<std::uint8_t>(i * 13 + (i >> 8))};
  return out;
}

// The first `n` bytes of a frame, as numbers for readable failures.
std::vector<int> head(const frame& f, std::size_t n) {
  std::vector<int> out;
  auto b = f.bytes();
  for (std::size_t i = 0; i < n && i < b.size(); ++i)
    out.push_back(std::to_integer<int>(b[i]));
  return out;
}

std::vector<int> all(const frame& f) {
  return head(f, f.size());
}

std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Records what a client-role parser finds.
struct recorder final : parser_events {
  struct message {
    opcode op;
    bytes data;
    bool compressed;
  };
  std::vector<message> messages;
  std::vector<std::string> controls;
  std::vector<int> errors;

  void on_message(opcode op, std::span<std::byte> payload,
                  bool compressed) override {
    messages.push_back({op, bytes{payload.begin(), payload.end()}, compressed});
  }
  void on_ping(std::span<const std::byte> payload) override {
    controls.push_back("ping " + as_string(payload));
  }
  void on_pong(std::span<const std::byte> payload) override {
    controls.push_back("pong " + as_string(payload));
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    controls.push_back("close " + std::to_string(code) + " "
                       + std::string{reason});
  }
  void on_protocol_error(std::uint16_t code, std::string_view) override {
    errors.push_back(code);
  }
};

// Parses the bytes of `frames`, as a client does, in one read.
recorder parse(std::initializer_list<frame_ptr> frames, bool rsv1 = false) {
  bytes buf;
  for (auto& f : frames)
    buf.insert(buf.end(), f->bytes().begin(), f->bytes().end());
  frame_parser p{frame_parser::role::client};
  p.allow_rsv1(rsv1);
  recorder r;
  p.feed(buf, r);
  return r;
}

} // namespace

CAF_TEST(header encodings) {
  struct sample {
    std::size_t n;
    std::vector<int> header;
  };
  std::vector<sample> samples = {
    {0, {0x82, 0x00}},
    {1, {0x82, 0x01}},
    {125, {0x82, 0x7D}},
    {126, {0x82, 0x7E, 0x00, 0x7E}},
    {127, {0x82, 0x7E, 0x00, 0x7F}},
    {65535, {0x82, 0x7E, 0xFF, 0xFF}},
    {65536, {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
    {(3u << 20) + 5, {0x82, 0x7F, 0, 0, 0, 0, 0, 0x30, 0x00, 0x05}},
  };
  for (auto& s : samples) {
    CAF_MESSAGE(s.n << " bytes");
    auto payload = pattern(s.n);
    frame_ptr f = make_frame(opcode::binary, payload);
    CAF_CHECK_EQUAL(head(*f, s.header.size()), s.header);
    CAF_CHECK_EQUAL(header_size(s.n), s.header.size());
    CAF_CHECK_EQUAL(f->size(), s.header.size() + s.n);
    CAF_CHECK_EQUAL(f->bytes().size(), f->size());
    CAF_CHECK_EQUAL(f->payload().size(), s.n);
    CAF_CHECK(std::equal(f->payload().begin(), f->payload().end(),
                         payload.begin(), payload.end()));
    // The payload view starts right after the header.
    CAF_CHECK(f->payload().data() == f->bytes().data() + s.header.size());
    CAF_CHECK(f->opcode() == opcode::binary);
    CAF_CHECK(!f->compressed());
  }
}

CAF_TEST(first byte : opcode and the FIN and RSV1 bits) {
  CAF_CHECK_EQUAL(all(*make_frame(opcode::text, "hi")),
                  (std::vector<int>{0x81, 0x02, 'h', 'i'}));
  CAF_CHECK_EQUAL(head(*make_frame(opcode::ping, "p"), 1),
                  (std::vector<int>{0x89}));
  CAF_CHECK_EQUAL(head(*make_frame(opcode::pong, ""), 2),
                  (std::vector<int>{0x8A, 0x00}));
  auto z = make_frame(opcode::text, "zz", true);
  CAF_CHECK_EQUAL(head(*z, 1), (std::vector<int>{0xC1}));
  CAF_CHECK(z->compressed());
  CAF_CHECK(z->opcode() == opcode::text);
  CAF_CHECK_EQUAL(z->payload_view(), "zz");
  auto zb = make_frame(opcode::binary, pattern(3), true, true);
  CAF_CHECK_EQUAL(head(*zb, 1), (std::vector<int>{0xC2}));
  // A fragment: FIN clear.
  auto frag = make_frame(opcode::text, pattern(0), false, false);
  CAF_CHECK_EQUAL(all(*frag), (std::vector<int>{0x01, 0x00}));
  auto cont = make_frame(opcode::continuation, pattern(0), false, true);
  CAF_CHECK_EQUAL(all(*cont), (std::vector<int>{0x80, 0x00}));
  // Server frames are never masked: the mask bit stays clear.
  auto big = make_frame(opcode::binary, pattern(70000));
  CAF_CHECK_EQUAL(std::to_integer<int>(big->bytes()[1]) & 0x80, 0);
}

CAF_TEST(payload views) {
  frame_ptr f = make_frame(opcode::text, "hello, world");
  CAF_CHECK_EQUAL(f->payload_view(), "hello, world");
  CAF_CHECK_EQUAL(as_string(f->payload()), "hello, world");
  CAF_CHECK_EQUAL(f->size(), 14u);
  frame_ptr e = make_frame(opcode::text, "");
  CAF_CHECK(e->payload().empty());
  CAF_CHECK_EQUAL(e->payload_view(), "");
  CAF_CHECK_EQUAL(e->size(), 2u);
}

CAF_TEST(reference counts) {
  frame_ptr a = make_frame(opcode::text, "shared");
  CAF_CHECK_EQUAL(a->use_count(), 1);
  {
    frame_ptr b = a;
    frame_ptr c = b;
    // Copies share the frame.
    CAF_CHECK(b.get() == a.get());
    CAF_CHECK(c.get() == a.get());
    CAF_CHECK_EQUAL(a->use_count(), 3);
    std::vector<frame_ptr> subscribers(100, a);
    CAF_CHECK_EQUAL(a->use_count(), 103);
  }
  CAF_CHECK_EQUAL(a->use_count(), 1);
  // Moving transfers the reference without counting.
  frame_ptr moved = std::move(a);
  CAF_CHECK(a == nullptr);
  CAF_CHECK_EQUAL(moved->use_count(), 1);
}

CAF_TEST(close frames) {
  // 1005 means "no status": an empty payload, whatever the reason says.
  auto none = make_close_frame(1005, "ignored");
  CAF_CHECK_EQUAL(all(*none), (std::vector<int>{0x88, 0x00}));
  CAF_CHECK(none->opcode() == opcode::close);
  CAF_CHECK_EQUAL(all(*make_close_frame(1000, "")),
                  (std::vector<int>{0x88, 0x02, 0x03, 0xE8}));
  CAF_CHECK_EQUAL(all(*make_close_frame(1001, "bye")),
                  (std::vector<int>{0x88, 0x05, 0x03, 0xE9, 'b', 'y', 'e'}));
  CAF_CHECK_EQUAL(head(*make_close_frame(4999, ""), 4),
                  (std::vector<int>{0x88, 0x02, 0x13, 0x87}));
  // 123 bytes of reason fit exactly.
  auto fits = std::string(123, 'r');
  auto f = make_close_frame(1000, fits);
  CAF_CHECK_EQUAL(f->payload().size(), 125u);
  CAF_CHECK_EQUAL(f->payload_view().substr(2), fits);
  // Longer ASCII is cut to 123 bytes.
  auto cut = make_close_frame(1000, std::string(300, 'a'));
  CAF_CHECK_EQUAL(cut->payload().size(), 125u);
  CAF_CHECK_EQUAL(cut->payload_view().substr(2), std::string(123, 'a'));
}

CAF_TEST(close reasons are cut at a code point boundary) {
  struct sample {
    std::string ch; // one character
    std::size_t count;
    std::size_t expected_bytes;
  };
  std::vector<sample> samples = {
    {"\xC3\xA9", 62, 122},         // 124 bytes: the last char must go
    {"\xC3\xA9", 61, 122},         // 122 bytes: fits
    {"\xE2\x82\xAC", 41, 123},     // exactly 123
    {"\xE2\x82\xAC", 42, 123},     // 126 bytes: cut after 41
    {"\xF0\x9F\x98\x80", 31, 120}, // 124 bytes: cut after 30
    {"\xF0\x9F\x98\x80", 40, 120},
  };
  for (auto& s : samples) {
    std::string reason;
    for (std::size_t i = 0; i < s.count; ++i)
      reason += s.ch;
    CAF_MESSAGE(s.count << " characters of " << s.ch.size() << " bytes");
    auto f = make_close_frame(1000, reason);
    auto text = f->payload_view().substr(2);
    CAF_CHECK_EQUAL(text.size(), s.expected_bytes);
    CAF_CHECK(valid_utf8(text));
    CAF_CHECK_EQUAL(text, std::string_view{reason}.substr(0, text.size()));
    CAF_CHECK(f->payload().size() <= 125);
  }
  // One ASCII byte shifts the boundary: "a" + 62 two-byte chars = 125 bytes,
  // cut at 123 which ends a character.
  std::string shifted = "a";
  for (int i = 0; i < 62; ++i)
    shifted += "\xC3\xA9";
  auto f = make_close_frame(1000, shifted);
  CAF_CHECK_EQUAL(f->payload_view().substr(2).size(), 123u);
  CAF_CHECK(valid_utf8(f->payload_view().substr(2)));
}

CAF_TEST(a client parser reads what make_frame writes) {
  auto big = pattern(70000);
  auto r = parse(
    {make_frame(opcode::text, "hello"), make_frame(opcode::binary, big),
     make_frame(opcode::text, ""), make_frame(opcode::binary, pattern(126)),
     make_frame(opcode::binary, pattern(65535)),
     make_frame(opcode::ping, "are you there"), make_frame(opcode::pong, "yes"),
     make_frame(opcode::text, pattern(0), false, false),
     make_frame(opcode::continuation,
                std::span<const std::byte>{
                  reinterpret_cast<const std::byte*>("frag"), 4},
                false, true),
     make_close_frame(1000, "bye")});
  CAF_CHECK(r.errors.empty());
  CAF_REQUIRE_EQUAL(r.messages.size(), 6u);
  CAF_CHECK(r.messages[0].op == opcode::text);
  CAF_CHECK_EQUAL(as_string(r.messages[0].data), "hello");
  CAF_CHECK(r.messages[1].op == opcode::binary);
  CAF_CHECK(r.messages[1].data == big);
  CAF_CHECK(r.messages[2].data.empty());
  CAF_CHECK(r.messages[3].data == pattern(126));
  CAF_CHECK(r.messages[4].data == pattern(65535));
  CAF_CHECK_EQUAL(as_string(r.messages[5].data), "frag");
  CAF_CHECK_EQUAL(r.controls,
                  (std::vector<std::string>{"ping are you there", "pong yes",
                                            "close 1000 bye"}));
  // A truncated close reason still parses as valid UTF-8.
  std::string reason;
  for (int i = 0; i < 62; ++i)
    reason += "\xC3\xA9";
  auto rc = parse({make_close_frame(4000, reason)});
  CAF_CHECK(rc.errors.empty());
  CAF_CHECK_EQUAL(rc.controls, (std::vector<std::string>{
                                 "close 4000 " + reason.substr(0, 122)}));
  // 1005 round trips as "no status".
  auto rn = parse({make_close_frame(1005, "")});
  CAF_CHECK_EQUAL(rn.controls, (std::vector<std::string>{"close 1005 "}));
  // Compressed frames carry RSV1 through, once the extension is on.
  auto rz = parse({make_frame(opcode::binary, pattern(10), true)}, true);
  CAF_REQUIRE_EQUAL(rz.messages.size(), 1u);
  CAF_CHECK(rz.messages[0].compressed);
  CAF_CHECK(rz.messages[0].data == pattern(10));
  auto rno = parse({make_frame(opcode::binary, pattern(10), true)}, false);
  CAF_CHECK_EQUAL(rno.errors, (std::vector<int>{1002}));
}
