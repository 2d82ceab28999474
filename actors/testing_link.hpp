// The testing kit's compiled part (actors/testing.hpp is the kit): one fake
// connection, a real connection actor on a transport with no socket. The
// connection actor and the fake transport stay inside the library.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "herald/actors/hooks.hpp"
#include "herald/actors/socket.hpp"
#include "herald/actors/stats.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/deflate.hpp"
#include "herald/net/frame.hpp"

namespace herald::net {
class fake_transport;
} // namespace herald::net

namespace herald::testing::detail {

/// What the fake connections of a fixture share, as a server's do.
struct shared_parts {
  /// The topic registry (with its counts).
  topic_registry registry;
  /// The server counters.
  std::shared_ptr<server_stats> stats;
  /// The idle clock (see spawn_idle_clock).
  msg::idle_clock_actor idle_clock;
};

/// A connection actor on a fake transport.
class link {
public:
  /// Spawns the connection actor on `sys`, with `hooks`, the subprotocol
  /// chosen at upgrade, the peer's "ip:port" and permessage-deflate when
  /// agreed.
  link(caf::actor_system& sys, const shared_parts& parts,
       std::unique_ptr<connection_hooks> hooks, std::string protocol,
       std::string remote_address, std::optional<net::deflate_params> deflate);
  ~link();
  link(const link&) = delete;
  link& operator=(const link&) = delete;

  /// The connection actor.
  const caf::actor& actor() const noexcept { return actor_; }
  /// Delivers bytes as if read from the socket.
  void feed(std::vector<std::byte> bytes);
  /// The peer vanished (reset, EOF without a close frame).
  void vanish();
  /// Makes writes pile up as if the peer stopped reading.
  void stall();
  /// Writes the backlog and tells the connection.
  void drain();
  /// True once the connection closed its transport.
  bool closed() const noexcept;
  /// Every frame the connection wrote, in order.
  const std::vector<net::frame_ptr>& raw_frames() const noexcept;
  /// The address the transport reports.
  std::string remote_address() const;
  /// The connection's state.
  herald::ready_state ready_state() const;
  /// Topics the connection is subscribed to.
  std::vector<std::string> subscriptions() const;
  /// True when the connection is subscribed to `topic`.
  bool is_subscribed(std::string_view topic) const;
  /// The handle its handlers receive.
  basic_socket& socket() const;

private:
  std::shared_ptr<net::fake_transport> t_;
  caf::actor actor_;
};

/// Spawns an idle clock, as a server has one.
msg::idle_clock_actor spawn_idle_clock(caf::actor_system& sys);

} // namespace herald::testing::detail
