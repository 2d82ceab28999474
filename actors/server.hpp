// `serve<T>(runtime, {...})`: Bun's `Bun.serve({ fetch, websocket })` for
// C++, where T is the per-connection data type.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "herald/actors/hooks.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/server_core.hpp"
#include "herald/actors/socket.hpp"
#include "herald/net/handshake.hpp"
#include "herald/net/http.hpp"

namespace herald {

template <class T>
class server;

/// What `serve` takes. Field order follows Bun: hostname, port, fetch,
/// websocket; then Herald's limits.
template <class T>
struct serve_options {
  /// Address to listen on.
  std::string hostname = "0.0.0.0";
  /// Port; 0 picks a free one.
  std::uint16_t port = 3000;
  /// Sees every HTTP request; upgrades it or answers it. Runs on the I/O
  /// thread: keep it short and never block in it.
  std::function<fetch_result(request&, server<T>&)> fetch;
  /// WebSocket handlers and options.
  websocket_handlers<T> websocket;
  /// HTTP limits.
  net::http_limits http;
  /// Most WebSockets open at once (0: no limit); beyond it upgrades get 503.
  std::size_t max_connections = 0;
  /// Share topics with other instances through Redis pub/sub:
  /// `.redis = {.url = "redis://127.0.0.1:6379"}`; off when `url` is empty.
  redis_options redis;
  /// How topics fan out: `.topics = {.linger = 20ms}` lets topics of 1,000
  /// subscribers or more gather publishes for that long (topic_options).
  topic_options topics;
};

/// A running server. Copies share the same server.
template <class T>
class server {
public:
  /// Wraps a core (serve() does this).
  server(std::shared_ptr<server_core> core,
         std::shared_ptr<const websocket_handlers<T>> handlers)
    : server(std::move(core), make_handler_set(std::move(handlers))) {}

  /// Wraps a core whose connections share `set`.
  server(std::shared_ptr<server_core> core,
         std::shared_ptr<const handler_set<T>> set)
    : core_(std::move(core)), set_(std::move(set)) {}

  /// Upgrades `req` to a WebSocket carrying `data`; `headers` go into the
  /// 101 response (choose a subprotocol with Sec-WebSocket-Protocol).
  /// Returns false when `req` is no upgrade attempt (then fetch's own
  /// response is sent), and when it is a malformed one: then the server
  /// answers 400 or 426 whatever fetch returns.
  bool upgrade(request& req, T data = T{}, header_list headers = {}) {
    if (!net::is_upgrade_attempt(req))
      return false;
    auto verdict = net::check_upgrade(req);
    if (verdict.status != 0) {
      req.reject_upgrade(verdict.status, std::move(verdict.reason));
      return false;
    }
    std::optional<net::deflate_params> deflate;
    auto& h = *set_->handlers;
    if (h.per_message_deflate.enabled) {
      auto agreed = net::negotiate_deflate(
        req.header_values("sec-websocket-extensions"),
        h.per_message_deflate);
      if (agreed) {
        deflate = agreed->first;
        headers.emplace_back("Sec-WebSocket-Extensions",
                             std::move(agreed->second));
      }
    }
    req.accept_upgrade(std::make_unique<typed_hooks<T>>(set_, std::move(data)),
                       std::move(headers), deflate);
    return true;
  }

  /// Publishes text to every subscriber of `topic`. Returns the frame size,
  /// or 0 when the topic has no subscribers (nothing is built then). With
  /// Redis, subscribers may be on other nodes: it always publishes then.
  send_status publish(std::string_view topic, std::string_view text,
                      bool compress = false) {
    return publish_frame(topic, net::opcode::text,
                         {reinterpret_cast<const std::byte*>(text.data()),
                          text.size()},
                         compress);
  }
  /// Publishes binary data to every subscriber of `topic`.
  send_status publish(std::string_view topic,
                      std::span<const std::byte> data, bool compress = false) {
    return publish_frame(topic, net::opcode::binary, data, compress);
  }
  /// Subscribers of `topic` right now.
  std::size_t subscriber_count(std::string_view topic) const {
    return core_->subscriber_count(topic);
  }
  /// Open WebSocket connections.
  std::size_t pending_websockets() const { return core_->connection_count(); }
  /// The bound port.
  std::uint16_t port() const { return core_->port(); }
  /// The bound address.
  std::string hostname() const { return core_->hostname(); }
  /// "ws://host:port/" for printing.
  std::string url() const {
    auto h = hostname();
    if (h == "0.0.0.0")
      h = "localhost";
    return "ws://" + h + ":" + std::to_string(port()) + "/";
  }
  /// Stops the server: closes every connection with 1001.
  void stop() { core_->stop(); }
  /// The topic registry, for actors that subscribe or publish themselves.
  const caf::actor& registry() const { return core_->registry(); }
  /// True when topics are shared with other instances through Redis.
  bool bridged() const noexcept { return core_->bridged(); }
  /// Counters for metrics.
  const server_stats& stats() const { return *core_->stats(); }
  /// Number of topics with subscribers.
  std::size_t topic_count() const { return core_->topic_count(); }
  /// The runtime this server runs on.
  herald::runtime& rt() const { return core_->rt(); }

private:
  send_status publish_frame(std::string_view topic, net::opcode op,
                            std::span<const std::byte> data, bool compress) {
    // No subscribers (here, on their way, nor possibly elsewhere): no
    // frame, no message.
    if (!core_->may_have_subscribers(topic) && !core_->bridged())
      return send_dropped;
    auto f = net::make_frame(op, data);
    auto size = static_cast<send_status>(f->size());
    core_->publish(topic, std::move(f), compress);
    return size;
  }

  std::shared_ptr<server_core> core_;
  std::shared_ptr<const handler_set<T>> set_; // connections keep it too
};

/// Starts a server on `rt`; throws std::system_error when it cannot bind.
template <class T>
server<T> serve(runtime& rt, serve_options<T> opts) {
  server_config cfg;
  cfg.hostname = std::move(opts.hostname);
  cfg.port = opts.port;
  cfg.http = opts.http;
  cfg.max_connections = opts.max_connections;
  cfg.redis = std::move(opts.redis);
  cfg.topics = opts.topics;
  auto core = std::make_shared<server_core>(rt, std::move(cfg));
  // One handler set for all connections, not one per request.
  auto set = make_handler_set(std::make_shared<const websocket_handlers<T>>(
    std::move(opts.websocket)));
  std::weak_ptr<server_core> weak = core;
  auto fetch = std::move(opts.fetch);
  core->start([weak, set, fetch](request& req) -> fetch_result {
    auto c = weak.lock();
    if (!c || !fetch)
      return std::nullopt;
    server<T> srv{std::move(c), set};
    return fetch(req, srv);
  });
  return server<T>{std::move(core), std::move(set)};
}

} // namespace herald
