// The options Herald's server programs (app/, bench/, the test servers)
// share: --tls-cert/--tls-key, --deflate and --redis, declared once here on
// a herald::cli::options, and what they become after parsing.
#pragma once

#include <string>
#include <string_view>

#include <herald/app/cli/options.hpp>
#include <herald/herald.hpp>

namespace herald::cli {

/// Targets of the shared server options.
struct server_options {
  /// --tls-cert, --tls-key, --tls-key-passphrase-file.
  net::tls_options tls;
  /// --redis; `finish` takes $HERALD_REDIS_URL when it is not given.
  redis_options redis;
  /// --deflate: off, shared or dedicated.
  std::string deflate_mode = "off";

  /// Declares --tls-cert, --tls-key and --tls-key-passphrase-file.
  void add_tls(options& opts);
  /// Declares --deflate; `more` ends its help.
  void add_deflate(options& opts, std::string_view more = {});
  /// Declares --redis; `more` ends its help.
  void add_redis(options& opts, std::string_view more = {});
  /// After parse_or_exit: exits with usage_error when only one of
  /// --tls-cert and --tls-key was given.
  void check(std::string_view program) const;
  /// `check`, then $HERALD_REDIS_URL when --redis was not given (read
  /// after parsing: unlike arguments, the environment is not shown to
  /// other users by ps, and --help does not print it).
  void finish(std::string_view program);
  /// What --deflate asks for.
  deflate_options deflate() const;
};

} // namespace herald::cli
