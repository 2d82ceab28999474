// All of Beast lives in this translation unit: it is heavy to compile.
#include "herald/net/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "herald/net/handshake.hpp"
#include "herald/net/log.hpp"
#include "herald/net/tcp_transport.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Accepted sockets and the stream around them use the io_context's own
// executor, the type the transport takes over (see stream_socket).
using stream_type = beast::basic_stream<tcp, asio::io_context::executor_type,
                                        beast::unlimited_rate_policy>;

// Deferred requests of one server waiting now (sessions of one listener
// share it; changed on the I/O thread, read anywhere).
using deferred_counter = std::shared_ptr<std::atomic<std::size_t>>;
using request_parser = http::request_parser<http::string_body>;

// A parser with the server's limits.
void limit(request_parser& p, const http_limits& limits) {
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

// The request as fetch sees it.
request make_request(request_parser& p, const std::string& remote) {
  auto& msg = p.get();
  header_list headers;
  headers.reserve(16);
  for (auto& field : msg)
    headers.emplace_back(std::string{field.name_string()},
                         std::string{field.value()});
  return request{std::string{msg.method_string()},
                 std::string{msg.target()},
                 std::move(headers),
                 std::move(msg.body()),
                 remote,
                 static_cast<int>(msg.version())};
}

std::string endpoint_string(const stream_socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec)
    return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

/// One HTTP connection: reads requests until one upgrades or it closes.
class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(stream_socket sock, http_limits limits,
               std::shared_ptr<http_handler> handler, deferred_counter waiting)
    : remote_(endpoint_string(sock)), stream_(std::move(sock)), limits_(limits),
      handler_(std::move(handler)), waiting_(std::move(waiting)),
      timer_(stream_.get_executor()) {}

  void run() { do_read(); }

private:
  void do_read() {
    head_request_ = false;
    parser_.emplace();
    limit(*parser_, limits_);
    // One deadline for the whole request: slow or silent clients are
    // dropped; an idle keep-alive connection gets the keep-alive timeout.
    stream_.expires_after(served_ == 0 ? limits_.request_timeout
                                       : std::min(limits_.request_timeout,
                                                  limits_.keep_alive_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&http_session::on_head,
                                                      shared_from_this()));
  }

  void on_head(beast::error_code ec, std::size_t head) {
    if (ec)
      return on_read(ec, 0);
    // Beast limits the request line and the fields each on its own, and
    // only while the head is incomplete: count the head as sent.
    if (head > limits_.max_header_size)
      return respond_error(431, "Request Header Fields Too Large");
    if (parser_->is_done())
      return handle_request();
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read,
                                               shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream)
      return do_close();
    if (ec == beast::error::timeout) {
      HERALD_LOG(debug, "dropping " << remote_ << ": request timeout");
      return;
    }
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
    req_ = make_request(*parser_, remote_);
    auto& msg = parser_->get();
    head_request_ = msg.method() == http::verb::head;
    keep_alive_ = msg.keep_alive();
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
    stream_.expires_never();
    // The timer also keeps the session alive while it waits (a timeout of
    // 0 waits for ever): the wake-up only holds a weak reference, so a
    // handle kept past the runtime holds no socket.
    if (limits_.deferred_timeout.count() > 0)
      timer_.expires_after(limits_.deferred_timeout);
    else
      timer_.expires_at(asio::steady_timer::time_point::max());
    timer_.async_wait(
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
    stream_.socket().async_read_some(
      buffer_.prepare(4096),
      beast::bind_front_handler(&http_session::on_peer_read,
                                shared_from_this()));
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
        timer_.cancel();
      }
      return;
    }
    watch_peer();
  }

  void on_deferred_done() {
    if (!deferral_ || settled_)
      return;
    settled_ = true;
    timer_.cancel();
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
    stream_.socket().cancel(ec);
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
    res_.emplace();
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
    http::async_write(stream_, *res_,
                      beast::bind_front_handler(&http_session::on_write,
                                                shared_from_this(),
                                                keep_alive));
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
    stream_.expires_never();
    auto data = buffer_.data();
    std::vector<std::byte> initial(static_cast<const std::byte*>(data.data()),
                                   static_cast<const std::byte*>(data.data())
                                     + data.size());
    tcp_transport_options topts;
    topts.send_buffer = limits_.websocket_send_buffer;
    auto t = make_tcp_transport(stream_.release_socket(), remote_,
                                std::move(initial), topts);
    handler_->upgraded(req, std::move(t), switching_protocols(req));
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  std::string remote_;
  stream_type stream_;
  beast::flat_buffer buffer_;
  http_limits limits_;
  std::shared_ptr<http_handler> handler_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  std::optional<request> req_;
  bool keep_alive_ = false;
  bool head_request_ = false;
  std::size_t served_ = 0;
  // A deferred request: the one waiting, and the completed one whose
  // answer is being written.
  deferred_counter waiting_;
  asio::steady_timer timer_;
  std::shared_ptr<deferral> deferral_;
  std::shared_ptr<deferral> deferred_req_;
  bool reading_ = false;
  bool settled_ = false;
  bool timed_out_ = false;
};

/// Accepts TCP connections and starts an HTTP session for each.
class listener final : public http_server,
                       public std::enable_shared_from_this<listener> {
public:
  listener(asio::io_context& ctx, http_limits limits,
           std::shared_ptr<http_handler> handler)
    : ctx_(ctx), acceptor_(ctx), retry_(ctx), limits_(limits),
      handler_(std::move(handler)) {}

  void open(const std::string& host, std::uint16_t port) {
    auto addr =
      asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host);
    tcp::endpoint ep{addr, port};
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    bound_ = acceptor_.local_endpoint();
  }

  void do_accept() {
    acceptor_.async_accept(ctx_.get_executor(),
                           beast::bind_front_handler(&listener::on_accept,
                                                     shared_from_this()));
  }

  std::uint16_t port() const noexcept override { return bound_.port(); }

  std::string host() const override { return bound_.address().to_string(); }

  std::size_t deferred() const noexcept override {
    return waiting_->load(std::memory_order_relaxed);
  }

  void stop() override {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_.cancel();
    });
  }

private:
  void on_accept(beast::error_code ec, stream_socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open())
      return;
    if (ec) {
      // Out of descriptors and the like: keep serving, retry shortly.
      HERALD_LOG(warn, "accept failed: " << ec.message());
      retry_.expires_after(std::chrono::milliseconds{100});
      retry_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec)
          self->do_accept();
      });
      return;
    }
    std::make_shared<http_session>(std::move(sock), limits_, handler_, waiting_)
      ->run();
    do_accept();
  }

  asio::io_context& ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  tcp::endpoint bound_;
  http_limits limits_;
  std::shared_ptr<http_handler> handler_;
  deferred_counter waiting_ = std::make_shared<std::atomic<std::size_t>>(0);
};

} // namespace

read_outcome read_request(std::span<const char> data,
                          std::span<const std::size_t> cuts,
                          const http_limits& limits) {
  request_parser p;
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
  return {0, make_request(p, "127.0.0.1:50000"), taken};
}

std::shared_ptr<http_server>
start_http_server(io_service& io, const std::string& host, std::uint16_t port,
                  http_limits limits, std::shared_ptr<http_handler> h) {
  auto& ctx = *static_cast<asio::io_context*>(io.native());
  auto l = std::make_shared<listener>(ctx, limits, std::move(h));
  l->open(host, port);
  // Start accepting on the I/O thread.
  io.post([l] { l->do_accept(); });
  return l;
}

} // namespace herald::net
