// `serve<T>(runtime, {...})`: Bun's `Bun.serve({ fetch, websocket })` for
// C++, where T is the per-connection data type.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/send.hpp>

#include "herald/actors/hooks.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/server_base.hpp"
#include "herald/actors/socket.hpp"
#include "herald/net/handshake.hpp"
#include "herald/net/http.hpp"

namespace herald {

template <class T>
class server;

namespace detail {

/// Attaches an upgrade carrying `data` to `req` when it is a valid upgrade
/// request (true), records why when it is a malformed one (false), and
/// leaves `req` alone when it is none (false, `attempt` false).
template <class T>
bool attach_upgrade(const std::shared_ptr<const handler_set<T>>& set,
                    request& req, T&& data, header_list&& headers,
                    bool& attempt) {
  attempt = net::is_upgrade_attempt(req);
  if (!attempt)
    return false;
  auto verdict = net::check_upgrade(req);
  if (verdict.status != 0) {
    req.reject_upgrade(verdict.status, std::move(verdict.reason));
    return false;
  }
  std::optional<net::deflate_params> deflate;
  auto& h = *set->handlers;
  if (h.per_message_deflate.enabled) {
    auto agreed =
      net::negotiate_deflate(req.header_values("sec-websocket-extensions"),
                             h.per_message_deflate);
    if (agreed) {
      deflate = agreed->first;
      headers.emplace_back("Sec-WebSocket-Extensions",
                           std::move(agreed->second));
    }
  }
  req.accept_upgrade(std::make_unique<typed_hooks<T>>(set, std::move(data)),
                     std::move(headers), deflate);
  return true;
}

} // namespace detail

/// A request whose answer comes later (`server.defer(req)` in fetch):
/// answer it from any thread or actor with `respond` or `upgrade`.
/// Copyable (copies share the request), and a CAF message: send it to an
/// actor as it is (`server.defer_to(req, actor)`). Meanwhile the client's
/// socket waits without a thread. A client that leaves, a timeout
/// (http.deferred_timeout, then 503) or an earlier answer end the request:
/// `pending()` turns false and later answers are no-ops returning false.
template <class T>
class deferred_request {
public:
  /// An empty handle (answers nothing).
  deferred_request() = default;
  /// Used by server<T>::defer.
  deferred_request(std::shared_ptr<deferral> d,
                   std::shared_ptr<const handler_set<T>> set)
    : d_(std::move(d)), set_(std::move(set)) {}

  /// The request (its own copy: valid as long as a handle is).
  const herald::request& req() const { return d_->req(); }
  /// True while the request waits for its answer.
  bool pending() const { return d_ && d_->pending(); }
  /// True when the client left before the answer.
  bool gone() const { return d_ && d_->current() == deferral::state::gone; }
  /// Answers over HTTP; false when the request no longer waits.
  bool respond(response r) const { return d_ && d_->respond(std::move(r)); }
  /// Upgrades to a WebSocket carrying `data` (as server::upgrade); false
  /// when the request no longer waits, is no upgrade attempt (it still
  /// waits then) or is a malformed one (the server answers 400 or 426).
  bool upgrade(T data = T{}, header_list headers = {}) const {
    if (!d_)
      return false;
    bool accepted = false;
    d_->upgrade([&](herald::request& r) {
      bool attempt = false;
      accepted = detail::attach_upgrade(set_, r, std::move(data),
                                        std::move(headers), attempt);
      return attempt;
    });
    return accepted;
  }
  /// The shared state (for the testing kit).
  const std::shared_ptr<deferral>& state() const noexcept { return d_; }

private:
  std::shared_ptr<deferral> d_;
  std::shared_ptr<const handler_set<T>> set_;
};

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
  /// TLS on the port (wss:// and https://, as Bun's `tls`): `.tls =
  /// {.cert_file = "cert.pem", .key_file = "key.pem"}`; off while
  /// `cert_file` is empty. A certificate that cannot be used makes serve()
  /// throw net::tls_error.
  net::tls_options tls;
};

/// A running server. Copies share the same server.
template <class T>
class server {
public:
  /// Wraps a server whose connections share `set` (serve() does this;
  /// a null core makes a server that publishes nothing).
  server(std::shared_ptr<server_base> core,
         std::shared_ptr<const handler_set<T>> set)
    : core_(std::move(core)), set_(std::move(set)) {}

  /// Upgrades `req` to a WebSocket carrying `data`; `headers` go into the
  /// 101 response (choose a subprotocol with Sec-WebSocket-Protocol).
  /// Returns false when `req` is no upgrade attempt (then fetch's own
  /// response is sent), and when it is a malformed one: then the server
  /// answers 400 or 426 whatever fetch returns.
  bool upgrade(request& req, T data = T{}, header_list headers = {}) {
    bool attempt = false;
    return detail::attach_upgrade(set_, req, std::move(data),
                                  std::move(headers), attempt);
  }

  /// Answers `req` later: returns the handle to answer it with (from any
  /// thread or actor); fetch then returns `herald::deferred`. Call it
  /// inside fetch only.
  deferred_request<T> defer(request& req) {
    auto d = std::make_shared<deferral>(
      request{std::string{req.method()}, std::string{req.target()},
              req.headers(), req.body(), req.remote_endpoint(), req.version()});
    req.set_deferral(d);
    return {std::move(d), set_};
  }
  /// Hands `req` to `actor` as a `deferred_request<T>` message and returns
  /// `herald::deferred`, for fetch to return.
  fetch_result defer_to(request& req, const caf::actor& actor) {
    caf::anon_send(actor, defer(req));
    return deferred;
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
  send_status publish(std::string_view topic, std::span<const std::byte> data,
                      bool compress = false) {
    return publish_frame(topic, net::opcode::binary, data, compress);
  }
  /// Publishes a received message on, text as text and binary as binary.
  send_status publish(std::string_view topic, const herald::message& msg,
                      bool compress = false) {
    return msg.is_binary() ? publish(topic, msg.bytes(), compress)
                           : publish(topic, msg.text(), compress);
  }
  /// Subscribers of `topic` on this node right now, counting at once what
  /// connections subscribed and unsubscribed themselves (as in Bun).
  std::size_t subscriber_count(std::string_view topic) const {
    return core_ ? core_->subscriber_count(topic) : 0;
  }
  /// Open WebSocket connections.
  std::size_t pending_websockets() const {
    return core_ ? core_->connection_count() : 0;
  }
  /// Deferred requests waiting for their answer.
  std::size_t pending_requests() const {
    return core_ ? core_->pending_requests() : 0;
  }
  /// The bound port.
  std::uint16_t port() const { return core_ ? core_->port() : 0; }
  /// The bound address.
  std::string hostname() const { return core_ ? core_->hostname() : ""; }
  /// "ws://host:port/" (or "wss://" with TLS) for printing.
  std::string url() const {
    auto h = hostname();
    if (h == "0.0.0.0")
      h = "localhost";
    return (secure() ? "wss://" : "ws://") + h + ":" + std::to_string(port())
           + "/";
  }
  /// True when the port speaks TLS.
  bool secure() const { return core_ && core_->secure(); }
  /// Reads the TLS certificate and key files again: new handshakes use
  /// them, open connections go on with theirs. A file that cannot be used
  /// keeps the old certificates (the reason is logged): false then.
  bool reload_tls() { return core_ && core_->reload_tls(); }
  /// Stops the server; never blocks: the future is ready once it stopped.
  /// Both modes stop accepting at once. `immediate` (Bun's `stop(true)`)
  /// closes every connection with 1001 now; `graceful` (Bun's `stop()`)
  /// lets them go on until they end, and closes those still open after
  /// `deadline` with 1001 (`milliseconds::max()`: no deadline). Connections
  /// that do not finish their close within 3 s of the 1001 are dropped.
  /// A second call returns the same future; an immediate one hurries a
  /// graceful stop.
  std::shared_future<void>
  stop(stop_mode mode = stop_mode::immediate,
       std::chrono::milliseconds deadline = std::chrono::milliseconds::max()) {
    return core_->stop(mode, deadline);
  }
  /// The topic registry, for actors that subscribe or publish themselves.
  const topic_registry& registry() const { return core_->registry(); }
  /// True when topics are shared with other instances through Redis.
  bool bridged() const noexcept { return core_ && core_->bridged(); }
  /// Counters for metrics.
  const server_stats& stats() const { return *core_->stats(); }
  /// Number of topics with subscribers.
  std::size_t topic_count() const { return core_ ? core_->topic_count() : 0; }
  /// The runtime this server runs on.
  herald::runtime& rt() const { return core_->rt(); }

private:
  send_status publish_frame(std::string_view topic, net::opcode op,
                            std::span<const std::byte> data, bool compress) {
    // No subscribers (here, on their way, nor possibly elsewhere): no
    // frame, no message.
    if (!core_ || (!core_->may_have_subscribers(topic) && !core_->bridged()))
      return send_dropped;
    auto f = net::make_frame(op, data);
    auto size = static_cast<send_status>(f->size());
    core_->publish(topic, std::move(f), compress);
    return size;
  }

  std::shared_ptr<server_base> core_;
  std::shared_ptr<const handler_set<T>> set_; // connections keep it too
};

template <class T>
herald::server<T> socket<T>::server() const {
  if (!set_ || !*set_)
    return {nullptr, nullptr};
  return {(*set_)->server.lock(), *set_};
}

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
  cfg.tls = std::move(opts.tls);
  auto core = detail::make_server(rt, std::move(cfg));
  // One handler set for all connections, not one per request.
  auto set = make_handler_set(std::make_shared<const websocket_handlers<T>>(
                                std::move(opts.websocket)),
                              std::weak_ptr<server_base>{core});
  std::weak_ptr<server_base> weak = core;
  auto fetch = std::move(opts.fetch);
  detail::start_server(*core, [weak, set, fetch](request& req) -> fetch_result {
    auto c = weak.lock();
    if (!c || !fetch)
      return std::nullopt;
    server<T> srv{std::move(c), set};
    return fetch(req, srv);
  });
  return server<T>{std::move(core), std::move(set)};
}

} // namespace herald

namespace caf {
// A handle is shared state, not data: it travels between actors of one
// process only.
template <class T>
struct allowed_unsafe_message_type<herald::deferred_request<T>>
  : std::true_type {};
} // namespace caf
