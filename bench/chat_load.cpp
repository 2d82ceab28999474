// herald-chat-load: a big room of herald-chat, driven by a raw client
// (bench/README.md, "Chat rooms"). One thread, non-blocking sockets, epoll
// and its own RFC 6455 frame parser, no WebSocket library, so the client
// costs little next to the server.
//
//   1. N members (--members, 10,000) join one room, --connect-parallel
//      handshakes at a time. Measured: the time until every member has seen
//      the room at N (a join or members message with count N), and the
//      payload bytes each member received until then.
//   2. --rate chat messages per second (100) for --duration seconds (30),
//      from --senders members in turn (1,000: each sends one every 10 s,
//      far under the chat's limit of 10 per second, 20 at once, also when
//      a delayed client catches up on its schedule). Every member must
//      receive every message once, in order per sender; each delivery's
//      latency is the time from the send to the kernel's receive timestamp
//      of the data (SO_TIMESTAMPNS) and to when the client parsed it (both
//      CLOCK_REALTIME).
//
// With --server-pid: the server's CPU time (utime + stime) over each phase
// and its resident memory (VmRSS) after each, and its peak (VmHWM). The
// last line is `RESULT key=value ...`; exit status 0 only when every
// member joined and every message was delivered.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <herald/app/cli/options.hpp>

#include "proc.hpp"

namespace {

using herald::bench::process_cpu;
using herald::bench::process_rss_kib;
using herald::bench::process_status_kib;
using herald::bench::self_cpu;

struct options {
  int port = 3000;
  int members = 10000;
  std::string room = "load";
  double rate = 100;
  double duration = 30;
  int senders = 1000;
  int server_pid = 0;
  int connect_parallel = 200;
  double timeout = 120;
};

std::int64_t now_ns(clockid_t c = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(c, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// -- latency histogram: 0.1 ms buckets up to 60 s -----------------------------

struct histogram {
  static constexpr std::int64_t bucket_ns = 100000;
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(600001);
  std::uint64_t total = 0;
  void add(std::int64_t ns) {
    auto i = std::clamp<std::int64_t>(ns / bucket_ns, 0,
                                      std::int64_t(counts.size()) - 1);
    ++counts[std::size_t(i)];
    ++total;
  }
  double quantile_ms(double q) const {
    if (total == 0)
      return 0;
    auto want = std::uint64_t(std::ceil(q * double(total)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen >= want)
        return double((i + 1) * bucket_ns) / 1e6;
    }
    return 0;
  }
};

// -- connections --------------------------------------------------------------

struct member {
  int fd = -1;
  bool requested = false; // the upgrade request went out
  bool upgraded = false;
  bool full = false;       // has seen the room at N
  std::uint64_t bytes = 0; // payload bytes received
  std::uint64_t bytes_full = 0;
  std::string in; // unparsed bytes
};

struct client {
  options opt;
  std::vector<member> ms;
  int senders = 1;
  std::vector<std::int64_t> last_seq; // per member and sender
  int ep = -1;
  int joined = 0;     // members that have seen the room at N
  int connecting = 0; // handshakes in flight
  int opened = 0;     // connections made
  std::int64_t full_at = 0;
  bool measuring = false;
  std::uint64_t delivered = 0, bad = 0, errors = 0;
  histogram kernel, parsed;
  std::vector<char> buf = std::vector<char>(256 * 1024);
  // The last join or members event parse_frames saw, and the member's
  // payload bytes up to it.
  std::string_view last_presence;
  std::uint64_t bytes_at_presence = 0;
  alignas(8) char control[256];

  void fail(const char* what) {
    std::fprintf(stderr, "chat_load: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
  }

  void open_one() {
    int i = opened++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
      fail("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(opt.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0
        && errno != EINPROGRESS)
      fail("connect");
    ms[std::size_t(i)].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u32 = std::uint32_t(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ++connecting;
  }

  void send_upgrade(member& m, int i) {
    char req[320];
    int n = std::snprintf(req, sizeof req,
                          "GET /ws?name=u%05d&room=%s HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n",
                          i, opt.room.c_str());
    if (write(m.fd, req, std::size_t(n)) != n)
      fail("write upgrade");
  }

  // A masked text frame (mask 0: the payload goes as it is).
  void send_text(member& m, std::string_view text) {
    std::string f;
    f += char(0x81);
    if (text.size() < 126) {
      f += char(0x80 | text.size());
    } else {
      f += char(0x80 | 126);
      f += char(text.size() >> 8);
      f += char(text.size() & 0xff);
    }
    f.append(4, '\0');
    f += text;
    if (write(m.fd, f.data(), f.size()) != ssize_t(f.size()))
      fail("write message");
  }

  static std::int64_t number_after(std::string_view s, std::string_view key) {
    auto p = s.find(key);
    if (p == std::string_view::npos)
      return -1;
    return std::strtoll(s.data() + p + key.size(), nullptr, 10);
  }

  void on_text(member& m, std::string_view p, std::int64_t kernel_ns,
               std::int64_t read_ns) {
    m.bytes += p.size();
    if (p.starts_with(R"({"type":"message")")) {
      auto t = p.find(R"("text":")");
      if (t == std::string_view::npos) {
        ++bad;
        return;
      }
      char* end = nullptr;
      auto seq = std::strtoll(p.data() + t + 8, &end, 10);
      auto sent = std::strtoll(end, nullptr, 10);
      // In order per sender (messages of different senders to a topic are
      // ordered per sender only), and once.
      auto i = std::size_t(&m - ms.data()) * std::size_t(senders)
               + std::size_t(seq % senders);
      if (seq <= last_seq[i])
        ++bad;
      last_seq[i] = seq;
      ++delivered;
      kernel.add(kernel_ns - sent);
      parsed.add(read_ns - sent);
      return;
    }
    if (p.starts_with(R"({"type":"error")")) {
      ++errors;
      return;
    }
    if (!m.full
        && (p.starts_with(R"({"type":"join")")
            || p.starts_with(R"({"type":"members")"))) {
      last_presence = p;
      bytes_at_presence = m.bytes;
    }
  }

  // Parses whole frames at the front of `d`; returns the bytes used. While
  // the room fills, only the last join or members event of each read is
  // looked at: with nobody leaving, counts only grow, so it is the one that
  // may say N (looking at all 50 million costs the client more than the
  // server).
  std::size_t parse(member& m, const char* d, std::size_t n,
                    std::int64_t kernel_ns, std::int64_t read_ns) {
    last_presence = {};
    auto used = parse_frames(m, d, n, kernel_ns, read_ns);
    if (!last_presence.empty()
        && number_after(last_presence, R"("count":)") == opt.members) {
      m.full = true;
      m.bytes_full = bytes_at_presence;
      if (++joined == opt.members)
        full_at = now_ns();
    }
    return used;
  }

  std::size_t parse_frames(member& m, const char* d, std::size_t n,
                           std::int64_t kernel_ns, std::int64_t read_ns) {
    std::size_t used = 0;
    for (;;) {
      if (n - used < 2)
        return used;
      auto* h = reinterpret_cast<const unsigned char*>(d + used);
      std::size_t len = h[1] & 0x7f, head = 2;
      if (len == 126) {
        if (n - used < 4)
          return used;
        len = (std::size_t(h[2]) << 8) | h[3];
        head = 4;
      } else if (len == 127) {
        if (n - used < 10)
          return used;
        len = 0;
        for (int k = 2; k < 10; ++k)
          len = (len << 8) | h[k];
        head = 10;
      }
      if (n - used < head + len)
        return used;
      if ((h[0] & 0x0f) == 1)
        on_text(m, {d + used + head, len}, kernel_ns, read_ns);
      used += head + len;
    }
  }

  void readable(int i) {
    auto& m = ms[std::size_t(i)];
    // A read that did not fill the buffer took everything there was, and
    // data arriving later raises a new edge: no read that says EAGAIN (one
    // per wake-up, about half the client's syscalls).
    for (bool more = true; more;) {
      iovec v{buf.data(), buf.size()};
      msghdr h{};
      h.msg_iov = &v;
      h.msg_iovlen = 1;
      h.msg_control = control;
      h.msg_controllen = sizeof control;
      auto r = recvmsg(m.fd, &h, 0);
      if (r < 0 && errno == EAGAIN)
        return;
      if (r <= 0) {
        std::fprintf(stderr, "chat_load: member %d lost its connection\n", i);
        std::exit(2);
      }
      more = std::size_t(r) == buf.size();
      auto read_ns = now_ns(CLOCK_REALTIME);
      auto kernel_ns = read_ns;
      for (auto* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts;
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          kernel_ns = std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
        }
      const char* d = buf.data();
      std::size_t n = std::size_t(r);
      if (!m.upgraded) {
        m.in.append(d, n);
        auto e = m.in.find("\r\n\r\n");
        if (e == std::string::npos)
          continue;
        if (m.in.compare(0, 12, "HTTP/1.1 101") != 0) {
          std::fprintf(stderr, "chat_load: member %d refused: %.40s\n", i,
                       m.in.c_str());
          std::exit(2);
        }
        m.upgraded = true;
        --connecting;
        m.in.erase(0, e + 4);
        auto used = parse(m, m.in.data(), m.in.size(), kernel_ns, read_ns);
        m.in.erase(0, used);
        continue;
      }
      if (!m.in.empty()) {
        m.in.append(d, n);
        auto used = parse(m, m.in.data(), m.in.size(), kernel_ns, read_ns);
        m.in.erase(0, used);
      } else {
        auto used = parse(m, d, n, kernel_ns, read_ns);
        if (used < n)
          m.in.assign(d + used, n - used);
      }
    }
  }

  void poll(int timeout_ms) {
    epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int k = 0; k < n; ++k) {
      auto i = int(evs[k].data.u32);
      auto& m = ms[std::size_t(i)];
      if ((evs[k].events & EPOLLOUT) && !m.requested) {
        // Connected: send the upgrade once (EPOLLOUT edges come again).
        m.requested = true;
        send_upgrade(m, i);
      }
      if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        readable(i);
    }
  }

  int run() {
    ms.resize(std::size_t(opt.members));
    senders = std::min(opt.senders, opt.members);
    last_seq.assign(std::size_t(opt.members) * std::size_t(senders), -1);
    ep = epoll_create1(0);
    auto start = now_ns();
    auto cpu0 = process_cpu(opt.server_pid).total();
    auto own_fill0 = self_cpu();
    auto deadline = start + std::int64_t(opt.timeout * 1e9);
    while (joined < opt.members) {
      while (opened < opt.members && connecting < opt.connect_parallel)
        open_one();
      poll(10);
      if (now_ns() > deadline) {
        std::fprintf(stderr, "chat_load: only %d of %d members joined\n",
                     joined, opt.members);
        return 1;
      }
    }
    auto join_s = double(full_at - start) / 1e9;
    auto cpu1 = process_cpu(opt.server_pid).total();
    auto rss_joined = process_rss_kib(opt.server_pid);
    auto own_fill = self_cpu() - own_fill0;
    std::uint64_t sum = 0, most = 0;
    for (auto& m : ms) {
      sum += m.bytes_full;
      most = std::max(most, m.bytes_full);
    }
    auto avg = double(sum) / opt.members;
    std::printf("joined: %d members in %.2f s; payload bytes per member "
                "while the room filled: %.0f average, %" PRIu64 " most "
                "(%.1f per other member); server CPU %.2f s, RSS %ld KiB; "
                "client CPU %.2f s\n",
                opt.members, join_s, avg, most,
                double(most) / (opt.members - 1), cpu1 - cpu0, rss_joined,
                own_fill);
    std::fflush(stdout);

    // Phase 2: messages at a fixed rate from the senders in turn.
    auto interval = std::int64_t(1e9 / opt.rate);
    auto total = std::int64_t(opt.rate * opt.duration);
    auto t0 = now_ns();
    auto own0 = self_cpu();
    std::int64_t sent = 0;
    while (sent < total) {
      auto due = t0 + sent * interval;
      auto now = now_ns();
      if (now >= due) {
        auto& m = ms[std::size_t(sent % senders)];
        auto text = R"({"type":"message","text":")" + std::to_string(sent) + " "
                    + std::to_string(now_ns(CLOCK_REALTIME)) + "\"}";
        send_text(m, text);
        ++sent;
        continue;
      }
      poll(int(std::max<std::int64_t>(0, (due - now) / 1000000)));
    }
    auto send_end = now_ns();
    auto want = std::uint64_t(total) * std::uint64_t(opt.members);
    auto drain_deadline = now_ns() + 30000000000LL;
    while (delivered < want && now_ns() < drain_deadline)
      poll(10);
    auto cpu2 = process_cpu(opt.server_pid).total();
    auto own = self_cpu() - own0;
    auto secs = double(now_ns() - t0) / 1e9;
    auto rss = process_rss_kib(opt.server_pid);
    auto hwm = process_status_kib(opt.server_pid, "VmHWM:");
    std::printf("messages: %" PRId64 " sent in %.1f s, %" PRIu64 " of %" PRIu64
                " deliveries, %" PRIu64 " out of order, %" PRIu64 " errors\n",
                total, double(send_end - t0) / 1e9, delivered, want, bad,
                errors);
    std::printf("latency send -> kernel rx: p50 %.2f ms, p99 %.2f ms, "
                "max %.2f ms; send -> parsed: p50 %.2f ms, p99 %.2f ms\n",
                kernel.quantile_ms(0.5), kernel.quantile_ms(0.99),
                kernel.quantile_ms(1.0), parsed.quantile_ms(0.5),
                parsed.quantile_ms(0.99));
    std::printf("server: CPU %.2f s over %.1f s (%.2f cores), RSS %ld KiB, "
                "peak %ld KiB; client: %.2f cores\n",
                cpu2 - cpu1, secs, (cpu2 - cpu1) / secs, rss, hwm, own / secs);
    std::printf("RESULT members=%d join_s=%.3f bytes_per_member=%.0f "
                "bytes_most=%" PRIu64 " join_cpu_s=%.2f join_client_cpu_s=%.2f "
                "rss_joined_kib=%ld "
                "sent=%" PRId64 " delivered=%" PRIu64 " want=%" PRIu64
                " bad=%" PRIu64 " errors=%" PRIu64 " p50_ms=%.2f "
                "p99_ms=%.2f parsed_p50_ms=%.2f parsed_p99_ms=%.2f "
                "msg_cpu_cores=%.2f rss_kib=%ld hwm_kib=%ld "
                "client_cores=%.2f\n",
                opt.members, join_s, avg, most, cpu1 - cpu0, own_fill,
                rss_joined, total, delivered, want, bad, errors,
                kernel.quantile_ms(0.5), kernel.quantile_ms(0.99),
                parsed.quantile_ms(0.5), parsed.quantile_ms(0.99),
                (cpu2 - cpu1) / secs, rss, hwm, own / secs);
    return delivered == want && bad == 0 && errors == 0 ? 0 : 1;
  }
};

} // namespace

int main(int argc, char** argv) {
  options o;
  herald::cli::options opts{"herald-chat-load",
                            "A big room of herald-chat under load "
                            "(bench/README.md, \"Chat rooms\"; "
                            "bench/chat_load.sh runs it)."};
  opts.add("port", "N", o.port, "herald-chat's port on 127.0.0.1")
    .range(1, 65535);
  opts.add("members", "N", o.members, "members joining the room").min(2);
  opts.add("room", "NAME", o.room, "the room");
  opts.add("rate", "N", o.rate, "chat messages per second").positive();
  opts.add("duration", "SECS", o.duration, "how long the messages go on")
    .min(0);
  opts.add("senders", "N", o.senders, "members who send, in turn").min(1);
  opts
    .add("server-pid", "PID", o.server_pid,
         "sample the server's CPU time and memory, 0: don't")
    .min(0);
  opts
    .add("connect-parallel", "N", o.connect_parallel,
         "handshakes in flight while joining")
    .min(1);
  opts.add("timeout", "SECS", o.timeout, "give up on joining").positive();
  opts.parse_or_exit(argc, argv);
  client c;
  c.opt = o;
  return c.run();
}
