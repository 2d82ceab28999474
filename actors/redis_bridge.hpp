// Topics shared across Herald instances through Redis pub/sub.
//
// Each node has a bridge actor attached to its topic registry's shards.
// Each shard tells it when a topic gets its first subscriber there and
// loses its last one (the bridge SUBSCRIBEs the Redis channel prefix + topic
// when the first shard joins and UNSUBSCRIBEs it when the last one leaves),
// and every local publish comes to it from one shard, which it sends to Redis
// once, wrapped in an envelope that names the origin node. Messages arriving
// from Redis with a foreign node id are published to the local topic (no
// sender to exclude: the sender is on another node); the origin drops its
// own, since it delivered them locally already.
//
// Guarantee: at most once across nodes, in order per publisher while Redis
// stays connected. Nothing is queued during an outage: local delivery goes
// on, cross-node messages are dropped and counted (server_stats), and the
// node reconnects and resubscribes by itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "herald/actors/options.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/io.hpp"

namespace herald {

struct server_stats;

namespace net {
class redis_link;
} // namespace net

/// The envelope of a message on Redis: 'H', version 1, flags (bit 0
/// binary, bit 1 compress), the origin node id (8 bytes, big endian), then
/// the payload as is. The sender's exclusion is local to the origin, so it
/// is not sent.
namespace redis_envelope {

/// Size of the envelope's header.
inline constexpr std::size_t header_size = 11;

/// A decoded envelope; `payload` points into the decoded bytes.
struct contents {
  /// The node that published.
  std::uint64_t node = 0;
  /// Binary (true) or text message.
  bool binary = false;
  /// The publisher asked for compression.
  bool compress = false;
  /// The message as published.
  std::span<const std::byte> payload;
};

/// Wraps a message.
std::string encode(std::uint64_t node, bool binary, bool compress,
                   std::span<const std::byte> payload);
/// Unwraps a message; nullopt when it is not a Herald envelope.
std::optional<contents> decode(std::span<const std::byte> bytes);

} // namespace redis_envelope

/// A running bridge: its actor, its Redis link and this node's id.
struct redis_bridge {
  /// The bridge actor (linked to the registry: it ends with it).
  msg::bridge_actor actor;
  /// The connections to Redis; `close()` it before the I/O loop stops.
  std::shared_ptr<net::redis_link> link;
  /// This node's id in envelopes (random per process).
  std::uint64_t node_id = 0;
};

/// Starts connecting to `opts.url` (in the background; an unreachable
/// Redis, or one that refuses the credentials, is retried) and attaches a
/// bridge to the shards of `registry` (before this returns, in their
/// mailboxes ahead of anything sent to them later). Throws std::invalid_argument when the URL is
/// malformed (its message shows the URL without the password).
redis_bridge start_redis_bridge(caf::actor_system& sys, net::io_service& io,
                                const redis_options& opts,
                                const topic_registry& registry,
                                std::shared_ptr<server_stats> stats);

/// The bridge actor alone: it tells `link` what to SUBSCRIBE, UNSUBSCRIBE
/// and PUBLISH (channels `prefix + topic`, envelopes naming `node`) and
/// ends with `registry`. start_redis_bridge makes it with a real link;
/// attach it to the shards with `msg::bridge_atom`.
msg::bridge_actor spawn_redis_bridge(caf::actor_system& sys,
                                     std::shared_ptr<net::redis_link> link,
                                     std::string prefix, std::uint64_t node,
                                     const msg::registry_actor& registry);

} // namespace herald
