// Herald's testing kit: deterministic tests of an application's WebSocket
// handlers, with fake clients instead of sockets and CAF's test coordinator
// instead of threads.
//
//   #define CAF_SUITE room                      // before any CAF header
//   #include <herald/actors/testing.hpp>
//
//   struct room_fixture : herald::testing::fixture<user> {
//     room_fixture() : fixture(room_handlers()) {}   // the app's handlers
//   };
//   CAF_TEST_FIXTURE_SCOPE(room_tests, room_fixture)
//   CAF_TEST(a message reaches the others) {
//     auto& ann = connect(user{"ann"});
//     auto& bob = connect(user{"bob"});
//     ann.send_text("hi");
//     run();
//     CAF_CHECK_EQUAL(bob.next(), herald::testing::text_frame("ann: hi"));
//   }
//   CAF_TEST_FIXTURE_SCOPE_END()
//
// What is real: the connection actors (herald::connection_actor, the same
// class the server spawns), the frame parser, permessage-deflate, the
// library's typed_hooks that call the user's websocket_handlers<T>, the
// topic registry and topic actors, the idle clock (one per fixture, as one
// per server), and the timers (idle ticks, pings, close timeouts), which run
// on CAF's test clock. What is fake: the transport
// (no socket, frames are recorded; compiled in actors/testing_link.cpp), and the peer,
// which is scripted by the test.
//
// Nothing happens until the test runs the scheduler: client actions and
// publishes only enqueue messages; `run()` processes messages until none
// are left (never firing timers), `step()` processes one, `advance(d)`
// moves the test clock forward and fires what falls due, in order.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/test/dsl.hpp>

#include "herald/actors/hooks.hpp"
#include "herald/actors/server.hpp"
#include "herald/actors/socket.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/testing_link.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/client_frame.hpp"
#include "herald/net/deflate.hpp"
#include "herald/net/frame.hpp"
#include "herald/net/http.hpp"

namespace herald::testing {

// -- what a fake client receives ----------------------------------------------

/// The kind of a frame the server sent to a client.
enum class kind { none, text, binary, ping, pong, close };

/// "text", "binary", ...; "none" for "nothing was there".
inline std::string to_string(kind k) {
  switch (k) {
    case kind::text:
      return "text";
    case kind::binary:
      return "binary";
    case kind::ping:
      return "ping";
    case kind::pong:
      return "pong";
    case kind::close:
      return "close";
    default:
      return "none";
  }
}

/// One frame the server sent to a fake client, decoded. Compare with the
/// factories below: `CAF_CHECK_EQUAL(c.next(), text_frame("hi"))`.
struct frame_event {
  /// What arrived (`kind::none`: nothing, from `next()` on an empty queue).
  testing::kind kind = kind::none;
  /// The payload of text, binary, ping and pong frames (bytes as chars).
  std::string data;
  /// For close frames: the code (1005 when the frame carried none).
  int code = 0;
  /// For close frames: the reason.
  std::string reason;
  /// The frame was compressed (permessage-deflate); `data` is inflated.
  /// Equality ignores it: compression is the transport's business.
  bool compressed = false;

  /// True for a text message.
  bool is_text() const noexcept { return kind == kind::text; }
  /// True for a binary message.
  bool is_binary() const noexcept { return kind == kind::binary; }
  /// True for a text or binary message.
  bool is_message() const noexcept { return is_text() || is_binary(); }

  /// Same kind, payload, code and reason (compressed or not).
  friend bool operator==(const frame_event& x, const frame_event& y) {
    return x.kind == y.kind && x.data == y.data && x.code == y.code
           && x.reason == y.reason;
  }
};

namespace detail {

inline std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7F) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

} // namespace detail

/// Readable form for test output: `text "hi"`, `close 1001 "idle timeout"`.
inline std::string to_string(const frame_event& e) {
  switch (e.kind) {
    case kind::none:
      return "none";
    case kind::close:
      return "close " + std::to_string(e.code) + " " + detail::quoted(e.reason);
    default:
      return (e.compressed ? "compressed " : "") + to_string(e.kind) + " "
             + detail::quoted(e.data);
  }
}

/// A text message with `s`.
inline frame_event text_frame(std::string_view s) {
  return {kind::text, std::string{s}, 0, {}, false};
}
/// A binary message with the bytes of `s`.
inline frame_event binary_frame(std::string_view s) {
  return {kind::binary, std::string{s}, 0, {}, false};
}
/// A binary message with `bytes`.
inline frame_event binary_frame(std::span<const std::byte> bytes) {
  return binary_frame(
    std::string_view{reinterpret_cast<const char*>(bytes.data()),
                     bytes.size()});
}
/// A ping with `data`.
inline frame_event ping_frame(std::string_view data = {}) {
  return {kind::ping, std::string{data}, 0, {}, false};
}
/// A pong with `data`.
inline frame_event pong_frame(std::string_view data = {}) {
  return {kind::pong, std::string{data}, 0, {}, false};
}
/// A close frame with `code` and `reason`.
inline frame_event close_frame(int code, std::string_view reason = {}) {
  return {kind::close, {}, code, std::string{reason}, false};
}

// -- fake clients --------------------------------------------------------------

/// How a fake client behaves. The defaults are a browser's.
struct client_options {
  /// Answer the server's pings with pongs (browsers do). With false the
  /// client looks dead to the idle timeout.
  bool answer_pings = true;
  /// Answer the server's close frame with a close frame echoing its code
  /// (browsers do). With false the server gives up after its close timeout
  /// (5 s on the test clock) and the close handler sees 1006.
  bool answer_close = true;
  /// The peer's "ip:port" (`ws.remote_endpoint()`; `ws.remote_address()`
  /// reports its address part).
  std::string remote_address = "127.0.0.1:50000";
  /// The subprotocol `ws.protocol()` reports (as if chosen at upgrade).
  std::string protocol;
  /// The Sec-WebSocket-Extensions the client offers, e.g.
  /// `browser_deflate_offer`. The kit negotiates them with the handlers'
  /// per_message_deflate option exactly as `server.upgrade` does; when
  /// permessage-deflate is agreed, the server compresses what handlers
  /// send with `compress` and the client inflates it.
  std::string extensions;
};

/// What browsers offer: permessage-deflate with the client's window bits.
inline constexpr std::string_view browser_deflate_offer =
  "permessage-deflate; client_max_window_bits";

namespace detail {

/// Wraps the library's typed_hooks so that the fixture can disarm the
/// user's handlers when it is torn down (their state may be gone by then).
/// While armed it forwards every call unchanged.
class guarded_hooks final : public connection_hooks {
public:
  guarded_hooks(std::unique_ptr<connection_hooks> inner,
                std::shared_ptr<const bool> armed)
    : inner_(std::move(inner)), armed_(std::move(armed)) {}

  basic_socket& socket() noexcept override { return inner_->socket(); }
  const websocket_options& options() const noexcept override {
    return inner_->options();
  }
  void on_open() override {
    if (*armed_)
      inner_->on_open();
  }
  void on_message(herald::message m) override {
    if (*armed_)
      inner_->on_message(m);
  }
  void on_close(int code, std::string_view reason) override {
    if (*armed_)
      inner_->on_close(code, reason);
  }
  void on_drain() override {
    if (*armed_)
      inner_->on_drain();
  }
  void on_ping(std::span<const std::byte> data) override {
    if (*armed_)
      inner_->on_ping(data);
  }
  void on_pong(std::span<const std::byte> data) override {
    if (*armed_)
      inner_->on_pong(data);
  }
  bool on_error(std::string_view what) override {
    return *armed_ && inner_->on_error(what);
  }
  void on_limited(herald::message m) override {
    if (*armed_)
      inner_->on_limited(m);
  }

private:
  std::unique_ptr<connection_hooks> inner_;
  std::shared_ptr<const bool> armed_;
};

/// The server that `fetch`'s `server<T>&` and `ws.server()` reach in the
/// kit: the fixture's registry and counters. `stop()` and `rt()` are not
/// simulated (they throw std::logic_error).
class kit_server final : public server_base {
public:
  kit_server(std::shared_ptr<topic_counts> counts,
             std::shared_ptr<server_stats> stats, topic_registry registry)
    : counts_(std::move(counts)), stats_(std::move(stats)),
      registry_(std::move(registry)) {}

  std::uint16_t port() const noexcept override { return 0; }
  std::string hostname() const override { return "127.0.0.1"; }
  const topic_registry& registry() const noexcept override { return registry_; }
  const std::shared_ptr<server_stats>& stats() const noexcept override {
    return stats_;
  }
  std::size_t subscriber_count(std::string_view topic) const override {
    return counts_->get(topic);
  }
  bool may_have_subscribers(std::string_view topic) const override {
    return counts_->may_have_subscribers(topic);
  }
  std::size_t topic_count() const override { return counts_->topics(); }
  bool bridged() const noexcept override { return false; }
  std::size_t connection_count() const override {
    return static_cast<std::size_t>(
      stats_->open_connections.load(std::memory_order_relaxed));
  }
  std::size_t pending_requests() const override { return pending; }
  void publish(std::string_view topic, net::frame_ptr frame,
               bool compress) override {
    herald::publish(registry_, topic,
                    msg::publication{std::move(frame), caf::actor_addr{},
                                     compress});
  }
  std::shared_future<void> stop(stop_mode, std::chrono::milliseconds) override {
    throw std::logic_error("server.stop() is not simulated by the kit");
  }
  bool stopped() const override { return false; }
  herald::runtime& rt() override {
    throw std::logic_error("the testing kit has no runtime");
  }

  /// Deferred requests the fixture's fetch left waiting.
  std::size_t pending = 0;

private:
  std::shared_ptr<topic_counts> counts_;
  std::shared_ptr<server_stats> stats_;
  topic_registry registry_;
};

} // namespace detail

/// A WebSocket client with no socket: it feeds frames to a real connection
/// actor through a fake transport and records what the server sends back.
/// Created by `fixture::connect`; lives as long as the fixture.
///
/// Actions only enqueue; run the fixture (`run()`, `step()`, `advance()`)
/// to let the server handle them.
template <class T>
class fake_client {
public:
  /// Used by the fixture.
  fake_client(std::unique_ptr<detail::link> l, client_options opts,
              std::optional<net::deflate_params> deflate = std::nullopt)
    : link_(std::move(l)), opts_(std::move(opts)), deflate_(deflate) {
    if (deflate_)
      inflater_ =
        std::make_unique<net::inflater>(deflate_->server_no_context_takeover);
  }
  fake_client(const fake_client&) = delete;
  fake_client& operator=(const fake_client&) = delete;

  // -- what the client does ---------------------------------------------------

  /// Sends a text message (one masked frame, as a browser sends it).
  /// `compress`: deflate it and set RSV1 (the server closes with 1002 when
  /// permessage-deflate was not agreed).
  void send_text(std::string_view text, bool compress = false) {
    send_data(net::opcode::text, text, compress);
  }
  /// Sends a binary message made of the bytes of `data`.
  void send_binary(std::string_view data, bool compress = false) {
    send_data(net::opcode::binary, data, compress);
  }
  /// Sends a binary message.
  void send_binary(std::span<const std::byte> data, bool compress = false) {
    send_binary(std::string_view{reinterpret_cast<const char*>(data.data()),
                                 data.size()},
                compress);
  }
  /// Sends a ping; the server answers with a pong carrying `data`.
  void ping(std::string_view data = {}) {
    send_raw(net::client_frame(net::opcode::ping, data));
  }
  /// Sends an unsolicited pong.
  void pong(std::string_view data = {}) {
    send_raw(net::client_frame(net::opcode::pong, data));
  }
  /// Starts the closing handshake (code 1005: a close frame with no code).
  void close(int code = 1000, std::string_view reason = {}) {
    sent_close_ = true;
    if (code == 1005)
      send_raw(net::client_frame(net::opcode::close, {}));
    else
      send_raw(net::client_close(static_cast<std::uint16_t>(code), reason));
  }
  /// Disappears without a close frame (network loss, killed tab): the
  /// server sees the socket fail and runs `close` with 1006.
  void vanish() {
    if (gone_)
      return;
    gone_ = true;
    link_->vanish();
  }
  /// Sends raw bytes as read from a socket, e.g. a malformed frame built
  /// with `net::client_frame` (fragments, bad opcodes, unmasked frames).
  void send_raw(std::vector<std::byte> bytes) {
    if (!gone_)
      link_->feed(std::move(bytes));
  }
  /// Stops reading: the server's writes pile up (backpressure).
  void stall() { link_->stall(); }
  /// Reads the backlog: the server gets `drain` if it had backpressure.
  void drain() { link_->drain(); }

  // -- what the client received ------------------------------------------------

  /// Every frame the server sent to this client, in order.
  const std::vector<frame_event>& received() const {
    sync();
    return events_;
  }
  /// The oldest frame not yet taken by next() or take(); a frame of kind
  /// `none` when there is none.
  frame_event next() {
    sync();
    if (cursor_ >= events_.size())
      return {};
    return events_[cursor_++];
  }
  /// True when next() has a frame to give.
  bool has_next() const {
    sync();
    return cursor_ < events_.size();
  }
  /// All frames not yet taken, in order; they count as taken afterwards.
  std::vector<frame_event> take() {
    sync();
    std::vector<frame_event> out(events_.begin()
                                   + static_cast<std::ptrdiff_t>(cursor_),
                                 events_.end());
    cursor_ = events_.size();
    return out;
  }
  /// Like take(), but keeps only text and binary messages (the control
  /// frames among them, e.g. pings, count as taken too).
  std::vector<frame_event> take_messages() {
    std::vector<frame_event> out;
    for (auto& e : take())
      if (e.is_message())
        out.push_back(std::move(e));
    return out;
  }
  /// The payloads of every text message received, in order.
  std::vector<std::string> texts() const {
    std::vector<std::string> out;
    for (auto& e : received())
      if (e.is_text())
        out.push_back(e.data);
    return out;
  }
  /// Every text and binary message received (no control frames), in order.
  std::vector<frame_event> messages() const {
    std::vector<frame_event> out;
    for (auto& e : received())
      if (e.is_message())
        out.push_back(e);
    return out;
  }
  /// Received frames of kind `k`.
  std::size_t count(testing::kind k) const {
    std::size_t n = 0;
    for (auto& e : received())
      n += e.kind == k ? 1 : 0;
    return n;
  }

  /// True once the server closed the connection (the socket is gone).
  bool closed() const { return link_->closed(); }
  /// True when the server sent a close frame (the handshake may still be
  /// under way).
  bool got_close() const {
    for (auto& e : received())
      if (e.kind == kind::close)
        return true;
    return false;
  }
  /// What a browser's CloseEvent would report: the code of the server's
  /// close frame, 1006 when the connection closed without one, 0 while
  /// neither happened.
  int close_code() const {
    for (auto& e : received())
      if (e.kind == kind::close)
        return e.code;
    return closed() ? 1006 : 0;
  }
  /// The reason of the server's close frame ("" if none).
  std::string close_reason() const {
    for (auto& e : received())
      if (e.kind == kind::close)
        return e.reason;
    return {};
  }

  // -- the server side of this connection (read-only inspection) ---------------

  /// The per-connection data (`ws.data()` in the handlers).
  T& data() { return socket().data(); }
  /// The connection's state as the server sees it.
  herald::ready_state ready_state() const { return link_->ready_state(); }
  /// Topics the connection is subscribed to.
  std::vector<std::string> subscriptions() const {
    return link_->subscriptions();
  }
  /// True when the connection is subscribed to `topic`.
  bool is_subscribed(std::string_view topic) const {
    return link_->is_subscribed(topic);
  }
  /// The connection actor.
  const caf::actor& actor() const noexcept { return link_->actor(); }
  /// Every frame the server wrote to this client, as written (a shared
  /// frame is the very buffer every subscriber got).
  const std::vector<net::frame_ptr>& raw_frames() const noexcept {
    return link_->raw_frames();
  }
  /// The peer address the server sees ("ip:port").
  std::string remote_address() const { return link_->remote_address(); }
  /// The options this client was created with.
  const client_options& options() const noexcept { return opts_; }
  /// The permessage-deflate parameters agreed at upgrade, if any.
  const std::optional<net::deflate_params>& deflate() const noexcept {
    return deflate_;
  }

  // -- used by the fixture ---------------------------------------------------

  /// Answers pings and close frames that arrived since the last call, as
  /// the options say. Returns true when it sent something.
  bool react() {
    sync();
    bool sent = false;
    for (; reacted_ < events_.size(); ++reacted_) {
      auto& e = events_[reacted_];
      if (e.kind == kind::ping && opts_.answer_pings && !sent_close_
          && !gone_) {
        pong(e.data);
        sent = true;
      } else if (e.kind == kind::close && opts_.answer_close && !sent_close_
                 && !gone_) {
        close(e.code); // 1005: an empty close frame, as received
        sent = true;
      }
    }
    return sent;
  }

private:
  void send_data(net::opcode op, std::string_view payload, bool compress) {
    if (!compress) {
      send_raw(net::client_frame(op, payload));
      return;
    }
    // No context takeover on our side: valid whatever was agreed.
    auto packed = net::deflate_shared(
      {reinterpret_cast<const std::byte*>(payload.data()), payload.size()});
    send_raw(net::client_frame(op,
                               std::string_view{reinterpret_cast<const char*>(
                                                  packed.data()),
                                                packed.size()},
                               true, 4)); // RSV1
  }

  herald::socket<T>& socket() const {
    return static_cast<herald::socket<T>&>(link_->socket());
  }
  void sync() const {
    auto& raw = link_->raw_frames();
    for (; decoded_ < raw.size(); ++decoded_) {
      auto& f = raw[decoded_];
      frame_event e;
      auto payload = f->payload_view();
      switch (f->opcode()) {
        case net::opcode::text:
          e.kind = kind::text;
          break;
        case net::opcode::binary:
          e.kind = kind::binary;
          break;
        case net::opcode::ping:
          e.kind = kind::ping;
          break;
        case net::opcode::pong:
          e.kind = kind::pong;
          break;
        case net::opcode::close:
          e.kind = kind::close;
          break;
        default:
          e.kind = kind::none;
      }
      if (e.kind == kind::close) {
        if (payload.size() >= 2) {
          e.code = (static_cast<unsigned char>(payload[0]) << 8)
                   | static_cast<unsigned char>(payload[1]);
          e.reason = std::string{payload.substr(2)};
        } else {
          e.code = 1005;
        }
      } else if (f->compressed() && inflater_) {
        e.compressed = true;
        std::vector<std::byte> out;
        auto r = inflater_->inflate(f->payload(), std::size_t{1} << 40, out);
        if (r == net::inflater::result::ok)
          e.data.assign(reinterpret_cast<const char*>(out.data()), out.size());
        else
          e.data = "<invalid compressed data>";
      } else {
        e.compressed = f->compressed();
        e.data = std::string{payload};
      }
      events_.push_back(std::move(e));
    }
  }

  std::unique_ptr<detail::link> link_;
  client_options opts_;
  std::optional<net::deflate_params> deflate_;
  mutable std::unique_ptr<net::inflater> inflater_;
  bool gone_ = false;
  bool sent_close_ = false;
  mutable std::size_t decoded_ = 0;
  mutable std::vector<frame_event> events_;
  std::size_t cursor_ = 0;
  std::size_t reacted_ = 0;
};

// -- fetch ---------------------------------------------------------------------

/// What the server would answer to a request, as `fixture::fetch` sees it.
template <class T>
struct fetch_outcome {
  /// The status the server would send (101 after an upgrade).
  int status = 0;
  /// The body the server would send.
  std::string body;
  /// Headers from fetch's response or the upgrade's extra headers.
  header_list headers;
  /// The connected client after an upgrade, else null.
  fake_client<T>* client = nullptr;
  /// True while a deferred request waits for its answer (status 0): run
  /// the actors, then `fixture::settle(outcome)`.
  bool deferred = false;
  /// The deferred request's state (null unless fetch deferred).
  std::shared_ptr<herald::deferral> deferral = nullptr;
};

/// A valid WebSocket upgrade request for `target` (GET, Upgrade, Connection,
/// a Sec-WebSocket-Key and version 13), plus `extra` headers.
inline request upgrade_request(std::string target, header_list extra = {},
                               std::string remote = "127.0.0.1:50000") {
  header_list h{{"Host", "localhost"},
                {"Upgrade", "websocket"},
                {"Connection", "Upgrade"},
                {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                {"Sec-WebSocket-Version", "13"}};
  for (auto& kv : extra)
    h.push_back(std::move(kv));
  return request{"GET", std::move(target), std::move(h), {}, std::move(remote)};
}

/// A plain HTTP request.
inline request http_request(std::string method, std::string target,
                            header_list headers = {}, std::string body = {},
                            std::string remote = "127.0.0.1:50000") {
  return request{std::move(method), std::move(target), std::move(headers),
                 std::move(body), std::move(remote)};
}

// -- the fixture -----------------------------------------------------------------

/// A CAF test fixture (test_coordinator_fixture) holding one application's
/// WebSocket handlers, a topic registry and fake clients. Derive from it
/// (or use it directly) in CAF_TEST_FIXTURE_SCOPE.
template <class T, class Config = caf::actor_system_config>
class fixture : public test_coordinator_fixture<Config> {
public:
  using base = test_coordinator_fixture<Config>;
  /// The per-connection data type.
  using data_type = T;
  /// The handlers type (what `serve` takes as `.websocket`).
  using handlers_type = websocket_handlers<T>;
  /// A fake client of this fixture.
  using client = fake_client<T>;

  /// A fixture whose connections have no handlers (set them later).
  fixture() : fixture(handlers_type{}) {}

  /// A fixture whose connections run `handlers`: the same struct the
  /// application passes to `serve` as `.websocket`.
  explicit fixture(handlers_type handlers)
    : counts_(std::make_shared<topic_counts>()),
      stats_(std::make_shared<server_stats>()),
      registry_(spawn_topic_registry(this->sys, counts_)),
      idle_clock_(detail::spawn_idle_clock(this->sys)),
      server_(std::make_shared<detail::kit_server>(counts_, stats_, registry_)),
      set_(make_handler_set(std::make_shared<const handlers_type>(
                              std::move(handlers)),
                            std::weak_ptr<server_base>{server_})) {
    // Nop.
  }

  /// Stops every connection without running handlers (their captured
  /// state may already be gone), then the registry.
  ~fixture() override {
    *armed_ = false;
    for (auto& c : clients_)
      caf::anon_send_exit(c->actor(), caf::exit_reason::kill);
    caf::anon_send_exit(registry_.actor(), caf::exit_reason::kill);
    caf::anon_send_exit(idle_clock_, caf::exit_reason::kill);
    this->sched.run();
  }

  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;

  // -- handlers -----------------------------------------------------------------

  /// Replaces the handlers for connections made from now on (like starting
  /// the server with other handlers; open connections keep theirs).
  void set_handlers(handlers_type handlers) {
    set_ = make_handler_set(std::make_shared<const handlers_type>(
                              std::move(handlers)),
                            std::weak_ptr<server_base>{server_});
  }
  /// The handlers new connections get.
  const handlers_type& handlers() const noexcept { return *set_->handlers; }

  // -- clients --------------------------------------------------------------------

  /// Opens a connection carrying `data`, as if `server.upgrade(req, data)`
  /// had succeeded, and runs until idle (so `open` has run).
  client& connect(T data = T{}, client_options opts = {}) {
    std::optional<net::deflate_params> deflate;
    auto& hs = *set_->handlers;
    if (hs.per_message_deflate.enabled && !opts.extensions.empty())
      if (auto agreed =
            net::negotiate_deflate(opts.extensions, hs.per_message_deflate))
        deflate = agreed->first;
    // One handler set for all connections, as serve() makes one per server.
    return attach(std::make_unique<typed_hooks<T>>(set_, std::move(data)),
                  std::move(opts), deflate);
  }

  /// Runs an application's `fetch` on `req` as the server would and
  /// reports the answer; a successful `srv.upgrade(req, data)` connects a
  /// fake client carrying that data (and runs until idle). The
  /// `server<T>&` that fetch receives is the fixture's (publish,
  /// subscriber_count, ... work; stop() is not simulated). When fetch
  /// defers the request (`srv.defer(req)`, `srv.defer_to(req, actor)`),
  /// the outcome is `deferred` (status 0) until `settle`.
  template <class Fetch>
  fetch_outcome<T> fetch(Fetch&& fn, request req, client_options opts = {}) {
    server<T> srv{server_, set_};
    fetch_result result;
    try {
      result = fn(req, srv);
    } catch (...) {
      if (auto& d = req.get_deferral())
        d->finish(deferral::state::refused);
      return {500, "Internal Server Error\n", {}, nullptr};
    }
    if (auto d = req.get_deferral()) {
      if (result && result->status == deferred_status) {
        ++server_->pending;
        fetch_outcome<T> out;
        out.deferred = true;
        out.deferral = std::move(d);
        run(); // as the server would go on
        return settle(out, std::move(opts));
      }
      d->finish(deferral::state::refused);
    } else if (result && result->status == deferred_status) {
      return {500, "fetch returned deferred without defer\n", {}, nullptr};
    }
    return answer(req, std::move(result), std::move(opts));
  }

  /// Runs until idle, then reports a deferred request's answer if it came:
  /// an HTTP response, or (after `upgrade`) a connected client. Unchanged
  /// (`deferred`) while nobody answered.
  fetch_outcome<T> settle(const fetch_outcome<T>& o, client_options opts = {}) {
    if (!o.deferred || !o.deferral)
      return o;
    run();
    switch (o.deferral->current()) {
      case deferral::state::pending:
        return o;
      case deferral::state::completed: {
        // The answer is taken once; settling again reports it again.
        for (auto& [d, out] : settled_)
          if (d == o.deferral)
            return out;
        --server_->pending;
        auto& d = *o.deferral;
        auto out =
          answer(d.completed_request(), std::move(d.result()), std::move(opts));
        settled_.emplace_back(o.deferral, out);
        return out;
      }
      default:
        return {0, {}, {}, nullptr};
    }
  }

  /// The client of a deferred request leaves before the answer: the
  /// handle reports `gone()`, answers become no-ops.
  void hang_up(const fetch_outcome<T>& o) {
    if (o.deferral && o.deferral->finish(deferral::state::gone))
      --server_->pending;
  }

  /// The deferred request's timeout passes unanswered: the server's 503.
  fetch_outcome<T> time_out(const fetch_outcome<T>& o) {
    if (!o.deferral || !o.deferral->finish(deferral::state::timed_out))
      return settle(o);
    --server_->pending;
    return {503, "Service Unavailable: no answer in time\n", {}, nullptr};
  }

  /// Deferred requests waiting for their answer.
  std::size_t pending_requests() const noexcept { return server_->pending; }

  /// The server the handlers reach with `ws.server()` (and fetch with its
  /// `server<T>&`).
  server<T> server_handle() const { return {server_, set_}; }

  /// Every client connected so far, in connection order.
  std::vector<client*> clients() const {
    std::vector<client*> out;
    for (auto& c : clients_)
      out.push_back(c.get());
    return out;
  }

  // -- running ----------------------------------------------------------------------

  /// Processes messages until none are left, never firing timers; clients
  /// answer pings and close frames as they arrive (see client_options).
  /// Returns the number of messages processed. (Hides CAF's `run()`, which
  /// also fires timers; that one stays available as `base::run()`.)
  std::size_t run() {
    std::size_t n = 0;
    for (;;) {
      while (this->sched.try_run_once()) {
        ++n;
        react();
      }
      if (!react())
        return n;
    }
  }

  /// Processes one message; false when there was none.
  bool step() {
    if (!this->sched.try_run_once())
      return false;
    react();
    return true;
  }

  /// Moves the test clock forward by `d`, firing timers in the order they
  /// fall due and running until idle after each instant, so a timer that
  /// another timer arms inside `d` fires too. Returns the timers fired.
  template <class Rep, class Period>
  std::size_t advance(std::chrono::duration<Rep, Period> d) {
    auto& clk = this->sched.clock();
    run();
    auto target = clk.now() + std::chrono::duration_cast<caf::timespan>(d);
    std::size_t fired = 0;
    for (;;) {
      auto& s = clk.schedule();
      if (s.empty() || s.begin()->first > target)
        break;
      fired += move_clock_to(s.begin()->first);
      run();
    }
    move_clock_to(target);
    run();
    return fired;
  }

  /// Moves the test clock to the next pending timer, fires everything due
  /// then and runs until idle. False when no timer is pending.
  bool next_timer() {
    run();
    auto& s = this->sched.clock().schedule();
    if (s.empty())
      return false;
    move_clock_to(s.begin()->first);
    run();
    return true;
  }

  /// The test clock's current time.
  caf::actor_clock::time_point now() const { return this->sched.clock().now(); }

  // -- server-side operations and state ------------------------------------------------

  /// Publishes text to `topic` as `server.publish` does (from outside any
  /// handler, excluding nobody). Returns the frame size, 0 when the topic
  /// has no subscribers. Delivered on the next run.
  send_status publish(std::string_view topic, std::string_view text,
                      bool compress = false) {
    return server_handle().publish(topic, text, compress);
  }
  /// Publishes binary data to `topic`.
  send_status publish(std::string_view topic, std::span<const std::byte> data,
                      bool compress = false) {
    return server_handle().publish(topic, data, compress);
  }
  /// Subscribers of `topic` as `server.subscriber_count` counts them.
  std::size_t subscriber_count(std::string_view topic) const {
    return counts_->get(topic);
  }
  /// Topics with at least one subscriber.
  std::size_t topic_count() const { return counts_->topics(); }
  /// Connections open now (as `server.pending_websockets()` counts them).
  std::size_t open_connections() const {
    return static_cast<std::size_t>(
      stats_->open_connections.load(std::memory_order_relaxed));
  }
  /// The topic registry, for the application's own actors.
  const topic_registry& registry() const noexcept { return registry_; }
  /// The server counters the connections update.
  const server_stats& stats() const noexcept { return *stats_; }

private:
  fetch_outcome<T> answer(request& req, fetch_result result,
                          client_options opts) {
    if (req.upgrade_payload()) {
      for (auto& [k, v] : req.upgrade_headers())
        if (net::has_token(k, "sec-websocket-protocol"))
          opts.protocol = v;
      if (!req.remote_endpoint().empty())
        opts.remote_address = req.remote_endpoint();
      opts.extensions = req.header_values("sec-websocket-extensions");
      auto& c = attach(take_hooks(req), std::move(opts), req.upgrade_deflate());
      return {101, {}, req.upgrade_headers(), &c};
    }
    if (req.upgrade_failure() != 0) {
      header_list extra;
      if (req.upgrade_failure() == 426)
        extra.emplace_back("Sec-WebSocket-Version", "13");
      return {req.upgrade_failure(), req.upgrade_failure_reason() + "\n",
              std::move(extra), nullptr};
    }
    if (!result)
      return {404, "Not Found\n", {}, nullptr};
    if (result->status == 101)
      return {500, "fetch returned upgraded without an upgrade\n", {}, nullptr};
    if (result->status == deferred_status)
      return {500, "a deferred request answered with deferred\n", {}, nullptr};
    return {result->status, std::move(result->body), std::move(result->headers),
            nullptr};
  }

  client& attach(std::unique_ptr<connection_hooks> hooks, client_options opts,
                 std::optional<net::deflate_params> deflate) {
    auto l = std::make_unique<detail::link>(
      this->sys, detail::shared_parts{registry_, stats_, idle_clock_},
      std::make_unique<detail::guarded_hooks>(std::move(hooks), armed_),
      opts.protocol, opts.remote_address, deflate);
    clients_.push_back(
      std::make_unique<client>(std::move(l), std::move(opts), deflate));
    auto& c = *clients_.back();
    run();
    return c;
  }

  bool react() {
    bool any = false;
    for (auto& c : clients_)
      any = c->react() || any;
    return any;
  }

  std::size_t move_clock_to(caf::actor_clock::time_point t) {
    auto& clk = this->sched.clock();
    auto now = clk.now();
    return clk.advance_time(t > now ? t - now : caf::timespan{0});
  }

  std::shared_ptr<topic_counts> counts_;
  std::shared_ptr<server_stats> stats_;
  topic_registry registry_;
  msg::idle_clock_actor idle_clock_; // the idle ticks, as a server's
  std::shared_ptr<detail::kit_server> server_;
  std::shared_ptr<const handler_set<T>> set_;
  // Deferred requests whose answer settle() took, and what it was.
  std::vector<std::pair<std::shared_ptr<deferral>, fetch_outcome<T>>> settled_;
  std::shared_ptr<bool> armed_ = std::make_shared<bool>(true);
  std::vector<std::unique_ptr<client>> clients_;
};

} // namespace herald::testing
