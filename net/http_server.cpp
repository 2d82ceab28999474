// All of Beast lives in this translation unit: it is heavy to compile.
#include "herald/net/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "herald/net/handshake.hpp"
#include "herald/net/log.hpp"
#include "herald/net/tcp_transport.hpp"
#include "herald/net/tls_transport.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

using clock = std::chrono::steady_clock;

// A socket accepted by accept4 with SOCK_NONBLOCK. Asio records in the
// socket's state whether it made the descriptor non-blocking and otherwise
// makes it so (an ioctl) before the first operation; telling it here that
// the descriptor already is spares that system call per connection.
// Asio also marks a descriptor it was given (assign) as a possible
// duplicate, which it removes from epoll before closing (an epoll_ctl):
// ours comes from accept4 and has no duplicate, so closing it removes it,
// as for a socket Asio accepted itself.
class accepted_socket : public stream_socket {
public:
  using stream_socket::stream_socket;

  void assume_accepted() noexcept {
    namespace ops = asio::detail::socket_ops;
    auto& state = impl_.get_implementation().state_;
    state |= ops::internal_non_blocking;
    state &= static_cast<ops::state_type>(~ops::possible_dup);
  }
};

/// The request deadlines of one listener's sessions on one loop, enforced
/// by one timer: a session is listed while it reads a request (and writes
/// the answer), in deadline order, and closed when its deadline passed. The
/// timer wakes at the earliest deadline plus a granule and is left alone
/// when sessions come and go before it, so the reactor's timer queue (a
/// timerfd_settime each time its earliest timer changes) stays out of the
/// handshakes.
class deadline_list : public std::enable_shared_from_this<deadline_list> {
public:
  /// A listed session.
  class entry {
  public:
    virtual ~entry() = default;

  protected:
    /// The deadline passed: drop the connection.
    virtual void expire() = 0;

  private:
    friend class deadline_list;
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
    clock::time_point due_;
    bool listed_ = false;
  };

  deadline_list(asio::io_context& ctx, clock::duration granule)
    : timer_(ctx), granule_(granule) {}

  /// Lists `e` (again) with the deadline `due`.
  void add(entry& e, clock::time_point due) {
    remove(e);
    e.due_ = due;
    e.listed_ = true;
    // Deadlines mostly come in order: look from the back.
    auto* after = tail_;
    while (after && after->due_ > due)
      after = after->prev_;
    e.prev_ = after;
    e.next_ = after ? after->next_ : head_;
    (e.next_ ? e.next_->prev_ : tail_) = &e;
    (after ? after->next_ : head_) = &e;
    arm();
  }

  /// Unlists `e` (no deadline any more).
  void remove(entry& e) noexcept {
    if (!e.listed_)
      return;
    (e.prev_ ? e.prev_->next_ : head_) = e.next_;
    (e.next_ ? e.next_->prev_ : tail_) = e.prev_;
    e.prev_ = e.next_ = nullptr;
    e.listed_ = false;
  }

private:
  void arm() {
    if (!head_)
      return;
    auto at = head_->due_ + granule_;
    if (armed_ && wake_ <= at)
      return;
    armed_ = true;
    wake_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec != asio::error::operation_aborted)
        self->sweep();
    });
  }

  void sweep() {
    armed_ = false;
    auto now = clock::now();
    while (head_ && head_->due_ <= now) {
      auto& e = *head_;
      remove(e);
      e.expire();
    }
    arm();
  }

  asio::steady_timer timer_;
  clock::duration granule_;
  entry* head_ = nullptr;
  entry* tail_ = nullptr;
  clock::time_point wake_;
  bool armed_ = false;
};

using deadline_list_ptr = std::shared_ptr<deadline_list>;

// Deferred requests of one server waiting now (sessions of one listener
// share it; changed on their loops, read anywhere).
using deferred_counter = std::shared_ptr<std::atomic<std::size_t>>;

/// Beast's request parser writing straight into the parts of the request
/// fetch sees, without http::parser's field container in between (an
/// allocation per field, then a copy of each into the request).
class request_reader final : public http::basic_parser<true> {
public:
  /// The method as Beast knows it (verb::unknown for others).
  http::verb verb() const noexcept { return verb_; }

  /// Makes `into` the request read, its parts moved out (call once, when
  /// done); in place, without a request to move from.
  void take(std::optional<request>& into, const std::string& remote) {
    into.emplace(std::move(method_), std::move(target_), std::move(headers_),
                 std::move(body_), remote, version_);
  }

private:
  void on_request_impl(http::verb v, beast::string_view method,
                       beast::string_view target, int version,
                       beast::error_code&) override {
    verb_ = v;
    method_.assign(method.data(), method.size());
    target_.assign(target.data(), target.size());
    version_ = version;
  }

  void on_response_impl(int, beast::string_view, int,
                        beast::error_code&) override {
    // Never called: this parser reads requests.
  }

  void on_field_impl(http::field, beast::string_view name,
                     beast::string_view value, beast::error_code&) override {
    if (headers_.empty())
      headers_.reserve(16);
    headers_.emplace_back(std::string{name.data(), name.size()},
                          std::string{value.data(), value.size()});
  }

  void on_header_impl(beast::error_code&) override {}

  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // The parser has checked a declared length against the body limit.
    if (length)
      body_.reserve(static_cast<std::size_t>(*length));
  }

  std::size_t on_body_impl(beast::string_view part,
                           beast::error_code&) override {
    body_.append(part.data(), part.size());
    return part.size();
  }

  void on_chunk_header_impl(std::uint64_t, beast::string_view,
                            beast::error_code&) override {}

  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view part,
                                 beast::error_code&) override {
    body_.append(part.data(), part.size());
    return part.size();
  }

  void on_finish_impl(beast::error_code&) override {}

  http::verb verb_ = http::verb::unknown;
  std::string method_;
  std::string target_;
  header_list headers_;
  std::string body_;
  int version_ = 11;
};

// A parser with the server's limits.
void limit(request_reader& p, const http_limits& limits) {
  p.header_limit(static_cast<std::uint32_t>(limits.max_header_size));
  p.body_limit(limits.max_body_size);
}

// What the server answers to a request Beast could not read: a status, or
// 0 for nothing (the connection is gone or timed out).
int read_error_status(const beast::error_code& ec) {
  if (ec == http::error::header_limit)
    return 431;
  if (ec == http::error::body_limit)
    return 413;
  // A parse error (as opposed to a socket error) earns a 400.
  if (ec.category() == make_error_code(http::error::bad_target).category())
    return 400;
  return 0;
}

// What the TLS port answers to a request sent without TLS.
constexpr std::string_view plain_http_answer =
  "HTTP/1.1 400 Bad Request\r\n"
  "Content-Type: text/plain; charset=utf-8\r\n"
  "Content-Length: 56\r\n"
  "Connection: close\r\n"
  "\r\n"
  "This port speaks TLS only: use https:// or wss:// here.\n";

/// An HTTP session's stream over TLS: Beast reads and writes plaintext
/// through it, the ciphertext goes through the TCP socket underneath (which
/// the session's deadline closes, so a stalled handshake ends at the
/// request timeout). Reads run the handshake as needed.
class tls_stream {
public:
  using executor_type = stream_socket::executor_type;

  tls_stream(stream_socket& next, std::unique_ptr<tls_engine> engine,
             const std::string& remote)
    : next_(next), engine_(std::move(engine)), remote_(remote) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& bufs, Token&& token) {
    return asio::async_compose<Token, void(beast::error_code, std::size_t)>(
      read_op<Buffers>{*this, bufs}, token, next_);
  }

  template <class Buffers, class Token>
  auto async_write_some(const Buffers& bufs, Token&& token) {
    return asio::async_compose<Token, void(beast::error_code, std::size_t)>(
      write_op<Buffers>{*this, bufs}, token, next_);
  }

  /// Sends close_notify without waiting (the session is closing).
  void notify_close() {
    engine_->shutdown();
    auto& out = engine_->out();
    if (!out.empty())
      ::send(next_.native_handle(), out.data(), out.size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
    out.clear();
    held_ = 0;
  }

  /// Hands the connection's TLS state over (to its transport).
  std::unique_ptr<tls_engine> release() { return std::move(engine_); }

private:
  template <class Buffers>
  struct read_op {
    read_op(tls_stream& s, const Buffers& bufs) : s(s), bufs(bufs) {}

    tls_stream& s;
    Buffers bufs;
    enum { start, wrote, got_input, answered_plain } state = start;
    std::size_t got = 0;
    beast::error_code err;

    template <class Self>
    void operator()(Self& self, beast::error_code ec = {}, std::size_t n = 0) {
      switch (state) {
        case start:
          break;
        case wrote:
          s.engine_->out().clear();
          s.held_ = 0;
          if (ec)
            return self.complete(ec, 0);
          if (err || got > 0)
            return self.complete(err, got);
          return read_more(self);
        case got_input:
          if (ec)
            return self.complete(ec, 0);
          if (s.first_) {
            s.first_ = false;
            // A TLS connection opens with a handshake record (22); a
            // letter is an HTTP method: tell the client in its language.
            auto c = static_cast<unsigned char>(s.in_[0]);
            if (c >= 'A' && c <= 'Z') {
              HERALD_LOG(debug,
                         "plain HTTP from " << s.remote_ << " on the TLS port");
              s.engine_->refuse();
              state = answered_plain;
              return asio::async_write(s.next_, asio::buffer(plain_http_answer),
                                       std::move(self));
            }
          }
          s.engine_->input({s.in_.data(), n});
          break;
        case answered_plain:
          return self.complete(asio::error::connection_refused, 0);
      }
      asio::mutable_buffer dst;
      for (auto it = asio::buffer_sequence_begin(bufs);
           it != asio::buffer_sequence_end(bufs); ++it)
        if (asio::mutable_buffer b = *it; b.size() > 0) {
          dst = b;
          break;
        }
      if (dst.size() == 0)
        return self.complete({}, 0);
      std::size_t n2 = 0;
      switch (
        s.engine_->read(static_cast<std::byte*>(dst.data()), dst.size(), n2)) {
        case tls_engine::status::data:
          got = n2;
          break;
        case tls_engine::status::want:
          break;
        case tls_engine::status::closed:
          err = asio::error::eof;
          break;
        case tls_engine::status::failed:
          HERALD_LOG(debug, "TLS from " << s.remote_
                                        << " failed: " << s.engine_->error());
          err = asio::error::connection_aborted;
          break;
      }
      if (s.engine_->renegotiation_attempted())
        HERALD_LOG(info, "refused TLS renegotiation from " << s.remote_);
      // New handshake messages and alerts go out before more input is
      // awaited; what came with data (the session ticket after the
      // client's Finished) is held for the next write, to share its send.
      bool fresh = s.engine_->out().size() > s.held_;
      s.held_ = s.engine_->out().size();
      if (fresh && (err || got == 0)) {
        state = wrote;
        return asio::async_write(s.next_, asio::buffer(s.engine_->out()),
                                 std::move(self));
      }
      if (err || got > 0)
        return self.complete(err, got);
      read_more(self);
    }

    template <class Self>
    void read_more(Self& self) {
      state = got_input;
      s.next_.async_read_some(asio::buffer(s.in_), std::move(self));
    }
  };

  template <class Buffers>
  struct write_op {
    write_op(tls_stream& s, const Buffers& bufs) : s(s), bufs(bufs) {}

    tls_stream& s;
    Buffers bufs;
    std::size_t size = 0;
    bool started = false;

    template <class Self>
    void operator()(Self& self, beast::error_code ec = {}, std::size_t = 0) {
      if (!started) {
        started = true;
        for (auto it = asio::buffer_sequence_begin(bufs);
             it != asio::buffer_sequence_end(bufs); ++it) {
          asio::const_buffer b = *it;
          if (!s.engine_->write(static_cast<const std::byte*>(b.data()),
                                b.size()))
            return self.complete(asio::error::connection_aborted, 0);
          size += b.size();
        }
        return asio::async_write(s.next_, asio::buffer(s.engine_->out()),
                                 std::move(self));
      }
      s.engine_->out().clear();
      s.held_ = 0;
      self.complete(ec, ec ? 0 : size);
    }
  };

  stream_socket& next_;
  std::unique_ptr<tls_engine> engine_;
  const std::string& remote_;
  std::vector<std::byte> in_ = std::vector<std::byte>(17u << 10);
  std::size_t held_ = 0; // bytes of engine_->out() kept for the next write
  bool first_ = true;
};

/// One HTTP connection: reads requests until one upgrades or it closes.
class http_session : public std::enable_shared_from_this<http_session>,
                     private deadline_list::entry {
public:
  http_session(stream_socket sock, std::string remote, http_limits limits,
               std::shared_ptr<http_handler> handler, deferred_counter waiting,
               tls_context* tls, deadline_list_ptr deadlines)
    : remote_(std::move(remote)), stream_(std::move(sock)), limits_(limits),
      handler_(std::move(handler)), waiting_(std::move(waiting)),
      deadlines_(std::move(deadlines)) {
    if (tls)
      tls_.emplace(stream_, std::make_unique<tls_engine>(*tls), remote_);
  }

  ~http_session() override { deadlines_->remove(*this); }

  void run() { do_read(); }

private:
  // The request (or the answer's write) took too long: closing the socket
  // ends what is in flight with operation_aborted.
  void expire() override {
    HERALD_LOG(debug, "dropping " << remote_ << ": request timeout");
    beast::error_code ec;
    stream_.close(ec);
  }

  // Runs `f` with the stream requests travel on: TLS or plain TCP.
  template <class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(stream_);
  }

  void do_read() {
    head_request_ = false;
    head_bytes_ = 0;
    parser_.emplace();
    limit(*parser_, limits_);
    // One deadline for the whole request: slow or silent clients are
    // dropped; an idle keep-alive connection gets the keep-alive timeout.
    deadlines_->add(*this,
                    clock::now()
                      + (served_ == 0 ? limits_.request_timeout
                                      : std::min(limits_.request_timeout,
                                                 limits_.keep_alive_timeout)));
    parse();
  }

  // Feeds the parser what the buffer holds, reading more while it needs
  // more: the steps of Beast's async_read_header and then async_read (head
  // first, the body eagerly), without their composed operations around
  // each read. read_request takes the same steps.
  void parse() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      bool in_head = !parser_->is_header_done();
      auto used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (in_head)
        head_bytes_ += used;
      if (ec == http::error::need_more)
        break;
      if (ec)
        return on_read(ec, 0);
      if (in_head && parser_->is_header_done()) {
        // Beast limits the request line and the fields each on its own,
        // and only while the head is incomplete: count the head as sent.
        if (head_bytes_ > limits_.max_header_size)
          return respond_error(431, "Request Header Fields Too Large");
        parser_->eager(true);
      }
      if (parser_->is_done())
        return handle_request();
      if (used == 0)
        break;
    }
    auto size = beast::read_size(buffer_, 65536);
    if (size == 0)
      return on_read(http::error::buffer_overflow, 0);
    auto into = buffer_.prepare(size);
    auto done =
      beast::bind_front_handler(&http_session::on_some, shared_from_this());
    if (tls_)
      tls_->async_read_some(into, std::move(done));
    else
      stream_.async_read_some(into, std::move(done));
  }

  void on_some(beast::error_code ec, std::size_t n) {
    buffer_.commit(n);
    if (ec == asio::error::eof) {
      // Closed between requests: the end; within one: its 400 (put_eof).
      if (!parser_->got_some())
        return on_read(http::error::end_of_stream, 0);
      ec = {};
      parser_->put_eof(ec);
      if (ec)
        return on_read(ec, 0);
    } else if (ec) {
      return on_read(ec, 0);
    }
    // Closed at its deadline (see expire), perhaps after the read completed.
    if (!stream_.is_open())
      return;
    if (parser_->is_done())
      return handle_request();
    parse();
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream)
      return do_close();
    // Closed at its deadline (see expire), perhaps after the read completed.
    if (!stream_.is_open())
      return;
    if (ec) {
      switch (read_error_status(ec)) {
        case 431:
          return respond_error(431, "Request Header Fields Too Large");
        case 413:
          return respond_error(413, "Payload Too Large");
        case 400:
          return respond_error(400, "Bad Request");
        default:
          return; // connection reset and the like: nothing to answer
      }
    }
    handle_request();
  }

  void handle_request() {
    ++served_;
    head_request_ = parser_->verb() == http::verb::head;
    keep_alive_ = parser_->keep_alive();
    parser_->take(req_, remote_);
    fetch_result result;
    try {
      result = handler_->handle(*req_);
    } catch (const std::exception& e) {
      HERALD_LOG(warn,
                 "fetch threw for " << req_->target() << ": " << e.what());
      return fetch_failed();
    } catch (...) {
      HERALD_LOG(warn, "fetch threw for " << req_->target());
      return fetch_failed();
    }
    if (auto d = req_->get_deferral()) {
      if (result && result->status == deferred_status)
        return park(std::move(d));
      // fetch answered itself after all: the handle completes nothing.
      d->finish(deferral::state::refused);
    } else if (result && result->status == deferred_status) {
      return respond_error(500, "fetch returned deferred without defer");
    }
    answer(*req_, std::move(result));
  }

  void fetch_failed() {
    if (auto& d = req_->get_deferral())
      d->finish(deferral::state::refused);
    respond_error(500, "Internal Server Error");
  }

  // Sends what fetch (or a deferred request's holder) decided for `req`.
  void answer(request& req, fetch_result result) {
    if (req.upgrade_payload()) {
      if (!handler_->accepting_upgrades()) {
        handler_->count_http(true);
        return respond_error(503, "Service Unavailable: connection limit");
      }
      return write_upgrade(req);
    }
    if (req.upgrade_failure() != 0) {
      handler_->count_http(true);
      HERALD_LOG(debug, "refused upgrade from "
                          << remote_ << ": " << req.upgrade_failure() << " "
                          << req.upgrade_failure_reason());
      header_list extra;
      if (req.upgrade_failure() == 426)
        extra.emplace_back("Sec-WebSocket-Version", "13");
      return respond(req.upgrade_failure(), req.upgrade_failure_reason() + "\n",
                     std::move(extra), false);
    }
    handler_->count_http(false);
    if (!result)
      return respond(404, "Not Found\n", {}, keep_alive_);
    if (result->status == 101)
      return respond_error(500, "fetch returned upgraded without an upgrade");
    if (result->status == deferred_status)
      return respond_error(500, "a deferred request answered with deferred");
    respond(result->status, std::move(result->body), std::move(result->headers),
            keep_alive_);
  }

  // -- deferred requests ------------------------------------------------------

  // Waits for the answer without a thread: reads only to notice the peer
  // leaving, with a timer for the timeout.
  void park(std::shared_ptr<deferral> d) {
    if (limits_.max_deferred != 0
        && waiting_->load(std::memory_order_relaxed) >= limits_.max_deferred) {
      d->finish(deferral::state::refused);
      HERALD_LOG(debug, "refused deferred request from " << remote_ << ": "
                                                         << limits_.max_deferred
                                                         << " pending");
      handler_->count_http(false);
      return respond_error(503, "Service Unavailable: too many pending "
                                "requests");
    }
    waiting_->fetch_add(1, std::memory_order_relaxed);
    deferral_ = std::move(d);
    settled_ = false;
    timed_out_ = false;
    deadlines_->remove(*this);
    if (!timer_)
      timer_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
    // The timer also keeps the session alive while it waits (a timeout of
    // 0 waits for ever): the wake-up only holds a weak reference, so a
    // handle kept past the runtime holds no socket.
    if (limits_.deferred_timeout.count() > 0)
      timer_->expires_after(limits_.deferred_timeout);
    else
      timer_->expires_at(asio::steady_timer::time_point::max());
    timer_->async_wait(
      beast::bind_front_handler(&http_session::on_deferred_timeout,
                                shared_from_this()));
    auto wake = [weak = weak_from_this(), ex = stream_.get_executor()] {
      asio::post(ex, [weak] {
        if (auto self = weak.lock())
          self->on_deferred_done();
      });
    };
    auto done = deferral_->arm(std::move(wake));
    watch_peer();
    if (done)
      on_deferred_done();
  }

  void watch_peer() {
    // A client that sends more than a request head's worth meanwhile is
    // no longer watched; its bytes wait for the answer in buffer_.
    if (buffer_.size() >= limits_.max_header_size)
      return;
    reading_ = true;
    auto into = buffer_.prepare(4096);
    auto done = beast::bind_front_handler(&http_session::on_peer_read,
                                          shared_from_this());
    if (tls_)
      tls_->async_read_some(into, std::move(done));
    else
      stream_.async_read_some(into, std::move(done));
  }

  void on_peer_read(beast::error_code ec, std::size_t n) {
    reading_ = false;
    buffer_.commit(n);
    if (settled_)
      return resolve();
    if (!deferral_)
      return;
    if (ec) {
      // Gone: the holder's completion becomes a no-op. If it completed
      // just now, its wake-up is on its way and fails to write.
      if (deferral_->finish(deferral::state::gone)) {
        HERALD_LOG(debug, remote_ << " left while its request was pending");
        deferral_.reset();
        waiting_->fetch_sub(1, std::memory_order_relaxed);
        timer_->cancel();
      }
      return;
    }
    watch_peer();
  }

  void on_deferred_done() {
    if (!deferral_ || settled_)
      return;
    settled_ = true;
    timer_->cancel();
    stop_watching();
  }

  void on_deferred_timeout(beast::error_code ec) {
    if (ec || !deferral_ || settled_)
      return;
    // Completed meanwhile: its wake-up is on its way.
    if (!deferral_->finish(deferral::state::timed_out))
      return;
    HERALD_LOG(debug, "deferred request from " << remote_ << " timed out");
    settled_ = true;
    timed_out_ = true;
    stop_watching();
  }

  // Ends the watching read; the answer goes out once it returned, so no
  // byte it read is lost to the next request or the WebSocket.
  void stop_watching() {
    if (!reading_)
      return resolve();
    beast::error_code ec;
    stream_.cancel(ec);
  }

  void resolve() {
    auto d = std::move(deferral_);
    if (!d)
      return;
    waiting_->fetch_sub(1, std::memory_order_relaxed);
    if (timed_out_) {
      handler_->count_http(false);
      return respond_error(503, "Service Unavailable: no answer in time");
    }
    // Completed: nobody else touches the deferral's request now. It is
    // kept (in req_'s place) for the upgrade, which reads it.
    fetch_result result = std::move(d->result());
    deferred_req_ = std::move(d);
    answer(deferred_req_->completed_request(), std::move(result));
  }

  void respond_error(int status, std::string text) {
    respond(status, text + "\n", {}, false);
  }

  void respond(int status, std::string body, header_list headers,
               bool keep_alive) {
    // Fresh for each answer, in the block of the one before.
    if (res_)
      *res_ = http::response<http::string_body>{};
    else
      res_ = std::make_unique<http::response<http::string_body>>();
    res_->version(11);
    res_->result(static_cast<unsigned>(status));
    bool has_type = false;
    for (auto& [k, v] : headers) {
      if (beast::iequals(k, "content-type"))
        has_type = true;
      // Beast rejects CR/LF in fields by throwing; skip such headers.
      if (k.find_first_of("\r\n:") != std::string::npos
          || v.find_first_of("\r\n") != std::string::npos)
        continue;
      res_->set(k, v);
    }
    if (!has_type)
      res_->set(http::field::content_type, "text/plain; charset=utf-8");
    res_->set(http::field::server, "herald");
    res_->body() = std::move(body);
    res_->keep_alive(keep_alive);
    res_->prepare_payload();
    if (head_request_) {
      // A response to HEAD has the GET's headers and no content.
      res_->body().clear();
    }
    with_stream([this, keep_alive](auto& s) {
      http::async_write(s, *res_,
                        beast::bind_front_handler(&http_session::on_write,
                                                  shared_from_this(),
                                                  keep_alive));
    });
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    deferred_req_.reset();
    if (ec)
      return;
    if (!keep_alive)
      return do_close();
    do_read();
  }

  void write_upgrade(request& req) {
    // The connection actor writes the 101 with what its open handler sends
    // (one write, and the handler's subscriptions precede the client's
    // view of the upgrade, as in Bun). Bytes the client sent after its
    // request are its first frames.
    deadlines_->remove(*this);
    auto data = buffer_.data();
    std::vector<std::byte> initial(static_cast<const std::byte*>(data.data()),
                                   static_cast<const std::byte*>(data.data())
                                     + data.size());
    tcp_transport_options topts;
    topts.send_buffer = limits_.websocket_send_buffer;
    topts.set_no_delay = false; // inherited from the listener
    auto t = tls_
               ? make_tls_transport(std::move(stream_), remote_,
                                    std::move(initial), tls_->release(), topts)
               : make_tcp_transport(std::move(stream_), remote_,
                                    std::move(initial), topts);
    handler_->upgraded(req, std::move(t), switching_protocols_frame(req));
  }

  void do_close() {
    if (tls_)
      tls_->notify_close();
    beast::error_code ec;
    stream_.shutdown(tcp::socket::shutdown_send, ec);
  }

  std::string remote_;
  stream_socket stream_;
  std::optional<tls_stream> tls_; // set on a TLS port
  beast::flat_buffer buffer_;
  http_limits limits_;
  std::shared_ptr<http_handler> handler_;
  std::optional<request_reader> parser_;
  // The answer and the deferred request's timer, made when needed (never
  // for an upgrade): a session fits one of malloc's cached sizes.
  std::unique_ptr<http::response<http::string_body>> res_;
  std::optional<request> req_;
  bool keep_alive_ = false;
  bool head_request_ = false;
  std::size_t served_ = 0;
  // Bytes of the request's head the parser took so far.
  std::size_t head_bytes_ = 0;
  // A deferred request: the one waiting, and the completed one whose
  // answer is being written.
  deferred_counter waiting_;
  deadline_list_ptr deadlines_;
  // The deferred request's timeout (made when one waits).
  std::unique_ptr<asio::steady_timer> timer_;
  std::shared_ptr<deferral> deferral_;
  std::shared_ptr<deferral> deferred_req_;
  bool reading_ = false;
  bool settled_ = false;
  bool timed_out_ = false;
};

/// Accepts TCP connections on one loop and starts an HTTP session for each
/// there (the session, fetch and the upgraded socket stay on that loop).
class acceptor_loop : public std::enable_shared_from_this<acceptor_loop> {
public:
  acceptor_loop(asio::io_context& ctx, http_limits limits,
                std::shared_ptr<http_handler> handler, deferred_counter waiting,
                tls_context_ptr tls)
    : ctx_(ctx), acceptor_(ctx), retry_(ctx), limits_(limits),
      handler_(std::move(handler)), waiting_(std::move(waiting)),
      tls_(std::move(tls)),
      deadlines_(std::make_shared<deadline_list>(ctx, granule(limits))) {}

  // `shared`: one of several sockets on the port (SO_REUSEPORT), among
  // which the kernel spreads new connections.
  tcp::endpoint open(const tcp::endpoint& ep, bool shared) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    if (shared) {
      int one = 1;
      if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT,
                       &one, sizeof one)
          != 0)
        throw std::system_error{errno, std::generic_category(), "SO_REUSEPORT"};
    }
    // Accepted sockets inherit it (Linux copies the listener's TCP state),
    // so the transports need no setsockopt of their own.
    acceptor_.set_option(tcp::no_delay{true});
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    return acceptor_.local_endpoint();
  }

  void do_accept() {
    acceptor_.async_wait(tcp::acceptor::wait_read,
                         [self = shared_from_this()](beast::error_code ec) {
                           self->on_readable(ec);
                         });
  }

  void stop() {
    asio::post(ctx_, [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_.cancel();
    });
  }

private:
  // Connections taken per wake-up before the loop's other work gets a turn.
  static constexpr int accept_batch = 32;

  // The deadline sweep's granule: a fraction of the shortest timeout, so a
  // deadline is enforced at most that much late.
  static clock::duration granule(const http_limits& l) {
    auto shortest = std::min(l.request_timeout, l.keep_alive_timeout);
    return std::clamp<clock::duration>(shortest / 8,
                                       std::chrono::milliseconds{1},
                                       std::chrono::seconds{1});
  }

  // Takes the waiting connections with accept4, which makes them
  // non-blocking and gives the peer's address (no ioctl, no getpeername),
  // then waits for more.
  void on_readable(beast::error_code ec) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open())
      return;
    if (ec)
      return retry(ec.message());
    for (int i = 0; i < accept_batch; ++i) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      int fd =
        ::accept4(acceptor_.native_handle(), reinterpret_cast<sockaddr*>(&peer),
                  &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return do_accept();
        // The peer gave up while queued, or a signal: take the next one.
        if (errno == ECONNABORTED || errno == EINTR)
          continue;
        // Out of descriptors and the like: keep serving, retry shortly.
        return retry(std::strerror(errno));
      }
      start_session(fd, peer, len);
    }
    // More may wait: after what else is queued on this loop.
    asio::post(ctx_, [self = shared_from_this()] { self->on_readable({}); });
  }

  void retry(const std::string& why) {
    HERALD_LOG(warn, "accept failed: " << why);
    retry_.expires_after(std::chrono::milliseconds{100});
    retry_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->do_accept();
    });
  }

  // "address:port"; IPv4 by hand (libc's inet_ntop goes through sprintf,
  // a good part of a handshake's own work).
  static std::string address_text(const tcp::endpoint& ep) {
    if (!ep.address().is_v4())
      return ep.address().to_string() + ":" + std::to_string(ep.port());
    char buf[24];
    char* p = buf;
    auto put = [&p](unsigned n) {
      if (n >= 100)
        *p++ = static_cast<char>('0' + n / 100);
      if (n >= 10)
        *p++ = static_cast<char>('0' + n / 10 % 10);
      *p++ = static_cast<char>('0' + n % 10);
    };
    auto bytes = ep.address().to_v4().to_bytes();
    for (std::size_t i = 0; i < 4; ++i) {
      put(bytes[i]);
      *p++ = i < 3 ? '.' : ':';
    }
    auto port = ep.port();
    char digits[5];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + port % 10);
      port /= 10;
    } while (port > 0);
    while (n > 0)
      *p++ = digits[--n];
    return std::string(buf, p);
  }

  void start_session(int fd, const sockaddr_storage& peer, socklen_t len) {
    try {
      tcp::endpoint ep;
      std::memcpy(ep.data(), &peer, std::min<std::size_t>(len, ep.capacity()));
      ep.resize(len);
      accepted_socket sock{ctx_};
      beast::error_code ec;
      sock.assign(ep.protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        HERALD_LOG(warn, "dropping a connection: " << ec.message());
        return;
      }
      sock.assume_accepted();
      std::make_shared<http_session>(std::move(sock), address_text(ep), limits_,
                                     handler_, waiting_, tls_.get(), deadlines_)
        ->run();
    } catch (const std::exception& e) {
      HERALD_LOG(warn, "dropping a connection: " << e.what());
    }
  }

  asio::io_context& ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  http_limits limits_;
  std::shared_ptr<http_handler> handler_;
  deferred_counter waiting_;
  tls_context_ptr tls_;
  deadline_list_ptr deadlines_;
};

/// A server's listening sockets: one per loop, sharing the port.
class listener final : public http_server {
public:
  void open(io_service& io, const std::string& host, std::uint16_t port,
            http_limits limits, std::shared_ptr<http_handler> handler,
            tls_context_ptr tls) {
    auto addr =
      asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host);
    tcp::endpoint ep{addr, port};
    auto n = io.size();
    if (n > 1 && port != 0) {
      // Sockets with SO_REUSEPORT share a port with any other such socket
      // of the same user: a plain bind first, so that a port in use (by
      // another server of this process too) fails as it does with one.
      tcp::acceptor probe{*static_cast<asio::io_context*>(io.native(0))};
      probe.open(ep.protocol());
      probe.set_option(asio::socket_base::reuse_address(true));
      probe.bind(ep);
    }
    for (std::size_t i = 0; i < n; ++i) {
      auto& ctx = *static_cast<asio::io_context*>(io.native(i));
      auto a =
        std::make_shared<acceptor_loop>(ctx, limits, handler, waiting_, tls);
      auto bound = a->open(ep, n > 1);
      if (i == 0) {
        bound_ = bound;
        ep.port(bound.port()); // port 0: the others join the one picked
      }
      loops_.push_back(std::move(a));
    }
    for (std::size_t i = 0; i < n; ++i)
      io.post(i, [a = loops_[i]] { a->do_accept(); });
  }

  std::uint16_t port() const noexcept override { return bound_.port(); }

  std::string host() const override { return bound_.address().to_string(); }

  std::size_t deferred() const noexcept override {
    return waiting_->load(std::memory_order_relaxed);
  }

  void stop() override {
    for (auto& a : loops_)
      a->stop();
  }

private:
  std::vector<std::shared_ptr<acceptor_loop>> loops_;
  tcp::endpoint bound_;
  deferred_counter waiting_ = std::make_shared<std::atomic<std::size_t>>(0);
};

} // namespace

read_outcome read_request(std::span<const char> data,
                          std::span<const std::size_t> cuts,
                          const http_limits& limits) {
  request_reader p;
  limit(p, limits);
  // As async_read_header, then async_read with a flat_buffer: the parser
  // sees everything received and not yet taken, again after each read.
  p.eager(false);
  std::string buffered;
  std::size_t pos = 0;
  std::size_t taken = 0;
  std::size_t head = 0;
  beast::error_code ec;
  auto fail = [&](const beast::error_code& e) {
    return read_outcome{read_error_status(e), std::nullopt, taken};
  };
  for (std::size_t i = 0; i <= cuts.size() && !p.is_done(); ++i) {
    auto end =
      i < cuts.size() ? std::clamp(cuts[i], pos, data.size()) : data.size();
    buffered.append(data.data() + pos, end - pos);
    pos = end;
    // Like a read, the parser never gets an empty buffer.
    while (!p.is_done() && !buffered.empty()) {
      auto n = p.put(asio::buffer(buffered), ec);
      buffered.erase(0, n);
      taken += n;
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec)
        return fail(ec);
      if (p.is_header_done() && head == 0) {
        head = taken;
        if (head > limits.max_header_size)
          return {431, std::nullopt, taken};
        p.eager(true);
      } else if (n == 0) {
        break;
      }
    }
  }
  if (!p.is_done()) {
    // The client closed: what async_read reports then.
    if (!p.got_some())
      return {};
    p.put_eof(ec);
    if (ec)
      return fail(ec);
    if (!p.is_done())
      return fail(http::error::partial_message);
  }
  read_outcome out{0, std::nullopt, taken};
  p.take(out.req, "127.0.0.1:50000");
  return out;
}

std::shared_ptr<http_server>
start_http_server(io_service& io, const std::string& host, std::uint16_t port,
                  http_limits limits, std::shared_ptr<http_handler> h,
                  tls_context_ptr tls) {
  auto l = std::make_shared<listener>();
  l->open(io, host, port, limits, std::move(h), std::move(tls));
  return l;
}

} // namespace herald::net
