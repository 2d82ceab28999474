// What server<T> needs of a server, whatever runs it (the real one of
// actors/server_core.cpp or the testing kit's), and the compiled functions
// that make the real one: the listener, connections and the Redis link
// stay out of the public headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "herald/actors/options.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/topics.hpp"
#include "herald/net/frame.hpp"
#include "herald/net/http.hpp"
#include "herald/net/tls.hpp"

namespace herald {

/// Server settings that do not depend on the data type.
struct server_config {
  /// Address to listen on ("0.0.0.0" for all IPv4 interfaces).
  std::string hostname = "0.0.0.0";
  /// Port; 0 picks a free one (see `port()`).
  std::uint16_t port = 3000;
  /// HTTP limits (header size, body size, request timeout).
  net::http_limits http;
  /// Most WebSockets open at once; 0: no limit. Beyond it upgrades get 503.
  std::size_t max_connections = 0;
  /// How long a stop waits for connections to finish their close after
  /// the 1001, before it drops them.
  std::chrono::milliseconds shutdown_timeout{3000};
  /// Share topics with other instances through Redis (off when the URL is
  /// empty).
  redis_options redis;
  /// How topics fan out (linger for big topics).
  topic_options topics;
  /// TLS on the port (off while no certificate is set).
  net::tls_options tls;
};

/// What `server<T>` asks of a server, whatever runs it: the real one
/// (server_core) or the testing kit's.
class server_base {
public:
  virtual ~server_base() = default;
  /// The bound port.
  virtual std::uint16_t port() const noexcept = 0;
  /// The bound address.
  virtual std::string hostname() const = 0;
  /// The topic registry.
  virtual const topic_registry& registry() const noexcept = 0;
  /// The counters.
  virtual const std::shared_ptr<server_stats>& stats() const noexcept = 0;
  /// Subscribers of `topic`.
  virtual std::size_t subscriber_count(std::string_view topic) const = 0;
  /// False when `topic` has no subscriber here and none on its way.
  virtual bool may_have_subscribers(std::string_view topic) const = 0;
  /// Number of topics with subscribers.
  virtual std::size_t topic_count() const = 0;
  /// True when topics are shared through Redis.
  virtual bool bridged() const noexcept = 0;
  /// Open WebSocket connections.
  virtual std::size_t connection_count() const = 0;
  /// Deferred requests waiting for their answer.
  virtual std::size_t pending_requests() const = 0;
  /// Publishes an already built frame to every subscriber of `topic`.
  virtual void publish(std::string_view topic, net::frame_ptr frame,
                       bool compress) = 0;
  /// Stops the server (see server<T>::stop); never blocks.
  virtual std::shared_future<void> stop(stop_mode mode,
                                        std::chrono::milliseconds deadline) = 0;
  /// True once a stop has finished.
  virtual bool stopped() const = 0;
  /// The runtime.
  virtual herald::runtime& rt() = 0;
  /// True when the port speaks TLS.
  virtual bool secure() const noexcept { return false; }
  /// Reads the TLS certificates again (see server<T>::reload_tls).
  virtual bool reload_tls() { return false; }
};

namespace detail {

/// Runs an application's fetch for every request.
using fetch_fn = std::function<fetch_result(request&)>;

/// Makes the server of `cfg` on `rt`, not yet listening.
std::shared_ptr<server_base> make_server(runtime& rt, server_config cfg);

/// Binds the server made by make_server and starts accepting, with
/// `fetch` for every request (throws std::system_error on failure).
void start_server(server_base& srv, fetch_fn fetch);

} // namespace detail

} // namespace herald
