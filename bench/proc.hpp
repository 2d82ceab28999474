// What the load clients read of a process from /proc and getrusage: the
// server's CPU time and memory, and their own CPU time.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

namespace herald::bench {

// CPU time of a process in seconds (utime and stime from /proc/PID/stat):
// user is the process's own code, system the kernel's work on its behalf
// (for a server: mostly copying into sockets and TCP, on loopback also the
// receiving side's TCP). Both -1 if unknown.
struct cpu_times {
  double user = -1;
  double system = -1;
  bool known() const { return user >= 0; }
  double total() const { return known() ? user + system : -1; }
};

inline cpu_times process_cpu(int pid) {
  if (pid <= 0)
    return {};
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string s{std::istreambuf_iterator<char>{in}, {}};
  auto close = s.rfind(')');
  if (close == std::string::npos)
    return {};
  std::istringstream rest{s.substr(close + 2)};
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    else if (i == 15)
      stime = std::stoull(field);
  }
  auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / tick, static_cast<double>(stime) / tick};
}

// A KiB field of /proc/PID/status ("VmRSS:", "VmHWM:"), -1 if unknown.
inline long process_status_kib(int pid, const std::string& key) {
  if (pid <= 0)
    return -1;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0)
      return std::strtol(line.c_str() + key.size(), nullptr, 10);
  return -1;
}

// Resident memory of a process in KiB (VmRSS), -1 if unknown.
inline long process_rss_kib(int pid) {
  return process_status_kib(pid, "VmRSS:");
}

// This process's CPU time (user + system) in seconds.
inline double self_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

} // namespace herald::bench
