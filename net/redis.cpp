// The Redis link: hiredis's async API on the runtime's Asio loop.
//
// hiredis does the protocol; it asks its "event library" to watch the
// socket through five hooks (addRead, delRead, addWrite, delWrite,
// cleanup). Here each context gets a `watch`: a stream_descriptor over
// hiredis's socket (released, never closed: hiredis owns the fd) and two
// flags. A wanted direction keeps one async_wait pending; when it fires the
// context handles the event and the wait is re-armed while still wanted.
// No thread per message, no polling: everything runs on loop 0.
//
// Two connections because a connection in subscriber mode may only
// (un)subscribe. They live and die together: when either fails, both are
// dropped and, after a backoff, both reconnected and every channel
// resubscribed. Failures are handled in a posted step, never inside a
// hiredis callback (hiredis frees a context after its callbacks return).
//
// Each connection, once TCP is up, sends AUTH (when the URL has
// credentials), SELECT (database other than 0) and PING, pipelined; the link
// is up when both connections' PINGs are answered and nothing before them
// failed. A refused login is retried like an unreachable Redis (the
// password may be fixed on the server meanwhile), and reported once per
// kind of failure, with a reminder every `report_every` while it lasts.
#include "herald/net/redis.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <future>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
using descriptor = asio::posix::stream_descriptor;

// -- hiredis on Asio ----------------------------------------------------------

struct watch : std::enable_shared_from_this<watch> {
  redisAsyncContext* ac = nullptr; // null once hiredis cleaned up
  std::optional<descriptor> sd;
  bool want_read = false;
  bool want_write = false;
  bool reading = false; // an async_wait for reading is pending
  bool writing = false;
};

void arm(const std::shared_ptr<watch>& w, bool read) {
  bool& pending = read ? w->reading : w->writing;
  bool wanted = read ? w->want_read : w->want_write;
  if (pending || !wanted || !w->ac || !w->sd)
    return;
  pending = true;
  w->sd->async_wait(read ? descriptor::wait_read : descriptor::wait_write,
                    [w, read](const boost::system::error_code& ec) {
                      (read ? w->reading : w->writing) = false;
                      if (ec == asio::error::operation_aborted || !w->ac)
                        return;
                      if (read ? w->want_read : w->want_write) {
                        if (read)
                          redisAsyncHandleRead(w->ac);
                        else
                          redisAsyncHandleWrite(w->ac);
                      }
                      // The context may be gone now (cleanup nulls ac).
                      arm(w, read);
                    });
}

watch* as_watch(void* p) {
  return static_cast<watch*>(p);
}

void on_add_read(void* p) {
  auto* w = as_watch(p);
  w->want_read = true;
  arm(w->shared_from_this(), true);
}

void on_del_read(void* p) {
  as_watch(p)->want_read = false;
}

void on_add_write(void* p) {
  auto* w = as_watch(p);
  w->want_write = true;
  arm(w->shared_from_this(), false);
}

void on_del_write(void* p) {
  as_watch(p)->want_write = false;
}

void on_cleanup(void* p) {
  auto* w = as_watch(p);
  w->ac = nullptr;
  w->want_read = w->want_write = false;
  if (w->sd) {
    // Cancels the pending waits; hiredis closes the fd itself.
    w->sd->release();
    w->sd.reset();
  }
}

std::shared_ptr<watch> attach(asio::io_context& ctx, redisAsyncContext* ac) {
  auto w = std::make_shared<watch>();
  w->ac = ac;
  w->sd.emplace(ctx, ac->c.fd);
  ac->ev.addRead = on_add_read;
  ac->ev.delRead = on_del_read;
  ac->ev.addWrite = on_add_write;
  ac->ev.delWrite = on_del_write;
  ac->ev.cleanup = on_cleanup;
  ac->ev.data = w.get();
  // A non-blocking connect completes with writability (or an error).
  w->want_read = w->want_write = true;
  arm(w, true);
  arm(w, false);
  return w;
}

// -- the link -----------------------------------------------------------------

class asio_redis_link final
  : public redis_link,
    public std::enable_shared_from_this<asio_redis_link> {
public:
  asio_redis_link(io_service& io, redis_link_options opts,
                  std::shared_ptr<redis_counters> stats,
                  redis_message_fn on_message)
    : io_(io), ctx_(*static_cast<asio::io_context*>(io.native())),
      opts_(std::move(opts)), stats_(std::move(stats)),
      on_message_(std::move(on_message)),
      scope_(opts_.endpoint.channel_scope()), backoff_(opts_.reconnect_min) {
    timer_.emplace(ctx_);
    ping_timer_.emplace(ctx_);
  }

  void start() {
    run([](asio_redis_link& l) {
      l.io_thread_.store(std::this_thread::get_id());
      l.connect();
    });
  }

  void subscribe(std::string channel) override {
    run([ch = std::move(channel)](asio_redis_link& l) mutable {
      if (l.channels_.insert(ch).second && l.up_)
        l.send_subscribe("SUBSCRIBE", ch);
    });
  }

  void unsubscribe(std::string channel) override {
    run([ch = std::move(channel)](asio_redis_link& l) {
      if (l.channels_.erase(ch) > 0 && l.up_)
        l.send_subscribe("UNSUBSCRIBE", ch);
    });
  }

  void publish(std::vector<redis_publication> batch) override {
    run([b = std::move(batch)](asio_redis_link& l) { l.do_publish(b); });
  }

  void close() override {
    if (std::this_thread::get_id() == io_thread_.load()) {
      do_close();
      return;
    }
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    // Not through run(): this must happen also when closed already.
    io_.post([self = shared_from_this(), done] {
      self->do_close();
      done->set_value();
    });
    if (f.wait_for(std::chrono::seconds{5}) != std::future_status::ready)
      HERALD_LOG(warn, "redis: loop 0 did not close the link");
  }

  void close(std::function<void()> done) override {
    // Runs `done` exactly once: after the close, or when a loop that
    // stopped first destroys the job unrun.
    struct on_exit {
      std::function<void()> fn;
      ~on_exit() {
        if (fn)
          fn();
      }
    };
    auto guard = std::make_shared<on_exit>();
    guard->fn = std::move(done);
    if (std::this_thread::get_id() == io_thread_.load()) {
      do_close();
      return; // guard runs `done` now
    }
    io_.post([self = shared_from_this(), guard = std::move(guard)] {
      self->do_close();
    });
  }

private:
  struct conn {
    redisAsyncContext* ac = nullptr;
    std::shared_ptr<watch> w;
    bool connected = false;
    bool ready = false; // logged in, database selected, PING answered
  };

  // What went wrong, for the log: each kind is reported once per outage,
  // and again after `report_every` while it lasts.
  enum class failure { unreachable, credentials, refused, count };

  static constexpr auto report_every = std::chrono::minutes{10};

  // Runs `fn` on loop 0, in call order.
  template <class F>
  void run(F fn) {
    io_.post([self = shared_from_this(), fn = std::move(fn)]() mutable {
      if (!self->closed_)
        fn(*self);
    });
  }

  std::string where() const { return opts_.endpoint.address(); }

  conn* find(const redisAsyncContext* ac) {
    if (ac && ac == cmd_.ac)
      return &cmd_;
    if (ac && ac == sub_.ac)
      return &sub_;
    return nullptr; // already dropped by us
  }

  static asio_redis_link* self_of(const redisAsyncContext* ac) {
    return static_cast<asio_redis_link*>(ac->data);
  }

  // -- connecting ------------------------------------------------------------

  bool open(conn& c) {
    c = conn{};
    auto* ac =
      redisAsyncConnect(opts_.endpoint.host.c_str(), opts_.endpoint.port);
    if (!ac) {
      last_error_ = "out of memory";
      return false;
    }
    if (ac->err) {
      last_error_ = ac->errstr;
      redisAsyncFree(ac);
      return false;
    }
    ac->data = this;
    redisAsyncSetConnectCallback(ac, &asio_redis_link::on_connect);
    redisAsyncSetDisconnectCallback(ac, &asio_redis_link::on_disconnect);
    c.ac = ac;
    c.w = attach(ctx_, ac);
    return true;
  }

  void connect() {
    if (closed_)
      return;
    if (!open(cmd_) || !open(sub_)) {
      fail(last_error_);
      return;
    }
    auto gen = ++generation_;
    timer_->expires_after(opts_.connect_timeout);
    timer_->async_wait(
      [self = shared_from_this(), gen](const boost::system::error_code& ec) {
        if (!ec && gen == self->generation_ && !self->up_)
          self->fail("connect timeout");
      });
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    auto* self = self_of(ac);
    auto* c = self->find(ac);
    if (!c)
      return;
    if (status != REDIS_OK) {
      // hiredis frees the context when this callback returns.
      self->last_error_ = ac->errstr ? ac->errstr : "connect failed";
      c->ac = nullptr;
      self->fail(self->last_error_);
      return;
    }
    c->connected = true;
    self->handshake(*c);
  }

  // TCP is up; Redis is up once it answers (a stopped Redis accepts
  // connections too). The connect timeout still runs until then. On a
  // reconnection this logs in and selects the database again.
  void handshake(conn& c) {
    auto& ep = opts_.endpoint;
    bool sent = true;
    if (ep.auth && ep.user.empty())
      sent = command(c, &asio_redis_link::on_login, {"AUTH", ep.password});
    else if (ep.auth)
      sent =
        command(c, &asio_redis_link::on_login, {"AUTH", ep.user, ep.password});
    if (sent && ep.db != 0)
      sent = command(c, &asio_redis_link::on_select,
                     {"SELECT", std::to_string(ep.db)});
    if (!sent || !command(c, &asio_redis_link::on_hello, {"PING"}))
      fail("hiredis refused a command");
  }

  // Sends a command of at most three arguments.
  bool command(conn& c, redisCallbackFn* fn,
               std::initializer_list<std::string_view> args) {
    const char* argv[3];
    std::size_t lens[3];
    int n = 0;
    for (auto a : args) {
      argv[n] = a.data();
      lens[n++] = a.size();
    }
    return redisAsyncCommandArgv(c.ac, fn, this, n, argv, lens) == REDIS_OK;
  }

  // A handshake reply: nullptr when the connection is no longer ours (or
  // the link failed meanwhile), else the reply.
  static redisReply* handshake_reply(redisAsyncContext* ac, void* r) {
    auto* self = self_of(ac);
    if (!r || self->closed_ || self->up_ || self->teardown_posted_
        || !self->find(ac))
      return nullptr;
    return static_cast<redisReply*>(r);
  }

  static std::string error_of(const redisReply* reply) {
    return std::string{reply->str, reply->len};
  }

  static void on_login(redisAsyncContext* ac, void* r, void*) {
    auto* reply = handshake_reply(ac, r);
    if (reply && reply->type == REDIS_REPLY_ERROR)
      self_of(ac)->fail(error_of(reply), failure::credentials);
  }

  static void on_select(redisAsyncContext* ac, void* r, void*) {
    auto* reply = handshake_reply(ac, r);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
      auto* self = self_of(ac);
      self->fail("SELECT " + std::to_string(self->opts_.endpoint.db) + ": "
                   + error_of(reply),
                 failure::refused);
    }
  }

  static void on_hello(redisAsyncContext* ac, void* r, void*) {
    auto* reply = handshake_reply(ac, r);
    if (!reply)
      return;
    auto* self = self_of(ac);
    if (reply->type == REDIS_REPLY_ERROR) {
      // NOAUTH: Redis wants credentials that the URL does not give; NOPERM:
      // the ACL user may not PING; anything else (LOADING, ...) passes.
      auto e = error_of(reply);
      if (e.rfind("NOAUTH", 0) == 0)
        self->fail(e, failure::credentials);
      else
        self->fail("PING: " + e, e.rfind("NOPERM", 0) == 0
                                   ? failure::refused
                                   : failure::unreachable);
      return;
    }
    self->find(ac)->ready = true;
    if (self->cmd_.ready && self->sub_.ready)
      self->became_up();
  }

  static void on_disconnect(const redisAsyncContext* ac, int) {
    auto* self = self_of(ac);
    auto* c = self->find(ac);
    if (!c)
      return;
    self->last_error_ =
      ac->errstr && ac->err ? ac->errstr : "connection closed";
    c->ac = nullptr;
    c->connected = false;
    self->fail(self->last_error_);
  }

  void became_up() {
    up_ = true;
    ++generation_;
    timer_->cancel();
    backoff_ = opts_.reconnect_min;
    stats_->redis_connected.store(1, std::memory_order_relaxed);
    if (in_outage_) {
      in_outage_ = false;
      HERALD_LOG(warn, "redis: connected to "
                         << where() << " again; cross-node delivery resumes ("
                         << outage_drops_
                         << " messages could not cross nodes during the "
                            "outage)");
    } else {
      HERALD_LOG(info, "redis: connected to " << where());
    }
    outage_drops_ = 0;
    failed_attempts_ = 0;
    publish_refusal_logged_ = false;
    for (auto& ch : channels_)
      send_subscribe("SUBSCRIBE", ch);
    ping_outstanding_ = false;
    pings_missed_ = 0;
    schedule_ping(generation_);
  }

  // A Redis that stops answering (stopped, or a dead peer whose TCP
  // connection stays open) would never close our sockets: the publish
  // connection PINGs every second while up and a PING unanswered for
  // `ping_patience` ticks counts as a lost connection. (Only there: in
  // subscriber mode hiredis 0.14 would mismatch a PING's reply.)
  static constexpr int ping_patience = 5;

  void schedule_ping(std::uint64_t gen) {
    ping_timer_->expires_after(std::chrono::seconds{1});
    ping_timer_->async_wait(
      [self = shared_from_this(), gen](const boost::system::error_code& ec) {
        if (ec || gen != self->generation_ || !self->up_ || self->closed_)
          return;
        if (self->ping_outstanding_) {
          if (++self->pings_missed_ >= ping_patience) {
            self->fail("no answer to PING");
            return;
          }
        } else {
          const char* argv[] = {"PING"};
          const std::size_t lens[] = {4};
          if (redisAsyncCommandArgv(self->cmd_.ac, &asio_redis_link::on_pong,
                                    self.get(), 1, argv, lens)
              == REDIS_OK)
            self->ping_outstanding_ = true;
        }
        self->schedule_ping(gen);
      });
  }

  static void on_pong(redisAsyncContext*, void* r, void* priv) {
    auto* self = static_cast<asio_redis_link*>(priv);
    self->ping_outstanding_ = false;
    if (r)
      self->pings_missed_ = 0;
  }

  // Called where hiredis may still be on the stack: only marks the link down
  // and posts the teardown. The first failure of an attempt is the one
  // reported.
  void fail(const std::string& why, failure kind = failure::unreachable) {
    if (closed_)
      return;
    if (up_) {
      up_ = false;
      stats_->redis_connected.store(0, std::memory_order_relaxed);
    }
    if (teardown_posted_)
      return;
    teardown_posted_ = true;
    asio::post(ctx_, [self = shared_from_this(), why, kind] {
      self->teardown_posted_ = false;
      self->teardown_and_retry(why, kind);
    });
  }

  void drop(conn& c) {
    // Unset first: freeing a connected context calls on_disconnect, which
    // must not see it as ours any more.
    auto* ac = c.ac;
    c = conn{};
    if (ac)
      redisAsyncFree(ac);
  }

  void teardown_and_retry(const std::string& why, failure kind) {
    if (closed_)
      return;
    up_ = false;
    stats_->redis_connected.store(0, std::memory_order_relaxed);
    drop(cmd_);
    drop(sub_);
    bool first = !in_outage_;
    if (first) {
      in_outage_ = true;
      stats_->redis_outages.fetch_add(1, std::memory_order_relaxed);
      reported_ = {};
    }
    auto k = static_cast<std::size_t>(kind);
    auto now = std::chrono::steady_clock::now();
    if (!reported_[k] || now - reported_at_[k] >= report_every) {
      report(why, kind, reported_[k]);
      reported_[k] = true;
      reported_at_[k] = now;
      failed_attempts_ = 0;
    } else {
      ++failed_attempts_;
      HERALD_LOG(debug, "redis: reconnect to " << where() << " failed (" << why
                                               << ")");
    }
    auto gen = ++generation_;
    timer_->expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, opts_.reconnect_max);
    timer_->async_wait(
      [self = shared_from_this(), gen](const boost::system::error_code& ec) {
        if (!ec && gen == self->generation_)
          self->connect();
      });
  }

  // A decoded user name may hold any byte; a log line stays one line.
  static std::string printable(std::string s) {
    for (auto& c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
        c = '?';
    return s;
  }

  // One line per kind of failure (and a reminder while it lasts); the
  // password is never part of it.
  void report(const std::string& why, failure kind, bool reminder) {
    std::string again;
    if (failed_attempts_ > 0)
      again = " (" + std::to_string(failed_attempts_)
              + " more failed attempts since the last report)";
    auto& ep = opts_.endpoint;
    switch (kind) {
      case failure::unreachable:
        if (!reminder)
          HERALD_LOG(warn,
                     "redis: " << where() << " unreachable (" << why
                               << "); delivering locally only, reconnecting "
                                  "in the background");
        else
          HERALD_LOG(warn, "redis: " << where() << " still unreachable (" << why
                                     << ")" << again
                                     << "; delivering locally only");
        break;
      case failure::credentials:
        if (!ep.auth)
          HERALD_LOG(error, "redis: " << where() << " wants credentials ("
                                      << why
                                      << "); give them in the URL "
                                         "(redis://user:password@host); "
                                         "delivering locally only, retrying in "
                                         "the background"
                                      << again);
        else if (ep.user.empty())
          HERALD_LOG(error,
                     "redis: " << where() << " refused the password (" << why
                               << "); delivering locally only, retrying in "
                                  "the background"
                               << again);
        else
          HERALD_LOG(error,
                     "redis: " << where() << " refused the password of user '"
                               << printable(ep.user) << "' (" << why
                               << "); delivering locally only, retrying in "
                                  "the background"
                               << again);
        break;
      case failure::refused:
        HERALD_LOG(error,
                   "redis: " << where()
                             << " refused the connection "
                                "setup ("
                             << why
                             << "); delivering locally only, retrying in "
                                "the background"
                             << again);
        break;
      case failure::count:
        break;
    }
  }

  void do_close() {
    if (closed_)
      return;
    closed_ = true;
    up_ = false;
    stats_->redis_connected.store(0, std::memory_order_relaxed);
    drop(cmd_);
    drop(sub_);
    // Releases what the callback holds (the registry's address).
    on_message_ = nullptr;
    // No Asio object may outlive the loop: the link itself might.
    timer_.reset();
    ping_timer_.reset();
  }

  // -- commands --------------------------------------------------------------

  void send_subscribe(const char* verb, const std::string& name) {
    auto channel = scope_ + name;
    const char* argv[] = {verb, channel.data()};
    const std::size_t lens[] = {std::strlen(verb), channel.size()};
    // UNSUBSCRIBE has no callback of its own: its reply goes to the
    // channel's message callback, which ignores it.
    auto fn = verb[0] == 'S' ? &asio_redis_link::on_pubsub : nullptr;
    if (redisAsyncCommandArgv(sub_.ac, fn, this, 2, argv, lens) != REDIS_OK)
      HERALD_LOG(debug, "redis: " << verb << " " << channel << " refused");
  }

  void do_publish(const std::vector<redis_publication>& batch) {
    if (!up_) {
      count_dropped(batch.size());
      return;
    }
    for (auto& [name, payload] : batch) {
      auto channel = scope_ + name;
      const char* argv[] = {"PUBLISH", channel.data(), payload.data()};
      const std::size_t lens[] = {7, channel.size(), payload.size()};
      if (redisAsyncCommandArgv(cmd_.ac, &asio_redis_link::on_published, this,
                                3, argv, lens)
          != REDIS_OK)
        count_dropped(1);
    }
  }

  void count_dropped(std::size_t n) {
    outage_drops_ += n;
    stats_->cross_node_dropped.fetch_add(n, std::memory_order_relaxed);
  }

  static void on_published(redisAsyncContext*, void* r, void* priv) {
    auto* self = static_cast<asio_redis_link*>(priv);
    auto* reply = static_cast<redisReply*>(r);
    // An ACL user without the PUBLISH command or the channel: once per
    // connection, not per message.
    if (reply && reply->type == REDIS_REPLY_ERROR
        && !self->publish_refusal_logged_) {
      self->publish_refusal_logged_ = true;
      HERALD_LOG(error, "redis: " << self->where() << " refused a PUBLISH ("
                                  << error_of(reply)
                                  << "); such messages do not cross nodes");
    }
    // No reply: the connection went away with the command in flight.
    if (!reply || reply->type == REDIS_REPLY_ERROR)
      self->count_dropped(1);
    else
      self->stats_->cross_node_sent.fetch_add(1, std::memory_order_relaxed);
  }

  static void on_pubsub(redisAsyncContext*, void* r, void* priv) {
    auto* self = static_cast<asio_redis_link*>(priv);
    auto* reply = static_cast<redisReply*>(r);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
      return;
    auto* kind = reply->element[0];
    auto* channel = reply->element[1];
    auto* payload = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING
        || std::string_view{kind->str, kind->len} != "message"
        || channel->type != REDIS_REPLY_STRING
        || payload->type != REDIS_REPLY_STRING)
      return; // (un)subscribe confirmations
    std::string_view name{channel->str, channel->len};
    if (self->closed_ || !self->on_message_
        || name.substr(0, self->scope_.size()) != self->scope_)
      return;
    name.remove_prefix(self->scope_.size());
    self->on_message_(name, {reinterpret_cast<const std::byte*>(payload->str),
                             payload->len});
  }

  io_service& io_;
  asio::io_context& ctx_;
  redis_link_options opts_;
  std::shared_ptr<redis_counters> stats_;
  redis_message_fn on_message_;
  const std::string scope_; // before every channel name on Redis
  std::atomic<std::thread::id> io_thread_{};
  // Everything below is touched on loop 0 only.
  std::optional<asio::steady_timer> timer_;
  std::optional<asio::steady_timer> ping_timer_;
  bool ping_outstanding_ = false;
  int pings_missed_ = 0;
  std::chrono::milliseconds backoff_;
  std::uint64_t generation_ = 0; // invalidates stale timer handlers
  conn cmd_;
  conn sub_;
  std::set<std::string> channels_;
  std::string last_error_;
  std::size_t outage_drops_ = 0;
  static constexpr auto failure_kinds =
    static_cast<std::size_t>(failure::count);
  std::array<bool, failure_kinds> reported_{}; // in this outage
  std::array<std::chrono::steady_clock::time_point, failure_kinds> reported_at_;
  std::size_t failed_attempts_ = 0; // since the last report
  bool publish_refusal_logged_ = false;
  bool up_ = false;
  bool in_outage_ = false;
  bool teardown_posted_ = false;
  bool closed_ = false;
};

} // namespace

std::shared_ptr<redis_link>
start_redis_link(io_service& io, redis_link_options opts,
                 std::shared_ptr<redis_counters> stats,
                 redis_message_fn on_message) {
  auto l =
    std::make_shared<asio_redis_link>(io, std::move(opts), std::move(stats),
                                      std::move(on_message));
  l->start();
  return l;
}

} // namespace herald::net
