// Topics: broker actors holding subscriber sets, sharded by event loop.
//
// A server's registry is one shard per loop (see README, "Threads, actors
// and ordering"): a shard runs on its loop, keeps the members of that loop
// (connections on it, and other actors whose home it is), makes a topic
// actor on its loop for each topic that has members there, and forwards
// subscribe, unsubscribe and publish to it in the order it receives them.
// A connection talks to its own loop's shard, so joining and leaving never
// leave its thread; a publish goes to every shard. In front of the shards a
// registry actor takes the same messages from anyone else and passes them
// to the right shard. Any actor can subscribe: deliveries arrive as
// `msg::delivery` messages.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "herald/messages/messages.hpp"
#include "herald/net/io.hpp"

namespace herald {

/// Subscriber counts per topic, readable from any thread without a message
/// round trip (for `server::subscriber_count` and metrics).
///
/// A count is what the registry's shards have applied plus the changes on
/// their way to them that their senders counted (see msg::counted_atom): a
/// connection that subscribes or unsubscribes counts its change at once,
/// and the shard takes the change back in the same step in which it
/// applies it, so a connection sees its own subscribe and unsubscribe in
/// the count.
class topic_counts {
public:
  /// Subscribers of `topic` right now: applied by the shards, plus
  /// counted subscribes on their way, minus counted unsubscribes.
  std::size_t get(std::string_view topic) const;
  /// Subscribers of `topic` as the shards have them (nothing on its way).
  std::size_t applied(std::string_view topic) const;
  /// Number of topics with at least one subscriber (as get() counts them).
  std::size_t topics() const;
  /// A shard applied a change: `topic` has `delta` (+1, -1 or 0)
  /// subscribers more there, and the message it handled carried `settled`
  /// (+1, -1, or 0 when not counted), which leaves the changes on their way.
  void apply(std::string_view topic, int delta, int settled = 0);

  /// A subscription to `topic` is on its way to a shard (counted
  /// subscribe message): counted in get() from now on, and until the
  /// shard has it, every topic may have subscribers.
  void subscribing(std::string_view topic);
  /// A shard has a counted subscription (after apply()).
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
    std::size_t applied = 0;    // as the shards have it
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

/// A topic registry as others hold it: its actor, its shards and its
/// subscriber counts, so that herald::subscribe counts a subscription on
/// its way as a connection does. Copies share the registry; a CAF message
/// as it is.
class topic_registry {
public:
  /// No registry.
  topic_registry() = default;
  /// A registry actor alone (no shards known: everything goes through it).
  topic_registry(msg::registry_actor actor) : actor_(std::move(actor)) {}
  /// The registry `actor`, which keeps `counts`, with its `shards` (one
  /// per loop).
  topic_registry(msg::registry_actor actor,
                 std::shared_ptr<const std::vector<msg::registry_actor>> shards,
                 std::shared_ptr<topic_counts> counts)
    : actor_(std::move(actor)), shards_(std::move(shards)),
      counts_(std::move(counts)) {}

  /// The registry's actor: link to it to end with the server
  /// (`self->link_to(reg.actor())`), or send it the messages of
  /// msg::registry_actor.
  const msg::registry_actor& actor() const noexcept { return actor_; }
  /// The registry's actor, where a caf::actor is wanted.
  operator caf::actor() const { return caf::actor_cast<caf::actor>(actor_); }
  /// The shard that keeps a subscriber: `key` is its loop when it is a
  /// connection on one, else its actor id (the shard of its home loop).
  /// It takes the same messages as the registry, for its members only.
  /// The registry itself when there are no shards.
  const msg::registry_actor& shard(std::uint64_t key) const noexcept {
    if (!shards_ || shards_->empty())
      return actor_;
    return (*shards_)[key % shards_->size()];
  }
  /// Every shard (empty when there are none).
  std::span<const msg::registry_actor> shards() const noexcept {
    if (!shards_)
      return {};
    return {shards_->data(), shards_->size()};
  }
  /// Its subscriber counts.
  const std::shared_ptr<topic_counts>& counts() const noexcept {
    return counts_;
  }
  /// True when this names a registry.
  explicit operator bool() const noexcept { return static_cast<bool>(actor_); }

private:
  msg::registry_actor actor_;
  std::shared_ptr<const std::vector<msg::registry_actor>> shards_;
  std::shared_ptr<topic_counts> counts_;
};

/// Publishes `pub` to `topic` through the shards of `registry` (through
/// its actor when it has none), from anywhere: the shard of `origin` (a
/// loop) passes it on to the Redis bridge, if any, and every shard to its
/// members. A publisher that keeps its `origin` keeps its order. A
/// connection's publishes that its thread still holds (see
/// connection_core::publish) go out first.
void publish(const topic_registry& registry, std::string_view topic,
             msg::publication pub, std::size_t origin = 0);
/// Publishes several, in order, as one message to each shard.
void publish(const topic_registry& registry, std::string_view topic,
             msg::publication_batch pubs, std::size_t origin = 0);

/// Subscribes `who` (any actor) to `topic`; it then receives
/// `msg::delivery` messages. Safe from any thread. Like a connection's
/// subscribe, it goes straight to the shard of `who` and is counted from
/// the moment of the call: subscriber_count includes it, and a server
/// publish to `topic` made after it returns is not skipped for want of
/// subscribers while the subscription is still on its way. (Subscribing an
/// actor that already is a member counts it twice until its shard has the
/// message.)
void subscribe(const topic_registry& registry, std::string topic,
               const caf::actor& who);
/// Unsubscribes `who` from `topic`. Safe from any thread. Not counted on
/// its way (this side cannot know whether `who` is a member): `who` counts
/// until its shard has the message.
void unsubscribe(const topic_registry& registry, std::string topic,
                 const caf::actor& who);
/// The same through the registry's actor (which passes it to the shard).
void unsubscribe(const caf::actor& registry, std::string topic,
                 const caf::actor& who);
/// Publishes text to `topic` from anywhere (an actor, a timer, another
/// thread), leaving out `exclude` if given.
void publish_text(const topic_registry& registry, std::string topic,
                  std::string_view text, caf::actor_addr exclude = {});
/// Publishes binary data to `topic` from anywhere.
void publish_binary(const topic_registry& registry, std::string topic,
                    std::span<const std::byte> data,
                    caf::actor_addr exclude = {});
/// The same through the registry's actor (one hop more: it passes the
/// publish to the shards).
void publish_text(const caf::actor& registry, std::string topic,
                  std::string_view text, caf::actor_addr exclude = {});
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

/// Spawns a topic registry (its messages: msg::registry_actor) with
/// `shards` shards (0: one per loop of `sys`, one without loops, as in
/// tests; a subscriber that is no connection on a loop goes to shard
/// `id % shards`). A bridge
/// attached to the shards gets `(join_atom, topic)` from a shard when the
/// topic gets its first subscriber there, `(leave_atom, topic)` when its
/// last one there leaves (so the topic has local subscribers while joins
/// outnumber leaves) and a copy of every local publish.
topic_registry spawn_topic_registry(caf::actor_system& sys,
                                    std::shared_ptr<topic_counts> counts,
                                    topic_options opts = {},
                                    std::size_t shards = 0);

} // namespace herald

namespace herald::detail {

/// The loop a shard or topic actor runs on (chosen when it is spawned);
/// io_service::no_loop for every other actor. For the loop scheduler.
std::size_t topic_actor_loop(const caf::abstract_actor* self) noexcept;

/// For a connection on the loop of `shard`: when the shard is idle there
/// (nothing queued, not running), joins `who` to `topic` (who announces its
/// exit) or takes its exit at once, as the message would be handled next on
/// this thread. False: nothing done; send the message. `ctx`: the caller's
/// execution unit, for what the shard sends meanwhile.
bool join_now(const msg::registry_actor& shard, const std::string& topic,
              const caf::actor& who, caf::execution_unit* ctx);
bool exit_now(const msg::registry_actor& shard, const caf::actor_addr& who,
              caf::execution_unit* ctx);

} // namespace herald::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::topic_registry)
