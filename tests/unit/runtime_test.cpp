// The runtime hands freed heap back to the system once the process is
// quiet (runtime_options::release_check). Real memory, real threads: the
// figures are the process's resident set from /proc.
#define CAF_SUITE runtime

#include <caf/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include <sched.h>
#include <unistd.h>

#include <herald/actors/runtime.hpp>

using namespace std::chrono_literals;

namespace {

long resident_kib() {
  long pages = 0, resident = 0;
  if (auto* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// 32 MiB of 1 KiB blocks, written to, of which every 16th stays: what is
// freed lies in 15 KiB holes between live blocks, where glibc's trim
// threshold never returns it (only the top of the heap is given back).
struct fragmented_heap {
  static constexpr std::size_t blocks = 32 * 1024;
  std::vector<char*> kept;

  fragmented_heap() {
    std::vector<char*> all(blocks);
    for (auto& p : all) {
      p = static_cast<char*>(std::malloc(1000));
      for (std::size_t i = 0; i < 1000; i += 64)
        p[i] = 1;
    }
    for (std::size_t i = 0; i < blocks; ++i) {
      if (i % 16 == 15)
        kept.push_back(all[i]);
      else
        std::free(all[i]);
    }
  }
  ~fragmented_heap() {
    for (auto* p : kept)
      std::free(p);
  }
};

// Makes a fragmented heap, then a runtime with `release_check`, and waits
// up to `limit` for the resident set to fall by 16 MiB (about 24 of the
// 30 MiB freed lie in whole free pages). Returns {before, lowest} in KiB.
std::pair<long, long> fragment_and_wait(std::chrono::milliseconds release_check,
                                        std::chrono::milliseconds limit) {
  herald::runtime_options opts;
  opts.release_check = release_check;
  fragmented_heap heap;
  auto before = resident_kib();
  herald::runtime rt{opts};
  auto low = resident_kib();
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (low > before - 16 * 1024
         && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    low = std::min(low, resident_kib());
  }
  CAF_MESSAGE("resident " << before << " KiB -> " << low << " KiB");
  return {before, low};
}

} // namespace

CAF_TEST(freed heap is returned once the process is quiet) {
  auto [before, low] = fragment_and_wait(100ms, 5s);
  CAF_CHECK_LESS_OR_EQUAL(low, before - 16 * 1024);
}

CAF_TEST(without release checks freed heap stays resident) {
  // The counterpart of the test above: its drop is the runtime's doing,
  // not glibc's own.
  auto [before, low] = fragment_and_wait(0ms, 1500ms);
  CAF_CHECK_GREATER(low, before - 16 * 1024);
}

CAF_TEST(cpu quotas round up and no limit counts as none) {
  using herald::detail::cpus_of_cpu_max;
  using herald::detail::cpus_of_quota;
  CAF_CHECK_EQUAL(cpus_of_cpu_max("max 100000\n"), 0u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max("100000 100000\n"), 1u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max("150000 100000\n"), 2u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max("50000 100000"), 1u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max(""), 0u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max("abc 100000"), 0u);
  CAF_CHECK_EQUAL(cpus_of_cpu_max("100000 0"), 0u);
  CAF_CHECK_EQUAL(cpus_of_quota(-1, 100000), 0u); // v1: no limit
  CAF_CHECK_EQUAL(cpus_of_quota(400000, 100000), 4u);
}

CAF_TEST(the default loop count follows the cpus the process may use) {
  cpu_set_t all;
  CPU_ZERO(&all);
  CAF_REQUIRE_EQUAL(::sched_getaffinity(0, sizeof(all), &all), 0);
  auto n = herald::usable_cpus();
  CAF_CHECK_GREATER_OR_EQUAL(n, 1u);
  CAF_CHECK_LESS_OR_EQUAL(n, static_cast<std::size_t>(CPU_COUNT(&all)));
  // On a thread allowed one CPU (as under `taskset -c 0`): one loop.
  std::size_t pinned = 0, loops = 0;
  std::thread t{[&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &all)) {
        CPU_SET(i, &one);
        break;
      }
    if (::sched_setaffinity(0, sizeof(one), &one) != 0)
      return;
    pinned = herald::usable_cpus();
    herald::runtime rt;
    loops = rt.io().size();
  }};
  t.join();
  CAF_CHECK_EQUAL(pinned, 1u);
  CAF_CHECK_EQUAL(loops, 1u);
}
