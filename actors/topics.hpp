// Topics: one broker actor per topic, created on demand by a registry.
//
// The registry maps names to topic actors and is the single source of truth
// for membership: it forwards subscribe, unsubscribe and publish to the
// topic actor in the order it receives them, monitors every subscriber so a
// subscriber that goes away (closed, crashed) leaves all its topics, and
// stops a topic actor when its last subscriber leaves. Any actor can
// subscribe: deliveries arrive as `msg::delivery` messages.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "herald/messages/messages.hpp"

namespace herald {

/// Subscriber counts per topic, readable from any thread without a message
/// round trip (for `server::subscriber_count` and metrics).
///
/// A count is what the registry has applied plus the changes on their way
/// to it that their senders counted (see msg::counted_atom): a connection
/// that subscribes or unsubscribes counts its change at once, and the
/// registry takes the change back in the same step in which it applies
/// it, so a connection sees its own subscribe and unsubscribe in the count.
class topic_counts {
public:
  /// Subscribers of `topic` right now: applied by the registry, plus
  /// counted subscribes on their way, minus counted unsubscribes.
  std::size_t get(std::string_view topic) const;
  /// Number of topics with at least one subscriber (as get() counts them).
  std::size_t topics() const;
  /// The registry applied a change: `topic` has `n` subscribers now, and
  /// the message it handled carried `settled` (+1, -1, or 0 when not
  /// counted), which leaves the changes on their way.
  void set(std::string_view topic, std::size_t n, int settled = 0);

  /// A subscription to `topic` is on its way to the registry (counted
  /// subscribe message): counted in get() from now on, and until the
  /// registry has it, every topic may have subscribers.
  void subscribing(std::string_view topic);
  /// The registry has a counted subscription (after set()).
  void subscribed() noexcept {
    in_flight_.fetch_sub(1, std::memory_order_seq_cst);
  }
  /// An unsubscribe from `topic` by a sender that is sure to be a member
  /// is on its way (counted unsubscribe message): no longer counted in
  /// get() from now on.
  void unsubscribing(std::string_view topic);
  /// False only when `topic` has no subscriber and none is on its way: a
  /// publish may then be skipped without losing a message to a subscriber
  /// that subscribed before the publisher could know of it (a connection
  /// subscribed in open, whose client then caused the publish).
  bool may_have_subscribers(std::string_view topic) const;

private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct entry {
    std::size_t applied = 0;    // as the registry has it
    std::ptrdiff_t pending = 0; // counted changes on their way
    std::size_t visible() const noexcept {
      // Below zero only when a member's unsubscribe outran a removal made
      // by someone else (herald::unsubscribe of a connection's actor).
      auto n = static_cast<std::ptrdiff_t>(applied) + pending;
      return n < 0 ? 0 : static_cast<std::size_t>(n);
    }
  };
  // Applies `f` to the entry of `topic` under the lock, keeping topics_
  // and dropping entries that count nothing.
  template <class F>
  void change(std::string_view topic, F f);
  std::atomic<std::size_t> in_flight_{0};
  mutable std::mutex mtx_;
  std::unordered_map<std::string, entry, hash, std::equal_to<>> counts_;
  std::size_t topics_ = 0; // entries with visible() > 0
};

/// A topic registry as others hold it: its actor and its subscriber counts,
/// so that herald::subscribe counts a subscription on its way as a
/// connection does. Copies share the registry; a CAF message as it is.
class topic_registry {
public:
  /// No registry.
  topic_registry() = default;
  /// The registry `actor`, which keeps `counts`.
  topic_registry(msg::registry_actor actor,
                 std::shared_ptr<topic_counts> counts)
    : actor_(std::move(actor)), counts_(std::move(counts)) {}

  /// The registry's actor: link to it to end with the server
  /// (`self->link_to(reg.actor())`), or send it the messages of
  /// msg::registry_actor.
  const msg::registry_actor& actor() const noexcept { return actor_; }
  /// The registry's actor, where a caf::actor is wanted.
  operator caf::actor() const { return caf::actor_cast<caf::actor>(actor_); }
  /// Its subscriber counts.
  const std::shared_ptr<topic_counts>& counts() const noexcept {
    return counts_;
  }
  /// True when this names a registry.
  explicit operator bool() const noexcept { return static_cast<bool>(actor_); }

private:
  msg::registry_actor actor_;
  std::shared_ptr<topic_counts> counts_;
};

/// Subscribes `who` (any actor) to `topic`; it then receives
/// `msg::delivery` messages. Safe from any thread. Like a connection's
/// subscribe, it is counted from the moment of the call: subscriber_count
/// includes it, and a server publish to `topic` made after it returns is
/// not skipped for want of subscribers while the subscription is still on
/// its way to the registry. (Subscribing an actor that already is a member
/// counts it twice until the registry has the message.)
void subscribe(const topic_registry& registry, std::string topic,
               const caf::actor& who);
/// Unsubscribes `who` from `topic`. Safe from any thread. Not counted on
/// its way (this side cannot know whether `who` is a member): `who` counts
/// until the registry has the message.
void unsubscribe(const caf::actor& registry, std::string topic,
                 const caf::actor& who);
/// Publishes text to `topic` from anywhere (an actor, a timer, another
/// thread), leaving out `exclude` if given.
void publish_text(const caf::actor& registry, std::string topic,
                  std::string_view text, caf::actor_addr exclude = {});
/// Publishes binary data to `topic` from anywhere.
void publish_binary(const caf::actor& registry, std::string topic,
                    std::span<const std::byte> data,
                    caf::actor_addr exclude = {});

/// Sends text to one connection from anywhere: `connection` is the
/// connection's actor (`ws.actor()`). The connection writes it as it writes
/// topic messages, in the order this sender sent them, subject to its
/// backpressure limit; nothing happens when the connection is gone.
void send_text(const caf::actor& connection, std::string_view text,
               bool compress = false);
/// Sends binary data to one connection from anywhere.
void send_binary(const caf::actor& connection, std::span<const std::byte> data,
                 bool compress = false);

/// How topics fan out. A publish normally goes out as soon as the topic
/// actor gets to it (publishes that arrive while it is busy go together).
/// With `linger`, a topic of at least `linger_min_subscribers` holds a
/// publish up to `linger` so the publishes that follow within it reach each
/// subscriber as one delivery and one write: for big rooms, where the cost
/// is one write per subscriber per delivery, it trades that much latency
/// for fewer writes. Off by default.
struct topic_options {
  /// How long a publish may wait for others; 0: never.
  std::chrono::milliseconds linger{0};
  /// Topics with fewer subscribers never linger.
  std::size_t linger_min_subscribers = 1000;
};

/// Spawns a topic registry (its messages: msg::registry_actor). An
/// attached bridge gets `(join_atom, topic)` when a topic gets its first
/// subscriber, `(leave_atom, topic)` when the last one leaves and a copy of
/// every local publish.
topic_registry spawn_topic_registry(caf::actor_system& sys,
                                    std::shared_ptr<topic_counts> counts,
                                    topic_options opts = {});

} // namespace herald

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::topic_registry)
