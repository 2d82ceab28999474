// Small text helpers, shared by the request, the handshake, the
// permessage-deflate negotiation and the Redis URL.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace herald::net {

namespace detail {

// `w` with the ASCII capitals among its eight bytes in lower case.
inline std::uint64_t fold_ascii(std::uint64_t w) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101;
  // Per byte, with its top bit cleared (no carry into the next byte): the
  // top bit of the sum is set from 'A' on, resp. past 'Z'.
  auto low = w & (0x7f * ones);
  auto from_a = low + (0x80 - 'A') * ones;
  auto past_z = low + (0x80 - 'Z' - 1) * ones;
  auto upper = from_a & ~past_z & ~w & (0x80 * ones);
  return w | (upper >> 2); // 0x80 >> 2 is the case bit, 0x20
}

inline std::uint64_t load_word(const char* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

inline std::uint64_t load_half(const char* p) noexcept {
  std::uint32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

} // namespace detail

/// True when `a` and `b` are equal ignoring ASCII case.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  auto n = a.size();
  if (n != b.size())
    return false;
  // Eight bytes at a time (every header lookup compares names): ASCII
  // only, as std::tolower in the C locale, without its call per character.
  if (n >= 8) {
    std::size_t i = 0;
    for (; i + 8 < n; i += 8)
      if (detail::fold_ascii(detail::load_word(a.data() + i))
          != detail::fold_ascii(detail::load_word(b.data() + i)))
        return false;
    // The last eight bytes, overlapping what was compared.
    return detail::fold_ascii(detail::load_word(a.data() + n - 8))
           == detail::fold_ascii(detail::load_word(b.data() + n - 8));
  }
  if (n >= 4) {
    // The first and the last four bytes (overlapping below eight).
    auto x =
      detail::load_half(a.data()) << 32 | detail::load_half(a.data() + n - 4);
    auto y =
      detail::load_half(b.data()) << 32 | detail::load_half(b.data() + n - 4);
    return detail::fold_ascii(x) == detail::fold_ascii(y);
  }
  auto lower = [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
  };
  for (std::size_t i = 0; i < n; ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

/// `s` without leading and trailing spaces and tabs (HTTP's OWS).
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// The value of the hex digit `c`, or -1 (percent-encoding).
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace herald::net
