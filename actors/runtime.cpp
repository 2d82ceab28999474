#include "herald/actors/runtime.hpp"

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <sched.h>
#include <unistd.h>

#include <sys/resource.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <caf/all.hpp>

#include "herald/actors/loop_scheduler.hpp"
#include "herald/actors/server_core.hpp"
#include "herald/net/log.hpp"

namespace herald {

namespace detail {

std::size_t cpus_of_quota(long long quota, long long period) noexcept {
  if (quota <= 0 || period <= 0)
    return 0;
  return static_cast<std::size_t>((quota + period - 1) / period);
}

std::size_t cpus_of_cpu_max(std::string_view text) noexcept {
  // "<quota|max> <period>"
  auto sp = text.find(' ');
  if (sp == std::string_view::npos)
    return 0;
  auto number = [](std::string_view s, long long& out) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
      s.remove_suffix(1);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size() && !s.empty();
  };
  long long quota = 0, period = 0;
  if (!number(text.substr(sp + 1), period))
    return 0;
  if (text.substr(0, sp) == "max" || !number(text.substr(0, sp), quota))
    return 0;
  return cpus_of_quota(quota, period);
}

} // namespace detail

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream out;
  out << in.rdbuf();
  return in ? out.str() : std::string{};
}

long long read_number(const std::string& path) {
  std::ifstream in{path};
  long long n = -1;
  in >> n;
  return in ? n : -1;
}

// The smallest CPU quota on the way from the process's cgroup to the root
// (a parent's limit holds for its children); 0: none.
std::size_t cgroup_cpu_limit() {
  std::size_t limit = 0;
  auto take = [&](std::size_t n) {
    if (n > 0 && (limit == 0 || n < limit))
      limit = n;
  };
  std::ifstream in{"/proc/self/cgroup"};
  for (std::string line; std::getline(in, line);) {
    // "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1).
    auto a = line.find(':');
    auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos)
      continue;
    auto controllers = line.substr(a + 1, b - a - 1);
    auto path = line.substr(b + 1);
    bool v2 = controllers.empty();
    bool v1_cpu = false;
    for (std::size_t i = 0; !v2 && i <= controllers.size();) {
      auto j = std::min(controllers.find(',', i), controllers.size());
      v1_cpu = v1_cpu || controllers.compare(i, j - i, "cpu") == 0;
      i = j + 1;
    }
    if (!v2 && !v1_cpu)
      continue;
    for (;;) {
      if (v2)
        take(detail::cpus_of_cpu_max(
          read_text("/sys/fs/cgroup" + path + "/cpu.max")));
      else
        take(detail::cpus_of_quota(
          read_number("/sys/fs/cgroup/cpu" + path + "/cpu.cfs_quota_us"),
          read_number("/sys/fs/cgroup/cpu" + path + "/cpu.cfs_period_us")));
      if (path.empty() || path == "/")
        break;
      auto slash = path.rfind('/');
      path =
        slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return limit;
}

} // namespace

std::size_t usable_cpus() {
  std::size_t n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0)
    n = static_cast<std::size_t>(CPU_COUNT(&set));
  if (n == 0)
    n = std::thread::hardware_concurrency();
  if (auto limit = cgroup_cpu_limit(); limit > 0 && limit < n)
    n = limit;
  return std::max<std::size_t>(n, 1);
}

namespace {

// The signal handler only counts; run() polls the count with a timed wait
// (nothing else is safe to do inside a signal handler).
std::atomic<int> signal_count{0};
std::atomic<int> last_signal{0};

extern "C" void on_signal(int sig) {
  last_signal.store(sig);
  signal_count.fetch_add(1);
}

// SIGHUP: reload the servers' TLS certificates.
std::atomic<int> hangup_count{0};

extern "C" void on_hangup(int) {
  hangup_count.fetch_add(1);
}

void tune_allocator() {
#if defined(__GLIBC__)
  // Once per process, and not over the user's own choice.
  static const bool done = [] {
    auto* t = std::getenv("GLIBC_TUNABLES");
    if (t
        && (std::strstr(t, "trim_threshold")
            || std::strstr(t, "mmap_threshold")))
      return false;
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    return true;
  }();
  (void)done;
#endif
}

#if defined(__GLIBC__)
// CPU time (user + system) of the whole process so far.
std::chrono::microseconds process_cpu() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) {
    return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec;
  };
  return std::chrono::microseconds{us(ru.ru_utime) + us(ru.ru_stime)};
}

// Resident memory of the process in KiB (0 when unknown).
long resident_kib() {
  long pages = 0, resident = 0;
  if (auto* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}
#endif

} // namespace

runtime::runtime(runtime_options opts) : stop_deadline_(opts.stop_deadline) {
  // Installed here, not in run(): a program that prints its address and
  // then calls run() can get SIGTERM in between; the flag is kept and
  // run() returns at once, shutting down as usual.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_hangup);
  std::signal(SIGPIPE, SIG_IGN);
  if (opts.tune_allocator)
    tune_allocator();
  cfg_.set("logger.file-verbosity", caf::atom("quiet"));
  cfg_.set("logger.console-verbosity", caf::atom("quiet"));
  auto workers = opts.worker_threads;
  if (workers == 0)
    workers = usable_cpus();
  cfg_.set("scheduler.max-threads", workers);
  // The loops come first: they are the scheduler's workers.
  io_ = net::make_io_service(workers);
  cfg_.module_factories.push_back(
    [this](caf::actor_system& sys) { return make_loop_scheduler(sys, *io_); });
  sys_ = std::make_unique<caf::actor_system>(cfg_);
#if defined(__GLIBC__)
  if (opts.release_check.count() > 0)
    releaser_ =
      std::thread{[this, p = opts.release_check] { release_loop(p); }};
#endif
}

runtime::~runtime() {
  shutdown();
  if (releaser_.joinable()) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      releaser_stop_ = true;
    }
    releaser_cv_.notify_all();
    releaser_.join();
  }
  // Order matters. Wait for every actor to finish (the loops run them);
  // then the system, whose scheduler stops the loops and destroys their
  // queued handlers (which hold the last server handles) while the system
  // is still there; then the loops.
  sys_->await_all_actors_done();
  sys_.reset();
  io_.reset();
}

void runtime::on_shutdown(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  shutdown_hooks_.push_back(std::move(fn));
}

void runtime::add_server(std::weak_ptr<server_base> srv) {
  std::lock_guard<std::mutex> guard{mtx_};
  servers_.push_back(std::move(srv));
}

bool runtime::servers_stopped() const {
  for (auto& weak : servers_)
    if (auto srv = weak.lock(); srv && !srv->stopped())
      return false;
  return true;
}

void runtime::stop_servers(stop_mode mode) {
  std::vector<std::shared_ptr<server_base>> live;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& weak : servers_)
      if (auto srv = weak.lock())
        live.push_back(std::move(srv));
  }
  for (auto& srv : live)
    srv->stop(mode, stop_deadline_);
}

void runtime::run() {
  int handled = 0;      // signals acted upon
  int hangups = 0;      // SIGHUPs acted upon
  bool stopped = false; // stop() acted upon
  std::unique_lock<std::mutex> guard{mtx_};
  for (;;) {
    auto signals = signal_count.load();
    if (signals > handled) {
      handled = signals;
      auto graceful = signals == 1;
      HERALD_LOG(info, "received signal " << last_signal.load() << ", "
                                          << (graceful ? "stopping gracefully"
                                                       : "stopping at once"));
      guard.unlock();
      stop_servers(graceful ? stop_mode::graceful : stop_mode::immediate);
      guard.lock();
    }
    if (auto h = hangup_count.load(); h > hangups) {
      hangups = h;
      std::vector<std::shared_ptr<server_base>> live;
      for (auto& weak : servers_)
        if (auto srv = weak.lock(); srv && srv->secure())
          live.push_back(std::move(srv));
      guard.unlock();
      HERALD_LOG(info, "received SIGHUP, "
                         << (live.empty() ? "no TLS server to reload"
                                          : "reloading TLS certificates"));
      for (auto& srv : live)
        srv->reload_tls();
      live.clear();
      guard.lock();
    }
    if (stop_requested_ && !stopped) {
      stopped = true;
      guard.unlock();
      stop_servers(stop_mode::immediate);
      guard.lock();
    }
    auto asked = handled > 0 || stopped;
    if (servers_.empty() ? asked : servers_stopped())
      break;
    cv_.wait_for(guard, std::chrono::milliseconds{100});
  }
  guard.unlock();
  shutdown();
}

void runtime::stop() {
  std::lock_guard<std::mutex> guard{mtx_};
  stop_requested_ = true;
  cv_.notify_all();
}

void runtime::release_loop(std::chrono::milliseconds period) {
#if defined(__GLIBC__)
  auto last = process_cpu();
  auto busy_since_trim = true;
  std::unique_lock<std::mutex> guard{mtx_};
  while (
    !releaser_cv_.wait_for(guard, period, [this] { return releaser_stop_; })) {
    guard.unlock();
    auto now = process_cpu();
    auto used = now - last;
    last = now;
    if (used * 50 > period) {
      busy_since_trim = true;
    } else if (busy_since_trim) {
      busy_since_trim = false;
      auto before = resident_kib();
      ::malloc_trim(0);
      // The trim's own time does not make the next period look busy.
      last = process_cpu();
      HERALD_LOG(debug, "quiet: returned free heap, resident "
                          << before << " -> " << resident_kib() << " KiB");
    }
    guard.lock();
  }
#else
  (void)period;
#endif
}

void runtime::shutdown() {
  std::vector<std::function<void()>> hooks;
  std::vector<std::shared_ptr<server_base>> live;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (shut_down_)
      return;
    shut_down_ = true;
    hooks.swap(shutdown_hooks_);
    for (auto& weak : servers_)
      if (auto srv = weak.lock())
        live.push_back(std::move(srv));
    servers_.clear();
  }
  for (auto& fn : hooks)
    fn();
  // Servers still running stop now; their connections need the I/O
  // thread and the actor system until they are gone.
  for (auto& srv : live)
    srv->stop(stop_mode::immediate, std::chrono::milliseconds{0}).wait();
}

} // namespace herald
