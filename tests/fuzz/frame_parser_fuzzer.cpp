// The frame parser fed as a byte stream: once whole and once cut into reads
// at chosen points, with and without permessage-deflate. Both runs must
// report the same events, and every event must obey RFC 6455 (sizes, UTF-8,
// close codes, nothing after a close or an error).
//
// Input: flags, cut points, then the stream. Flags: bit 0 permessage-deflate
// (RSV1 allowed, compressed messages inflated), bit 1 the client keeps no
// context, bit 2 client role (unmasked frames), bits 3-4 the size limit.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "herald/net/deflate.hpp"
#include "herald/net/frame_parser.hpp"
#include "herald/net/utf8.hpp"

#include "input.hpp"

namespace {

using namespace herald;

struct event {
  int kind; // 0 message, 1 ping, 2 pong, 3 close, 4 error
  int op_or_code;
  std::string data;
  friend bool operator==(const event&, const event&) = default;
};

struct recorder final : net::parser_events {
  std::vector<event> events;
  std::size_t limit;
  net::inflater* inf; // null without permessage-deflate
  bool done = false;

  recorder(std::size_t l, net::inflater* i) : limit(l), inf(i) {}

  static std::string str(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }

  void add(event e) {
    HERALD_FUZZ_CHECK(!done); // nothing after a close or an error
    events.push_back(std::move(e));
  }

  void on_message(net::opcode op, std::span<std::byte> payload,
                  bool compressed) override {
    HERALD_FUZZ_CHECK(op == net::opcode::text || op == net::opcode::binary);
    HERALD_FUZZ_CHECK(
      payload.size()
      <= (compressed ? net::frame_parser::max_compressed(limit) : limit));
    HERALD_FUZZ_CHECK(!compressed || inf != nullptr);
    if (!compressed) {
      if (op == net::opcode::text)
        HERALD_FUZZ_CHECK(net::valid_utf8(str(payload)));
      add({0, static_cast<int>(op), str(payload)});
      return;
    }
    std::vector<std::byte> out;
    auto r = inf->inflate(payload, limit, out);
    HERALD_FUZZ_CHECK(r != net::inflater::result::ok || out.size() <= limit);
    HERALD_FUZZ_CHECK(r != net::inflater::result::too_big
                      || out.size() <= limit + 1);
    add({0, 16 + 4 * static_cast<int>(r) + static_cast<int>(op),
         r == net::inflater::result::ok ? str(out) : std::string{}});
  }
  void on_ping(std::span<const std::byte> p) override {
    HERALD_FUZZ_CHECK(p.size() <= 125);
    add({1, 0, str(p)});
  }
  void on_pong(std::span<const std::byte> p) override {
    HERALD_FUZZ_CHECK(p.size() <= 125);
    add({2, 0, str(p)});
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    HERALD_FUZZ_CHECK(code == 1005 || net::valid_close_code(code));
    HERALD_FUZZ_CHECK(reason.size() <= 123);
    HERALD_FUZZ_CHECK(net::valid_utf8(reason));
    add({3, code, std::string{reason}});
    done = true;
  }
  void on_protocol_error(std::uint16_t code, std::string_view) override {
    HERALD_FUZZ_CHECK(code == net::close_code::protocol_error
                      || code == net::close_code::invalid_payload
                      || code == net::close_code::too_big);
    add({4, code, {}});
    done = true;
  }
};

std::vector<event> parse(std::span<const std::uint8_t> stream,
                         const std::vector<std::size_t>& cuts,
                         std::uint8_t flags, std::size_t limit) {
  bool deflate = (flags & 1) != 0;
  net::inflater inf{(flags & 2) != 0};
  recorder rec{limit, deflate ? &inf : nullptr};
  net::frame_parser p{(flags & 4) != 0 ? net::frame_parser::role::client
                                       : net::frame_parser::role::server,
                      limit};
  p.allow_rsv1(deflate);
  std::size_t pos = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    auto end =
      i < cuts.size() ? std::min(cuts[i], stream.size()) : stream.size();
    if (end < pos)
      continue;
    // A fresh buffer per read, as a socket gives: the parser unmasks in
    // place and may keep nothing pointing into it.
    std::vector<std::byte> read(end - pos);
    if (!read.empty())
      std::memcpy(read.data(), stream.data() + pos, read.size());
    p.feed(read, rec);
    pos = end;
  }
  HERALD_FUZZ_CHECK(p.stopped() == rec.done);
  return rec.events;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  herald::fuzz::input in{data, size};
  auto flags = in.byte();
  static constexpr std::size_t limits[] = {0, 125, 4096, 1u << 20};
  auto limit = limits[(flags >> 3) & 3];
  auto cuts = in.cuts(8);
  std::sort(cuts.begin(), cuts.end());
  auto stream = in.rest();
  auto whole = parse(stream, {}, flags, limit);
  auto pieces = parse(stream, cuts, flags, limit);
  HERALD_FUZZ_CHECK(whole == pieces);
  return 0;
}
