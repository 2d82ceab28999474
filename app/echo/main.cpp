// herald-echo: echoes every WebSocket message back, text as text and binary
// as binary. Used for protocol conformance checks.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>
#include <herald/app/cli/options.hpp>

namespace {

struct no_data {};

using approve_atom = caf::atom_constant<caf::atom("approve")>;

// Completes every upgrade `delay` after it arrived, as a slow auth service
// would: the request waits in a timer, no thread waits for it.
caf::behavior slow_auth(caf::event_based_actor* self,
                        std::chrono::milliseconds delay) {
  return {
    [=](herald::deferred_request<no_data>& d) {
      self->delayed_send(self, delay, approve_atom::value, std::move(d));
    },
    [](approve_atom, herald::deferred_request<no_data>& d) {
      // False when the client left meanwhile: nothing to do.
      d.upgrade();
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 9001;
  long long max_payload = 16 << 20;
  std::chrono::seconds idle{120};
  std::string deflate_mode = "off";
  herald::redis_options redis;
  std::optional<std::chrono::milliseconds> auth_delay; // no auth step
  herald::runtime_options rt_opts;
  herald::net::tls_options tls;
  herald::cli::options opts{
    "herald-echo", "Echoes every WebSocket message back (conformance checks)."};
  opts.add("host", "ADDR", host, "address to listen on");
  opts.add("port", "N", port, "port, 0 picks a free one").range(0, 65535);
  opts.add("max-payload", "BYTES", max_payload, "largest message accepted")
    .positive();
  opts.add("idle-timeout", "SECS", idle,
           "close connections idle this long, 0: never");
  opts.add("tls-cert", "FILE", tls.cert_file,
           "serve wss:// and https:// with this PEM certificate chain (needs "
           "--tls-key; SIGHUP reloads both)");
  opts.add("tls-key", "FILE", tls.key_file,
           "the PEM private key of --tls-cert");
  opts.add("tls-key-passphrase-file", "FILE", tls.passphrase_file,
           "the passphrase of an encrypted --tls-key: the first line of FILE "
           "(read again on SIGHUP)");
  opts
    .add("deflate", "MODE", deflate_mode,
         "permessage-deflate: off, shared or dedicated")
    .one_of({"off", "shared", "dedicated"});
  opts.add("redis", "URL", redis.url,
           "share topics with other instances through Redis "
           "(redis://[user:password@]host[:port][/db], default "
           "$HERALD_REDIS_URL); herald-echo has no topics of its own, so "
           "this only checks the option");
  opts.add("auth-delay-ms", "N", auth_delay,
           "complete every upgrade N ms later from an actor (a slow auth "
           "service; others are not held up)");
  opts.add("stop-deadline-ms", "N", rt_opts.stop_deadline,
           "on SIGTERM/SIGINT let connections go on for N ms, then close the "
           "rest with 1001; a second signal closes them at once");
  opts.parse_or_exit(argc, argv);
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    std::fprintf(stderr, "herald-echo: --tls-cert and --tls-key go together\n");
    return 2;
  }
  // Unlike arguments, the environment is not shown to other users by ps
  // (read after parsing, so --help does not print it either).
  const char* env_url = std::getenv("HERALD_REDIS_URL");
  if (env_url != nullptr && redis.url.empty())
    redis.url = env_url;
  herald::deflate_options deflate;
  deflate.enabled = deflate_mode != "off";
  deflate.dedicated_compressor = deflate_mode == "dedicated";
  herald::runtime rt{rt_opts};
  caf::actor auth;
  if (auth_delay)
    auth = rt.system().spawn(slow_auth, *auth_delay);
  try {
    auto server = herald::serve<no_data>(
      rt,
      {
        .hostname = host,
        .port = static_cast<std::uint16_t>(port),
        .fetch = [auth](herald::request& req,
                        herald::server<no_data>& srv) -> herald::fetch_result {
          if (auth && req.is_upgrade())
            return srv.defer_to(req, auth);
          if (srv.upgrade(req))
            return herald::upgraded;
          return herald::response{200, "herald-echo: connect with WebSocket\n"};
        },
        .websocket =
          {
            .message =
              [](herald::socket<no_data>& ws, herald::message m) {
                // Compressed when the client agreed to permessage-deflate.
                if (m.is_text())
                  ws.send_text(m.text(), true);
                else
                  ws.send_binary(m.bytes(), true);
              },
            .max_payload_length = static_cast<std::size_t>(max_payload),
            .idle_timeout = idle,
            .per_message_deflate = deflate,
          },
        .redis = redis,
        .topics = {},
        .tls = tls,
      });
    std::printf("herald-echo listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    rt.run();
    if (auth)
      caf::anon_send_exit(auth, caf::exit_reason::user_shutdown);
  } catch (const std::exception& e) {
    if (auth)
      caf::anon_send_exit(auth, caf::exit_reason::user_shutdown);
    std::fprintf(stderr, "herald-echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
