// Frames as a client sends them (masked), for tests: the testing kit's
// `send_raw`, the fake transport and the fuzzers' seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "herald/net/frame.hpp"

namespace herald::net {

/// Builds a masked client frame (what a browser would send).
inline std::vector<std::byte> client_frame(opcode op, std::string_view payload,
                                           bool fin = true,
                                           std::uint8_t rsv = 0,
                                           std::uint32_t mask = 0x37fa213d) {
  std::vector<std::byte> out;
  auto n = payload.size();
  out.push_back(static_cast<std::byte>((fin ? 0x80 : 0) | (rsv << 4)
                                       | static_cast<std::uint8_t>(op)));
  if (n < 126) {
    out.push_back(static_cast<std::byte>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(std::byte{0x80 | 126});
    out.push_back(static_cast<std::byte>(n >> 8));
    out.push_back(static_cast<std::byte>(n & 0xFF));
  } else {
    out.push_back(std::byte{0x80 | 127});
    for (int i = 7; i >= 0; --i)
      out.push_back(
        static_cast<std::byte>((std::uint64_t{n} >> (8 * i)) & 0xFF));
  }
  std::uint8_t m[4] = {static_cast<std::uint8_t>(mask >> 24),
                       static_cast<std::uint8_t>(mask >> 16),
                       static_cast<std::uint8_t>(mask >> 8),
                       static_cast<std::uint8_t>(mask)};
  for (auto b : m)
    out.push_back(static_cast<std::byte>(b));
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(
      static_cast<std::byte>(static_cast<std::uint8_t>(payload[i]) ^ m[i & 3]));
  return out;
}

/// A masked client close frame.
inline std::vector<std::byte> client_close(std::uint16_t code,
                                           std::string_view reason = {}) {
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload += reason;
  return client_frame(opcode::close, payload);
}

} // namespace herald::net
