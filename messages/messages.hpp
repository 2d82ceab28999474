// The protocol between Herald's actors, in one place.
//
// Connection actors, topic actors, the topic registry and any user actor talk
// with these messages. Atoms name the operation; structs carry the data.
// CAF's own publish_atom, subscribe_atom, unsubscribe_atom, close_atom,
// tick_atom and ok_atom are reused; ours live in herald::msg.
//
//   to the registry:   (subscribe_atom, topic, actor)       join a topic
//                      (unsubscribe_atom, topic, actor)     leave a topic
//                      (publish_atom, topic, publication)   publish
//   to a topic actor:  (subscribe_atom, actor) (unsubscribe_atom, actor)
//                      (publish_atom, publication)
//                      (remote_atom, topic, publication)    from another node
//                      (bridge_atom, actor)                 attach a bridge
//   to a bridge:       (join_atom, topic)                   first subscriber
//                      (leave_atom, topic)                  last one left
//                      (publish_atom, topic, publication)   a local publish
//   to a subscriber:   (delivery)                           topic messages
//   to a connection:   (inbound)                            bytes read
//                      (written_atom, buffered)             backlog written
//                      (transport_down_atom, why)           socket gone
//                      (flush_atom)                         end of a batch
//                      (close_atom, code, reason)           close politely
//                      (tick_atom)                          idle check
//   to the idle clock: (idle_watch_atom, addr, period)      tick it from now on
//                      (idle_forget_atom, actor_id)         stop ticking it
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

/// To the idle clock (see idle_clock.hpp): tick this actor every period,
/// from now on; and: stop ticking it.
using idle_watch_atom = caf::atom_constant<caf::atom("h_iwatch")>;
using idle_forget_atom = caf::atom_constant<caf::atom("h_iforget")>;

/// From a transport: bytes read from its socket.
using net::inbound;

/// A message published to a topic: built once, shared by every receiver.
struct publication {
  /// The encoded frame that connection actors write as is.
  net::frame_ptr frame;
  /// The publisher to leave out (none when publishing to self or from the
  /// server).
  caf::actor_addr exclude;
  /// Compress for connections that agreed to permessage-deflate.
  bool compress = false;
};

/// One message of a topic.
struct topic_message {
  /// The encoded frame, never compressed (connections compress on demand).
  net::frame_ptr frame;
  /// The publisher, if it asked to be left out.
  caf::actor_addr exclude;
  /// The publisher asked for compression.
  bool compress = false;

  /// True for a binary message, false for text.
  bool binary() const noexcept { return frame->opcode() == net::opcode::binary; }
  /// The payload as characters (text messages are valid UTF-8).
  std::string_view text() const noexcept { return frame->payload_view(); }
  /// The payload as bytes.
  std::span<const std::byte> bytes() const noexcept {
    return frame->payload();
  }
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

  /// The bytes to write for `messages[i]`: its place in a run, or its frame.
  net::slice bytes_of(std::size_t i) const noexcept {
    if (!placements.empty() && placements[i].run != placement::none) {
      auto& run = *runs[placements[i].run];
      return {&run, run.bytes().data() + placements[i].offset,
              messages[i].frame->size()};
    }
    return net::whole(*messages[i].frame);
  }

  /// Calls `fn(const topic_message&)` for each message meant for `self`
  /// (that is, not published by `self` with exclusion).
  template <class F>
  void each(const caf::actor_addr& self, F&& fn) const {
    for (auto& m : messages)
      if (!m.exclude || m.exclude != self)
        fn(m);
  }
};

} // namespace herald::msg

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::msg::publication)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::msg::delivery)
