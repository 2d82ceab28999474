// The idle clock: one actor per server that sends idle ticks to its
// connections.
//
// A connection with an idle timeout needs a tick every half timeout (see
// connection_core::on_tick). Each connection could ask CAF's clock for its
// own delayed message, but that costs two wake-ups of CAF's timer thread per
// connection (schedule, and cancel at exit), and the pending message keeps a
// closed connection's actor alive until it falls due: up to a minute with
// Bun's default timeout, so a server with many short connections holds
// every one of them.
//
// Instead, connections join this clock when they open and leave when they
// stop. It keeps them in order of their next tick, holds one delayed
// message of its own (for the earliest), and ticks each member at exactly
// open + k * period, as the per-connection timer did. It holds weak
// references only: leaving (or being gone) lets the actor go at once.
// Members with the same period (all connections of a server) wait in one
// queue, 16 bytes each, plus a 24-byte map node for the weak reference; a
// member that leaves keeps its queue entry until that falls due.
//
// Its messages: msg::idle_clock_actor (messages/messages.hpp). Members
// receive (tick_atom).
#pragma once

#include <chrono>

#include <caf/actor_system.hpp>

#include "herald/messages/messages.hpp"

namespace herald {

/// Spawns an idle clock (see above). Its wake-ups come at least `min_gap`
/// apart: members due within it of each other are ticked together, late by
/// at most `min_gap`, never early.
msg::idle_clock_actor
spawn_idle_clock(caf::actor_system& sys,
                 caf::timespan min_gap = std::chrono::milliseconds{10});

} // namespace herald
