// Small helpers for HTTP header text, shared by the request, the handshake
// and the permessage-deflate negotiation.
#pragma once

#include <cctype>
#include <cstddef>
#include <string_view>

namespace herald::net {

/// True when `a` and `b` are equal ignoring ASCII case.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
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

} // namespace herald::net
