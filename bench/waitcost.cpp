// The kernel's cost of the ways an event loop can wait for a socket to be
// readable again, per call, on idle loopback TCP sockets registered with
// epoll as Asio registers them (EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP |
// EPOLLET):
//
//   mod    epoll_ctl(EPOLL_CTL_MOD) with the same events: what Asio does for
//          an async_wait queued on an empty operation queue
//   recv   a read that fails with EAGAIN: a speculative read (Asio's
//          async_read_some when the socket saw an event since its last read)
//   peek   the same with MSG_PEEK
//   wait0  epoll_wait with a timeout of 0 and nothing ready: what a reactor
//          nested in another pays per turn
//
// The calls go round `--conns` sockets, so that each touches a socket the
// one before did not, as a loop's handshakes do. Prints the system and user
// CPU per call. See bench/README.md, "one loop meets the
// handshake targets, two do not".
//
//   herald-bench-waitcost [--conns N] [--calls N] [--rounds N]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include <herald/app/cli/options.hpp>

#include "loopback.hpp"

namespace {

using herald::bench::cpu_ns;
using herald::bench::die;
using herald::bench::listen_loopback;

struct options {
  int conns = 1000;
  long calls = 2'000'000;
  int rounds = 3;
};

options parse(int argc, char** argv) {
  options o;
  herald::cli::options opts{"herald-bench-waitcost",
                            "The kernel's cost of a socket wait "
                            "(bench/README.md)."};
  opts.add("conns", "N", o.conns, "idle connections the calls go round").min(1);
  opts.add("calls", "N", o.calls, "calls per kind and round").min(1);
  opts.add("rounds", "N", o.rounds, "rounds of every kind").min(1);
  opts.parse_or_exit(argc, argv);
  return o;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(2 * o.conns + 16)) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 2 * o.conns + 16);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  sockaddr_in addr{};
  int l = listen_loopback(4096, addr);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLET;
  std::vector<int> clients;
  std::vector<int> served;
  for (int i = 0; i < o.conns; ++i) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0
        || connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      die("connect");
    int s = accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
    if (s < 0)
      die("accept");
    ev.data.fd = s;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
      die("epoll_ctl");
    clients.push_back(c);
    served.push_back(s);
  }
  epoll_event got[64];
  char byte = 0;
  struct kind {
    const char* name;
    std::function<void(int)> call;
  };
  std::vector<kind> kinds{
    {"mod",
     [&](int s) {
       ev.data.fd = s;
       epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
     }},
    {"recv", [&](int s) { (void)recv(s, &byte, 1, MSG_DONTWAIT); }},
    {"peek", [&](int s) { (void)recv(s, &byte, 1, MSG_DONTWAIT | MSG_PEEK); }},
    {"wait0", [&](int) { (void)epoll_wait(ep, got, 64, 0); }},
  };
  std::printf("%-6s %10s %10s %8s\n", "kind", "sys ns", "user ns", "round");
  for (int r = 0; r < o.rounds; ++r) {
    for (auto& k : kinds) {
      // A MOD reports nothing new on an idle socket, but drain the ready
      // list anyway so that every kind starts alike.
      while (epoll_wait(ep, got, 64, 0) > 0) {
      }
      rusage a{};
      rusage b{};
      getrusage(RUSAGE_SELF, &a);
      std::size_t i = 0;
      for (long n = 0; n < o.calls; ++n) {
        k.call(served[i]);
        if (++i == served.size())
          i = 0;
      }
      getrusage(RUSAGE_SELF, &b);
      auto per = [&](const timeval& x, const timeval& y) {
        return (cpu_ns(y) - cpu_ns(x)) / static_cast<double>(o.calls);
      };
      std::printf("%-6s %10.0f %10.0f %8d\n", k.name,
                  per(a.ru_stime, b.ru_stime), per(a.ru_utime, b.ru_utime),
                  r + 1);
    }
  }
  for (auto s : served)
    close(s);
  for (auto c : clients)
    close(c);
  close(ep);
  close(l);
  return 0;
}
