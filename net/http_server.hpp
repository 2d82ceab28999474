// The HTTP side of a server: a listener and one session per TCP connection,
// parsing requests with Beast under limits, calling `fetch`, and handing
// upgraded sockets to connection actors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "herald/net/http.hpp"
#include "herald/net/io.hpp"
#include "herald/net/tls.hpp"
#include "herald/net/transport.hpp"

namespace herald::net {

/// What the HTTP layer asks of the server.
class http_handler {
public:
  virtual ~http_handler() = default;
  /// Runs `fetch` (on the loop that accepted the connection; several
  /// loops may run it at once). May attach an upgrade to `req`.
  virtual fetch_result handle(request& req) = 0;
  /// The upgrade is accepted: start the connection actor, which writes
  /// `response` (the 101) ahead of its first frames once its open handler
  /// ran, so that what open subscribed to is in place before the client
  /// can see the upgrade.
  virtual void upgraded(request& req, transport_ptr t, frame_ptr response) = 0;
  /// May a new WebSocket be opened now? (false: 503)
  virtual bool accepting_upgrades() { return true; }
  /// Counts a request answered over HTTP, and a refused upgrade.
  virtual void count_http(bool refused_upgrade) { (void)refused_upgrade; }
};

/// A listening HTTP server.
class http_server {
public:
  virtual ~http_server() = default;
  /// The bound port.
  virtual std::uint16_t port() const noexcept = 0;
  /// The bound address.
  virtual std::string host() const = 0;
  /// Stops accepting and closes idle HTTP connections.
  virtual void stop() = 0;
  /// Deferred requests waiting for their answer now.
  virtual std::size_t deferred() const noexcept = 0;
};

/// One request read as a session reads it (for tests and fuzzing).
struct read_outcome {
  /// 0, or the status the server answers with before it closes (400 for
  /// a malformed request, 413, 431).
  int status = 0;
  /// The request as fetch would see it (none: an error, or the client
  /// closed before sending anything).
  std::optional<request> req;
  /// Bytes the parser took.
  std::size_t consumed = 0;
};

/// Reads one request from `data` with Beast's parser under `limits`, as a
/// session does, the bytes arriving in pieces that end at the offsets
/// `cuts`; the client closes after the last byte.
read_outcome read_request(std::span<const char> data,
                          std::span<const std::size_t> cuts,
                          const http_limits& limits);

/// Binds and starts listening; throws std::system_error when it cannot bind.
/// With `tls`, every connection speaks TLS (HTTP and WebSockets alike).
std::shared_ptr<http_server>
start_http_server(io_service& io, const std::string& host, std::uint16_t port,
                  http_limits limits, std::shared_ptr<http_handler> h,
                  tls_context_ptr tls = nullptr);

} // namespace herald::net
