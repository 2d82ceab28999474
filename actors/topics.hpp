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

namespace herald {

/// Subscriber counts per topic, readable from any thread without a message
/// round trip (for `server::subscriber_count` and metrics).
class topic_counts {
public:
  /// Subscribers of `topic` right now (as far as the registry has seen).
  std::size_t get(std::string_view topic) const;
  /// Number of topics with at least one subscriber.
  std::size_t topics() const;
  /// Sets the count of `topic`; zero removes it.
  void set(const std::string& topic, std::size_t n);

  /// A subscription is on its way to the registry (counted subscribe
  /// message, see msg::counted_atom); until the registry has it, every
  /// topic may have subscribers.
  void subscribing() noexcept {
    in_flight_.fetch_add(1, std::memory_order_seq_cst);
  }
  /// The registry has a counted subscription (after set()).
  void subscribed() noexcept {
    in_flight_.fetch_sub(1, std::memory_order_seq_cst);
  }
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
  std::atomic<std::size_t> in_flight_{0};
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::size_t, hash, std::equal_to<>> counts_;
};

/// Subscribes `who` (any actor) to `topic`; it then receives
/// `msg::delivery` messages. Safe from any thread. Like a connection's
/// subscribe, it is counted from the moment of the call: a server publish
/// to `topic` made after it returns is not skipped for want of subscribers
/// while the subscription is still on its way to the registry.
void subscribe(const caf::actor& registry, std::string topic,
               const caf::actor& who);
/// Unsubscribes `who` from `topic`. Safe from any thread.
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
void send_binary(const caf::actor& connection,
                 std::span<const std::byte> data, bool compress = false);

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

/// Spawns a topic registry. Messages it takes (messages/messages.hpp):
/// `(subscribe_atom, std::string, caf::actor)`,
/// `(subscribe_atom, std::string, caf::actor, msg::counted_atom)` (the
/// sender called topic_counts::subscribing() first),
/// `(unsubscribe_atom, std::string, caf::actor)`,
/// `(publish_atom, std::string, msg::publication)`,
/// `(msg::remote_atom, std::string, msg::publication)` (local delivery
/// only), `(msg::bridge_atom, caf::actor)` (attach a Redis bridge: it gets
/// `(join_atom, topic)` when a topic gets its first subscriber,
/// `(leave_atom, topic)` when the last one leaves and a copy of every
/// `publish_atom` message) and
/// `(msg::count_atom, std::string) -> std::size_t`.
caf::actor spawn_topic_registry(caf::actor_system& sys,
                                std::shared_ptr<topic_counts> counts,
                                topic_options opts = {});

} // namespace herald
