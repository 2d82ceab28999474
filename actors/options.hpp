// Settings of a server that are not about WebSockets themselves (those are
// websocket_options, actors/socket.hpp): joining instances through Redis.
#pragma once

#include <chrono>
#include <string>

namespace herald {

/// Joining instances through Redis pub/sub (`serve_options<T>::redis`).
struct redis_options {
  /// "redis://[user:password@]host[:port][/db]": credentials
  /// percent-encoded, ":password@" for Redis's default user, an IPv6 host
  /// in brackets, port 6379 and database 0 when left out. Nodes on
  /// different databases share no topics. Empty: no Redis, the server is
  /// one node on its own.
  std::string url;
  /// Redis channel of topic T: channel_prefix + T. Nodes that should share
  /// topics use the same prefix (and Redis).
  std::string channel_prefix = "herald:";
  /// First delay before reconnecting after a failure; doubles per failed
  /// attempt up to `reconnect_max`.
  std::chrono::milliseconds reconnect_min{100};
  /// Longest delay between reconnection attempts.
  std::chrono::milliseconds reconnect_max{2000};
};

} // namespace herald
