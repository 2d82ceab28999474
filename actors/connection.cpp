#include "herald/actors/connection.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include <caf/all.hpp>

#include "herald/actors/idle_clock.hpp"
#include "herald/actors/loop_scheduler.hpp"
#include "herald/net/http.hpp"
#include "herald/net/io.hpp"
#include "herald/net/log.hpp"

namespace herald {

namespace {

std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// How long to wait for the peer's close frame after sending ours.
constexpr std::chrono::milliseconds close_timeout{5000};

// For connections made without one (nothing shared).
std::shared_ptr<const connection_env>
or_empty(std::shared_ptr<const connection_env> env) {
  if (env)
    return env;
  static const auto empty = std::make_shared<const connection_env>();
  return empty;
}

} // namespace

// What one batch writes. `pieces` holds no references of its own (a
// reference count touched by every subscriber of a topic, from every
// thread, costs more than the rest of a delivery): the bytes of each piece
// are kept alive either by `owned` or by a delivery message in `held`,
// until the batch is written.
struct connection_core::out_batch {
  std::vector<net::slice> pieces; // borrowed, in write order
  std::vector<net::frame_ptr> owned;
  std::vector<caf::message> held;
  std::size_t messages = 0;  // frames in `pieces`
  std::size_t raw_bytes = 0; // bytes in `pieces` that are not frames

  // Appends `s`, extending the last piece when `s` continues it (the next
  // message of the same run).
  void add(const net::slice& s, std::size_t frames = 1) {
    messages += frames;
    if (!pieces.empty()) {
      auto& last = pieces.back();
      if (last.owner == s.owner && last.data + last.size == s.data) {
        last.size += s.size;
        return;
      }
    }
    pieces.push_back(s);
  }
  std::size_t bytes() const noexcept {
    std::size_t n = 0;
    for (auto& p : pieces)
      n += p.size;
    return n;
  }
  void clear() noexcept {
    pieces.clear();
    owned.clear();
    held.clear();
    messages = 0;
    raw_bytes = 0;
  }
};

// The next connection that queues something on this thread takes a
// spare, capacity and all, instead of allocating. Several: the handshakes
// of one turn of a loop each hold a batch (the 101) until their start.
thread_local std::vector<std::unique_ptr<connection_core::out_batch>>
  connection_core::spare_batches_;

namespace {

// Output counters of the connections that wrote on this loop thread, added
// to the server's once at the end of the loop's batch (flush_loop_stats):
// the loops write at the same time, and adding to one shared counter per
// write would move its cache line between them on every write. Trivial to
// make and destroy, so a write reaches it without a thread_local guard;
// loop_stats_owner keeps `to` alive and is touched only when it changes.
struct loop_out_stats {
  server_stats* to;
  std::uint64_t messages;
  std::uint64_t bytes;
};

constinit thread_local loop_out_stats loop_stats{nullptr, 0, 0};
thread_local std::shared_ptr<server_stats> loop_stats_owner;

} // namespace

void connection_core::flush_loop_stats() noexcept {
  auto& ls = loop_stats;
  if (!ls.to)
    return;
  if (ls.messages > 0)
    ls.to->messages_out.fetch_add(ls.messages, std::memory_order_relaxed);
  if (ls.bytes > 0)
    ls.to->bytes_out.fetch_add(ls.bytes, std::memory_order_relaxed);
  ls.messages = 0;
  ls.bytes = 0;
  ls.to = nullptr;
  loop_stats_owner.reset();
}

// -- connection_list ----------------------------------------------------------

connection_list::connection_list(std::size_t lanes)
  : lanes_(std::max<std::size_t>(lanes, 1)) {}

std::vector<caf::actor> connection_list::handles() const {
  std::vector<caf::actor> out;
  out.reserve(size());
  for (auto& l : lanes_) {
    std::lock_guard<std::mutex> guard{l.mtx};
    // A listed connection's actor object exists (it leaves the list before
    // it is destroyed), but its last strong reference may be gone: the weak
    // address upgrades only while it is not.
    for (auto* c = l.head; c != nullptr; c = c->next_)
      if (auto hdl = caf::actor_cast<caf::actor>(c->self_->address()))
        out.push_back(std::move(hdl));
  }
  return out;
}

connection_list::lane& connection_list::lane_of(const connection_core* c) {
  auto loop = c->self_->home_loop();
  return lanes_[loop == net::io_service::no_loop ? 0 : loop % lanes_.size()];
}

void connection_list::add(connection_core* c) {
  auto& l = lane_of(c);
  {
    std::lock_guard<std::mutex> guard{l.mtx};
    c->prev_ = nullptr;
    c->next_ = l.head;
    if (l.head)
      l.head->prev_ = c;
    l.head = c;
  }
  total_.fetch_add(1, std::memory_order_relaxed);
}

void connection_list::remove(connection_core* c) {
  auto& l = lane_of(c);
  {
    std::lock_guard<std::mutex> guard{l.mtx};
    if (c->prev_)
      c->prev_->next_ = c->next_;
    else
      l.head = c->next_;
    if (c->next_)
      c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = nullptr;
  }
  if (total_.fetch_sub(1, std::memory_order_acq_rel) != 1)
    return;
  // The last one out: when_empty reads the total under the same lock, so
  // either it sees this removal or it has stored its function by now.
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> guard{empty_mtx_};
    fn.swap(on_empty_);
  }
  if (fn)
    fn();
}

void connection_list::when_empty(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{empty_mtx_};
    if (total_.load(std::memory_order_acquire) > 0) {
      on_empty_ = std::move(fn);
      return;
    }
    on_empty_ = nullptr;
  }
  if (fn)
    fn();
}

void connection_core::unlist() noexcept {
  if (std::exchange(listed_, false))
    env_->list->remove(this);
}

// -- connection_core: lifecycle -----------------------------------------------

connection_core::connection_core(connection_actor* self, connection_args args)
  : self_(self), transport_(std::move(args.transport)),
    hooks_(std::move(args.hooks)), env_(or_empty(std::move(args.env))),
    opts_(hooks_->options()),
    parser_(net::frame_parser::role::server, opts_.max_payload_length) {
  hooks_->socket().bind(this);
  if (!args.protocol.empty())
    more().protocol = std::move(args.protocol);
  if (args.deflate) {
    auto& p = *args.deflate;
    deflate_ = true;
    parser_.allow_rsv1(true);
    if (!p.server_no_context_takeover)
      more().deflater =
        std::make_unique<net::deflater>(p.server_window_bits,
                                        opts_.per_message_deflate.mem_level,
                                        false);
    else
      deflate_window_ = static_cast<std::uint8_t>(p.server_window_bits);
    if (!p.client_no_context_takeover)
      more().inflater = std::make_unique<net::inflater>(false);
  }
  if (args.response) {
    // The upgrade's response leads the first batch (written in start()).
    out().raw_bytes += args.response->size();
    queue_owned(std::move(args.response), 0); // not a message
  }
  // Last: a constructor that throws before this leaves nothing listed.
  if (env_->list) {
    env_->list->add(this);
    listed_ = true;
  }
}

connection_core::~connection_core() {
  unlist();
  release_out(false);
  if (transport_)
    transport_->close(false);
}

void connection_core::start() {
  state_ = herald::ready_state::open;
  if (env_->stats) {
    env_->stats->open_connections.fetch_add(1, std::memory_order_relaxed);
    env_->stats->connections_total.fetch_add(1, std::memory_order_relaxed);
  }
  transport_->start(caf::actor_cast<caf::actor>(self_));
  if (opts_.idle_timeout.count() <= 0)
    ; // never idle
  else if (self_->home_loop() != net::io_service::no_loop
           && loop_idle_watch(self_->address(),
                              caf::timespan{opts_.idle_timeout / 2}))
    loop_ticks_ = true; // ticked by its loop's clock (this thread's)
  else if ((clock_ticks_ = static_cast<bool>(env_->idle_clock)))
    self_->send(env_->idle_clock, msg::idle_watch_atom::value, self_->address(),
                caf::timespan{opts_.idle_timeout / 2});
  else
    self_->delayed_send(self_, opts_.idle_timeout / 2, caf::tick_atom::value);
  // The response to the upgrade (queued first) and whatever open sends
  // leave in one write, after open ran: the client cannot see the upgrade
  // before the subscriptions open made have reached the registry, so a
  // publish it causes after its open event reaches it (as in Bun).
  in_message_ = true;
  guarded([&] { hooks_->on_open(); });
  in_message_ = false;
  flush_pending_publishes();
  flush();
}

const msg::registry_actor& connection_core::shard() const noexcept {
  auto loop = self_->home_loop();
  return env_->registry.shard(loop != net::io_service::no_loop ? loop
                                                               : self_->id());
}

void connection_core::on_exit() {
  // Reached when the actor stops for any reason, also when killed from
  // outside: the handler hears of it and the socket does not outlive us.
  if (!closed_handler_ran_) {
    closed_handler_ran_ = true;
    state_ = herald::ready_state::closed;
    try {
      hooks_->on_close(net::close_code::abnormal, {});
    } catch (...) {
      // Nothing is left to report to: the connection is gone.
    }
    if (env_->stats) {
      env_->stats->open_connections.fetch_sub(1, std::memory_order_relaxed);
      env_->stats->count_close(net::close_code::abnormal);
    }
  }
  // A "left" notice the close handler published goes before we leave.
  flush_pending_publishes();
  add_stats();
  unlist();
  if (std::exchange(announces_exit_, false)
      && !detail::exit_now(shard(), self_->address(), self_->context()))
    caf::anon_send(shard(), msg::exited_atom::value, self_->address());
  if (std::exchange(clock_ticks_, false)) {
    caf::anon_send(env_->idle_clock, msg::idle_forget_atom::value, self_->id());
  } else if (std::exchange(loop_ticks_, false)
             && spawning_loop() == self_->home_loop()) {
    // Elsewhere, after the loops stopped, their clocks are gone.
    loop_idle_forget(self_->id());
  }
  // Let the transport go now: CAF may destroy this actor much later (a
  // pending timer message holds it), possibly after the I/O loop is gone.
  if (transport_) {
    transport_->close(false);
    transport_.reset();
  }
}

void connection_core::finish(int code, std::string_view reason, bool graceful) {
  if (state_ == herald::ready_state::closed)
    return;
  state_ = herald::ready_state::closed;
  parser_.stop();
  // Whatever this batch queued (a close frame, an echoed close) goes first.
  if (graceful && out_ && !out_->pieces.empty()) {
    transport_->write(out_->pieces);
    bytes_out_ += out_->bytes() - out_->raw_bytes;
  }
  release_out(true);
  transport_->close(graceful);
  if (!closed_handler_ran_) {
    closed_handler_ran_ = true;
    if (env_->stats) {
      env_->stats->open_connections.fetch_sub(1, std::memory_order_relaxed);
      env_->stats->count_close(code);
    }
    try {
      hooks_->on_close(code, reason);
    } catch (const std::exception& e) {
      HERALD_LOG(warn, "close handler threw: " << e.what());
    } catch (...) {
      HERALD_LOG(warn, "close handler threw");
    }
  }
  self_->quit();
}

// -- connection_core: input ---------------------------------------------------

void connection_core::on_inbound(msg::inbound& in) {
  activity_ = true;
  auto n = in.bytes.size();
  parser_.feed(in.bytes, *this);
  // Counted per read too: a connection that only publishes may write
  // nothing until it closes.
  add_stats();
  if (state_ != herald::ready_state::closed)
    transport_->consumed(n);
}

void connection_core::on_message(net::opcode op, std::span<std::byte> payload,
                                 bool compressed) {
  ++n_in_;
  bytes_in_ += payload.size();
  if (state_ != herald::ready_state::open
      && state_ != herald::ready_state::closing)
    return;
  std::span<const std::byte> data = payload;
  if (compressed) {
    // Clients without context takeover share one decompressor per thread
    // (reset after each message, so it carries nothing between them): one
    // per connection would keep zlib's state for every idle connection.
    thread_local net::inflater shared_inflater{true};
    auto& x = more();
    auto& inf = x.inflater ? *x.inflater : shared_inflater;
    auto rc = inf.inflate(payload, opts_.max_payload_length, x.inflated);
    if (rc == net::inflater::result::too_big) {
      HERALD_LOG(info, "closing " << remote_address()
                                  << " with 1009: inflated message too big");
      fail(net::close_code::too_big, "message too big");
      return;
    }
    if (rc == net::inflater::result::invalid) {
      HERALD_LOG(info, "closing " << remote_address()
                                  << " with 1007: invalid compressed data");
      fail(net::close_code::invalid_payload, "invalid compressed data");
      return;
    }
    if (op == net::opcode::text
        && !net::valid_utf8({reinterpret_cast<const char*>(x.inflated.data()),
                             x.inflated.size()})) {
      fail(net::close_code::invalid_payload, "text message is not UTF-8");
      return;
    }
    data = x.inflated;
  }
  herald::message m{data, op == net::opcode::binary};
  // Counted after inflating: a client's compression context must see every
  // message, also the dropped ones.
  if (opts_.message_rate.messages_per_second > 0 && !take_token()) {
    if (env_->stats)
      env_->stats->rate_limited.fetch_add(1, std::memory_order_relaxed);
    if (opts_.message_rate.policy == rate_limit_policy::close_1008) {
      HERALD_LOG(info, "closing " << remote_address()
                                  << " with 1008: rate limit exceeded");
      fail(net::close_code::policy_violation, "rate limit exceeded");
      return;
    }
    if (!std::exchange(limit_logged_, true))
      HERALD_LOG(info, "dropping messages from " << remote_address()
                                                 << ": rate limit exceeded");
    guarded([&] { hooks_->on_limited(m); });
  } else {
    guarded([&] { hooks_->on_message(m); });
  }
  if (compressed && extras_ && extras_->inflated.capacity() > (64u << 10))
    std::vector<std::byte>{}.swap(extras_->inflated);
}

bool connection_core::take_token() {
  // A token bucket of `burst` tokens refilled at `messages_per_second`,
  // kept as the time it will be full again: `window` before that time it
  // still holds one token. The actor clock is the test clock in the kit.
  auto& rl = opts_.message_rate;
  auto interval = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>{1.0 / rl.messages_per_second});
  if (interval.count() <= 0)
    return true;
  auto burst = rl.burst > 0
                 ? rl.burst
                 : std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(
                                              rl.messages_per_second)));
  auto now = self_->clock().now();
  auto full_at = std::max(bucket_full_at_, now);
  if (full_at - now > interval * static_cast<std::int64_t>(burst - 1))
    return false;
  bucket_full_at_ = full_at + interval;
  return true;
}

void connection_core::on_ping(std::span<const std::byte> payload) {
  if (state_ == herald::ready_state::open)
    enqueue(net::make_frame(net::opcode::pong, payload), true);
  guarded([&] { hooks_->on_ping(payload); });
}

void connection_core::on_pong(std::span<const std::byte> payload) {
  guarded([&] { hooks_->on_pong(payload); });
}

void connection_core::on_close(std::uint16_t code, std::string_view reason) {
  if (state_ == herald::ready_state::open) {
    // Echo the peer's code (RFC 6455 5.5.1), then close the TCP connection.
    queue_owned(net::make_close_frame(code, {}));
    finish(code, reason, true);
  } else if (state_ == herald::ready_state::closing) {
    finish(code, reason, true);
  }
}

void connection_core::on_protocol_error(std::uint16_t code,
                                        std::string_view why) {
  HERALD_LOG(info,
             "closing " << remote_address() << " with " << code << ": " << why);
  fail(code, why);
}

void connection_core::fail(std::uint16_t code, std::string_view reason) {
  if (state_ == herald::ready_state::closed)
    return;
  if (state_ == herald::ready_state::open)
    queue_owned(net::make_close_frame(code, reason));
  finish(code, reason, true);
}

// -- connection_core: output --------------------------------------------------

send_status connection_core::enqueue(net::frame_ptr f, bool control) {
  if (state_ != herald::ready_state::open) {
    count_drop(false);
    return send_dropped;
  }
  // Control frames (pongs, close) are never dropped: they are small and the
  // protocol needs them.
  if (!control && opts_.backpressure_limit > 0
      && buffered_amount() >= opts_.backpressure_limit) {
    if (!std::exchange(drop_logged_, true))
      HERALD_LOG(info, "dropping messages for "
                         << remote_address() << ": backpressure limit of "
                         << opts_.backpressure_limit << " bytes reached");
    count_drop(true);
    // The peer is not keeping up: its reading may pause (see flush).
    dropping_ = true;
    schedule_flush();
    if (opts_.close_on_backpressure_limit) {
      HERALD_LOG(info, "closing " << remote_address()
                                  << ": backpressure limit reached");
      fail(net::close_code::policy_violation, "backpressure limit reached");
    }
    return send_dropped;
  }
  auto size = static_cast<send_status>(f->size());
  pending_bytes_ += f->size();
  queue_owned(std::move(f));
  schedule_flush();
  return transport_->buffered_amount() > 0 ? send_backpressure : size;
}

void connection_core::schedule_flush() {
  if (flush_pending_ || cork_depth_ > 0)
    return;
  flush_pending_ = true;
  // While handling a message (or running open in start()), the write
  // happens once no other message is waiting (end_message); outside of one
  // (a handler called directly, as tests do), a message of our own ends
  // the batch.
  if (!in_message_) {
    flush_sent_ = true;
    self_->send(self_, msg::flush_atom::value);
  }
}

void connection_core::end_message(bool mailbox_empty) {
  in_message_ = false;
  // What the handlers published while handling it goes to the shards now.
  flush_pending_publishes();
  if (!flush_pending_ || cork_depth_ > 0)
    return;
  if (mailbox_empty) {
    flush();
  } else if (!flush_sent_) {
    // Messages wait: the flush message goes behind them, so the batch
    // still ends with the mailbox whatever those messages are.
    flush_sent_ = true;
    self_->send(self_, msg::flush_atom::value);
  }
}

void connection_core::flush() {
  flush_pending_ = false;
  flush_sent_ = false;
  if (state_ == herald::ready_state::closed)
    return;
  if (!out_ || out_->pieces.empty()) {
    // Nothing to write, but a send may have been dropped.
    pause_if_backlogged(transport_->buffered_amount());
    return;
  }
  n_out_ += out_->messages;
  bytes_out_ += out_->bytes() - out_->raw_bytes;
  handed_ += out_->bytes();
  auto remaining = transport_->write(out_->pieces);
  release_out(true);
  after_write(remaining);
}

void connection_core::after_write(std::size_t remaining) {
  if (remaining > 0)
    backpressured_ = true;
  pause_if_backlogged(remaining);
  if (!env_->stats)
    return;
  if (self_->home_loop() == net::io_service::no_loop) {
    add_stats();
    return;
  }
  // On a loop (a connection with a home loop runs there only): counted
  // there until its batch ends. What came in was counted by on_inbound.
  auto& ls = loop_stats;
  if (ls.to != env_->stats.get()) {
    flush_loop_stats();
    ls.to = env_->stats.get();
    loop_stats_owner = env_->stats;
  }
  ls.messages += std::exchange(n_out_, 0);
  ls.bytes += std::exchange(bytes_out_, 0);
}

void connection_core::pause_if_backlogged(std::size_t remaining) {
  // A peer that sends but does not read: stop reading its requests until
  // it has taken its replies, so its backlog cannot grow without bound.
  // With a backpressure limit, that is once sends are being dropped (the
  // handler still hears the peer while its sends fit), or at twice the
  // limit in any case (control frames, such as the pongs to a peer's
  // pings, are never dropped). The transport reports when the backlog is
  // gone (on_written), which resumes reading; nothing pauses without one.
  if (read_paused_ || remaining == 0)
    return;
  auto limit = opts_.backpressure_limit;
  auto over = limit > 0
                ? remaining >= 2 * limit || (dropping_ && remaining >= limit)
                : remaining >= (std::size_t{16} << 20);
  if (over) {
    read_paused_ = true;
    transport_->pause_reading();
  }
}

connection_core::out_batch& connection_core::out() {
  if (!out_) {
    if (!spare_batches_.empty()) {
      out_ = std::move(spare_batches_.back());
      spare_batches_.pop_back();
    } else {
      out_ = std::make_unique<out_batch>();
    }
  }
  return *out_;
}

void connection_core::release_out(bool reuse) noexcept {
  if (!out_)
    return;
  out_->clear();
  pending_bytes_ = 0;
  if (reuse && spare_batches_.size() < max_spare_batches)
    spare_batches_.push_back(std::move(out_));
  else
    out_.reset();
}

void connection_core::queue_owned(net::frame_ptr f, std::size_t frames) {
  auto& b = out();
  b.add(net::whole(*f), frames);
  b.owned.push_back(std::move(f));
}

bool connection_core::hold_delivery(const msg::delivery& d,
                                    const caf::message* carrier) {
  // All subscribers of a topic share one message: keeping it (one
  // reference) keeps every frame of the delivery.
  if (carrier) {
    // Handled outside of the mailbox (deliver_now): the batch is written
    // before `carrier` goes, nothing to hold.
    out();
    return true;
  }
  auto* elem = self_->current_mailbox_element();
  if (!elem)
    return false;
  auto m = elem->copy_content_to_message();
  // The message matched as a delivery already; the same object at the same
  // address means it is the shared message.
  if (m.empty() || m.at(0) != static_cast<const void*>(&d))
    return false; // not the shared message (a copy): own the frames
  out().held.push_back(std::move(m));
  return true;
}

void connection_core::count_drop(bool over_limit) {
  // Drops are rare and may come with no flush after them: count at once.
  if (!env_->stats)
    return;
  env_->stats->dropped.fetch_add(1, std::memory_order_relaxed);
  if (over_limit)
    env_->stats->dropped_over_limit.fetch_add(1, std::memory_order_relaxed);
}

void connection_core::add_stats() {
  if (!env_->stats)
    return;
  auto add = [](auto& counter, std::uint64_t& local) {
    if (local > 0) {
      counter.fetch_add(local, std::memory_order_relaxed);
      local = 0;
    }
  };
  add(env_->stats->messages_in, n_in_);
  add(env_->stats->bytes_in, bytes_in_);
  add(env_->stats->messages_out, n_out_);
  add(env_->stats->bytes_out, bytes_out_);
}

void connection_core::on_written(std::size_t buffered) {
  if (buffered > 0)
    return;
  dropping_ = false;
  if (read_paused_) {
    read_paused_ = false;
    transport_->resume_reading();
  }
  if (!backpressured_)
    return;
  backpressured_ = false;
  if (state_ == herald::ready_state::open)
    guarded([&] { hooks_->on_drain(); });
}

bool connection_core::deliver_now(const caf::message& carrier) {
  // Only where handling it cannot end the actor (a closing connection and
  // the close at the backpressure limit take the mailbox): quitting
  // outside of the actor's resume would leave it never cleaned up.
  if (state_ != herald::ready_state::open || opts_.close_on_backpressure_limit)
    return false;
  auto& d = carrier.get_as<msg::delivery>(0);
  // Nothing of an earlier batch waits (the usual case): written straight
  // from the delivery, without a batch.
  if (!out_ && !flush_pending_ && cork_depth_ == 0 && write_through(d))
    return true;
  begin_message();
  on_delivery(d, &carrier);
  // Nothing else was waiting: the batch is written now. Whatever it could
  // not take stays in the transport, which holds its own references.
  end_message(true);
  if (out_ && !out_->pieces.empty())
    out_->held.push_back(carrier); // not written after all: keep the frames
  return true;
}

bool connection_core::write_through(const msg::delivery& d) {
  // What on_delivery would queue as it is, gathered here instead; false,
  // with nothing done, at anything else (a drop, a compression, more pieces
  // than fit), which on_delivery then handles. The caller's message keeps
  // the bytes until write() returns, and the transport keeps what it could
  // not send with references of its own.
  constexpr std::size_t max_pieces = 8;
  net::slice pieces[max_pieces];
  std::size_t n = 0;
  std::size_t frames = 0;
  std::size_t bytes = 0;
  auto add = [&](const net::slice& s, std::size_t count) {
    frames += count;
    bytes += s.size;
    if (n > 0) {
      auto& last = pieces[n - 1];
      if (last.owner == s.owner && last.data + last.size == s.data) {
        last.size += s.size;
        return true;
      }
    }
    if (n == max_pieces)
      return false;
    pieces[n++] = s;
    return true;
  };
  using take = msg::delivery::take;
  auto limit = opts_.backpressure_limit;
  auto transport_bytes = transport_->buffered_amount();
  bool whole = d.walk(
    self_->ctrl(),
    [&](std::uint32_t run, const msg::delivery::run_info& info) {
      if (limit > 0 && bytes + transport_bytes + info.bytes >= limit)
        return take::each; // its messages meet the limit one by one
      return add(d.run_bytes(run), info.count) ? take::run : take::stop;
    },
    [&](std::size_t i) {
      auto& m = d.messages[i];
      if ((m.compress && deflate_)
          || (limit > 0 && bytes + transport_bytes >= limit))
        return false;
      return add(d.bytes_of(i), 1);
    });
  if (!whole)
    return false;
  if (n == 0)
    return true;
  n_out_ += frames;
  bytes_out_ += bytes;
  handed_ += bytes;
  after_write(transport_->write({pieces, n}));
  return true;
}

void connection_core::on_delivery(const msg::delivery& d,
                                  const caf::message* carrier) {
  // The common case (open, under the backpressure limit, nothing to
  // compress) takes the fast path: the checks of enqueue() once per
  // delivery instead of once per message. Anything else goes through
  // enqueue(), which drops, counts and closes as needed.
  // By control block (walk): building our address would take and drop a
  // reference on every delivery.
  using take = msg::delivery::take;
  auto limit = opts_.backpressure_limit;
  auto transport_bytes = transport_->buffered_amount();
  bool queued = false;
  int borrow = -1; // the delivery is held (1) or cannot be (0); -1: unknown
  auto held = [&] {
    if (borrow < 0)
      borrow = hold_delivery(d, carrier) ? 1 : 0;
    return borrow == 1;
  };
  d.walk(
    self_->ctrl(),
    [&](std::uint32_t run, const msg::delivery::run_info& info) {
      // All of it for us and under the limit: one piece, whatever its
      // number of messages.
      if (state_ != herald::ready_state::open
          || (limit > 0
              && pending_bytes_ + transport_bytes + info.bytes >= limit)
          || !held())
        return take::each;
      pending_bytes_ += info.bytes;
      out_->add(d.run_bytes(run), info.count);
      queued = true;
      return take::run;
    },
    [&](std::size_t i) {
      auto& m = d.messages[i];
      if (state_ != herald::ready_state::open || (m.compress && deflate_)
          || (limit > 0 && pending_bytes_ + transport_bytes >= limit)) {
        enqueue(delivery_frame(m), false);
        return true;
      }
      pending_bytes_ += m.frame->size();
      if (held())
        out_->add(d.bytes_of(i)); // held: no reference
      else
        queue_owned(m.frame);
      queued = true;
      return true;
    });
  if (queued)
    schedule_flush();
}

net::frame_ptr connection_core::delivery_frame(const msg::topic_message& d) {
  if (!d.compress || !deflate_
      || d.frame->payload().size() < opts_.per_message_deflate.threshold)
    return d.frame;
  if (extras_ && extras_->deflater) {
    count_deflated();
    return net::make_frame(d.frame->opcode(),
                           extras_->deflater->compress(d.frame->payload()),
                           true);
  }
  // Compressed once for every subscriber that takes the full window.
  if (deflate_window_ == 15)
    return d.frame->deflated(env_->stats ? &env_->stats->deflated : nullptr);
  return no_context_frame(d.frame->opcode(), d.frame->payload());
}

net::frame_ptr
connection_core::no_context_frame(net::opcode op,
                                  std::span<const std::byte> payload) {
  count_deflated();
  auto packed = net::deflate_shared(payload, deflate_window_);
  if (packed.size() >= payload.size())
    return net::make_frame(op, payload);
  return net::make_frame(op, packed, true);
}

net::frame_ptr connection_core::data_frame(net::opcode op,
                                           std::span<const std::byte> payload,
                                           bool compress) {
  if (!compress || !deflate_
      || payload.size() < opts_.per_message_deflate.threshold)
    return net::make_frame(op, payload);
  if (extras_ && extras_->deflater) {
    count_deflated();
    return net::make_frame(op, extras_->deflater->compress(payload), true);
  }
  return no_context_frame(op, payload);
}

send_status connection_core::send(net::opcode op,
                                  std::span<const std::byte> payload,
                                  bool compress) {
  bool control = op == net::opcode::ping || op == net::opcode::pong;
  if (control)
    return enqueue(net::make_frame(op, payload), false);
  return enqueue(data_frame(op, payload, compress), false);
}

void connection_core::cork(const std::function<void()>& fn) {
  ++cork_depth_;
  try {
    fn();
  } catch (...) {
    --cork_depth_;
    throw;
  }
  if (--cork_depth_ == 0)
    flush();
}

void connection_core::close(int code, std::string_view reason) {
  if (state_ != herald::ready_state::open)
    return;
  if (code != 1000 && !(code >= 3000 && code <= 4999)
      && !net::valid_close_code(static_cast<std::uint32_t>(code)))
    throw std::invalid_argument("invalid WebSocket close code");
  queue_owned(net::make_close_frame(static_cast<std::uint16_t>(code), reason));
  state_ = herald::ready_state::closing;
  flush();
  // The peer answers with its close frame; if it does not, give up.
  self_->delayed_send(self_, close_timeout, caf::timeout_atom::value);
}

void connection_core::on_close_timeout() {
  if (state_ == herald::ready_state::closing)
    finish(net::close_code::abnormal, {}, false);
}

void connection_core::terminate() {
  finish(net::close_code::abnormal, {}, false);
}

void connection_core::on_transport_down(std::string_view why) {
  if (state_ == herald::ready_state::closed)
    return;
  HERALD_LOG(debug, "connection " << remote_address() << " lost: " << why);
  finish(net::close_code::abnormal, {}, false);
}

void connection_core::on_tick() {
  if (state_ != herald::ready_state::open)
    return;
  // Ticks come every half idle timeout: a ping after one quiet tick, a
  // close after two, so a peer that answers pings stays open. The peer is
  // heard when we read from it; while we do not (its backlog is over the
  // limit), when more of its input waits unread in the socket: our own
  // backpressure must not make it idle. It is also there when it takes
  // some of its backlog (bytes written after the last tick that found
  // one). A peer that sends and takes nothing is idle.
  auto buffered = transport_->buffered_amount();
  auto written = handed_ - buffered;
  bool draining =
    (backlog_at_tick_ || read_paused_) && written != written_at_tick_;
  written_at_tick_ = written;
  backlog_at_tick_ = buffered > 0;
  std::uint32_t unread = 0;
  if (read_paused_)
    unread = static_cast<std::uint32_t>(
      std::min<std::size_t>(transport_->unread_input(), UINT32_MAX));
  bool heard = unread > unread_at_tick_;
  unread_at_tick_ = unread;
  if (activity_ || heard || draining) {
    activity_ = false;
    quiet_ticks_ = 0;
  } else if (++quiet_ticks_ >= 2) {
    HERALD_LOG(debug, "closing idle connection " << remote_address());
    queue_owned(
      net::make_close_frame(net::close_code::going_away, "idle timeout"));
    finish(net::close_code::going_away, "idle timeout", true);
    return;
  } else if (opts_.send_pings) {
    enqueue(net::make_frame(net::opcode::ping, std::string_view{}), true);
  }
  // Else an idle clock (its server's or its loop's) sends the next tick.
  if (!clock_ticks_ && !loop_ticks_)
    self_->delayed_send(self_, opts_.idle_timeout / 2, caf::tick_atom::value);
}

// -- connection_core: topics --------------------------------------------------

// topics_ is a sorted vector: most connections are in one or a few
// topics, and a vector of one name is half the size of a std::set node.
bool connection_core::subscribe(std::string_view topic) {
  if (state_ == herald::ready_state::closed)
    return false;
  auto i = std::lower_bound(topics_.begin(), topics_.end(), topic);
  if (i != topics_.end() && *i == topic)
    return true;
  if (opts_.max_subscriptions > 0
      && topics_.size() >= opts_.max_subscriptions) {
    if (env_->stats)
      env_->stats->subscriptions_refused.fetch_add(1,
                                                   std::memory_order_relaxed);
    if (!std::exchange(cap_logged_, true))
      HERALD_LOG(info, "refusing a subscription of "
                         << remote_address() << ": at most "
                         << opts_.max_subscriptions << " topics");
    return false;
  }
  i = topics_.emplace(i, topic);
  // What we published before goes first (we do not get it back).
  flush_pending_publishes();
  auto me = caf::actor_cast<caf::actor>(self_);
  if (detail::join_now(shard(), *i, me, self_->context())) {
    // Our loop's shard was idle: joined now, counted as it joined.
  } else if (auto& counts = env_->registry.counts()) {
    // Counted from now on: subscriber_count includes this connection, and
    // a server publish to this topic is not skipped while the subscription
    // travels to the registry.
    counts->subscribing(*i);
    self_->send(shard(), caf::subscribe_atom::value, *i, std::move(me),
                msg::counted_atom::value, msg::announces_exit_atom::value);
  } else {
    self_->send(shard(), caf::subscribe_atom::value, *i, std::move(me),
                msg::announces_exit_atom::value);
  }
  // The registry does not monitor us: on_exit tells it we are gone.
  announces_exit_ = true;
  return true;
}

void connection_core::unsubscribe(std::string_view topic) {
  auto i = std::lower_bound(topics_.begin(), topics_.end(), topic);
  if (i == topics_.end() || *i != topic)
    return;
  // What we published before still reaches us.
  flush_pending_publishes();
  if (auto& counts = env_->registry.counts()) {
    // A member (subscribed through us): no longer counted from now on.
    counts->unsubscribing(*i);
    self_->send(shard(), caf::unsubscribe_atom::value, *i,
                caf::actor_cast<caf::actor>(self_), msg::counted_atom::value);
  } else {
    self_->send(shard(), caf::unsubscribe_atom::value, *i,
                caf::actor_cast<caf::actor>(self_));
  }
  topics_.erase(i);
}

bool connection_core::is_subscribed(std::string_view topic) const {
  return std::binary_search(topics_.begin(), topics_.end(), topic);
}

std::vector<std::string> connection_core::subscriptions() const {
  return topics_;
}

namespace {

// A connection's publishes to one topic while it handles one message, sent
// to the shards as one message each when it is done (or before anything
// else this thread sends to a shard): a client that sends fifty messages
// in one read costs the shards two messages, not a hundred. One per
// thread: a loop runs one actor at a time.
struct held_publishes {
  const connection_core* owner = nullptr;
  std::shared_ptr<const connection_env> env;
  std::size_t origin = 0;
  std::string topic;
  std::vector<msg::publication> items;
};

thread_local held_publishes held;

} // namespace

void flush_pending_publishes() {
  auto& h = held;
  if (h.owner == nullptr)
    return;
  h.owner = nullptr;
  auto env = std::move(h.env);
  if (h.items.size() == 1) {
    auto pub = std::move(h.items.front());
    h.items.clear();
    herald::publish(env->registry, h.topic, std::move(pub), h.origin);
  } else {
    msg::publication_batch pubs{std::move(h.items)};
    h.items.clear();
    herald::publish(env->registry, h.topic, std::move(pubs), h.origin);
  }
}

send_status connection_core::publish(std::string_view topic, net::opcode op,
                                     std::span<const std::byte> payload,
                                     bool compress) {
  // Allowed in every state, also from the close handler (a "left" notice).
  auto f = net::make_frame(op, payload);
  auto size = static_cast<send_status>(f->size());
  caf::actor_addr exclude;
  if (!opts_.publish_to_self)
    exclude = self_->address();
  // To every shard (ours passes it on to Redis) once this message is
  // handled, with the others to the same topic.
  auto& h = held;
  if (h.owner != this || h.topic != topic) {
    flush_pending_publishes();
    h.owner = this;
    h.env = env_;
    h.origin = self_->home_loop();
    h.topic.assign(topic);
  }
  h.items.push_back(
    msg::publication{std::move(f), std::move(exclude), compress});
  return size;
}

// -- connection_core: misc ----------------------------------------------------

std::string connection_core::remote_address() const {
  return transport_->remote_address();
}

std::size_t connection_core::buffered_amount() const {
  return pending_bytes_ + transport_->buffered_amount();
}

void connection_core::handler_failed(std::string_view what) {
  HERALD_LOG(warn, "handler failed on " << remote_address() << ": " << what);
  if (!in_error_) {
    in_error_ = true;
    try {
      hooks_->on_error(what);
    } catch (...) {
      HERALD_LOG(warn, "error handler threw as well");
    }
    in_error_ = false;
  }
  fail(net::close_code::internal_error, "internal error");
}

template <class F>
void connection_core::guarded(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    handler_failed(e.what());
  } catch (...) {
    handler_failed("unknown exception");
  }
}

// -- connection_actor ---------------------------------------------------------

connection_actor::connection_actor(caf::actor_config& cfg, connection_args args)
  : connection_actor_base(cfg), home_loop_(spawning_loop()),
    core_(this, std::move(args)) {
  // Nop.
}

void connection_actor::initialize() {
  connection_actor_base::initialize();
  setf(is_initialized_flag);
  core_.start();
  // Every message of a connection is dispatched in consume() below, so
  // the behavior only keeps the actor alive: one shared by all connections
  // (a behavior of their own would cost each connection memory) with a
  // handler for a message nobody sends.
  static const caf::behavior keep_alive{
    [](msg::flush_atom, msg::flush_atom, msg::flush_atom) {},
  };
  become(keep_alive);
}

caf::invoke_message_result connection_actor::consume(caf::mailbox_element& x) {
  core_.begin_message();
  auto result = dispatch(x);
  // The message is out of the mailbox by now: empty means it was the last
  // of this batch, and what the batch queued is written in one go.
  core_.end_message(mailbox().empty());
  return result;
}

bool connection_actor::deliver_now(const caf::message& delivery) {
  // Blocked: the last resume found the mailbox empty and nothing came
  // since, so the actor is not queued on this loop, and this thread is not
  // running it. A message from another thread arriving meanwhile schedules
  // it here, to run after this call (it was sent concurrently with the
  // delivery, so either order is one the sender could see).
  if (!mailbox().blocked())
    return false;
  return core_.deliver_now(delivery);
}

caf::invoke_message_result connection_actor::dispatch(caf::mailbox_element& x) {
  // Asynchronous messages (of any priority) of our protocol go straight to
  // the core, without the behavior's trial matching; anything else (system
  // messages, requests, unknown messages) takes CAF's usual path.
  if (x.mid.is_request() || x.mid.is_response())
    return connection_actor_base::consume(x);
  auto& c = x.content();
  auto handled = true;
  current_mailbox_element(&x);
  // A delivery (most messages) is recognised by its type alone, without
  // match_elements' pattern machinery.
  if (c.size() == 1
      && c.matches(0, caf::type_nr<msg::delivery>::value,
                   &typeid(msg::delivery))) {
    core_.on_delivery(c.get_as<msg::delivery>(0));
  } else if (c.match_elements<caf::atom_value>()) {
    auto a = c.get_as<caf::atom_value>(0);
    if (a == msg::flush_atom::value)
      core_.flush();
    else if (a == caf::tick_atom::value)
      core_.on_tick();
    else if (a == caf::timeout_atom::value)
      core_.on_close_timeout();
    else
      handled = false;
  } else if (c.match_elements<msg::inbound>()) {
    core_.on_inbound(c.get_mutable_as<msg::inbound>(0));
  } else if (c.match_elements<caf::atom_value, std::size_t>()
             && c.get_as<caf::atom_value>(0) == msg::written_atom::value) {
    core_.on_written(c.get_as<std::size_t>(1));
  } else if (c.match_elements<caf::atom_value, std::string>()
             && c.get_as<caf::atom_value>(0)
                  == msg::transport_down_atom::value) {
    core_.on_transport_down(c.get_as<std::string>(1));
  } else if (c.match_elements<caf::atom_value, int, std::string>()
             && c.get_as<caf::atom_value>(0) == caf::close_atom::value) {
    core_.close(c.get_as<int>(1), c.get_as<std::string>(2));
  } else {
    handled = false;
  }
  current_mailbox_element(nullptr);
  if (!handled)
    return connection_actor_base::consume(x);
  return caf::invoke_message_result::consumed;
}

void connection_actor::on_exit() {
  core_.on_exit();
}

caf::actor spawn_connection(caf::actor_system& sys, connection_args args) {
  return sys.spawn<connection_actor>(std::move(args));
}

// -- basic_socket -------------------------------------------------------------

send_status basic_socket::send(std::string_view text, bool compress) {
  return core_->send(net::opcode::text, as_bytes(text), compress);
}

send_status basic_socket::send(std::span<const std::byte> data, bool compress) {
  return core_->send(net::opcode::binary, data, compress);
}

void basic_socket::close(int code, std::string_view reason) {
  core_->close(code, reason);
}

void basic_socket::terminate() {
  core_->terminate();
}

send_status basic_socket::ping(std::string_view data) {
  return core_->send(net::opcode::ping, as_bytes(data.substr(0, 125)), false);
}

send_status basic_socket::pong(std::string_view data) {
  return core_->send(net::opcode::pong, as_bytes(data.substr(0, 125)), false);
}

void basic_socket::cork(const std::function<void()>& fn) {
  core_->cork(fn);
}

bool basic_socket::subscribe(std::string_view topic) {
  return core_->subscribe(topic);
}

void basic_socket::unsubscribe(std::string_view topic) {
  core_->unsubscribe(topic);
}

bool basic_socket::is_subscribed(std::string_view topic) const {
  return core_->is_subscribed(topic);
}

std::vector<std::string> basic_socket::subscriptions() const {
  return core_->subscriptions();
}

send_status basic_socket::publish(std::string_view topic, std::string_view text,
                                  bool compress) {
  return core_->publish(topic, net::opcode::text, as_bytes(text), compress);
}

send_status basic_socket::publish(std::string_view topic,
                                  std::span<const std::byte> data,
                                  bool compress) {
  return core_->publish(topic, net::opcode::binary, data, compress);
}

caf::actor connection_core::handle() const {
  return caf::actor_cast<caf::actor>(self_);
}

caf::actor basic_socket::actor() const {
  return core_->handle();
}

std::string basic_socket::remote_address() const {
  return endpoint_address(core_->remote_address());
}

std::string basic_socket::remote_endpoint() const {
  return core_->remote_address();
}

ready_state basic_socket::ready_state() const {
  return core_->ready_state();
}

std::size_t basic_socket::buffered_amount() const {
  return core_->buffered_amount();
}

std::string_view basic_socket::protocol() const {
  return core_->protocol();
}

} // namespace herald
