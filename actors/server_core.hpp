// The part of a server that does not depend on the user's data type: the
// listener, the topic registry, the set of live connections and shutdown.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
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
  /// How long a stop waits for connections to finish their close after
  /// the 1001, before it drops them.
  std::chrono::milliseconds shutdown_timeout{3000};
  /// Share topics with other instances through Redis (off when the URL is
  /// empty).
  redis_options redis;
  /// How topics fan out (linger for big topics).
  topic_options topics;
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
};

/// Shared state of one server.
class server_core final : public net::http_handler,
                          public server_base,
                          public std::enable_shared_from_this<server_core> {
public:
  /// Runs `fetch` for every request.
  using fetch_fn = std::function<fetch_result(request&)>;

  server_core(runtime& rt, server_config cfg);
  ~server_core() override;

  /// Binds and starts accepting (throws std::system_error on failure).
  void start(fetch_fn fetch);
  /// Stops accepting at once. Immediate: every connection gets 1001 now;
  /// graceful: connections go on, those open at `deadline` get 1001. Then
  /// connections that have not closed within the shutdown timeout are
  /// dropped, and the future is ready. A second call returns the same
  /// future (an immediate one hurries a graceful stop). Never blocks.
  std::shared_future<void> stop(stop_mode mode,
                                std::chrono::milliseconds deadline) override;
  /// Stops at once (as `stop(stop_mode::immediate, 0)`).
  std::shared_future<void> stop() {
    return stop(stop_mode::immediate, std::chrono::milliseconds{0});
  }
  bool stopped() const override;

  std::uint16_t port() const noexcept override;
  std::string hostname() const override;
  /// The topic registry (any actor may subscribe through it).
  const topic_registry& registry() const noexcept override { return registry_; }
  const std::shared_ptr<server_stats>& stats() const noexcept override {
    return stats_;
  }
  std::size_t subscriber_count(std::string_view topic) const override;
  bool may_have_subscribers(std::string_view topic) const override;
  std::size_t topic_count() const override;
  /// True when topics are shared through Redis: a publish may have
  /// subscribers on other nodes even when it has none here.
  bool bridged() const noexcept override { return !cfg_.redis.url.empty(); }
  std::size_t connection_count() const override;
  std::size_t pending_requests() const override;
  void publish(std::string_view topic, net::frame_ptr frame,
               bool compress = false) override;
  herald::runtime& rt() noexcept override { return rt_; }

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
  topic_registry registry_;
  msg::idle_clock_actor idle_clock_;
  std::shared_ptr<net::http_server> http_;
  std::weak_ptr<net::http_server> listener_; // for pending_requests()
  std::shared_ptr<net::redis_link> redis_;
  std::uint16_t bound_port_ = 0;
  std::string bound_host_;
  mutable std::mutex mtx_;
  // The live connections (see connection.hpp).
  std::shared_ptr<connection_list> conns_;
  bool stopped_ = false;
  // The actor that sees a stop through (see server_core.cpp) and what it
  // reports.
  caf::actor stopper_;
  std::shared_future<void> stop_done_;
};

} // namespace herald
