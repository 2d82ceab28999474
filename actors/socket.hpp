// The handle that WebSocket handlers receive: `socket<T>` for a connection
// whose per-connection data is a T.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/net/deflate.hpp"

namespace caf {
class actor;
} // namespace caf

namespace herald {

class connection_core;
template <class T>
class server;
template <class T>
struct handler_set;

/// A received message: text or binary, viewed in place. The view is valid
/// only during the `message` handler; copy what you keep.
class message {
public:
  /// Wraps a payload.
  message(std::span<const std::byte> payload, bool binary) noexcept
    : data_(payload), binary_(binary) {}
  /// Wraps text.
  explicit message(std::string_view text) noexcept
    : data_(reinterpret_cast<const std::byte*>(text.data()), text.size()),
      binary_(false) {}

  /// True for a text message (valid UTF-8).
  bool is_text() const noexcept { return !binary_; }
  /// True for a binary message.
  bool is_binary() const noexcept { return binary_; }
  /// The payload as characters (for text, or to look at binary data).
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(data_.data()), data_.size()};
  }
  /// The payload as bytes.
  std::span<const std::byte> bytes() const noexcept { return data_; }
  /// Payload size in bytes.
  std::size_t size() const noexcept { return data_.size(); }

private:
  std::span<const std::byte> data_;
  bool binary_;
};

/// Connection states, numbered as the browser API numbers them.
enum class ready_state : int {
  connecting = 0,
  open = 1,
  closing = 2,
  closed = 3
};

/// What `send` reports, as Bun does: a positive byte count when the
/// message was accepted with no backpressure, `send_backpressure` (-1) when
/// it was queued behind unsent data, `send_dropped` (0) when it was dropped.
using send_status = std::ptrdiff_t;
/// Queued behind backpressure.
constexpr send_status send_backpressure = -1;
/// Dropped (connection closed or over its backpressure limit).
constexpr send_status send_dropped = 0;

/// What a connection's message rate limit does with a message over it.
enum class rate_limit_policy {
  /// Drop the message and pass it to the `limited` handler, which may
  /// answer; without one it is dropped silently. Counted either way.
  drop_and_notify,
  /// Close the connection with 1008 (policy violation), "rate limit
  /// exceeded".
  close_1008,
};

/// A token bucket per connection over whole messages received (text and
/// binary; pings, pongs and close frames do not count). Refilled lazily
/// from the actor clock when a message arrives: no timers. Off by default.
struct rate_limit {
  /// Tokens added per second; 0 turns the limit off.
  double messages_per_second = 0;
  /// Bucket size, the most messages accepted at once after a quiet spell;
  /// 0: one second's worth (at least 1).
  std::size_t burst = 0;
  /// What happens to a message that finds the bucket empty.
  rate_limit_policy policy = rate_limit_policy::drop_and_notify;
};

/// Options of WebSocket connections, with Bun's defaults.
struct websocket_options {
  /// Largest message accepted; larger ones close the connection with 1009.
  std::size_t max_payload_length = 16u << 20;
  /// Close a connection that received nothing for this long; 0 disables.
  std::chrono::seconds idle_timeout{120};
  /// Bytes a connection may buffer before sends are dropped; 0: no limit.
  std::size_t backpressure_limit = 16u << 20;
  /// Close (1008) instead of dropping when the limit is reached.
  bool close_on_backpressure_limit = false;
  /// Ping quiet connections so live peers are not closed as idle.
  bool send_pings = true;
  /// Include the sender when it publishes to a topic it is subscribed to.
  bool publish_to_self = false;
  /// permessage-deflate (off by default, as in Bun).
  deflate_options per_message_deflate;
  /// Messages a connection may send per second (off by default).
  rate_limit message_rate;
  /// Most topics one connection may be subscribed to; 0: no limit.
  std::size_t max_subscriptions = 0;
};

/// The connection handle, without the user's data type. All members run
/// inside the connection's actor (handlers) and must not be called from
/// other threads.
class basic_socket {
public:
  basic_socket() = default;
  basic_socket(const basic_socket&) = delete;
  basic_socket& operator=(const basic_socket&) = delete;

  /// Sends text (`compress` asks for permessage-deflate when negotiated).
  send_status send(std::string_view text, bool compress = false);
  /// Sends binary data.
  send_status send(std::span<const std::byte> data, bool compress = false);
  /// Sends text.
  send_status send_text(std::string_view text, bool compress = false) {
    return send(text, compress);
  }
  /// Sends binary data.
  send_status send_binary(std::span<const std::byte> data,
                          bool compress = false) {
    return send(data, compress);
  }
  /// Sends a received message on, text as text and binary as binary.
  send_status send(const herald::message& msg, bool compress = false) {
    return msg.is_binary() ? send(msg.bytes(), compress)
                           : send(msg.text(), compress);
  }
  /// Sends binary data held in characters.
  send_status send_binary(std::string_view data, bool compress = false) {
    return send(std::span<const std::byte>{reinterpret_cast<const std::byte*>(
                                             data.data()),
                                           data.size()},
                compress);
  }
  /// Starts the closing handshake with `code` and `reason`.
  void close(int code = 1000, std::string_view reason = {});
  /// Drops the connection at once, without a close frame.
  void terminate();
  /// Sends a ping (at most 125 bytes of data).
  send_status ping(std::string_view data = {});
  /// Sends an unsolicited pong (at most 125 bytes of data).
  send_status pong(std::string_view data = {});
  /// Runs `fn`; what it sends leaves in one write.
  void cork(const std::function<void()>& fn);

  /// Joins `topic`; true when subscribed (also when it already was), false
  /// when refused: closed, or at `max_subscriptions`.
  bool subscribe(std::string_view topic);
  /// Leaves `topic`.
  void unsubscribe(std::string_view topic);
  /// True when subscribed to `topic`.
  bool is_subscribed(std::string_view topic) const;
  /// The topics this connection is subscribed to.
  std::vector<std::string> subscriptions() const;
  /// Publishes text to `topic`, to every subscriber but this one (unless
  /// publish_to_self). Returns the frame's size in bytes (header and
  /// payload), 0 when it was not sent (no other subscriber, or closed).
  send_status publish(std::string_view topic, std::string_view text,
                      bool compress = false);
  /// Publishes binary data to `topic`.
  send_status publish(std::string_view topic, std::span<const std::byte> data,
                      bool compress = false);
  /// Publishes a received message on, text as text and binary as binary.
  send_status publish(std::string_view topic, const herald::message& msg,
                      bool compress = false) {
    return msg.is_binary() ? publish(topic, msg.bytes(), compress)
                           : publish(topic, msg.text(), compress);
  }
  /// Publishes text.
  send_status publish_text(std::string_view topic, std::string_view text,
                           bool compress = false) {
    return publish(topic, text, compress);
  }
  /// Publishes binary data.
  send_status publish_binary(std::string_view topic,
                             std::span<const std::byte> data,
                             bool compress = false) {
    return publish(topic, data, compress);
  }

  /// The connection's actor: other actors monitor it (it ends when the
  /// connection does) or write to this connection with herald::send_text
  /// and herald::send_binary (actors/topics.hpp). Include
  /// <caf/actor.hpp> (herald.hpp does) to use the result.
  caf::actor actor() const;
  /// The peer's IP address (Bun's `ws.remoteAddress`).
  std::string remote_address() const;
  /// The peer's address and port, "ip:port".
  std::string remote_endpoint() const;
  /// The connection's state.
  herald::ready_state ready_state() const;
  /// Bytes accepted for sending but not yet written to the socket.
  std::size_t buffered_amount() const;
  /// The subprotocol chosen at upgrade ("" if none).
  std::string_view protocol() const;

  /// The connection's core (internal; for the testing kit).
  connection_core* core() const noexcept { return core_; }
  /// Binds the handle to its connection (done once by the connection).
  void bind(connection_core* core) noexcept { core_ = core; }

private:
  connection_core* core_ = nullptr;
};

/// A connection whose per-connection data is a `T`.
template <class T>
class socket : public basic_socket {
public:
  /// Creates the handle around the data `upgrade` attached.
  explicit socket(T data) : data_(std::move(data)) {}
  /// The per-connection data (no locks needed: one handler at a time).
  T& data() noexcept { return data_; }
  /// The per-connection data.
  const T& data() const noexcept { return data_; }
  /// The server this connection belongs to (Bun's `server` inside
  /// handlers): `ws.server().publish(topic, text)`,
  /// `ws.server().subscriber_count(topic)`. Defined in server.hpp.
  herald::server<T> server() const;

  /// Binds the handle to its server's handler set (done by typed_hooks,
  /// which owns it).
  void bind_set(const std::shared_ptr<const handler_set<T>>* set) noexcept {
    set_ = set;
  }

private:
  T data_;
  const std::shared_ptr<const handler_set<T>>* set_ = nullptr;
};

/// Handlers and options of WebSocket connections with data `T`.
template <class T>
struct websocket_handlers {
  /// A connection opened.
  std::function<void(socket<T>&)> open;
  /// A text or binary message arrived.
  std::function<void(socket<T>&, herald::message)> message;
  /// The connection closed (code and reason of the close; 1006 if none).
  std::function<void(socket<T>&, int, std::string_view)> close;
  /// A connection that had backpressure wrote its backlog.
  std::function<void(socket<T>&)> drain;
  /// A ping arrived (the pong is sent automatically).
  std::function<void(socket<T>&, std::span<const std::byte>)> ping;
  /// A pong arrived.
  std::function<void(socket<T>&, std::span<const std::byte>)> pong;
  /// A handler threw; the connection then closes with 1011.
  std::function<void(socket<T>&, std::string_view)> error;
  /// A message was dropped by the rate limit (`message_rate`, policy
  /// drop_and_notify); the application may answer it.
  std::function<void(socket<T>&, herald::message)> limited;

  // The options again, as members of their own: designated initializers
  // (`.websocket = {.open = ..., .idle_timeout = ...}`, as in Bun) can only
  // name direct members, never those of a base. Defaults come from
  // websocket_options.

  /// See websocket_options.
  std::size_t max_payload_length = websocket_options{}.max_payload_length;
  /// See websocket_options.
  std::chrono::seconds idle_timeout = websocket_options{}.idle_timeout;
  /// See websocket_options.
  std::size_t backpressure_limit = websocket_options{}.backpressure_limit;
  /// See websocket_options.
  bool close_on_backpressure_limit =
    websocket_options{}.close_on_backpressure_limit;
  /// See websocket_options.
  bool send_pings = websocket_options{}.send_pings;
  /// See websocket_options.
  bool publish_to_self = websocket_options{}.publish_to_self;
  /// See websocket_options and deflate_options.
  deflate_options per_message_deflate;
  /// See websocket_options and rate_limit.
  rate_limit message_rate;
  /// See websocket_options.
  std::size_t max_subscriptions = websocket_options{}.max_subscriptions;

  /// The options without the handlers.
  websocket_options options() const {
    websocket_options o;
    o.max_payload_length = max_payload_length;
    o.idle_timeout = idle_timeout;
    o.backpressure_limit = backpressure_limit;
    o.close_on_backpressure_limit = close_on_backpressure_limit;
    o.send_pings = send_pings;
    o.publish_to_self = publish_to_self;
    o.per_message_deflate = per_message_deflate;
    o.message_rate = message_rate;
    o.max_subscriptions = max_subscriptions;
    return o;
  }
};

} // namespace herald
