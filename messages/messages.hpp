// The protocol between Herald's actors, in one place: the messages, and the
// interface of each actor as a caf::typed_actor, so that the compiler checks
// every conversation with them.
//
// CAF's own publish_atom, subscribe_atom, unsubscribe_atom, join_atom,
// leave_atom, close_atom and tick_atom are reused; ours live in herald::msg.
// Subscribers are any actor (caf::actor): they receive `delivery`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "herald/net/frame.hpp"
#include "herald/net/transport.hpp"

namespace herald::msg {

/// From a transport (net/transport.hpp): its backlog is written.
using net::written_atom;
/// From a transport: its socket is gone.
using net::transport_down_atom;
/// Sent by a connection to itself: write what this batch queued.
using flush_atom = caf::atom_constant<caf::atom("h_flush")>;
/// Asks the registry or a topic for its subscriber count.
using count_atom = caf::atom_constant<caf::atom("h_count")>;
/// To the registry: a publication that came from another node (through
/// Redis); delivered locally only, never forwarded to the bridge again.
using remote_atom = caf::atom_constant<caf::atom("h_remote")>;
/// To the registry: attaches a bridge actor that then hears of every local
/// publish and of every topic's first and last local subscriber.
using bridge_atom = caf::atom_constant<caf::atom("h_bridge")>;

/// Ends a subscribe message whose sender counted it with
/// topic_counts::subscribing(), or an unsubscribe message whose sender (a
/// member) counted it with topic_counts::unsubscribing(): the registry
/// takes the counted change back as it applies the message (and calls
/// subscribed() for a subscribe).
using counted_atom = caf::atom_constant<caf::atom("h_counted")>;

/// Ends a subscribe message whose sender tells the registry itself when it
/// ends, with (exited_atom, its address): the registry then keeps no
/// monitor on it (an attachable and a down message per connection).
using announces_exit_atom = caf::atom_constant<caf::atom("h_annexit")>;
/// To the registry: a subscriber that announced its exit ended.
using exited_atom = caf::atom_constant<caf::atom("h_exited")>;

/// To the idle clock (see idle_clock.hpp): tick this actor every period,
/// from now on; and: stop ticking it.
using idle_watch_atom = caf::atom_constant<caf::atom("h_iwatch")>;
using idle_forget_atom = caf::atom_constant<caf::atom("h_iforget")>;

/// From a transport: bytes read from its socket.
using net::inbound;

/// A message published to a topic: built once, shared by every receiver
/// (publishers send it, subscribers find it in a `delivery`).
struct topic_message {
  /// The encoded frame that connection actors write as is, never
  /// compressed (connections compress on demand).
  net::frame_ptr frame;
  /// The publisher to leave out (none when publishing to self or from the
  /// server).
  caf::actor_addr exclude;
  /// Compress for connections that agreed to permessage-deflate.
  bool compress = false;

  /// True for a binary message, false for text.
  bool binary() const noexcept {
    return frame->opcode() == net::opcode::binary;
  }
  /// The payload as characters (text messages are valid UTF-8).
  std::string_view text() const noexcept { return frame->payload_view(); }
  /// The payload as bytes.
  std::span<const std::byte> bytes() const noexcept { return frame->payload(); }
};

/// What a publisher sends: the same three fields.
using publication = topic_message;

/// Publications of one publisher to one topic, oldest first, sent as one
/// message (a connection's publishes while handling one message).
struct publication_batch {
  std::vector<publication> items;
};

/// Topic messages as a subscriber receives them: every message a topic got
/// while it was busy, in publish order, in one delivery. All subscribers
/// share one delivery (and its frames); each skips what excludes it.
struct delivery {
  /// The topic's name, shared by all deliveries of that topic.
  std::shared_ptr<const std::string> topic;
  /// The messages, oldest first.
  std::vector<topic_message> messages;

  /// Where a message's bytes sit in `runs`.
  struct placement {
    static constexpr std::uint32_t none = 0xFFFFFFFF;
    /// Index into `runs`, or `none` (written from the message's own frame).
    std::uint32_t run = none;
    /// Offset of the frame's first byte in that run.
    std::uint32_t offset = 0;
  };
  /// What a run holds.
  struct run_info {
    /// How many messages it holds (it starts at the message whose
    /// placement has offset 0).
    std::uint32_t count = 0;
    /// Its bytes.
    std::size_t bytes = 0;
    /// Some message in it leaves out its publisher or asks for
    /// compression: subscribers then look at each message.
    bool mixed = false;
  };
  /// The frames of consecutive messages joined into runs (net::make_run)
  /// by a topic with several subscribers, so that each subscriber writes a
  /// burst as one piece; empty when nothing was joined.
  std::vector<net::frame_ptr> runs;
  /// One entry per run.
  std::vector<run_info> run_infos;
  /// One entry per message when `runs` is not empty.
  std::vector<placement> placements;

  /// The run that starts at `messages[i]` (its index), or placement::none.
  std::uint32_t run_starting_at(std::size_t i) const noexcept {
    if (placements.empty() || placements[i].offset != 0)
      return placement::none;
    return placements[i].run;
  }

  /// The whole bytes of run `run`.
  net::slice run_bytes(std::uint32_t run) const noexcept {
    auto& r = *runs[run];
    return {&r, r.bytes().data(), run_infos[run].bytes};
  }

  /// The bytes to write for `messages[i]`: its place in a run, or its frame.
  net::slice bytes_of(std::size_t i) const noexcept {
    if (!placements.empty() && placements[i].run != placement::none) {
      auto& run = *runs[placements[i].run];
      return {&run, run.bytes().data() + placements[i].offset,
              messages[i].frame->size()};
    }
    return net::whole(*messages[i].frame);
  }

  /// How walk() goes on at a run it offered.
  enum class take {
    run,  ///< taken whole
    each, ///< declined: its messages come one by one
    stop, ///< end the walk
  };

  /// Walks the messages meant for the subscriber whose control block is
  /// `self` (all but those it published with exclusion), in order. A run
  /// that holds nothing excluded or compressed (not `mixed`) is offered
  /// whole to `on_run(run, info)`, which returns a `take`; any other
  /// message goes to `on_one(i)`, which returns false to end the walk.
  /// False when a callback ended it.
  template <class OnRun, class OnOne>
  bool walk(const caf::actor_control_block* self, OnRun&& on_run,
            OnOne&& on_one) const {
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (auto run = run_starting_at(i); run != placement::none) {
        auto& info = run_infos[run];
        if (!info.mixed) {
          auto t = on_run(run, info);
          if (t == take::stop)
            return false;
          if (t == take::run) {
            i += info.count - 1;
            continue;
          }
        }
      }
      auto& m = messages[i];
      if (m.exclude && m.exclude.get() == self)
        continue;
      if (!on_one(i))
        return false;
    }
    return true;
  }

  /// Calls `fn(const topic_message&)` for each message meant for `self`
  /// (that is, not published by `self` with exclusion).
  template <class F>
  void each(const caf::actor_addr& self, F&& fn) const {
    walk(
      self.get(), [](std::uint32_t, const run_info&) { return take::each; },
      [&](std::size_t i) {
        fn(messages[i]);
        return true;
      });
  }
};

// -- interfaces ---------------------------------------------------------------

/// The Redis bridge of a node (actors/redis_bridge.hpp).
using bridge_actor = caf::typed_actor<
  /// A topic got its first local subscriber: subscribe to its channel.
  caf::reacts_to<caf::join_atom, std::string>,
  /// Its last local subscriber left.
  caf::reacts_to<caf::leave_atom, std::string>,
  /// A local publish, to pass on to the other nodes.
  caf::reacts_to<caf::publish_atom, std::string, publication>,
  /// To itself: the end of a burst of publishes.
  caf::reacts_to<flush_atom>>;

/// One topic's actor, made and fed by the registry (actors/topics.cpp).
using topic_actor = caf::typed_actor<
  /// A member joins.
  caf::reacts_to<caf::subscribe_atom, caf::actor>,
  /// A member leaves.
  caf::reacts_to<caf::unsubscribe_atom, caf::actor_addr>,
  /// A message for the members.
  caf::reacts_to<caf::publish_atom, publication>,
  /// Messages for the members, in order.
  caf::reacts_to<caf::publish_atom, publication_batch>,
  /// To itself: fan out what arrived meanwhile.
  caf::reacts_to<flush_atom>,
  /// Its number of members.
  caf::replies_to<count_atom>::with<std::size_t>>;

/// The topic registry of a server (actors/topics.hpp). Subscribes and
/// unsubscribes ending in `counted_atom` come from senders that counted
/// them on their way (topic_counts).
using registry_actor = caf::typed_actor<
  /// Join a topic.
  caf::reacts_to<caf::subscribe_atom, std::string, caf::actor>,
  caf::reacts_to<caf::subscribe_atom, std::string, caf::actor, counted_atom>,
  /// Join a topic; the subscriber announces its exit (below).
  caf::reacts_to<caf::subscribe_atom, std::string, caf::actor,
                 announces_exit_atom>,
  caf::reacts_to<caf::subscribe_atom, std::string, caf::actor, counted_atom,
                 announces_exit_atom>,
  /// A subscriber that announces its exit ended: it leaves every topic.
  caf::reacts_to<exited_atom, caf::actor_addr>,
  /// Leave a topic.
  caf::reacts_to<caf::unsubscribe_atom, std::string, caf::actor>,
  caf::reacts_to<caf::unsubscribe_atom, std::string, caf::actor, counted_atom>,
  /// Publish, here and (with a bridge) on other nodes.
  caf::reacts_to<caf::publish_atom, std::string, publication>,
  caf::reacts_to<caf::publish_atom, std::string, publication_batch>,
  /// A publication from another node (or, at a shard, one that another
  /// shard passes to the bridge): delivered here only.
  caf::reacts_to<remote_atom, std::string, publication>,
  caf::reacts_to<remote_atom, std::string, publication_batch>,
  /// Attach a bridge.
  caf::reacts_to<bridge_atom, bridge_actor>,
  /// Subscribers of a topic, as the registry has them.
  caf::replies_to<count_atom, std::string>::with<std::size_t>>;

/// The idle clock of a server (actors/idle_clock.hpp).
using idle_clock_actor = caf::typed_actor<
  /// Tick this actor every period, from now on.
  caf::reacts_to<idle_watch_atom, caf::actor_addr, caf::timespan>,
  /// Stop ticking it.
  caf::reacts_to<idle_forget_atom, caf::actor_id>,
  /// To itself: the wake-up it asked for at that instant.
  caf::reacts_to<caf::tick_atom, caf::timespan>>;

/// What a connection actor takes. It is no typed actor: it dispatches these
/// by hand in connection_actor::consume, so that all connections share one
/// behavior (memory per connection). Others send through this handle type
/// (caf::actor_cast from the connection's caf::actor) to have the compiler
/// check what they send.
using connection_actor = caf::typed_actor<
  /// Topic messages (from a topic, or herald::send_text to this one).
  caf::reacts_to<delivery>,
  /// Close politely with a code and a reason (server shutdown).
  caf::reacts_to<caf::close_atom, int, std::string>,
  /// Idle check (from the idle clock).
  caf::reacts_to<caf::tick_atom>,
  /// From its transport (net/transport.hpp).
  caf::reacts_to<inbound>, caf::reacts_to<written_atom, std::size_t>,
  caf::reacts_to<transport_down_atom, std::string>,
  /// To itself: write what this batch queued; the close handshake took
  /// too long.
  caf::reacts_to<flush_atom>, caf::reacts_to<caf::timeout_atom>>;

} // namespace herald::msg

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::msg::topic_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::msg::delivery)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::msg::publication_batch)
