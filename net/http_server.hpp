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
#include "herald/net/transport.hpp"

namespace herald::net {

/// Limits of the HTTP layer.
struct http_limits {
  /// Largest request head (request line and headers); larger gets 431.
  std::size_t max_header_size = 16u << 10;
  /// Largest request body; larger gets 413.
  std::size_t max_body_size = 1u << 20;
  /// A client that has not sent a whole request by then is dropped.
  std::chrono::milliseconds request_timeout{10000};
  /// An idle keep-alive HTTP connection is closed after this long.
  std::chrono::milliseconds keep_alive_timeout{5000};
  /// Kernel send buffer (SO_SNDBUF) of each WebSocket connection; 0 (the
  /// default) leaves it to the kernel's autotuning. A bound keeps more of a
  /// backlog in Herald's queue, where it is shared frames rather than a
  /// private copy in each socket: less memory and less cache traffic when
  /// large messages fan out, but one connection then carries at most about
  /// 2 x bound per round trip (256 KiB: 5 MB/s at 100 ms), and bursts
  /// larger than the bound take more writes.
  std::size_t websocket_send_buffer = 0;
  /// A deferred request (server::defer) not answered by then gets 503;
  /// 0: never.
  std::chrono::milliseconds deferred_timeout{10000};
  /// Most deferred requests waiting at once (0: no limit); beyond it a
  /// request that fetch defers gets 503.
  std::size_t max_deferred = 10000;
};

/// What the HTTP layer asks of the server.
class http_handler {
public:
  virtual ~http_handler() = default;
  /// Runs `fetch` (on the I/O thread). May attach an upgrade to `req`.
  virtual fetch_result handle(request& req) = 0;
  /// The upgrade is accepted: start the connection actor, which writes
  /// `response` (the 101) ahead of its first frames once its open handler
  /// ran, so that what open subscribed to is in place before the client
  /// can see the upgrade.
  virtual void upgraded(request& req, transport_ptr t,
                        std::string response) = 0;
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
std::shared_ptr<http_server>
start_http_server(io_service& io, const std::string& host, std::uint16_t port,
                  http_limits limits, std::shared_ptr<http_handler> h);

} // namespace herald::net
