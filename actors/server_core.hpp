// The part of a server that does not depend on the user's data type: the
// listener, the topic registry, the set of live connections and shutdown.
#pragma once

#include <atomic>
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
#include "herald/actors/server_base.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/topics.hpp"
#include "herald/net/frame.hpp"
#include "herald/net/http_server.hpp"

namespace herald {

class connection_list;
struct connection_env;

/// Shared state of one server (internal: serve() makes it through
/// detail::make_server).
class server_core final : public net::http_handler,
                          public server_base,
                          public std::enable_shared_from_this<server_core> {
public:
  /// Runs `fetch` for every request.
  using fetch_fn = detail::fetch_fn;

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
  bool secure() const noexcept override { return tls_ != nullptr; }
  bool reload_tls() override;

  // -- net::http_handler ------------------------------------------------------

  fetch_result handle(request& req) override;
  void upgraded(request& req, net::transport_ptr t,
                net::frame_ptr response) override;
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
  net::tls_context_ptr tls_;
  std::uint16_t bound_port_ = 0;
  std::string bound_host_;
  mutable std::mutex mtx_;
  // The live connections (see connection.hpp).
  std::shared_ptr<connection_list> conns_;
  // What every connection gets (the above).
  std::shared_ptr<const connection_env> env_;
  // Set by the first stop() (under mtx_); the handshake path reads it
  // without the lock.
  std::atomic<bool> stopping_{false};
  // The actor that sees a stop through (see server_core.cpp) and what it
  // reports.
  caf::actor stopper_;
  std::shared_future<void> stop_done_;
};

} // namespace herald
