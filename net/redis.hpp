// A Redis pub/sub link on the runtime's loop 0: two hiredis async connections
// (one for PUBLISH, one in subscriber mode, as Redis requires) driven by the
// runtime's Asio loop, with reconnection and resubscription. Every
// connection logs in (AUTH) and selects its database (SELECT) before
// anything else, also after each reconnection. Only net/redis.cpp sees
// hiredis and Asio.
//
// Delivery is at most once: while the link is down, publishes are dropped
// (and counted), not queued, and a node misses what other nodes publish
// until its subscriptions are back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/net/io.hpp"
#include "herald/net/redis_url.hpp"

namespace herald::net {

/// Counters of cross-node delivery; every member is safe to read from any
/// thread. A link writes all but `cross_node_received`, which its user
/// counts (the server's counters, server_stats, include these).
struct redis_counters {
  /// Messages published to Redis and acknowledged by it.
  std::atomic<std::uint64_t> cross_node_sent{0};
  /// Messages from other nodes published to this node's topics.
  std::atomic<std::uint64_t> cross_node_received{0};
  /// Messages that could not cross nodes: published while Redis was
  /// unreachable, or lost with a connection before Redis answered.
  std::atomic<std::uint64_t> cross_node_dropped{0};
  /// 1 while both Redis connections are up, else 0.
  std::atomic<std::int64_t> redis_connected{0};
  /// Outages: times the node lost Redis (or could not reach it at start).
  std::atomic<std::uint64_t> redis_outages{0};
};

/// Settings of a link.
struct redis_link_options {
  /// The server, the credentials and the database.
  redis_endpoint endpoint;
  /// First delay before reconnecting; doubles per failed attempt.
  std::chrono::milliseconds reconnect_min{100};
  /// Longest delay between attempts.
  std::chrono::milliseconds reconnect_max{2000};
  /// An attempt whose connections are not up and answering PING by then
  /// counts as failed. While up, a PING unanswered for 5 s counts as a
  /// lost connection.
  std::chrono::milliseconds connect_timeout{2000};
};

/// Called on loop 0 for every pub/sub message (channel, payload).
using redis_message_fn =
  std::function<void(std::string_view, std::span<const std::byte>)>;

/// One PUBLISH: channel and payload.
using redis_publication = std::pair<std::string, std::string>;

/// A link to one Redis server. Every member may be called from any thread;
/// the work happens on loop 0, in call order. Channel names are scoped by
/// the endpoint's database: on Redis a channel C is
/// `endpoint.channel_scope() + C`, and `on_message` sees C.
class redis_link {
public:
  virtual ~redis_link() = default;
  /// Subscribes to `channel` now (when connected) and after every
  /// reconnection, until `unsubscribe`.
  virtual void subscribe(std::string channel) = 0;
  /// Leaves `channel`.
  virtual void unsubscribe(std::string channel) = 0;
  /// Publishes each message in order; dropped (and counted) while down.
  virtual void publish(std::vector<redis_publication> batch) = 0;
  /// Closes both connections and stops reconnecting; waits until that is
  /// done on loop 0 (call it before the loops stop).
  virtual void close() = 0;
  /// Closes as close() does, without waiting: `done` runs once the link is
  /// closed (on loop 0), or when loop 0 drops the job without running it.
  virtual void close(std::function<void()> done) = 0;
};

/// Starts connecting (in the background, retrying with backoff). Counters
/// go to `counters`; messages to `on_message`.
std::shared_ptr<redis_link>
start_redis_link(io_service& io, redis_link_options opts,
                 std::shared_ptr<redis_counters> counters,
                 redis_message_fn on_message);

} // namespace herald::net
