// The runtime: the actor system (CAF) and the I/O loop (Asio) that servers
// share. One per process is typical.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "herald/net/io.hpp"

namespace herald {

/// Options of a runtime.
struct runtime_options {
  /// CAF scheduler threads; 0 picks the number of cores.
  std::size_t worker_threads = 0;
  /// Keep freed heap memory for reuse instead of handing it back to the
  /// system at once (glibc: trim threshold 64 MiB, allocations up to 1 MiB
  /// from the heap). A busy server frees and reallocates the same
  /// megabytes all the time; with glibc's default thresholds they are
  /// returned and faulted in again, about 5% of the CPU of a fan-out of
  /// 4 KiB messages. False leaves the process's malloc settings alone
  /// (as does GLIBC_TUNABLES naming either threshold).
  bool tune_allocator = true;
  /// Use CAF's own idle polling of scheduler threads (see runtime.cpp:
  /// Herald skips its 25 ms of 50 us polls before an idle thread sleeps).
  bool caf_default_polling = false;
  /// Hand freed heap back to the system when the process goes quiet
  /// (glibc's malloc_trim): after a burst (thousands of handshakes, a
  /// fan-out of large messages) freed memory sits in holes between live
  /// allocations, where no threshold returns it. Every `release_check` a
  /// thread reads the process's CPU time; the first quiet period (under 2%
  /// of one core) after a busy one trims once. Busy processes are left
  /// alone, so what `tune_allocator` saves is not undone. Zero: never.
  std::chrono::milliseconds release_check{1000};
};

/// Owns the actor system and the I/O thread.
class runtime {
public:
  /// Starts the actor system and the I/O thread.
  explicit runtime(runtime_options opts = {});
  /// Accepts (and ignores) the program's arguments, for symmetry with Bun.
  runtime(int, char**) : runtime(runtime_options{}) {}
  /// Stops all servers, then the I/O thread and the actor system.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// The actor system (spawn your own actors here).
  caf::actor_system& system() noexcept { return *sys_; }
  /// The I/O service.
  net::io_service& io() noexcept { return *io_; }

  /// Blocks until SIGINT or SIGTERM arrives or `stop` is called, then runs
  /// the shutdown hooks (servers close their connections with 1001).
  void run();
  /// Makes `run` return (safe from any thread and from handlers).
  void stop();
  /// Registers work to do at shutdown (servers register themselves).
  void on_shutdown(std::function<void()> fn);

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<net::io_service> io_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool shut_down_ = false;
  std::vector<std::function<void()>> shutdown_hooks_;
  // The thread that hands back free heap (see release_check).
  std::thread releaser_;
  std::condition_variable releaser_cv_;
  bool releaser_stop_ = false;
  void shutdown();
  void release_loop(std::chrono::milliseconds period);
};

} // namespace herald
