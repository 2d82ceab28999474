// The part of a server that does not depend on the user's data type: the
// listener, the topic registry, the set of live connections and shutdown.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <caf/actor.hpp>

#include "herald/actors/redis_bridge.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/topics.hpp"
#include "herald/net/frame.hpp"
#include "herald/net/http_server.hpp"

namespace herald {

class connection_list;

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
  /// How long `stop` waits for connections to finish their close.
  std::chrono::milliseconds shutdown_timeout{3000};
  /// Share topics with other instances through Redis (off when the URL is
  /// empty).
  redis_options redis;
  /// How topics fan out (linger for big topics).
  topic_options topics;
};

/// Shared state of one server.
class server_core final : public net::http_handler,
                          public std::enable_shared_from_this<server_core> {
public:
  /// Runs `fetch` for every request.
  using fetch_fn = std::function<fetch_result(request&)>;

  server_core(runtime& rt, server_config cfg);
  ~server_core() override;

  /// Binds and starts accepting (throws std::system_error on failure).
  void start(fetch_fn fetch);
  /// Stops accepting, closes every connection with 1001 and waits (up to
  /// the shutdown timeout) until they are gone. Idempotent.
  void stop();

  /// The bound port.
  std::uint16_t port() const noexcept;
  /// The bound address.
  std::string hostname() const;
  /// The topic registry (any actor may subscribe through it).
  const caf::actor& registry() const noexcept { return registry_; }
  /// The counters.
  const std::shared_ptr<server_stats>& stats() const noexcept {
    return stats_;
  }
  /// Subscribers of `topic`.
  std::size_t subscriber_count(std::string_view topic) const;
  /// False when `topic` has no subscriber here and none on its way.
  bool may_have_subscribers(std::string_view topic) const;
  /// Number of topics with subscribers.
  std::size_t topic_count() const;
  /// True when topics are shared through Redis: a publish may have
  /// subscribers on other nodes even when it has none here.
  bool bridged() const noexcept { return !cfg_.redis.url.empty(); }
  /// Open WebSocket connections.
  std::size_t connection_count() const;
  /// Publishes an already built frame to every subscriber of `topic`.
  void publish(std::string_view topic, net::frame_ptr frame,
               bool compress = false);
  /// The runtime.
  herald::runtime& rt() noexcept { return rt_; }

  // -- net::http_handler ------------------------------------------------------

  fetch_result handle(request& req) override;
  void upgraded(request& req, net::transport_ptr t,
                std::string response) override;
  bool accepting_upgrades() override;
  void count_http(bool refused_upgrade) override;

private:
  herald::runtime& rt_;
  server_config cfg_;
  fetch_fn fetch_;
  std::shared_ptr<topic_counts> counts_;
  std::shared_ptr<server_stats> stats_;
  caf::actor registry_;
  caf::actor idle_clock_;
  std::shared_ptr<net::http_server> http_;
  std::shared_ptr<net::redis_link> redis_;
  std::uint16_t bound_port_ = 0;
  std::string bound_host_;
  mutable std::mutex mtx_;
  // The live connections (see connection.hpp).
  std::shared_ptr<connection_list> conns_;
  bool stopped_ = false;
};

} // namespace herald
