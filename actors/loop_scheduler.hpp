// CAF's scheduler replaced by the runtime's event loops: an actor runs on
// the thread of its home loop, so a connection reads, handles and writes
// on one thread with no wake-up in between (see README, "Threads, actors
// and ordering").
#pragma once

#include <cstddef>

#include <caf/actor_system.hpp>

#include "herald/net/io.hpp"

namespace herald {

/// Makes the scheduler module for an actor_system_config's
/// module_factories: its workers are the loops of `io`, which must outlive
/// the actor system's start and stay running until the scheduler stops
/// (the scheduler stops them, see loop_scheduler.cpp).
caf::actor_system::module* make_loop_scheduler(caf::actor_system& sys,
                                               net::io_service& io);

/// The home loop of connection actors spawned on the calling thread: the
/// loop that owns their socket (io_service::no_loop elsewhere: they go by
/// actor id like every other actor).
std::size_t spawning_loop() noexcept;

} // namespace herald
