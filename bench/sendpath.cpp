// The kernel's cost of sending the same bytes two ways over loopback TCP:
// copied from user memory (sendmsg with an iovec per frame, as Herald's
// gathered writes do) or as page references (sendfile from a memfd that
// holds the frames: the pages go into the socket buffers and the receiver's
// recv copies them out). No WebSocket, no Herald: one sending process
// writes a ring of pre-built frames to N sockets as fast as they drain, a
// reader process reads them and throws them away. Prints the sender's user
// and system CPU per frame. See bench/README.md, "Ninth round".
//
//   herald-bench-sendpath [--mode copy|sendfile] [--conns N] [--frame BYTES]
//                         [--seconds S] [--batch FRAMES]
#include <arpa/inet.h>
#include <climits>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <herald/app/cli/options.hpp>

#include "loopback.hpp"

namespace {

using herald::bench::cpu_ns;
using herald::bench::die;
using herald::bench::listen_loopback;

struct options {
  std::string mode = "copy";
  int conns = 32;
  std::size_t frame = 4100; // a 4 KiB text message with its 4-byte header
  double seconds = 5;
  std::size_t batch = 128; // frames per call at most
};

options parse(int argc, char** argv) {
  options o;
  herald::cli::options opts{"herald-bench-sendpath",
                            "The kernel's cost of a delivery copied or "
                            "spliced (bench/README.md, \"Ninth round\")."};
  opts
    .add("mode", "MODE", o.mode,
         "copy (sendmsg from user memory) or sendfile (page references)")
    .one_of({"copy", "sendfile"});
  opts.add("conns", "N", o.conns, "sockets written to").min(1);
  opts.add("frame", "BYTES", o.frame, "size of one frame").min(1);
  opts.add("seconds", "S", o.seconds, "how long to send").positive();
  opts.add("batch", "FRAMES", o.batch, "frames per call at most")
    .range(1, IOV_MAX);
  opts.parse_or_exit(argc, argv);
  return o;
}

// The reader: connects `conns` sockets and drains them until they close.
[[noreturn]] void reader(const sockaddr_in& addr, int conns) {
  int ep = epoll_create1(0);
  for (int i = 0; i < conns; ++i) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0
        || connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr)
             != 0)
      die("reader connect");
    fcntl(s, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s;
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  }
  std::vector<char> buf(256 * 1024);
  int open = conns;
  epoll_event evs[64];
  while (open > 0) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; ++i) {
      for (;;) {
        auto r = read(evs[i].data.fd, buf.data(), buf.size());
        if (r > 0)
          continue;
        if (r == 0 || errno != EAGAIN) {
          close(evs[i].data.fd);
          --open;
        }
        break;
      }
    }
  }
  _exit(0);
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  sockaddr_in addr{};
  int ls = listen_loopback(1024, addr);
  pid_t child = fork();
  if (child < 0)
    die("fork");
  if (child == 0)
    reader(addr, o.conns);
  std::vector<int> socks;
  for (int i = 0; i < o.conns; ++i) {
    int s = accept(ls, nullptr, nullptr);
    if (s < 0)
      die("accept");
    fcntl(s, F_SETFL, O_NONBLOCK);
    socks.push_back(s);
  }
  // The ring of frames every socket cycles through: in memory for copy,
  // in a memfd for sendfile (written once, never changed, so pages still
  // referenced by socket buffers never change under them).
  constexpr std::size_t ring_frames = 256;
  std::vector<char> ring(o.frame * ring_frames);
  for (std::size_t i = 0; i < ring.size(); ++i)
    ring[i] = static_cast<char>('a' + i % 26);
  int mfd = memfd_create("herald-sendpath", 0);
  if (mfd < 0
      || write(mfd, ring.data(), ring.size())
           != static_cast<ssize_t>(ring.size()))
    die("memfd");
  int ep = epoll_create1(0);
  for (int i = 0; i < o.conns; ++i) {
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLET;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, socks[static_cast<std::size_t>(i)], &ev);
  }
  std::vector<std::size_t> pos(socks.size(), 0); // offset in the ring
  std::vector<iovec> iov(o.batch);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  auto warmup = std::chrono::duration<double>(1.0);
  auto total = std::chrono::duration<double>(1.0 + o.seconds);
  bool measuring = false;
  rusage r0{};
  clock::time_point m0;
  unsigned long long bytes = 0, calls = 0;
  epoll_event evs[64];
  const bool copy = o.mode == "copy";
  // Sockets with room, served in turns of a few calls each: a socket the
  // reader keeps up with never reports EAGAIN, and must not hold the loop
  // (nor the clock checks) to itself. With edge-triggered events, a socket
  // leaves the list only on EAGAIN, and its next EPOLLOUT brings it back.
  constexpr int calls_per_turn = 4;
  std::vector<std::uint32_t> ready, turn;
  std::vector<bool> queued(socks.size(), false);
  for (;;) {
    auto now = clock::now();
    if (!measuring && now - t0 >= warmup) {
      measuring = true;
      m0 = now;
      bytes = calls = 0;
      getrusage(RUSAGE_SELF, &r0);
    }
    if (now - t0 >= total)
      break;
    int n = epoll_wait(ep, evs, 64, ready.empty() ? 100 : 0);
    for (int k = 0; k < n; ++k) {
      auto i = evs[k].data.u32;
      if (!queued[i]) {
        queued[i] = true;
        ready.push_back(i);
      }
    }
    turn.swap(ready);
    ready.clear();
    for (auto i : turn) {
      int s = socks[i];
      bool drained = false;
      for (int c = 0; c < calls_per_turn && !drained; ++c) {
        std::size_t p = pos[i];
        ssize_t w;
        if (copy) {
          std::size_t nv = 0, off = p;
          while (nv < o.batch && off < ring.size()) {
            auto l = o.frame - off % o.frame;
            iov[nv++] = {ring.data() + off, l};
            off += l;
          }
          msghdr m{};
          m.msg_iov = iov.data();
          m.msg_iovlen = nv;
          w = sendmsg(s, &m, MSG_NOSIGNAL);
        } else {
          off_t off = static_cast<off_t>(p);
          w = sendfile(s, mfd, &off,
                       std::min(ring.size() - p, o.batch * o.frame));
        }
        ++calls;
        if (w <= 0) {
          if (w < 0 && errno != EAGAIN)
            die("send");
          drained = true;
          break;
        }
        bytes += static_cast<unsigned long long>(w);
        pos[i] = (p + static_cast<std::size_t>(w)) % ring.size();
      }
      if (drained)
        queued[i] = false;
      else
        ready.push_back(i);
    }
  }
  rusage r1{};
  getrusage(RUSAGE_SELF, &r1);
  double secs = std::chrono::duration<double>(clock::now() - m0).count();
  for (int s : socks)
    close(s);
  int status = 0;
  waitpid(child, &status, 0);
  double frames = static_cast<double>(bytes) / static_cast<double>(o.frame);
  if (frames <= 0) {
    std::fprintf(stderr, "herald-bench-sendpath: nothing was sent\n");
    return 1;
  }
  std::printf("RESULT mode=%s conns=%d frame=%zu frames_per_s=%.0f "
              "user_ns=%.1f sys_ns=%.1f frames_per_call=%.1f\n",
              o.mode.c_str(), o.conns, o.frame, frames / secs,
              (cpu_ns(r1.ru_utime) - cpu_ns(r0.ru_utime)) / frames,
              (cpu_ns(r1.ru_stime) - cpu_ns(r0.ru_stime)) / frames,
              frames / static_cast<double>(calls));
  return 0;
}
