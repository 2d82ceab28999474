#include "herald/net/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace herald {

namespace {

log_level level_from_env() {
  const char* v = std::getenv("HERALD_LOG");
  if (v == nullptr)
    return log_level::info;
  std::string_view s{v};
  if (s == "error")
    return log_level::error;
  if (s == "warn")
    return log_level::warn;
  if (s == "debug")
    return log_level::debug;
  return log_level::info;
}

std::atomic<int>& level() {
  static std::atomic<int> lvl{static_cast<int>(level_from_env())};
  return lvl;
}

} // namespace

void set_log_level(log_level lvl) noexcept {
  level().store(static_cast<int>(lvl), std::memory_order_relaxed);
}

bool log_enabled(log_level lvl) noexcept {
  return static_cast<int>(lvl) <= level().load(std::memory_order_relaxed);
}

void log_line(log_level lvl, std::string_view text) {
  static constexpr const char* names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              now.time_since_epoch())
              .count()
            % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per line keeps lines whole across threads.
  std::fprintf(stderr, "%s.%03dZ %-5s herald: %.*s\n", stamp,
               static_cast<int>(ms), names[static_cast<int>(lvl)],
               static_cast<int>(text.size()), text.data());
}

} // namespace herald
