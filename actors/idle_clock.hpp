// The idle clock: sends idle ticks to connections. Each event loop has one
// for the connections running on it; an actor per server serves those
// spawned elsewhere (tests, the testing kit).
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
// A connection on a loop joins and leaves that loop's clock by direct
// calls, on its own thread (loop_idle_watch, loop_idle_forget), which
// holds a timer of the loop's own: no message, no other thread. The actor
// does the same in its own state, joined and left by messages:
// msg::idle_clock_actor (messages/messages.hpp). Members receive
// (tick_atom).
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

/// Ticks `who` every `period` from now on the calling thread's loop (see
/// above): the idle clock of a connection that runs there, joined and left
/// by direct calls instead of messages. False when the calling thread is
/// no loop (the connection then uses its server's idle clock actor).
bool loop_idle_watch(const caf::actor_addr& who, caf::timespan period);

/// Stops ticking `id` on the calling thread's loop; call it on the loop
/// that watched it.
void loop_idle_forget(caf::actor_id id);

} // namespace herald
