#include "herald/actors/server_core.hpp"

#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "herald/actors/connection.hpp"
#include "herald/actors/idle_clock.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/handshake.hpp"
#include "herald/net/log.hpp"
#include "herald/net/redis.hpp"

namespace herald {

namespace {

// What every connection hears when its server stops.
void say_going_away(const caf::actor& conn) {
  caf::anon_send(caf::actor_cast<msg::connection_actor>(conn),
                 caf::close_atom::value, int{net::close_code::going_away},
                 std::string{"server shutting down"});
}

using stop_empty_atom = caf::atom_constant<caf::atom("h_sempty")>;
using stop_tell_atom = caf::atom_constant<caf::atom("h_stell")>;
using stop_drop_atom = caf::atom_constant<caf::atom("h_sdrop")>;
using stop_now_atom = caf::atom_constant<caf::atom("h_snow")>;

// What the stopper needs of a server: not the core itself, which may go
// away before the stop is done.
struct stop_plan {
  std::shared_ptr<connection_list> conns;
  msg::registry_actor registry;
  msg::idle_clock_actor idle_clock;
  std::shared_ptr<net::redis_link> redis;
  std::shared_ptr<std::promise<void>> done;
  // When the connections left get 1001 (max: never), and how long they
  // then have to close before they are dropped.
  std::chrono::steady_clock::time_point tell_at;
  std::chrono::milliseconds grace;
};

// Sees a stop through without blocking anyone, woken only by events: the
// last connection leaving, the deadline (the connections left get 1001),
// the end of the grace period after it (those still open are dropped).
// Then it stops the server's actors, closes the Redis link and reports.
caf::behavior stopper(caf::event_based_actor* self, stop_plan plan) {
  using clock = std::chrono::steady_clock;
  auto st = std::make_shared<stop_plan>(std::move(plan));
  auto told = std::make_shared<bool>(false);
  auto tell = [self, st, told] {
    if (*told)
      return;
    *told = true;
    for (auto& c : st->conns->handles())
      say_going_away(c);
    self->delayed_send(self, st->grace, stop_drop_atom::value);
  };
  auto finish = [self, st] {
    for (auto& hdl : st->conns->handles())
      caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(st->registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(st->idle_clock, caf::exit_reason::user_shutdown);
    // The link holds Asio objects, which must go before the I/O loop
    // does: it closes on loop 0, and the stop is done after that.
    if (st->redis)
      st->redis->close([done = st->done] { done->set_value(); });
    else
      st->done->set_value();
    self->quit();
  };
  auto now = clock::now();
  if (st->tell_at <= now)
    tell();
  else if (st->tell_at != clock::time_point::max())
    self->delayed_send(self, st->tell_at - now, stop_tell_atom::value);
  // A weak handle: the list may outlive the stopper.
  st->conns->when_empty([addr = self->address()] {
    if (auto hdl = caf::actor_cast<caf::actor>(addr))
      caf::anon_send(hdl, stop_empty_atom::value);
  });
  return {
    [=](stop_empty_atom) { finish(); },
    [=](stop_drop_atom) { finish(); },
    [=](stop_tell_atom) { tell(); },
    [=](stop_now_atom) { tell(); },
  };
}

} // namespace

server_core::server_core(herald::runtime& rt, server_config cfg)
  : rt_(rt), cfg_(std::move(cfg)), counts_(std::make_shared<topic_counts>()),
    stats_(std::make_shared<server_stats>()),
    conns_(std::make_shared<connection_list>(rt.io().size())) {
  registry_ = spawn_topic_registry(rt_.system(), counts_, cfg_.topics);
  idle_clock_ = spawn_idle_clock(rt_.system());
  // The connections join conns_ as they are made and leave as they stop.
  env_ = std::make_shared<const connection_env>(
    connection_env{registry_, stats_, idle_clock_, conns_});
}

server_core::~server_core() {
  stop();
}

void server_core::start(fetch_fn fetch) {
  fetch_ = std::move(fetch);
  // Before listening: the registry has its bridge before any connection
  // publishes (and a bad URL throws before anything else happens).
  if (bridged())
    redis_ =
      start_redis_bridge(rt_.system(), rt_.io(), cfg_.redis, registry_, stats_)
        .link;
  // Certificates are checked before binding: a bad one is an error at
  // start, not at the first handshake.
  if (cfg_.tls.enabled())
    tls_ = std::make_shared<net::tls_context>(
      cfg_.tls, std::shared_ptr<net::tls_counters>{stats_, &stats_->tls});
  http_ = net::start_http_server(rt_.io(), cfg_.hostname, cfg_.port, cfg_.http,
                                 shared_from_this(), tls_);
  listener_ = http_;
  bound_port_ = http_->port();
  bound_host_ = http_->host();
  rt_.add_server(std::weak_ptr<server_base>{shared_from_this()});
}

std::shared_future<void> server_core::stop(stop_mode mode,
                                           std::chrono::milliseconds deadline) {
  std::unique_lock<std::mutex> guard{mtx_};
  // Under the lock: one stop() makes the stopper, others wait on it.
  if (stopping_.load(std::memory_order_relaxed)) {
    if (mode == stop_mode::immediate && stopper_)
      caf::anon_send(stopper_, stop_now_atom::value);
    return stop_done_;
  }
  stopping_.store(true, std::memory_order_release);
  auto done = std::make_shared<std::promise<void>>();
  stop_done_ = done->get_future().share();
  if (http_) {
    http_->stop();
    // The listener holds this core as its handler: break the cycle.
    http_.reset();
  }
  stop_plan plan;
  plan.conns = conns_;
  plan.registry = registry_.actor();
  plan.idle_clock = idle_clock_;
  plan.redis = redis_;
  plan.done = std::move(done);
  auto now = std::chrono::steady_clock::now();
  plan.tell_at = mode == stop_mode::immediate || deadline.count() <= 0 ? now
                 : deadline == std::chrono::milliseconds::max()
                   ? std::chrono::steady_clock::time_point::max()
                   : now + deadline;
  plan.grace = cfg_.shutdown_timeout;
  stopper_ = rt_.system().spawn(stopper, std::move(plan));
  return stop_done_;
}

bool server_core::stopped() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return stopping_.load(std::memory_order_relaxed)
         && stop_done_.wait_for(std::chrono::seconds{0})
              == std::future_status::ready;
}

std::size_t server_core::pending_requests() const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto l = listener_.lock();
  return l ? l->deferred() : 0;
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

bool server_core::reload_tls() {
  if (!tls_) {
    HERALD_LOG(warn, "reload_tls: this server has no TLS");
    return false;
  }
  return tls_->reload().empty();
}

std::size_t server_core::connection_count() const {
  return conns_->size();
}

void server_core::publish(std::string_view topic, net::frame_ptr frame,
                          bool compress) {
  herald::publish(registry_, topic,
                  msg::publication{std::move(frame), caf::actor_addr{},
                                   compress});
}

fetch_result server_core::handle(request& req) {
  if (!fetch_)
    return std::nullopt;
  return fetch_(req);
}

bool server_core::accepting_upgrades() {
  if (stopping_.load(std::memory_order_acquire))
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
                           net::frame_ptr response) {
  connection_args args;
  args.transport = std::move(t);
  args.response = std::move(response);
  args.hooks = take_hooks(req);
  if (!args.hooks) {
    // A payload that server<T>::upgrade did not make: nothing to run.
    args.transport->close(false);
    return;
  }
  args.env = env_;
  args.deflate = req.upgrade_deflate();
  for (auto& [k, v] : req.upgrade_headers())
    if (net::has_token(k, "sec-websocket-protocol"))
      args.protocol = v;
  auto conn = spawn_connection(rt_.system(), std::move(args));
  // accepting_upgrades() said yes before the 101 was made; if stop() has
  // run since, it may have taken its handles before this connection joined
  // the list. stop() sets stopping_ before it takes them, and the
  // connection joined (under its lane's lock, which taking the handles
  // takes too) before this reads stopping_: one of the two sees the other,
  // so every connection hears the 1001 (one that hears it twice closes
  // once).
  if (stopping_.load(std::memory_order_acquire))
    say_going_away(conn);
}

namespace detail {

std::shared_ptr<server_base> make_server(runtime& rt, server_config cfg) {
  return std::make_shared<server_core>(rt, std::move(cfg));
}

void start_server(server_base& srv, fetch_fn fetch) {
  // Only make_server makes the servers this is given.
  static_cast<server_core&>(srv).start(std::move(fetch));
}

} // namespace detail

} // namespace herald
