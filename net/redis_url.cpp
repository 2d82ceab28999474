#include "herald/net/redis_url.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <climits>

#include "herald/net/text.hpp"

namespace herald::net {

namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size()
         && iequals(s.substr(0, prefix.size()), prefix);
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size())
      return std::nullopt;
    auto hi = hex_value(s[i + 1]);
    auto lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
         || c == '~';
}

std::string percent_encode(std::string_view s) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (unreserved(c)) {
      out += c;
    } else {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += digits[b >> 4];
      out += digits[b & 0xF];
    }
  }
  return out;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

} // namespace

std::string redis_endpoint::address() const {
  auto p = std::to_string(port);
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + p;
  return host + ":" + p;
}

std::string redis_endpoint::redacted() const {
  std::string out = "redis://";
  if (auth)
    out += percent_encode(user) + ":***@";
  out += address();
  if (db != 0)
    out += "/" + std::to_string(db);
  return out;
}

std::string redis_endpoint::channel_scope() const {
  return db == 0 ? std::string{} : "db" + std::to_string(db) + ":";
}

std::optional<redis_endpoint> parse_redis_url(std::string_view url,
                                              std::string* error) {
  auto fail = [error](const char* why) -> std::optional<redis_endpoint> {
    if (error)
      *error = why;
    return std::nullopt;
  };
  constexpr std::string_view scheme = "redis://";
  if (!starts_with_nocase(url, scheme)) {
    if (starts_with_nocase(url, "rediss://"))
      return fail("rediss:// (TLS to Redis) is not supported, only redis://");
    return fail("not a redis:// URL");
  }
  auto rest = url.substr(scheme.size());
  redis_endpoint ep;
  // Credentials run to the last '@', so a password may hold an unencoded
  // '@', '/' or ':' (a user name may not hold ':').
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto info = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    auto colon = info.find(':');
    if (colon == std::string_view::npos)
      return fail("credentials are user:password@ or :password@");
    auto user = percent_decode(info.substr(0, colon));
    auto password = percent_decode(info.substr(colon + 1));
    if (!user || !password)
      return fail("bad percent-encoding in the credentials");
    if (user->empty() && password->empty())
      return fail("empty credentials");
    ep.auth = true;
    ep.user = std::move(*user);
    ep.password = std::move(*password);
  }
  auto end = rest.find_first_of("/?#");
  auto hostport = rest.substr(0, end);
  auto tail =
    end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  std::string_view port;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos)
      return fail("'[' without ']' around the host");
    ep.host = std::string{hostport.substr(1, close - 1)};
    in6_addr addr;
    if (ep.host.empty() || inet_pton(AF_INET6, ep.host.c_str(), &addr) != 1)
      return fail("no IPv6 address in the brackets");
    auto after = hostport.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      return fail("unexpected text after the host's ']'");
    has_port = !after.empty();
    if (has_port)
      port = after.substr(1);
  } else {
    auto colon = hostport.find(':');
    if (colon != std::string_view::npos
        && hostport.find(':', colon + 1) != std::string_view::npos)
      return fail("an IPv6 host goes in brackets, as in redis://[::1]:6379");
    auto host = hostport.substr(0, colon);
    if (host.empty())
      return fail("no host");
    for (char c : host)
      if (!host_char(c))
        return fail("a host name has letters, digits, '-', '.' and '_' only");
    ep.host = std::string{host};
    has_port = colon != std::string_view::npos;
    if (has_port)
      port = hostport.substr(colon + 1);
  }
  if (has_port) {
    unsigned p = 0;
    auto [last, ec] =
      std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc{} || last != port.data() + port.size()
        || p == 0 || p > 65535)
      return fail("the port is a number from 1 to 65535");
    ep.port = static_cast<std::uint16_t>(p);
  }
  if (!tail.empty() && tail.front() == '?')
    return fail("query parameters are not supported");
  if (!tail.empty() && tail.front() == '#')
    return fail("a fragment is not supported");
  if (tail.size() > 1) {
    auto db = tail.substr(1);
    unsigned n = 0;
    auto [last, ec] = std::from_chars(db.data(), db.data() + db.size(), n);
    if (ec != std::errc{} || last != db.data() + db.size() || n > INT_MAX)
      return fail("the database after '/' is a number (0 to 2147483647)");
    ep.db = n;
  }
  return ep;
}

std::string redact_redis_url(std::string_view url) {
  if (auto ep = parse_redis_url(url))
    return ep->redacted();
  auto start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  auto at = url.rfind('@');
  std::string out =
    at == std::string_view::npos || at < start
      ? std::string{url}
      : std::string{url.substr(0, start)} + "***" + std::string{url.substr(at)};
  // Keeps a log line one line.
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
      c = '?';
  return out;
}

} // namespace herald::net
