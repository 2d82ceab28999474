#include "herald/app/cli/server.hpp"

#include <cstdio>
#include <cstdlib>

namespace herald::cli {

void server_options::add_tls(options& opts) {
  opts.add("tls-cert", "FILE", tls.cert_file,
           "serve wss:// and https:// with this PEM certificate chain (needs "
           "--tls-key; SIGHUP reloads both)");
  opts.add("tls-key", "FILE", tls.key_file,
           "the PEM private key of --tls-cert");
  opts.add("tls-key-passphrase-file", "FILE", tls.passphrase_file,
           "the passphrase of an encrypted --tls-key: the first line of FILE "
           "(read again on SIGHUP)");
}

void server_options::add_deflate(options& opts, std::string_view more) {
  opts
    .add("deflate", "MODE", deflate_mode,
         "permessage-deflate: off, shared or dedicated" + std::string{more})
    .one_of({"off", "shared", "dedicated"});
}

void server_options::add_redis(options& opts, std::string_view more) {
  opts.add("redis", "URL", redis.url,
           "share topics with other instances through Redis "
           "(redis://[user:password@]host[:port][/db])"
             + std::string{more});
}

void server_options::check(std::string_view program) const {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    std::fprintf(stderr, "%.*s: --tls-cert and --tls-key go together\n",
                 static_cast<int>(program.size()), program.data());
    std::exit(usage_error);
  }
}

void server_options::finish(std::string_view program) {
  check(program);
  const char* env_url = std::getenv("HERALD_REDIS_URL");
  if (env_url != nullptr && redis.url.empty())
    redis.url = env_url;
}

deflate_options server_options::deflate() const {
  deflate_options d;
  d.enabled = deflate_mode != "off";
  d.dedicated_compressor = deflate_mode == "dedicated";
  return d;
}

} // namespace herald::cli
