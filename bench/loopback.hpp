// What the programs that measure the kernel's cost on loopback sockets
// (herald-bench-sendpath, herald-bench-waitcost) share.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstdio>
#include <cstdlib>

namespace herald::bench {

[[noreturn]] inline void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

inline double cpu_ns(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) * 1e9
         + static_cast<double>(tv.tv_usec) * 1e3;
}

// A TCP socket listening on 127.0.0.1 at a port the kernel picks; `addr`
// receives its address. Exits on failure.
inline int listen_loopback(int backlog, sockaddr_in& addr) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  addr = sockaddr_in{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || listen(l, backlog) != 0
      || getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    die("listen");
  return l;
}

} // namespace herald::bench
