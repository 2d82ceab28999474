// The runtime: the actor system (CAF) and the event loops (Asio) that
// servers share; the loops are the actor system's scheduler. One per
// process is typical.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "herald/net/io.hpp"

namespace herald {

class server_base;

/// How a server stops (`server.stop(mode, deadline)`).
enum class stop_mode {
  /// Stop accepting; open connections go on until they end (Bun's
  /// `server.stop()`); those still open at the deadline get 1001.
  graceful,
  /// Stop accepting and close every connection with 1001 now (Bun's
  /// `server.stop(true)`).
  immediate,
};

/// Options of a runtime.
struct runtime_options {
  /// Event loops, each a thread that runs its own sockets and actors
  /// (CAF's scheduler workers); 0: usable_cpus().
  std::size_t worker_threads = 0;
  /// Keep freed heap memory for reuse instead of handing it back to the
  /// system at once (glibc: trim threshold 64 MiB, allocations up to 1 MiB
  /// from the heap). A busy server frees and reallocates the same
  /// megabytes all the time; with glibc's default thresholds they are
  /// returned and faulted in again (bench/README.md has the cost). False
  /// leaves the process's malloc settings alone (as does GLIBC_TUNABLES
  /// naming either threshold).
  bool tune_allocator = true;
  /// Hand freed heap back to the system when the process goes quiet
  /// (glibc's malloc_trim): after a burst (thousands of handshakes, a
  /// fan-out of large messages) freed memory sits in holes between live
  /// allocations, where no threshold returns it. Every `release_check` a
  /// thread reads the process's CPU time; the first quiet period (under 2%
  /// of one core) after a busy one trims once. Busy processes are left
  /// alone, so what `tune_allocator` saves is not undone. Zero: never.
  std::chrono::milliseconds release_check{1000};
  /// On the first SIGINT/SIGTERM `run` stops every server gracefully with
  /// this deadline (then the connections left get 1001); a second signal
  /// stops them at once. Zero: 1001 at the first signal.
  std::chrono::milliseconds stop_deadline{10000};
};

/// The CPUs this process may run on: those of its affinity mask (taskset,
/// a cpuset), capped by its cgroup's CPU quota rounded up (a container's CPU
/// limit: cgroup v2 cpu.max or v1 cpu.cfs_quota_us); at least 1. A loop
/// per core it cannot use would only take turns with the others.
std::size_t usable_cpus();

namespace detail {

/// CPUs a quota of `quota` per `period` allows, rounded up; 0: no limit
/// (negative, zero or missing).
std::size_t cpus_of_quota(long long quota, long long period) noexcept;
/// CPUs a cgroup v2 `cpu.max` text allows ("max 100000": 0, no limit;
/// "150000 100000": 2); 0 when it is no such text.
std::size_t cpus_of_cpu_max(std::string_view text) noexcept;

} // namespace detail

/// Owns the actor system and the event loops.
class runtime {
public:
  /// Starts the event loops and the actor system.
  explicit runtime(runtime_options opts = {});
  /// Accepts (and ignores) the program's arguments, for symmetry with Bun.
  runtime(int, char**) : runtime(runtime_options{}) {}
  /// Stops all servers, then the actor system and the event loops.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// The actor system (spawn your own actors here).
  caf::actor_system& system() noexcept { return *sys_; }
  /// The event loops.
  net::io_service& io() noexcept { return *io_; }

  /// Serves until every server has stopped, then runs the shutdown hooks.
  /// SIGHUP reloads the TLS certificates of every server with TLS (see
  /// server<T>::reload_tls).
  /// The first SIGINT or SIGTERM stops the servers gracefully (see
  /// runtime_options::stop_deadline), a second one at once; `stop()` stops
  /// them at once. Without servers it returns at a signal or `stop()`.
  void run();
  /// Stops every server at once and makes `run` return once they are
  /// stopped (safe from any thread and from handlers).
  void stop();
  /// Registers work to do at shutdown.
  void on_shutdown(std::function<void()> fn);
  /// Registers a server that `run` waits for and signals stop (serve()
  /// does this).
  void add_server(std::weak_ptr<server_base> srv);

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<net::io_service> io_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool shut_down_ = false;
  std::vector<std::function<void()>> shutdown_hooks_;
  std::vector<std::weak_ptr<server_base>> servers_;
  std::chrono::milliseconds stop_deadline_;
  // Stops every live server (not under mtx_).
  void stop_servers(stop_mode mode);
  // True when every registered server has stopped (under mtx_).
  bool servers_stopped() const;
  // The thread that hands back free heap (see release_check).
  std::thread releaser_;
  std::condition_variable releaser_cv_;
  bool releaser_stop_ = false;
  void shutdown();
  void release_loop(std::chrono::milliseconds period);
};

} // namespace herald
