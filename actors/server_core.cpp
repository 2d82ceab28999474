#include "herald/actors/server_core.hpp"

#include <thread>

#include <caf/all.hpp>

#include "herald/actors/connection.hpp"
#include "herald/actors/idle_clock.hpp"
#include "herald/actors/log.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/handshake.hpp"
#include "herald/net/redis.hpp"

namespace herald {

namespace {

// What every connection hears when its server stops.
void say_going_away(const caf::actor& conn) {
  caf::anon_send(conn, caf::close_atom::value,
                 int{net::close_code::going_away},
                 std::string{"server shutting down"});
}

} // namespace

server_core::server_core(herald::runtime& rt, server_config cfg)
  : rt_(rt),
    cfg_(std::move(cfg)),
    counts_(std::make_shared<topic_counts>()),
    stats_(std::make_shared<server_stats>()),
    conns_(std::make_shared<connection_list>()) {
  registry_ = spawn_topic_registry(rt_.system(), counts_, cfg_.topics);
  idle_clock_ = spawn_idle_clock(rt_.system());
}

server_core::~server_core() {
  stop();
}

void server_core::start(fetch_fn fetch) {
  fetch_ = std::move(fetch);
  // Before listening: the registry has its bridge before any connection
  // publishes (and a bad URL throws before anything else happens).
  if (bridged())
    redis_ = start_redis_bridge(rt_.system(), rt_.io(), cfg_.redis, registry_,
                                stats_)
               .link;
  http_ = net::start_http_server(rt_.io(), cfg_.hostname, cfg_.port,
                                 cfg_.http, shared_from_this());
  bound_port_ = http_->port();
  bound_host_ = http_->host();
  std::weak_ptr<server_core> weak = shared_from_this();
  rt_.on_shutdown([weak] {
    if (auto self = weak.lock())
      self->stop();
  });
}

void server_core::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopped_)
      return;
    stopped_ = true;
  }
  auto conns = conns_->handles();
  if (http_) {
    http_->stop();
    // The listener holds this core as its handler: break the cycle.
    http_.reset();
  }
  for (auto& c : conns)
    say_going_away(c);
  conns.clear();
  // Give connections time to send their close frames and hear the answer.
  auto deadline = std::chrono::steady_clock::now() + cfg_.shutdown_timeout;
  while (connection_count() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  for (auto& hdl : conns_->handles())
    caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(idle_clock_, caf::exit_reason::user_shutdown);
  // Waits for the I/O thread (not under mtx_: I/O handlers take it). The
  // link holds Asio objects, which must go before the I/O loop does.
  if (redis_)
    redis_->close();
}

std::uint16_t server_core::port() const noexcept {
  return bound_port_;
}

std::string server_core::hostname() const {
  return bound_host_.empty() ? cfg_.hostname : bound_host_;
}

std::size_t server_core::subscriber_count(std::string_view topic) const {
  return counts_->get(topic);
}

bool server_core::may_have_subscribers(std::string_view topic) const {
  return counts_->may_have_subscribers(topic);
}

std::size_t server_core::topic_count() const {
  return counts_->topics();
}

std::size_t server_core::connection_count() const {
  return conns_->size();
}

void server_core::publish(std::string_view topic, net::frame_ptr frame,
                          bool compress) {
  caf::anon_send(registry_, caf::publish_atom::value, std::string{topic},
                 msg::publication{std::move(frame), caf::actor_addr{},
                                  compress});
}

fetch_result server_core::handle(request& req) {
  if (!fetch_)
    return std::nullopt;
  return fetch_(req);
}

bool server_core::accepting_upgrades() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stopped_)
    return false;
  return cfg_.max_connections == 0 || conns_->size() < cfg_.max_connections;
}

void server_core::count_http(bool refused_upgrade) {
  if (refused_upgrade)
    stats_->upgrades_refused.fetch_add(1, std::memory_order_relaxed);
  else
    stats_->http_requests.fetch_add(1, std::memory_order_relaxed);
}

void server_core::upgraded(request& req, net::transport_ptr t,
                           std::string response) {
  connection_args args;
  args.transport = std::move(t);
  args.response = std::move(response);
  args.hooks = std::move(req.upgrade_hooks());
  args.registry = registry_;
  args.idle_clock = idle_clock_;
  args.counts = counts_;
  args.stats = stats_;
  args.deflate = req.upgrade_deflate();
  for (auto& [k, v] : req.upgrade_headers())
    if (net::has_token(k, "sec-websocket-protocol"))
      args.protocol = v;
  // The connection joins conns_ as it is made and leaves as it stops.
  args.list = conns_;
  auto conn = spawn_connection(rt_.system(), std::move(args));
  // accepting_upgrades() said yes before the 101 was made; if stop() has
  // run since, it may have taken its handles before this connection joined
  // the list. stop() sets stopped_ before it takes them, and the connection
  // joined before this reads stopped_: one of the two sees the other, so
  // every connection hears the 1001 (one that hears it twice closes once).
  bool stopping = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping = stopped_;
  }
  if (stopping)
    say_going_away(conn);
}

} // namespace herald
