// Redis addresses: "redis://[user:password@]host[:port][/db]".
//
// The password never leaves this struct in text form: logs and error
// messages show `redacted()` (or `redact_redis_url` of a URL that did not
// parse), which puts "***" in its place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::net {

/// Where Redis is and how to log in to it.
struct redis_endpoint {
  /// Host name or address (an IPv6 address without its brackets).
  std::string host;
  /// TCP port.
  std::uint16_t port = 6379;
  /// True when the URL has credentials: every connection sends AUTH.
  bool auth = false;
  /// ACL user (`AUTH user password`); empty: `AUTH password`, which logs
  /// in as Redis's default user.
  std::string user;
  /// Password, percent-decoded.
  std::string password;
  /// Database that every connection SELECTs (0: Redis's default, no
  /// SELECT).
  unsigned db = 0;

  /// "host:port", or "[v6]:port" for an IPv6 address.
  std::string address() const;
  /// The URL with "***" for the password: "redis://user:***@host:port/db".
  std::string redacted() const;
  /// What this endpoint puts before every channel name: "" for database 0,
  /// else "dbN:". Redis's pub/sub ignores databases, so the database
  /// separates channels this way.
  std::string channel_scope() const;
};

/// Parses "redis://[user:password@]host[:port][/db]": credentials are
/// "user:password@" or ":password@" (percent-encoded), an IPv6 host is in
/// brackets, the port is 6379 when left out and the database 0. Returns
/// nullopt for anything else; `error` then says what is wrong, without
/// quoting the URL.
std::optional<redis_endpoint> parse_redis_url(std::string_view url,
                                              std::string* error = nullptr);

/// `url` fit for a log line or an error message: the redacted form when it
/// parses, else the text with everything before its last '@' (past the
/// scheme) replaced by "***".
std::string redact_redis_url(std::string_view url);

} // namespace herald::net
