// The connection actor: one per WebSocket, owning its transport, the user's
// data and handlers, its subscriptions and its outbound queue.
//
// Frames that handlers queue while the actor works through its mailbox are
// written together: the first queued frame makes the actor send itself a
// flush message, which arrives after everything already in the mailbox, so
// one batch of work leaves in one gathered write.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/extend.hpp>
#include <caf/mixin/behavior_changer.hpp>
#include <caf/mixin/requester.hpp>
#include <caf/mixin/sender.hpp>
#include <caf/scheduled_actor.hpp>

#include "herald/actors/hooks.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/deflate.hpp"
#include "herald/net/frame_parser.hpp"
#include "herald/net/transport.hpp"

namespace herald {
class connection_actor;
} // namespace herald

namespace caf {
template <>
class behavior_type_of<herald::connection_actor> {
public:
  using type = behavior;
};
} // namespace caf

namespace herald {

class connection_core;

/// The live connections of a server, linked through the connections
/// themselves: joining and leaving allocate nothing. A connection joins
/// when it is made and leaves when its actor stops (on_exit) or, at the
/// latest, when it is destroyed. One lane per loop, each with its own lock,
/// and the total in one atomic: the loops' handshakes and closes share no
/// lock (a connection of no loop joins lane 0).
class connection_list {
public:
  /// `lanes`: the server's loops (at least one lane).
  explicit connection_list(std::size_t lanes = 1);
  /// Connections in the list.
  std::size_t size() const noexcept {
    return total_.load(std::memory_order_relaxed);
  }
  /// Handles of the listed connections that are still alive.
  std::vector<caf::actor> handles() const;
  /// Calls `fn` once the list is empty: now when it is, else on the thread
  /// of the connection that leaves last (keep `fn` short). Replaces an
  /// earlier `fn` not yet called.
  void when_empty(std::function<void()> fn);

private:
  friend class connection_core;
  void add(connection_core* c);
  void remove(connection_core* c);

  struct alignas(64) lane {
    mutable std::mutex mtx;
    connection_core* head = nullptr;
  };
  // The lane of `c`'s home loop.
  lane& lane_of(const connection_core* c);

  std::vector<lane> lanes_;
  // On a line of its own: the lanes' pointer above is read by every add.
  alignas(64) std::atomic<std::size_t> total_{0};
  std::mutex empty_mtx_;
  std::function<void()> on_empty_;
};

/// What every connection of one server shares (one per server, not per
/// connection: a connection holds one pointer to it).
struct connection_env {
  /// The topic registry: a connection on a loop talks to that loop's
  /// shard. With counts (registry.counts(), else null), subscriptions are
  /// counted as on their way until the shard has them.
  topic_registry registry;
  /// Server counters (may be null).
  std::shared_ptr<server_stats> stats;
  /// The server's idle clock (see idle_clock.hpp), which sends the idle
  /// ticks to a connection spawned on no loop (on a loop, the loop's own
  /// clock does); without one (null) such a connection times its own.
  msg::idle_clock_actor idle_clock;
  /// The server's list of live connections (may be null).
  std::shared_ptr<connection_list> list;
};

/// Sends the publishes a connection handler made on this thread and that
/// wait for the end of the message it handles (see connection_core::publish)
/// to the shards now. Anything that publishes or subscribes on a loop
/// thread calls it first, so one thread's messages to a topic keep their
/// order.
void flush_pending_publishes();

/// Everything a connection actor starts with.
struct connection_args {
  /// The socket (or a fake one in tests).
  net::transport_ptr transport;
  /// The user's handlers and data.
  std::unique_ptr<connection_hooks> hooks;
  /// What the server's connections share (null: nothing).
  std::shared_ptr<const connection_env> env;
  /// Bytes to write ahead of the first frame (the HTTP 101 response, see
  /// net::make_raw); null for none.
  net::frame_ptr response;
  /// The subprotocol chosen at upgrade.
  std::string protocol;
  /// permessage-deflate, when the handshake agreed to it.
  std::optional<net::deflate_params> deflate;
};

/// The state and logic of one connection; runs inside its actor.
class connection_core final : public net::parser_events {
public:
  connection_core(connection_actor* self, connection_args args);
  ~connection_core() override;

  // -- called by the actor's behavior ----------------------------------------

  /// Starts reading and runs `open`.
  void start();
  /// Parses bytes from the socket.
  void on_inbound(msg::inbound& in);
  /// Queues a topic message. `carrier`: the message holding `d` (null:
  /// the mailbox element being handled).
  void on_delivery(const msg::delivery& d,
                   const caf::message* carrier = nullptr);
  /// Handles `carrier`, a message holding a msg::delivery, outside of the
  /// mailbox (see connection_actor::deliver_now): false, doing nothing,
  /// when the connection is not open or may close while handling it.
  bool deliver_now(const caf::message& carrier);
  /// Writes what this batch queued.
  void flush();
  /// The actor handles a message now (sends queue, end_message writes).
  void begin_message() noexcept { in_message_ = true; }
  /// The actor handled a message; when no other one waits
  /// (`mailbox_empty`), what the batch queued is written.
  void end_message(bool mailbox_empty);
  /// The transport wrote its backlog.
  void on_written(std::size_t buffered);
  /// The socket closed or failed.
  void on_transport_down(std::string_view why);
  /// Periodic idle check.
  void on_tick();
  /// The peer did not answer our close frame in time.
  void on_close_timeout();
  /// The actor is going away (for any reason).
  void on_exit();

  // -- called through basic_socket --------------------------------------------

  send_status send(net::opcode op, std::span<const std::byte> payload,
                   bool compress);
  void close(int code, std::string_view reason);
  void terminate();
  void cork(const std::function<void()>& fn);
  bool subscribe(std::string_view topic);
  void unsubscribe(std::string_view topic);
  bool is_subscribed(std::string_view topic) const;
  std::vector<std::string> subscriptions() const;
  send_status publish(std::string_view topic, net::opcode op,
                      std::span<const std::byte> payload, bool compress);
  std::string remote_address() const;
  herald::ready_state ready_state() const noexcept { return state_; }
  std::size_t buffered_amount() const;
  std::string_view protocol() const noexcept {
    return extras_ ? std::string_view{extras_->protocol} : std::string_view{};
  }
  /// The user's handlers and data.
  connection_hooks& hooks() noexcept { return *hooks_; }
  /// The connection's actor.
  caf::actor handle() const;
  /// Adds what connections wrote on the calling loop thread to their
  /// server's counters (the loop calls it at the end of each batch).
  static void flush_loop_stats() noexcept;

  // -- parser events ----------------------------------------------------------

  void on_message(net::opcode op, std::span<std::byte> payload,
                  bool compressed) override;
  void on_ping(std::span<const std::byte> payload) override;
  void on_pong(std::span<const std::byte> payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;
  void on_protocol_error(std::uint16_t code, std::string_view why) override;

private:
  // Queues a frame unless closed or over the backpressure limit.
  send_status enqueue(net::frame_ptr f, bool control);
  // Builds a data frame, compressed when asked, agreed and worth it.
  net::frame_ptr data_frame(net::opcode op, std::span<const std::byte> payload,
                            bool compress);
  // The frame a topic delivery becomes on this connection.
  net::frame_ptr delivery_frame(const msg::topic_message& d);
  // `payload` compressed without context in this connection's window, or
  // plain when that is no smaller.
  net::frame_ptr no_context_frame(net::opcode op,
                                  std::span<const std::byte> payload);
  // Counts a compression in the server's stats.
  void count_deflated() {
    if (env_->stats)
      env_->stats->deflated.fetch_add(1, std::memory_order_relaxed);
  }
  void schedule_flush();
  // Queues a frame (or `frames` joined ones, 0 for bytes that are not a
  // message), keeping a reference to it.
  void queue_owned(net::frame_ptr f, std::size_t frames = 1);
  // Keeps the message that carries `d` (the mailbox element's) until the
  // next write; false when that is not possible (the frames must then be
  // owned one by one). With `carrier` (deliver_now) there is nothing to
  // keep: the batch is written before it returns.
  bool hold_delivery(const msg::delivery& d, const caf::message* carrier);
  // deliver_now's usual case: `d` written at once without a batch; false,
  // doing nothing, when it needs on_delivery.
  bool write_through(const msg::delivery& d);
  // After a write: backpressure, pausing and the counters.
  void after_write(std::size_t remaining);

  // Sends a close frame, runs `close` and closes the transport.
  void fail(std::uint16_t code, std::string_view reason);
  // Runs the close handler once, closes the transport and quits.
  void finish(int code, std::string_view reason, bool graceful);
  void handler_failed(std::string_view what);
  template <class F>
  void guarded(F&& f);
  void add_stats();
  void count_drop(bool over_limit);
  // The registry shard that keeps us (our loop's).
  const msg::registry_actor& shard() const noexcept;
  // Leaves the server's list (once).
  void unlist() noexcept;
  // Stops reading a peer whose backlog is too large (see connection.cpp).
  void pause_if_backlogged(std::size_t remaining);
  // Takes a token from the rate limit's bucket; false when it is empty.
  bool take_token();

  connection_actor* self_;
  net::transport_ptr transport_;
  std::unique_ptr<connection_hooks> hooks_;
  std::shared_ptr<const connection_env> env_; // never null
  // This connection's neighbours in its lane of the server's list (guarded
  // by the lane's mutex).
  friend class connection_list;
  connection_core* prev_ = nullptr;
  connection_core* next_ = nullptr;
  const websocket_options& opts_; // the hooks' own
  net::frame_parser parser_;

  // What this batch queued (see out_batch in connection.cpp): made on the
  // first frame, handed back after the write, so idle connections hold none.
  struct out_batch;
  std::unique_ptr<out_batch> out_;
  // Spare batches per thread, reused by the next connections on it.
  static constexpr std::size_t max_spare_batches = 16;
  static thread_local std::vector<std::unique_ptr<out_batch>> spare_batches_;
  // The batch, made when missing.
  out_batch& out();
  // Empties the batch and lets it go.
  void release_out(bool reuse) noexcept;
  std::size_t pending_bytes_ = 0;
  herald::ready_state state_ = herald::ready_state::connecting;
  bool listed_ = false; // in env_->list
  // Ticked by env_->idle_clock, or by its loop's clock (else by its own
  // timer, or never).
  bool clock_ticks_ = false;
  bool loop_ticks_ = false;
  bool flush_pending_ = false;
  bool flush_sent_ = false; // a flush message is on its way
  bool in_message_ = false;
  bool backpressured_ = false;
  bool closed_handler_ran_ = false;
  bool in_error_ = false;
  bool read_paused_ = false;
  bool dropping_ = false; // a send was dropped since the backlog emptied
  bool drop_logged_ = false;
  bool limit_logged_ = false; // the rate limit dropped a message
  bool cap_logged_ = false;   // a subscription was refused
  // Subscribed through the registry, which then expects our exited_atom.
  bool announces_exit_ = false;
  // The idle check (see on_tick): input read since the last tick, and
  // whether the transport had a backlog then.
  bool activity_ = false;
  bool backlog_at_tick_ = false;
  std::uint8_t quiet_ticks_ = 0; // 0 to 2
  // permessage-deflate negotiated.
  bool deflate_ = false;
  // The window a client without our context takeover agreed to (it gets
  // the frames compressed once for all when that is the full one).
  std::uint8_t deflate_window_ = 15;
  int cork_depth_ = 0;
  // While reading is paused: input waiting unread in the socket at the
  // last tick (more of it shows the peer is there).
  std::uint32_t unread_at_tick_ = 0;
  // Bytes handed to the transport, and how many of them it had written by
  // the last tick (the peer taking its backlog shows it is there too).
  std::uint64_t handed_ = 0;
  std::uint64_t written_at_tick_ = 0;

  std::vector<std::string> topics_; // sorted

  // The rate limit's token bucket as one time: when it will be full again
  // (the past: full). Each message moves it one interval later.
  caf::actor_clock::time_point bucket_full_at_{};

  // What only some connections need, made for those: the subprotocol chosen
  // at upgrade, and permessage-deflate's own compressor (dedicated mode with
  // context takeover), decompressor (when the client keeps its context) and
  // buffer for inflated messages.
  struct extras {
    std::string protocol;
    std::unique_ptr<net::deflater> deflater;
    std::unique_ptr<net::inflater> inflater;
    std::vector<std::byte> inflated;
  };
  std::unique_ptr<extras> extras_;
  extras& more() {
    if (!extras_)
      extras_ = std::make_unique<extras>();
    return *extras_;
  }

  // Counted locally, added to env_->stats once per flush.
  std::uint64_t n_in_ = 0, bytes_in_ = 0, n_out_ = 0, bytes_out_ = 0;
};

/// What a connection actor is made of: CAF's event_based_actor without its
/// group subscriptions (mixin::subscriber, a 56-byte set in every actor,
/// which connections never use). A connection is one of these per socket,
/// and most of them sit idle.
using connection_actor_base =
  caf::extend<caf::scheduled_actor, connection_actor>::with<
    caf::mixin::sender, caf::mixin::requester, caf::mixin::behavior_changer>;

/// The actor around a connection_core.
class connection_actor final : public connection_actor_base,
                               public caf::dynamically_typed_actor_base {
public:
  /// Required by `spawn` for type deduction.
  using signatures = caf::none_t;
  /// Required by `spawn` for type deduction.
  using behavior_type = caf::behavior;

  /// Creates the actor (use spawn_connection).
  connection_actor(caf::actor_config& cfg, connection_args args);
  /// The connection's logic (tests and the testing kit look at it).
  connection_core& core() noexcept { return core_; }

  /// Starts the connection (as event_based_actor::initialize does with
  /// its make_behavior).
  void initialize() override;
  /// Runs the mailbox (CAF's, minus timeouts and streams: see
  /// connection_resume.cpp).
  resume_result resume(caf::execution_unit* ctx,
                       std::size_t max_throughput) override;
  /// Dispatches the connection's own messages directly (see connection.cpp).
  caf::invoke_message_result consume(caf::mailbox_element& x) override;
  /// Handles `delivery` (a message holding a msg::delivery) at once, as if
  /// it were the only message in the mailbox, when the actor is idle: its
  /// mailbox blocked, so that it is neither queued nor running. Call it
  /// only on the actor's home loop thread (where nothing else can resume
  /// it meanwhile); false when it did nothing: send the message then.
  bool deliver_now(const caf::message& delivery);
  void on_exit() override;
  const char* name() const override { return "herald.connection"; }
  /// The loop that owns the socket, where the scheduler runs the actor
  /// (io_service::no_loop: spawned elsewhere, e.g. in tests).
  std::size_t home_loop() const noexcept { return home_loop_; }

private:
  caf::invoke_message_result dispatch(caf::mailbox_element& x);
  std::size_t home_loop_;
  connection_core core_;
};

/// Spawns a connection actor; it starts reading at once.
caf::actor spawn_connection(caf::actor_system& sys, connection_args args);

} // namespace herald
