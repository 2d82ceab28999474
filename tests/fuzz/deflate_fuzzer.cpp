// permessage-deflate: offer negotiation, inflation under the size limit,
// and compress/inflate round trips in every mode.
//
// Input: a selector byte, then
//   0 negotiation: option byte, window byte, then the offer header value;
//   1 inflation: flags (reset each message, limit), then messages, each a
//     length byte and that many bytes of deflate data;
//   2 round trip: mode (context takeover of the compressor and of the
//     inflater, window 8..15, mem_level 1..9), then messages as above.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "herald/net/deflate.hpp"

#include "../unit/zlib_peer.hpp"
#include "input.hpp"

namespace {

using namespace herald;

std::span<const std::byte> as_bytes(std::span<const std::uint8_t> s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

void negotiation(fuzz::input& in) {
  auto o = in.byte();
  auto w = in.byte();
  deflate_options opts;
  opts.enabled = (o & 1) == 0;
  opts.dedicated_compressor = (o & 2) != 0;
  opts.dedicated_decompressor = (o & 4) == 0;
  opts.window_bits = 8 + w % 8;
  opts.mem_level = 1 + (w >> 3) % 9;
  auto rest = in.rest();
  std::string_view offers{reinterpret_cast<const char*>(rest.data()),
                          rest.size()};
  auto r = net::negotiate_deflate(offers, opts);
  if (!r)
    return;
  auto& [p, answer] = *r;
  HERALD_FUZZ_CHECK(opts.enabled);
  HERALD_FUZZ_CHECK(p.server_window_bits >= 8 && p.server_window_bits <= 15);
  HERALD_FUZZ_CHECK(p.server_window_bits <= opts.window_bits
                    || !opts.dedicated_compressor);
  HERALD_FUZZ_CHECK(
    opts.dedicated_compressor
    || (p.server_no_context_takeover && p.server_window_bits == 15));
  HERALD_FUZZ_CHECK(opts.dedicated_decompressor
                    || p.client_no_context_takeover);
  HERALD_FUZZ_CHECK(answer.starts_with("permessage-deflate"));
  // The answer is itself an acceptable offer that agrees to the same.
  auto again = net::negotiate_deflate(answer, opts);
  HERALD_FUZZ_CHECK(again.has_value());
  HERALD_FUZZ_CHECK(again->second == answer);
  HERALD_FUZZ_CHECK(again->first.server_window_bits == p.server_window_bits);
  HERALD_FUZZ_CHECK(again->first.server_no_context_takeover
                    == p.server_no_context_takeover);
  HERALD_FUZZ_CHECK(again->first.client_no_context_takeover
                    == p.client_no_context_takeover);
}

void inflation(fuzz::input& in) {
  auto flags = in.byte();
  static constexpr std::size_t limits[] = {0, 1, 100, 1u << 16};
  auto limit = limits[(flags >> 1) & 3];
  net::inflater inf{(flags & 1) != 0};
  std::vector<std::byte> out;
  while (!in.empty()) {
    auto msg = in.take(in.byte());
    auto r = inf.inflate(as_bytes(msg), limit, out);
    if (r == net::inflater::result::ok)
      HERALD_FUZZ_CHECK(out.size() <= limit);
    else if (r == net::inflater::result::too_big)
      HERALD_FUZZ_CHECK(out.size() == limit + 1);
  }
}

void round_trip(fuzz::input& in) {
  auto mode = in.byte();
  bool reset = (mode & 1) != 0;
  int window = 8 + (mode >> 1) % 8;
  int mem_level = 1 + (mode >> 4) % 9;
  net::deflater d{window, mem_level, reset};
  net::inflater herald_in{reset};
  testing::strict_inflater zlib_in{window, reset};
  std::vector<std::byte> out;
  while (!in.empty()) {
    auto msg = in.take(in.byte());
    std::string_view text{reinterpret_cast<const char*>(msg.data()),
                          msg.size()};
    auto packed = d.compress(as_bytes(msg));
    // RFC 7692 7.2.1: at least the empty stored block's first byte.
    HERALD_FUZZ_CHECK(!packed.empty());
    HERALD_FUZZ_CHECK(herald_in.inflate(packed, msg.size(), out)
                      == net::inflater::result::ok);
    HERALD_FUZZ_CHECK(out.size() == msg.size());
    HERALD_FUZZ_CHECK(msg.empty()
                      || std::memcmp(out.data(), msg.data(), msg.size()) == 0);
    // A peer that inflates with exactly the agreed window.
    auto got = zlib_in.inflate(packed);
    HERALD_FUZZ_CHECK(got.has_value());
    HERALD_FUZZ_CHECK(*got == text);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  herald::fuzz::input in{data, size};
  switch (in.byte() % 3) {
    case 0:
      negotiation(in);
      break;
    case 1:
      inflation(in);
      break;
    default:
      round_trip(in);
  }
  return 0;
}
