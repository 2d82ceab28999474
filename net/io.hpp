// The I/O side of a runtime: event loops, one Asio io_context per thread.
// Only net/*.cpp see Asio; everything else holds this opaque handle.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace herald::net {

/// Owns N Asio event loops (io_contexts), each run by one thread of its
/// own. A socket belongs to the loop that accepted it; the actor scheduler
/// (actors/loop_scheduler.hpp) runs actors on the same threads.
class io_service {
public:
  /// No loop: the calling thread is not one of the loops.
  static constexpr std::size_t no_loop = static_cast<std::size_t>(-1);

  virtual ~io_service() = default;
  /// Number of loops.
  virtual std::size_t size() const noexcept = 0;
  /// Runs `fn` on loop 0 (the Redis bridge's loop).
  void post(std::function<void()> fn) { post(0, std::move(fn)); }
  /// Runs `fn` on loop `i`.
  virtual void post(std::size_t i, std::function<void()> fn) = 0;
  /// The timers each loop has, one per use.
  enum class timer : unsigned char {
    actor_clock, // actors' timeouts and delayed messages
    idle_clock,  // connections' idle ticks
  };
  /// Calls `fn` on loop `i` at `t`, in place of the wake-up set before on
  /// the same timer; call it on loop i's thread.
  virtual void wake_at(std::size_t i, timer which,
                       std::chrono::steady_clock::time_point t,
                       std::function<void()> fn) = 0;
  /// Stops the loops, joins their threads and destroys the handlers still
  /// queued (idempotent).
  virtual void stop() = 0;
  /// The asio::io_context of loop 0 (for net/*.cpp only).
  void* native() noexcept { return native(0); }
  /// The asio::io_context of loop `i` (for net/*.cpp only).
  virtual void* native(std::size_t i) noexcept = 0;
  /// The loop the calling thread runs (of any io_service), or no_loop.
  static std::size_t current() noexcept;
};

/// Makes an I/O service with `loops` loops (at least one).
std::unique_ptr<io_service> make_io_service(std::size_t loops = 1);

} // namespace herald::net
