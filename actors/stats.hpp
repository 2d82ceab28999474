// Server-wide counters for metrics. Connection actors add to them in
// batches (once per read; what they write, once per batch of their loop),
// so the hot path does not contend on them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "herald/net/redis.hpp"
#include "herald/net/tls.hpp"

namespace herald {

/// Counters of one server; every member is safe to read from any thread.
/// Cross-node delivery through Redis: the members of net::redis_counters
/// (`cross_node_sent`, `cross_node_received`, `cross_node_dropped`,
/// `redis_connected`, `redis_outages`; zero without `redis`).
struct server_stats : net::redis_counters {
  /// Connections open now.
  std::atomic<std::int64_t> open_connections{0};
  /// Connections accepted (upgraded) since start.
  std::atomic<std::uint64_t> connections_total{0};
  /// Messages received from clients.
  std::atomic<std::uint64_t> messages_in{0};
  /// Messages written to clients (sends and deliveries).
  std::atomic<std::uint64_t> messages_out{0};
  /// Payload bytes received from clients.
  std::atomic<std::uint64_t> bytes_in{0};
  /// Frame bytes handed to sockets.
  std::atomic<std::uint64_t> bytes_out{0};
  /// Messages dropped because a connection was over its backpressure limit
  /// or already closing.
  std::atomic<std::uint64_t> dropped{0};
  /// Messages over a connection's rate limit (dropped, or the cause of a
  /// 1008 close).
  std::atomic<std::uint64_t> rate_limited{0};
  /// Subscriptions refused at a connection's `max_subscriptions`.
  std::atomic<std::uint64_t> subscriptions_refused{0};
  /// Of `dropped`, those dropped because the connection was over its
  /// backpressure limit (the rest went to connections already closing).
  std::atomic<std::uint64_t> dropped_over_limit{0};
  /// Closes by code: index code - 1000 for 1000..1015, [16] for the rest.
  std::array<std::atomic<std::uint64_t>, 17> closes{};
  /// HTTP requests answered without an upgrade.
  std::atomic<std::uint64_t> http_requests{0};
  /// Upgrades refused (bad handshakes, limits).
  std::atomic<std::uint64_t> upgrades_refused{0};
  /// Messages compressed (permessage-deflate); a publication compressed
  /// once for many subscribers counts once.
  std::atomic<std::uint64_t> deflated{0};

  /// TLS connections open now, handshakes and reloads (zero without
  /// `tls`).
  net::tls_counters tls;

  /// Counts one close with `code`.
  void count_close(int code) noexcept {
    auto i = (code >= 1000 && code <= 1015) ? code - 1000 : 16;
    closes[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  }
};

} // namespace herald
