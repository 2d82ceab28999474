// herald-bench-client: the load client of the chat-room benchmark.
//
// Plain POSIX: one thread, non-blocking sockets, epoll, and its own RFC 6455
// frame parser, so that it costs far less CPU than the servers it drives.
// Modes:
//
//   throughput  Bun's method (bench/websocket-server in Bun's repository):
//               N clients join the room; in each round every client sends M
//               chat strings; the round ends when every client has received
//               every message ("NAME: m" from each of the N senders, N*M*N
//               deliveries), and the next round starts at once. Counts
//               deliveries per second over --duration seconds after
//               --warmup, and checks every delivery: per receiver and per
//               sender the messages must arrive complete, in order, once.
//   latency     N clients join; client 0 publishes a timestamped message
//               every --interval-ms; every receiver records the time from
//               the send to the kernel's receive timestamp of the frame
//               (SO_TIMESTAMPNS) and to the moment the client parsed it.
//   idle        opens N connections, waits until all are in the room, then
//               reports the server's resident memory growth per connection.
//   idle-steps  opens N connections in four quarters (--connect-parallel
//               upgrades in flight, nothing sent), reads the server's
//               resident memory 2 s after each quarter and reports the
//               growth per connection at each (a new user's method).
//   handshake   --clients parallel loops of connect, upgrade, check the 101
//               and Sec-WebSocket-Accept, reset; counts handshakes per second.
//
// With --server-pid the server's CPU time (utime + stime from
// /proc/PID/stat) is sampled at the start and end of the measured window.
// The last line is `RESULT key=value ...`; the exit status is 0 only when
// everything was verified.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <herald/app/cli/options.hpp>

#include "proc.hpp"

namespace {

using herald::bench::cpu_times;
using herald::bench::process_cpu;
using herald::bench::process_rss_kib;
using herald::bench::self_cpu;

// -- options ------------------------------------------------------------------

enum class mode { throughput, latency, idle, idle_steps, handshake };

struct options {
  std::string host = "127.0.0.1";
  int port = 4001;
  int port2 = 0; // clients with odd indexes connect here (two nodes)
  mode m = mode::throughput;
  int clients = 32;
  int messages = 50;
  std::size_t payload = 0; // 0: Bun's short strings
  double duration = 10;
  double warmup = 1;
  int server_pid = 0;
  int interval_ms = 10;
  int connect_parallel = 128;
  double settle = 2;
  double timeout = 60;
  bool quiet = false;
  bool verbose = false;
  bool tls = false; // wss://: TLS without certificate checks
};

[[noreturn]] void die(const char* fmt, const char* arg = "") {
  std::fprintf(stderr, "herald-bench-client: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

// -- clocks and /proc ---------------------------------------------------------

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// CPU seconds all cores spent busy since boot (/proc/stat: user, nice,
// system, irq, softirq, steal), to see how much of a window went to
// processes other than the server and the client.
double system_busy_cpu() {
  std::ifstream in{"/proc/stat"};
  std::string cpu;
  unsigned long long v[8] = {};
  in >> cpu;
  for (auto& x : v)
    in >> x;
  // user nice system idle iowait irq softirq steal
  auto busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// -- WebSocket bits -----------------------------------------------------------

// RFC 6455's sample nonce and its accept value: every connection uses it, so
// the client can check the server's Sec-WebSocket-Accept without SHA-1.
constexpr std::string_view ws_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view ws_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::uint32_t rng_state = 0x9E3779B9u;
std::uint32_t next_random() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

// Appends one masked client frame (FIN set).
void append_frame(std::string& out, std::uint8_t opcode, std::string_view p) {
  out.push_back(static_cast<char>(0x80 | opcode));
  auto n = p.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  auto key = next_random();
  char mask[4];
  std::memcpy(mask, &key, 4);
  out.append(mask, 4);
  auto start = out.size();
  out.append(p);
  for (std::size_t i = 0; i < n; ++i)
    out[start + i] = static_cast<char>(out[start + i] ^ mask[i & 3]);
}

std::string make_request(const options& o, std::string_view name) {
  std::string r;
  r.reserve(200);
  r.append("GET /?name=").append(name).append(" HTTP/1.1\r\nHost: ");
  r.append(o.host).append(":").append(std::to_string(o.port));
  r.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: ");
  r.append(ws_key);
  r.append("\r\nSec-WebSocket-Version: 13\r\n\r\n");
  return r;
}

// Checks a handshake response head; returns an error or "".
std::string check_response(std::string_view head) {
  if (head.rfind("HTTP/1.1 101", 0) != 0)
    return "expected 101, got: " + std::string{head.substr(0, head.find('\r'))};
  // Header names are case-insensitive: look for the accept value itself.
  std::string lower{head};
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto at = lower.find("\r\nsec-websocket-accept:");
  if (at == std::string::npos)
    return "no Sec-WebSocket-Accept";
  auto v = head.substr(at + 23);
  v = v.substr(0, v.find('\r'));
  while (!v.empty() && v.front() == ' ')
    v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ')
    v.remove_suffix(1);
  if (v != ws_accept)
    return "wrong Sec-WebSocket-Accept";
  return {};
}

// -- chat content -------------------------------------------------------------

// Client names as in Bun's client: Alice0, Bob0, ..., Zach0, Alice1, ...
// The 26 base names start with 26 different letters, so a name's index is
// its letter plus 26 times its number.
const char* const base_names[26] = {"Alice",   "Bob",    "Charlie", "David",
                                    "Eve",     "Frank",  "Grace",   "Heidi",
                                    "Ivan",    "Judy",   "Karl",    "Linda",
                                    "Mike",    "Nancy",  "Oscar",   "Peggy",
                                    "Quentin", "Ruth",   "Steve",   "Trudy",
                                    "Ursula",  "Victor", "Wendy",   "Xavier",
                                    "Yvonne",  "Zach"};

std::string client_name(int i) {
  return std::string{base_names[i % 26]} + std::to_string(i / 26);
}

// Parses a name back to its index (-1 if it is none of ours).
int name_index(std::string_view name) {
  if (name.empty() || name[0] < 'A' || name[0] > 'Z')
    return -1;
  // A plain loop: find_first_of calls memchr once per character.
  std::size_t digits = 1;
  while (digits < name.size() && (name[digits] < '0' || name[digits] > '9'))
    ++digits;
  if (digits == name.size())
    return -1;
  int n = 0;
  for (auto ch : name.substr(digits)) {
    if (ch < '0' || ch > '9')
      return -1;
    n = n * 10 + (ch - '0');
  }
  return (name[0] - 'A') + 26 * n;
}

// Short chat strings like Bun's (3 to 28 bytes), all different so that a
// duplicated or lost message cannot pass for the next expected one.
std::vector<std::string> chat_messages(int count, std::size_t payload) {
  static const char* const words[] = {"Hello World!",
                                      "What is the meaning of life?",
                                      "where is the bathroom?",
                                      "zoo",
                                      "kangaroo",
                                      "erlang",
                                      "elixir",
                                      "bun",
                                      "mochi",
                                      "typescript",
                                      "javascript"};
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s = words[i % 11];
    if (i >= 11 || i == 0)
      s += " " + std::to_string(i);
    if (payload > 0) {
      // Exactly `payload` bytes: a numbered head, then filler.
      s = "#" + std::to_string(i) + " ";
      while (s.size() < payload)
        s.push_back(static_cast<char>('a' + (s.size() + i) % 26));
      s.resize(payload);
    }
    out.push_back(std::move(s));
  }
  return out;
}

// -- connections --------------------------------------------------------------

enum class conn_state { connecting, handshaking, open, closed };

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;    // with --tls
  bool tls_done = false; // the TLS handshake completed
  int index = 0;
  conn_state state = conn_state::connecting;
  std::string in;  // handshake bytes or the start of a partial frame
  std::string out; // bytes not yet written
  std::size_t out_off = 0;
  bool ready = false; // got "ready"
  // throughput: per sender, the index of the next expected message
  std::vector<std::uint16_t> next;
  std::uint64_t got_round = 0;
  // latency: last sequence number seen
  std::int64_t last_seq = -1;
};

struct frame_view {
  std::uint8_t opcode;
  bool fin;
  std::string_view payload;
};

class client {
public:
  explicit client(options o) : o_(std::move(o)) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0)
      die("epoll_create1 failed");
    rbuf_.resize(256u << 10);
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    if (inet_pton(AF_INET, o_.host.c_str(), &addr_.sin_addr) != 1)
      die("bad --host %s (IPv4 address expected)", o_.host.c_str());
    if (o_.tls) {
      tls_ = SSL_CTX_new(TLS_client_method());
      SSL_CTX_set_verify(tls_, SSL_VERIFY_NONE, nullptr);
      // Every connection a full handshake, as a new browser's would be.
      SSL_CTX_set_session_cache_mode(tls_, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(tls_, SSL_OP_NO_TICKET);
      // Chromium's order on AES-NI hardware; Bun follows the client's.
      SSL_CTX_set_ciphersuites(tls_, "TLS_AES_128_GCM_SHA256:"
                                     "TLS_AES_256_GCM_SHA384:"
                                     "TLS_CHACHA20_POLY1305_SHA256");
    }
    addr2_ = addr_;
    if (o_.port2 > 0)
      addr2_.sin_port = htons(static_cast<std::uint16_t>(o_.port2));
  }

  int run() {
    switch (o_.m) {
      case mode::throughput:
        return run_throughput();
      case mode::latency:
        return run_latency();
      case mode::idle:
        return run_idle();
      case mode::idle_steps:
        return run_idle_steps();
      case mode::handshake:
        return run_handshake();
    }
    return 2;
  }

private:
  // -- errors -----------------------------------------------------------------

  template <class... Ts>
  void error(const char* fmt, Ts... xs) {
    if (++errors_ <= 10) {
      std::fprintf(stderr, "herald-bench-client: error: ");
      std::fprintf(stderr, fmt, xs...);
      std::fprintf(stderr, "\n");
    }
  }

  // -- sockets ----------------------------------------------------------------

  int open_socket(bool reset_on_close, int index) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      std::perror("socket");
      std::exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o_.m == mode::latency)
      setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    if (reset_on_close) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    auto& addr = o_.port2 > 0 && index % 2 == 1 ? addr2_ : addr_;
    auto rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc < 0 && errno != EINPROGRESS) {
      std::perror("connect");
      std::exit(2);
    }
    return fd;
  }

  void start_connect(conn& c, bool reset_on_close = false) {
    c.fd = open_socket(reset_on_close, c.index);
    c.state = conn_state::connecting;
    c.in.clear();
    c.out = make_request(o_, names_[static_cast<std::size_t>(c.index)]);
    c.out_off = 0;
    if (tls_) {
      c.ssl = SSL_new(tls_);
      SSL_set_fd(c.ssl, c.fd);
      SSL_set_mode(c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                            | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      SSL_set_connect_state(c.ssl);
      c.tls_done = false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(c.index);
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) < 0)
      die("epoll_ctl failed");
  }

  void close_conn(conn& c) {
    if (c.ssl) {
      SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
    }
    c.fd = -1;
    c.state = conn_state::closed;
  }

  // send() or SSL_write(): -1 with errno EAGAIN when it would block.
  ssize_t io_send(conn& c, const char* p, std::size_t n) {
    if (!c.ssl)
      return ::send(c.fd, p, n, MSG_NOSIGNAL);
    if (!tls_handshake(c))
      return -1;
    auto r =
      SSL_write(c.ssl, p, static_cast<int>(std::min<std::size_t>(n, 1u << 30)));
    return r > 0 ? r : tls_errno(c, r);
  }

  // recv() or SSL_read(): 0 at the end, -1 with errno.
  ssize_t io_recv(conn& c, char* p, std::size_t n) {
    if (!c.ssl)
      return ::recv(c.fd, p, n, 0);
    if (!tls_handshake(c))
      return -1;
    auto r =
      SSL_read(c.ssl, p, static_cast<int>(std::min<std::size_t>(n, 1u << 30)));
    if (r > 0)
      return r;
    if (SSL_get_error(c.ssl, r) == SSL_ERROR_ZERO_RETURN)
      return 0;
    return tls_errno(c, r);
  }

  ssize_t tls_errno(conn& c, int r) {
    switch (SSL_get_error(c.ssl, r)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        break;
      case SSL_ERROR_SYSCALL:
        if (errno == 0)
          errno = ECONNRESET;
        break;
      default:
        ERR_clear_error();
        errno = EPROTO;
    }
    return -1;
  }

  // Drives the TLS handshake; false (errno set) until it is done.
  bool tls_handshake(conn& c) {
    if (c.tls_done)
      return true;
    auto r = SSL_do_handshake(c.ssl);
    if (r == 1) {
      c.tls_done = true;
      return true;
    }
    tls_errno(c, r);
    return false;
  }

  // Writes what is queued; returns false when the connection failed.
  bool flush(conn& c) {
    while (c.out_off < c.out.size()) {
      auto n = io_send(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return true; // EPOLLOUT (edge-triggered) brings us back
        if (errno == EINTR)
          continue;
        return false;
      }
      c.out_off += static_cast<std::size_t>(n);
    }
    c.out.clear();
    c.out_off = 0;
    return true;
  }

  // Sends `data` (a round's frames), without copying when nothing is queued.
  bool send_bytes(conn& c, std::string_view data) {
    if (c.out_off < c.out.size()) {
      c.out.append(data);
      return true;
    }
    c.out.clear();
    c.out_off = 0;
    std::size_t off = 0;
    while (off < data.size()) {
      auto n = io_send(c, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        if (errno == EINTR)
          continue;
        return false;
      }
      off += static_cast<std::size_t>(n);
    }
    if (off < data.size())
      c.out.assign(data.substr(off));
    return true;
  }

  // -- the event loop ---------------------------------------------------------

  // Runs the loop until `done()` or the deadline; false on timeout.
  template <class Done>
  bool loop_until(Done done, double timeout_s) {
    auto start = clock_type::now();
    epoll_event events[512];
    while (!done()) {
      auto left = timeout_s - seconds_since(start);
      if (left <= 0)
        return false;
      int wait_ms = static_cast<int>(std::min(left * 1000.0, 50.0)) + 1;
      if (tick_)
        wait_ms = std::min(wait_ms, tick_ms_);
      int n = epoll_wait(ep_, events, 512, wait_ms);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        die("epoll_wait failed");
      }
      for (int i = 0; i < n; ++i)
        on_event(conns_[events[i].data.u64], events[i].events);
      if (tick_)
        tick_();
    }
    return true;
  }

  void on_event(conn& c, std::uint32_t ev) {
    if (c.state == conn_state::closed)
      return;
    if (c.state == conn_state::connecting) {
      if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        return conn_failed(c, err ? std::strerror(err) : "connect failed");
      }
      if (!(ev & EPOLLOUT))
        return;
      c.state = conn_state::handshaking;
    }
    if (c.ssl && !c.tls_done) {
      // The TLS handshake runs on any event; then the request goes out.
      if (!tls_handshake(c)) {
        if (errno != EAGAIN)
          return conn_failed(c, "TLS handshake failed");
        return;
      }
      ev |= EPOLLOUT | EPOLLIN;
    }
    if (ev & EPOLLOUT) {
      if (!flush(c))
        return conn_failed(c, std::strerror(errno));
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
      read_all(c);
  }

  void conn_failed(conn& c, const char* why) {
    if (o_.m == mode::handshake && stopping_) {
      close_conn(c);
      return;
    }
    error("connection %d (%s): %s", c.index,
          names_[static_cast<std::size_t>(c.index)].c_str(), why);
    close_conn(c);
    ++failed_;
  }

  void read_all(conn& c) {
    for (;;) {
      // A partial frame left over from the last read goes first.
      auto keep = c.state == conn_state::open ? c.in.size() : 0;
      if (keep > 0) {
        if (rbuf_.size() < keep * 2)
          rbuf_.resize(keep * 2);
        std::memcpy(rbuf_.data(), c.in.data(), keep);
      }
      auto room = rbuf_.size() - keep;
      std::int64_t kernel_ns = 0;
      ssize_t n;
      if (o_.m == mode::latency) {
        iovec iov{rbuf_.data() + keep, room};
        alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(timespec))];
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctrl;
        mh.msg_controllen = sizeof ctrl;
        n = ::recvmsg(c.fd, &mh, 0);
        if (n > 0)
          for (auto* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET
                && cm->cmsg_type == SCM_TIMESTAMPNS) {
              timespec ts;
              std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
              kernel_ns = std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
            }
      } else {
        n = io_recv(c, rbuf_.data() + keep, room);
      }
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          conn_failed(c, std::strerror(errno));
        return;
      }
      if (n == 0) {
        if (c.state != conn_state::closed)
          conn_failed(c, "closed by the server");
        return;
      }
      bytes_in_ += static_cast<std::uint64_t>(n);
      std::string_view data{rbuf_.data(), keep + static_cast<std::size_t>(n)};
      if (c.state == conn_state::handshaking) {
        c.in.append(data);
        auto end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (c.in.size() > 16384)
            return conn_failed(c, "handshake response too large");
          continue;
        }
        auto problem =
          check_response(std::string_view{c.in}.substr(0, end + 2));
        if (!problem.empty())
          return conn_failed(c, problem.c_str());
        std::string rest = c.in.substr(end + 4);
        c.in.clear();
        c.state = conn_state::open;
        on_open(c);
        if (c.state != conn_state::open)
          return;
        if (!rest.empty()) {
          c.in = std::move(rest);
          // Parse what followed the response right away.
          auto consumed = parse(c, c.in, kernel_ns);
          if (c.state != conn_state::open)
            return;
          c.in.erase(0, consumed);
        }
      } else {
        auto consumed = parse(c, data, kernel_ns);
        if (c.state != conn_state::open)
          return;
        c.in.assign(data.substr(consumed));
      }
      // A short read: the socket is drained (stream socket). Not so over
      // TLS, where a read returns one record.
      if (!c.ssl && static_cast<std::size_t>(n) < room)
        return;
    }
  }

  // Parses whole frames from `data`; returns the bytes consumed.
  std::size_t parse(conn& c, std::string_view data, std::int64_t kernel_ns) {
    std::size_t pos = 0;
    auto* p = reinterpret_cast<const unsigned char*>(data.data());
    while (data.size() - pos >= 2) {
      auto b0 = p[pos];
      auto b1 = p[pos + 1];
      std::size_t hdr = 2;
      std::uint64_t len = b1 & 0x7F;
      if (b1 & 0x80) {
        error("masked frame from the server");
        close_conn(c);
        return 0;
      }
      if (len == 126) {
        if (data.size() - pos < 4)
          break;
        len = (std::uint64_t{p[pos + 2]} << 8) | p[pos + 3];
        hdr = 4;
      } else if (len == 127) {
        if (data.size() - pos < 10)
          break;
        len = 0;
        for (int i = 0; i < 8; ++i)
          len = (len << 8) | p[pos + 2 + i];
        hdr = 10;
      }
      if (data.size() - pos - hdr < len)
        break; // read_all grows the buffer for large frames
      frame_view f{static_cast<std::uint8_t>(b0 & 0x0F), (b0 & 0x80) != 0,
                   data.substr(pos + hdr, static_cast<std::size_t>(len))};
      pos += hdr + static_cast<std::size_t>(len);
      on_frame(c, f, kernel_ns);
      if (c.state != conn_state::open)
        return pos;
    }
    return pos;
  }

  void on_frame(conn& c, const frame_view& f, std::int64_t kernel_ns) {
    switch (f.opcode) {
      case 0x1:
      case 0x2:
        if (!f.fin) {
          error("fragmented message (not expected from a chat server)");
          close_conn(c);
          return;
        }
        on_message(c, f.payload, kernel_ns);
        return;
      case 0x9: { // ping: answer
        std::string pong;
        append_frame(pong, 0xA, f.payload);
        if (!send_bytes(c, pong))
          conn_failed(c, std::strerror(errno));
        return;
      }
      case 0xA:
        return;
      case 0x8:
        error("connection %d closed by the server", c.index);
        close_conn(c);
        ++failed_;
        return;
      default:
        error("unexpected opcode %d", static_cast<int>(f.opcode));
        close_conn(c);
        return;
    }
  }

  // -- connecting -------------------------------------------------------------

  void make_conns(int n) {
    conns_.resize(static_cast<std::size_t>(n));
    names_.clear();
    for (int i = 0; i < n; ++i) {
      conns_[static_cast<std::size_t>(i)].index = i;
      names_.push_back(client_name(i));
    }
  }

  // Opens conns_[next..target) with at most --connect-parallel handshakes
  // in flight, running the loop until `done` holds or the timeout passes.
  template <class Done>
  bool open_until(std::size_t& next, std::size_t target, Done done) {
    auto start_more = [&] {
      while (next < target
             && static_cast<int>(next) - opened_ - failed_
                  < o_.connect_parallel)
        start_connect(conns_[next++]);
    };
    start_more();
    tick_ = start_more;
    bool ok = loop_until(done, o_.timeout);
    tick_ = nullptr;
    return ok;
  }

  // Connects every client (at most --connect-parallel handshakes at once)
  // and waits until each one has received "ready".
  bool connect_all() {
    auto t0 = clock_type::now();
    std::size_t next = 0;
    bool ok = open_until(next, conns_.size(), [&] {
      return ready_count_ + failed_ >= static_cast<int>(conns_.size());
    });
    if (!ok || failed_ > 0) {
      error("only %d of %d clients connected and got \"ready\"", ready_count_,
            static_cast<int>(conns_.size()));
      return false;
    }
    if (!o_.quiet)
      std::printf("%d clients connected and ready in %.2f s\n",
                  static_cast<int>(conns_.size()), seconds_since(t0));
    std::fflush(stdout);
    return true;
  }

  void on_open(conn& c) {
    ++opened_;
    if (o_.m == mode::handshake) {
      ++handshakes_;
      if (measuring_)
        ++measured_;
      close_conn(c); // SO_LINGER 0: a reset, no TIME_WAIT
      if (!stopping_)
        start_connect(c, true);
      return;
    }
  }

  void on_message(conn& c, std::string_view payload, std::int64_t kernel_ns) {
    if (!c.ready) {
      if (payload != "ready") {
        error("client %d: expected \"ready\", got \"%.*s\"", c.index,
              static_cast<int>(std::min<std::size_t>(payload.size(), 60)),
              payload.data());
        return;
      }
      c.ready = true;
      ++ready_count_;
      return;
    }
    if (o_.m == mode::throughput)
      on_chat(c, payload);
    else if (o_.m == mode::latency)
      on_latency(c, payload, kernel_ns);
    else
      error("client %d: unexpected message", c.index);
  }

  // -- throughput -------------------------------------------------------------

  void on_chat(conn& c, std::string_view payload) {
    ++delivered_total_;
    if (measuring_)
      ++measured_;
    ++second_count_;
    // Names are short ("Alice0", "Quentin19"): look for the separator near
    // the start only, not through a 4 KiB payload.
    auto colon = payload.substr(0, 32).find(": ");
    int s = colon == std::string_view::npos
              ? -1
              : name_index(payload.substr(0, colon));
    if (s < 0 || s >= static_cast<int>(conns_.size())
        || payload.substr(0, colon) != names_[static_cast<std::size_t>(s)]) {
      error("client %d: message from an unknown sender: \"%.*s\"", c.index,
            static_cast<int>(std::min<std::size_t>(payload.size(), 60)),
            payload.data());
      return;
    }
    if (!round_active_) {
      error("client %d: message outside a round (duplicate?)", c.index);
      return;
    }
    auto& k = c.next[static_cast<std::size_t>(s)];
    auto text = payload.substr(colon + 2);
    // Each message is compared whole by one of its receivers, a different
    // one from message to message (see same_text).
    bool whole = static_cast<std::size_t>(c.index)
                 == (static_cast<std::size_t>(s) + k) % conns_.size();
    if (k >= msgs_.size() || !same_text(text, msgs_[k], whole)) {
      error("client %d: from %s expected message %d, got \"%.*s\" "
            "(lost, duplicated, reordered or altered)",
            c.index, names_[static_cast<std::size_t>(s)].c_str(),
            static_cast<int>(k),
            static_cast<int>(std::min<std::size_t>(text.size(), 40)),
            text.data());
      return;
    }
    ++k;
    ++c.got_round;
    if (--round_left_ == 0)
      end_round();
  }

  // Whether `text` is `expected`. Short messages are always compared
  // whole. Long ones (--payload) are identified by their numbered head
  // ("#k ", unique per message) and checked by size, head and tail on every
  // delivery, and byte for byte when `whole`: by one receiver of each
  // message (receiver == (sender + message index) mod clients), so every
  // published message is compared whole once, and over a round every
  // receiver compares whole messages from every sender. Comparing all of
  // every 4 KiB delivery was a quarter of the client's CPU, enough to make
  // the client the limit against a fast server.
  static bool same_text(std::string_view text, std::string_view expected,
                        bool whole) {
    constexpr std::size_t short_text = 256;
    constexpr std::size_t edge = 32;
    if (whole || expected.size() <= short_text)
      return text == expected;
    return text.size() == expected.size()
           && text.substr(0, edge) == expected.substr(0, edge)
           && text.substr(text.size() - edge)
                == expected.substr(expected.size() - edge);
  }

  void start_round() {
    round_active_ = true;
    round_start_ = clock_type::now();
    round_left_ = static_cast<std::uint64_t>(conns_.size())
                  * static_cast<std::uint64_t>(o_.messages) * conns_.size();
    for (auto& c : conns_) {
      std::fill(c.next.begin(), c.next.end(), 0);
      c.got_round = 0;
    }
    for (auto& c : conns_)
      if (c.state == conn_state::open
          && !send_bytes(c, round_frames_[static_cast<std::size_t>(c.index)]))
        conn_failed(c, std::strerror(errno));
  }

  void end_round() {
    round_active_ = false;
    ++rounds_;
    if (o_.verbose)
      std::printf("round %llu: %.1f ms\n",
                  static_cast<unsigned long long>(rounds_),
                  seconds_since(round_start_) * 1e3);
    auto per_client = static_cast<std::uint64_t>(o_.messages) * conns_.size();
    for (auto& c : conns_)
      if (c.got_round != per_client)
        error("client %d: %llu of %llu messages in the round", c.index,
              static_cast<unsigned long long>(c.got_round),
              static_cast<unsigned long long>(per_client));
    if (!stopping_)
      start_round();
  }

  int run_throughput() {
    make_conns(o_.clients);
    msgs_ = chat_messages(o_.messages, o_.payload);
    for (auto& c : conns_)
      c.next.assign(conns_.size(), 0);
    round_frames_.resize(conns_.size());
    for (auto& c : conns_)
      for (auto& m : msgs_)
        append_frame(round_frames_[static_cast<std::size_t>(c.index)], 0x1, m);
    if (!connect_all())
      return finish_result("throughput", 0, 0, false);

    auto t0 = clock_type::now();
    auto last_report = t0;
    double t_measure = 0;
    tick_ = [&] {
      auto now = clock_type::now();
      if (!measuring_ && !stopping_ && seconds_since(t0) >= o_.warmup) {
        measuring_ = true;
        measure_start_ = now;
        begin_cpu();
      }
      if (measuring_ && seconds_since(measure_start_) >= o_.duration) {
        t_measure = seconds_since(measure_start_);
        measuring_ = false;
        stopping_ = true;
        end_cpu();
      }
      if (std::chrono::duration<double>(now - last_report).count() >= 1.0) {
        if (!o_.quiet)
          std::printf("%llu deliveries/s (%zu clients x %d messages%s)\n",
                      static_cast<unsigned long long>(second_count_),
                      conns_.size(), o_.messages,
                      o_.payload
                        ? (", " + std::to_string(o_.payload) + " bytes").c_str()
                        : "");
        std::fflush(stdout);
        second_count_ = 0;
        last_report = now;
      }
    };
    start_round();
    // Measure, then let the round in flight finish so that every message
    // sent is accounted for.
    bool ok = loop_until([&] { return stopping_ && !round_active_; },
                         o_.warmup + o_.duration + o_.timeout);
    tick_ = nullptr;
    if (!ok)
      error("the last round did not complete: %llu deliveries missing",
            static_cast<unsigned long long>(round_left_));
    // Anything still arriving now would be a duplicate.
    loop_until([] { return false; }, 0.2);
    if (failed_ > 0)
      error("%d connections failed", failed_);
    return finish_result("throughput", measured_, t_measure, ok);
  }

  // -- latency ----------------------------------------------------------------

  void on_latency(conn& c, std::string_view payload, std::int64_t kernel_ns) {
    auto now = realtime_ns();
    // "NAME: SEQ TIMESTAMP"
    auto colon = payload.find(": ");
    if (colon == std::string_view::npos) {
      error("client %d: malformed message", c.index);
      return;
    }
    auto text = std::string{payload.substr(colon + 2)};
    long long seq = 0, sent = 0;
    if (std::sscanf(text.c_str(), "%lld %lld", &seq, &sent) != 2) {
      error("client %d: malformed message", c.index);
      return;
    }
    if (seq != c.last_seq + 1)
      error("client %d: expected message %lld, got %lld", c.index,
            c.last_seq + 1, seq);
    c.last_seq = seq;
    ++delivered_total_;
    if (seq >= first_measured_seq_ && first_measured_seq_ >= 0) {
      ++measured_;
      lat_user_.push_back(now - sent);
      if (kernel_ns > 0)
        lat_kernel_.push_back(kernel_ns - sent);
    }
  }

  int run_latency() {
    make_conns(o_.clients);
    if (!connect_all())
      return finish_result("latency", 0, 0, false);
    auto& pub = conns_[0];
    std::int64_t seq = 0;
    auto t0 = clock_type::now();
    auto next_send = t0;
    auto interval = std::chrono::microseconds{o_.interval_ms * 1000};
    tick_ms_ = 1;
    double t_measure = 0;
    tick_ = [&] {
      auto now = clock_type::now();
      if (!measuring_ && !stopping_ && seconds_since(t0) >= o_.warmup) {
        measuring_ = true;
        first_measured_seq_ = seq;
        measure_start_ = now;
        begin_cpu();
      }
      if (measuring_ && seconds_since(measure_start_) >= o_.duration) {
        t_measure = seconds_since(measure_start_);
        measuring_ = false;
        stopping_ = true;
        end_cpu();
      }
      if (!stopping_ && now >= next_send) {
        std::string frame;
        append_frame(frame, 0x1,
                     std::to_string(seq) + " " + std::to_string(realtime_ns()));
        ++seq;
        if (!send_bytes(pub, frame))
          conn_failed(pub, std::strerror(errno));
        next_send += interval;
        if (next_send < now)
          next_send = now + interval;
      }
    };
    bool ok = loop_until(
      [&] {
        if (!stopping_)
          return false;
        for (auto& c : conns_)
          if (c.state == conn_state::open && c.last_seq != seq - 1)
            return false;
        return true;
      },
      o_.warmup + o_.duration + o_.timeout);
    tick_ = nullptr;
    if (!ok)
      error("not every publish reached every client");
    for (auto& c : conns_)
      if (c.last_seq != seq - 1)
        error("client %d saw %lld of %lld publishes", c.index,
              static_cast<long long>(c.last_seq + 1),
              static_cast<long long>(seq));
    publishes_ = static_cast<std::uint64_t>(seq - first_measured_seq_);
    return finish_result("latency", measured_, t_measure, ok);
  }

  // -- idle memory ------------------------------------------------------------

  int run_idle() {
    make_conns(o_.clients);
    auto rss0 = process_rss_kib(o_.server_pid);
    if (!connect_all())
      return finish_result("idle", 0, 0, false);
    // Let the server settle: wait at least --settle seconds, then until its
    // RSS has stayed within 1% for 3 s (at most 30 s more). A server with a
    // garbage collector or an allocator that returns memory late shrinks
    // some seconds after the last connection opened (Bun: 61 -> 51 MB about
    // 3 s after 10,000 connections), and that is its idle footprint.
    loop_until([] { return false; }, o_.settle);
    std::vector<long> samples{process_rss_kib(o_.server_pid)};
    double waited = 0;
    auto stable = [&] {
      if (samples.size() < 7)
        return false;
      auto [lo, hi] = std::minmax_element(samples.end() - 7, samples.end());
      return *hi - *lo <= *hi / 100;
    };
    while (!stable() && waited < 30) {
      loop_until([] { return false; }, 0.5);
      waited += 0.5;
      samples.push_back(process_rss_kib(o_.server_pid));
    }
    settled_after_ = o_.settle + waited;
    auto rss1 = samples.back();
    rss_before_kib_ = rss0;
    rss_after_kib_ = rss1;
    return finish_result("idle", 0, 0, failed_ == 0);
  }

  // Four quarters, memory read 2 s after each: no waiting for the server
  // to settle, no waiting for "ready" (it comes once all are in).
  int run_idle_steps() {
    make_conns(o_.clients);
    auto rss0 = process_rss_kib(o_.server_pid);
    auto n = conns_.size();
    std::size_t next = 0;
    for (std::size_t q = 1; q <= 4; ++q) {
      auto target = q == 4 ? n : n * q / 4;
      bool ok = open_until(next, target, [&] {
        return opened_ + failed_ >= static_cast<int>(target);
      });
      if (!ok || failed_ > 0) {
        error("only %d of %zu connections opened", opened_, target);
        return finish_result("idle-steps", 0, 0, false);
      }
      loop_until([] { return false; }, 2.0);
      auto rss = process_rss_kib(o_.server_pid);
      step_bytes_.push_back(rss0 >= 0 && rss >= 0
                              ? static_cast<double>(rss - rss0) * 1024.0
                                  / static_cast<double>(target)
                              : -1);
      rss_after_kib_ = rss;
    }
    rss_before_kib_ = rss0;
    return finish_result("idle-steps", 0, 0, failed_ == 0);
  }

  // -- handshakes -------------------------------------------------------------

  int run_handshake() {
    make_conns(o_.clients);
    for (auto& c : conns_)
      start_connect(c, true);
    auto t0 = clock_type::now();
    double t_measure = 0;
    tick_ = [&] {
      if (!measuring_ && !stopping_ && seconds_since(t0) >= o_.warmup) {
        measuring_ = true;
        measure_start_ = clock_type::now();
        begin_cpu();
      }
      if (measuring_ && seconds_since(measure_start_) >= o_.duration) {
        t_measure = seconds_since(measure_start_);
        measuring_ = false;
        stopping_ = true;
        end_cpu();
      }
    };
    loop_until([&] { return stopping_; }, o_.warmup + o_.duration + o_.timeout);
    tick_ = nullptr;
    for (auto& c : conns_)
      close_conn(c);
    return finish_result("handshake", measured_, t_measure, failed_ == 0);
  }

  // -- results ----------------------------------------------------------------

  static double percentile(std::vector<std::int64_t>& v, double p) {
    if (v.empty())
      return 0;
    auto k = static_cast<std::size_t>(std::min<double>(
      static_cast<double>(v.size() - 1),
      std::floor(p * static_cast<double>(v.size() - 1) + 0.5)));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return static_cast<double>(v[k]) / 1e3; // microseconds
  }

  int finish_result(const char* name, std::uint64_t count, double secs,
                    bool ok) {
    for (auto& c : conns_) {
      if (c.fd >= 0 && c.state == conn_state::open) {
        std::string bye;
        append_frame(bye, 0x8, std::string_view{"\x03\xe8", 2});
        (void)io_send(c, bye.data(), bye.size());
      }
      close_conn(c);
    }
    bool verified = ok && errors_ == 0 && failed_ == 0;
    if (o_.m != mode::idle && o_.m != mode::idle_steps)
      verified = verified && count > 0;
    double rate = secs > 0 ? static_cast<double>(count) / secs : 0;
    std::printf("RESULT mode=%s clients=%d", name, o_.clients);
    if (o_.m == mode::throughput)
      std::printf(" messages=%d payload=%zu rounds=%llu", o_.messages,
                  o_.payload, static_cast<unsigned long long>(rounds_));
    if (o_.m == mode::throughput || o_.m == mode::handshake
        || o_.m == mode::latency) {
      std::printf(" seconds=%.3f count=%llu rate=%.0f", secs,
                  static_cast<unsigned long long>(count), rate);
      if (server_cpu_ >= 0) {
        auto per = [&](double cpu) {
          return count ? cpu * 1e9 / static_cast<double>(count) : 0;
        };
        std::printf(" server_cpu_s=%.3f server_cpu_ns=%.1f server_util=%.3f"
                    " server_sys_ns=%.1f",
                    server_cpu_, per(server_cpu_),
                    secs > 0 ? server_cpu_ / secs : 0, per(server_sys_));
      }
      std::printf(" client_cpu_s=%.3f client_cpu_ns=%.1f client_util=%.3f",
                  client_cpu_,
                  count ? client_cpu_ * 1e9 / static_cast<double>(count) : 0,
                  secs > 0 ? client_cpu_ / secs : 0);
      // Busy CPU of everything else on the machine (other processes, and
      // busy time charged to no process), in cores. server_other_cpu_ns
      // counts all of it against the server: an upper bound next to
      // server_cpu_ns.
      if (system_cpu_ >= 0 && server_cpu_ >= 0 && secs > 0) {
        auto other = std::max(0.0, system_cpu_ - server_cpu_ - client_cpu_);
        std::printf(" other_util=%.3f server_other_cpu_ns=%.1f", other / secs,
                    count
                      ? (server_cpu_ + other) * 1e9 / static_cast<double>(count)
                      : 0);
      }
    }
    if (o_.m == mode::latency) {
      auto nk = lat_kernel_.size();
      std::printf(" publishes=%llu samples=%zu",
                  static_cast<unsigned long long>(publishes_),
                  lat_user_.size());
      std::printf(
        " p50_us=%.1f p99_us=%.1f max_us=%.1f",
        percentile(lat_kernel_.empty() ? lat_user_ : lat_kernel_, 0.5),
        percentile(lat_kernel_.empty() ? lat_user_ : lat_kernel_, 0.99),
        percentile(lat_kernel_.empty() ? lat_user_ : lat_kernel_, 1.0));
      std::printf(" user_p50_us=%.1f user_p99_us=%.1f kernel_samples=%zu",
                  percentile(lat_user_, 0.5), percentile(lat_user_, 0.99), nk);
    }
    if (o_.m == mode::idle) {
      std::printf(" rss_before_kib=%ld rss_after_kib=%ld settled_s=%.1f",
                  rss_before_kib_, rss_after_kib_, settled_after_);
      if (rss_before_kib_ >= 0 && rss_after_kib_ >= 0 && o_.clients > 0)
        std::printf(" bytes_per_conn=%.0f",
                    static_cast<double>(rss_after_kib_ - rss_before_kib_)
                      * 1024.0 / o_.clients);
    }
    if (o_.m == mode::idle_steps) {
      std::printf(" rss_before_kib=%ld rss_after_kib=%ld", rss_before_kib_,
                  rss_after_kib_);
      for (std::size_t q = 0; q < step_bytes_.size(); ++q)
        std::printf(" q%zu_bytes_per_conn=%.0f", q + 1, step_bytes_[q]);
      if (!step_bytes_.empty())
        std::printf(" bytes_per_conn=%.0f", step_bytes_.back());
    }
    std::printf(" errors=%d failed=%d verified=%d\n", errors_, failed_,
                verified ? 1 : 0);
    std::fflush(stdout);
    return verified ? 0 : 1;
  }

  options o_;
  int ep_ = -1;
  sockaddr_in addr_{};
  sockaddr_in addr2_{};
  std::vector<conn> conns_;
  std::vector<std::string> names_;
  std::vector<char> rbuf_;
  std::function<void()> tick_;
  int tick_ms_ = 20;

  int opened_ = 0;
  int ready_count_ = 0;
  int failed_ = 0;
  int errors_ = 0;
  std::uint64_t bytes_in_ = 0;

  bool measuring_ = false;
  bool stopping_ = false;
  clock_type::time_point measure_start_;
  std::uint64_t measured_ = 0;
  std::uint64_t second_count_ = 0;
  // CPU time of the measured window (begin_cpu .. end_cpu): the server's
  // (-1 without --server-pid) with its kernel share, this client's, and
  // the whole machine's busy time.
  double server_cpu_ = -1;
  double server_sys_ = -1;
  double client_cpu_ = 0;
  double system_cpu_ = -1;
  cpu_times server0_;
  double self0_ = 0;
  double sys0_ = 0;

  void begin_cpu() {
    server0_ = process_cpu(o_.server_pid);
    self0_ = self_cpu();
    sys0_ = system_busy_cpu();
  }

  void end_cpu() {
    auto server = process_cpu(o_.server_pid);
    if (server.known() && server0_.known()) {
      server_cpu_ = server.total() - server0_.total();
      server_sys_ = server.system - server0_.system;
    }
    client_cpu_ = self_cpu() - self0_;
    system_cpu_ = system_busy_cpu() - sys0_;
  }

  // throughput
  std::vector<std::string> msgs_;
  std::vector<std::string> round_frames_;
  bool round_active_ = false;
  clock_type::time_point round_start_;
  std::uint64_t round_left_ = 0;
  std::uint64_t rounds_ = 0;
  std::uint64_t delivered_total_ = 0;

  // latency
  std::int64_t first_measured_seq_ = -1;
  std::uint64_t publishes_ = 0;
  std::vector<std::int64_t> lat_user_, lat_kernel_;

  // idle
  long rss_before_kib_ = -1, rss_after_kib_ = -1;
  double settled_after_ = 0;       // idle: seconds waited before reading memory
  std::vector<double> step_bytes_; // idle-steps: bytes/connection per quarter

  // handshake
  std::uint64_t handshakes_ = 0;

  SSL_CTX* tls_ = nullptr; // with --tls
};

} // namespace

int main(int argc, char** argv) {
  options o;
  std::string mode_name = "throughput";
  herald::cli::options opts{"herald-bench-client",
                            "The load client of the chat-room benchmark "
                            "(bench/README.md)."};
  opts.add("host", "ADDR", o.host, "server address (IPv4)");
  opts.add("port", "N", o.port, "server port").range(1, 65535);
  opts
    .add("port2", "N", o.port2,
         "a second server (another node of the same topics): clients with "
         "odd indexes connect there, 0: none")
    .range(0, 65535);
  opts
    .add("mode", "M", mode_name,
         "throughput, latency, idle, idle-steps or handshake")
    .one_of({"throughput", "latency", "idle", "idle-steps", "handshake"});
  opts.add("clients", "N", o.clients, "connections (handshake: parallel loops)")
    .min(1);
  opts.add("messages", "M", o.messages, "messages per client per round")
    .range(1, 65535);
  opts.add("payload", "BYTES", o.payload,
           "message size, 0: short chat strings");
  opts.add("duration", "SECS", o.duration, "measured time").positive();
  opts.add("warmup", "SECS", o.warmup, "unmeasured time before it").min(0);
  opts
    .add("server-pid", "PID", o.server_pid,
         "sample the server's CPU time and memory, 0: don't")
    .min(0);
  opts
    .add("interval-ms", "MS", o.interval_ms, "latency: time between publishes")
    .min(1);
  opts
    .add("connect-parallel", "N", o.connect_parallel,
         "handshakes in flight while connecting")
    .min(1);
  opts
    .add("settle", "SECS", o.settle,
         "idle: wait at least this long before reading memory, then until "
         "it is stable for 3 s")
    .min(0);
  opts.add("timeout", "SECS", o.timeout, "give up on connecting or a round")
    .positive();
  opts.flag("tls", o.tls,
            "connect with TLS (wss://; the certificate is not checked; not "
            "with --mode latency)");
  opts.flag("quiet", o.quiet, "no per-second lines");
  opts.flag("verbose", o.verbose, "print every round's time");
  opts.parse_or_exit(argc, argv);
  if (mode_name == "latency")
    o.m = mode::latency;
  else if (mode_name == "idle")
    o.m = mode::idle;
  else if (mode_name == "idle-steps")
    o.m = mode::idle_steps;
  else if (mode_name == "handshake")
    o.m = mode::handshake;
  if (o.tls && o.m == mode::latency)
    die("--tls: not with --mode latency (it reads kernel timestamps)");
  // Enough descriptors for many connections.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  client c{o};
  return c.run();
}
