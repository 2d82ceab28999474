// CAF's scheduler replaced by the runtime's event loops: an actor runs on
// the thread of its home loop, so a connection reads, handles and writes
// on one thread with no wake-up in between (see README, "Threads, actors
// and ordering").
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/intrusive_ptr.hpp>
#include <caf/ref_counted.hpp>
#include <caf/resumable.hpp>

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

/// Calls `fn` at `t` on the calling thread's loop, in place of the wake-up
/// set before there with the same timer; false (and nothing set) when the
/// calling thread is no loop.
bool wake_this_loop_at(net::io_service::timer which,
                       std::chrono::steady_clock::time_point t,
                       std::function<void()> fn);

/// Work for one loop that is no actor (a topic's part of a fan-out for
/// the connections of that loop). Jobs one thread hands to one loop run
/// there in the order handed over.
class loop_job : public caf::ref_counted, public caf::resumable {
public:
  explicit loop_job(std::size_t loop) noexcept : loop_(loop) {}

  /// The loop it runs on.
  std::size_t loop() const noexcept { return loop_; }

  subtype_t subtype() const override { return function_object; }
  resume_result resume(caf::execution_unit* ctx, std::size_t) override {
    run(ctx);
    return done;
  }
  void intrusive_ptr_add_ref_impl() override { ref(); }
  void intrusive_ptr_release_impl() override { deref(); }

protected:
  /// Called once, on the job's loop.
  virtual void run(caf::execution_unit* ctx) = 0;

private:
  std::size_t loop_;
};

/// The number of loops of `sys`'s scheduler; 0 when it has none (tests).
std::size_t loop_count(caf::actor_system& sys) noexcept;

/// The loop `who` runs on when it is a connection actor on one of the
/// loops of `sys`'s scheduler; io_service::no_loop otherwise (other actors,
/// or a system without the loops, as in tests).
std::size_t loop_of(caf::actor_system& sys, const caf::actor& who) noexcept;

/// Hands `job` to its loop (`sys` must run on the loops: see loop_of).
void run_on_loop(caf::actor_system& sys, caf::intrusive_ptr<loop_job> job);

} // namespace herald
