#include "herald/net/tcp_transport.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <optional>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/send.hpp>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr std::size_t max_iov = 512;
constexpr std::size_t read_chunk = 64u << 10;

// Frames up to this size are copied into the scratch buffer when written.
constexpr std::size_t copy_limit = 512;
constexpr std::size_t scratch_size = 128u << 10;

// One receive buffer per loop thread: idle connections hold none.
thread_local std::array<std::byte, read_chunk> recv_buf;
// One gather buffer per writing thread (the loops);
// it only lives for the duration of one sendmsg.
thread_local std::array<std::byte, scratch_size> write_scratch;

// Allocates Asio operations at their own size with operator new, outside
// Asio's per-thread recycling cache. For the read wait, which stays pending
// for as long as a connection is idle: from the cache it would sit in
// whatever larger block an earlier operation had freed.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <class U>
  bool operator==(const exact_allocator<U>&) const noexcept {
    return true;
  }
};

class tcp_transport final : public transport,
                            public std::enable_shared_from_this<tcp_transport> {
public:
  tcp_transport(stream_socket sock, std::string remote,
                std::vector<std::byte> initial, tcp_transport_options opts)
    : sock_(std::move(sock)), remote_(std::move(remote)),
      read_credit_(opts.read_credit), linger_(opts.linger) {
    if (!initial.empty())
      before_start().bytes = std::move(initial);
    // Every send and receive passes MSG_DONTWAIT: the descriptor's own
    // blocking mode does not matter, and setting it would be a system call
    // per upgrade.
    boost::system::error_code ec;
    if (opts.set_no_delay)
      sock_.set_option(tcp::no_delay{true}, ec);
    fd_ = sock_.native_handle();
    if (opts.send_buffer > 0) {
      int size =
        static_cast<int>(std::min<std::size_t>(opts.send_buffer, INT_MAX / 2));
      if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0)
        HERALD_LOG(warn, "SO_SNDBUF " << size << " for " << remote_
                                      << " refused: " << std::strerror(errno));
    }
  }

  // Reading starts when the transport is made (on the socket's loop, see
  // make_tcp_transport): what arrives before the owner exists is kept and
  // handed over here, so starting costs no hop to another thread.
  void start(caf::actor owner) override {
    std::lock_guard<std::mutex> guard{mtx_};
    owner_ = std::move(owner);
    // Under the lock: bytes read from now on are sent after these.
    if (early_) {
      if (!early_->bytes.empty())
        caf::anon_send(owner_, inbound{std::move(early_->bytes)});
      if (failed_ && !early_->down.empty())
        caf::anon_send(owner_, transport_down_atom::value,
                       std::move(early_->down));
      early_.reset();
    }
  }

  // Called once by make_tcp_transport, on the socket's loop.
  void begin() {
    if (early_)
      unconsumed_ += early_->bytes.size();
    do_read();
  }

  std::size_t write(std::span<const slice> pieces) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closing_ || failed_)
      return 0;
    if (!out_.empty()) {
      for (auto& p : pieces)
        keep(p, 0);
      return buffered_;
    }
    // Nothing queued: write straight from the caller's thread.
    std::size_t i = 0;
    std::size_t offset = 0;
    while (i < pieces.size()) {
      iovec iov[max_iov];
      auto g = gather(pieces.subspan(i), offset, iov);
      auto written = send_iov(iov, g.iovs);
      if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        fail_locked(std::strerror(errno));
        return 0;
      }
      // Skip what the kernel took.
      auto w = static_cast<std::size_t>(written);
      while (w > 0) {
        auto left = pieces[i].size - offset;
        if (w >= left) {
          w -= left;
          ++i;
          offset = 0;
        } else {
          offset += w;
          w = 0;
        }
      }
      if (static_cast<std::size_t>(written) < g.bytes)
        break; // the socket buffer is full
    }
    if (i == pieces.size())
      return 0;
    keep(pieces[i], offset);
    for (auto j = i + 1; j < pieces.size(); ++j)
      keep(pieces[j], 0);
    arm_write_locked();
    return buffered_;
  }

  std::size_t buffered_amount() const override {
    // Read on every send and delivery: no lock (writers hold mtx_).
    return buffered_.load(std::memory_order_relaxed);
  }

  void consumed(std::size_t n) override {
    auto before = unconsumed_.fetch_sub(n);
    if (before - n < read_credit_ && credit_paused_.exchange(false))
      asio::post(sock_.get_executor(),
                 [self = shared_from_this()] { self->do_read(); });
  }

  void pause_reading() override { user_paused_ = true; }

  void resume_reading() override {
    if (user_paused_.exchange(false))
      asio::post(sock_.get_executor(),
                 [self = shared_from_this()] { self->do_read(); });
  }

  std::size_t unread_input() const override {
    // Under the lock, and only while neither flag is set: do_abort sets
    // them under it before it closes the descriptor, so fd_ is still ours.
    std::lock_guard<std::mutex> guard{mtx_};
    if (closing_ || failed_)
      return 0;
    int n = 0;
    if (::ioctl(fd_, FIONREAD, &n) != 0 || n < 0)
      return 0;
    return static_cast<std::size_t>(n);
  }

  void close(bool graceful) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closing_)
      return;
    closing_ = true;
    owner_ = nullptr;
    if (graceful && !failed_) {
      bool flushed = out_.empty();
      asio::post(sock_.get_executor(), [self = shared_from_this(), flushed] {
        // A peer that never reads would keep a backlog (and this socket)
        // forever: the linger deadline covers the flush too.
        self->start_linger_timer();
        if (flushed)
          self->do_shutdown();
        // else: the write completion shuts down once the backlog is out.
      });
    } else {
      asio::post(sock_.get_executor(),
                 [self = shared_from_this()] { self->do_abort(); });
    }
  }

  std::string remote_address() const override { return remote_; }

private:
  struct gathered {
    std::size_t iovs = 0;  // iovec entries filled
    std::size_t bytes = 0; // bytes they cover
  };

  // A piece of the backlog: its bytes and a reference that keeps them.
  struct queued : slice {
    frame_ptr keep;
  };

  // Queues what is left of `p` (from `offset` on) with a reference of its
  // own: the caller's borrow ends when write() returns.
  void keep(const slice& p, std::size_t offset) {
    out_.push_back(
      queued{{p.owner, p.data + offset, p.size - offset}, frame_ptr{p.owner}});
    buffered_ += p.size - offset;
  }

  // Fills `iov` with the bytes of `pieces`, skipping `offset` bytes of the
  // first. Runs of small pieces are copied into one contiguous scratch
  // buffer, so the kernel copies a few large segments instead of many
  // tiny ones (a lone chat message is a frame of a few dozen bytes); larger
  // pieces are referenced in place. Stops at max_iov entries or a full
  // scratch buffer; the caller loops until everything is written.
  template <class Piece>
  static gathered gather(std::span<const Piece> pieces, std::size_t offset,
                         iovec* iov) {
    gathered g;
    std::byte* scratch = write_scratch.data();
    std::size_t used = 0;
    bool in_run = false; // the last iovec is the open run in the scratch
    for (std::size_t j = 0; j < pieces.size(); ++j) {
      auto skip = j == 0 ? offset : 0;
      const std::byte* data = pieces[j].data + skip;
      auto len = pieces[j].size - skip;
      if (len <= copy_limit) {
        if (used + len > write_scratch.size())
          break;
        if (!in_run) {
          if (g.iovs == max_iov)
            break;
          iov[g.iovs].iov_base = scratch + used;
          iov[g.iovs].iov_len = 0;
          ++g.iovs;
          in_run = true;
        }
        std::memcpy(scratch + used, data, len);
        used += len;
        iov[g.iovs - 1].iov_len += len;
      } else {
        if (g.iovs == max_iov)
          break;
        iov[g.iovs].iov_base = const_cast<std::byte*>(data);
        iov[g.iovs].iov_len = len;
        ++g.iovs;
        in_run = false;
      }
      g.bytes += len;
    }
    return g;
  }

  ssize_t send_iov(iovec* iov, std::size_t n) {
    // One piece (a lone message, or small ones gathered into the scratch
    // buffer) goes through send(): the kernel then copies no iovec array in.
    if (n == 1)
      return ::send(fd_, iov[0].iov_base, iov[0].iov_len,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    return ::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  void deliver(std::vector<std::byte> bytes) {
    // Called on the socket's loop; owner_ is cleared under the lock on close.
    caf::actor owner;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!owner_ && !closing_) {
        // Not started yet: keep the bytes for start().
        auto& early = before_start().bytes;
        early.insert(early.end(), bytes.begin(), bytes.end());
        return;
      }
      owner = owner_;
    }
    if (owner)
      caf::anon_send(owner, inbound{std::move(bytes)});
  }

  void fail_locked(std::string why) {
    failed_ = true;
    out_.clear();
    buffered_ = 0;
    if (owner_)
      caf::anon_send(owner_, transport_down_atom::value, std::move(why));
    else if (!closing_)
      before_start().down = std::move(why);
  }

  // -- reading (the socket's loop) --------------------------------------------

  void do_read() {
    if (reading_ || user_paused_ || lingering_ || !sock_.is_open())
      return;
    if (unconsumed_.load() >= read_credit_) {
      credit_paused_ = true;
      // The actor may have caught up between the check and the flag.
      if (unconsumed_.load() >= read_credit_ || !credit_paused_.exchange(false))
        return;
    }
    reading_ = true;
    sock_.async_wait(tcp::socket::wait_read,
                     asio::bind_allocator(exact_allocator<void>{},
                                          [self = shared_from_this()](
                                            boost::system::error_code ec) {
                                            self->on_readable(ec);
                                          }));
  }

  void on_readable(boost::system::error_code ec) {
    reading_ = false;
    if (lingering_)
      return; // the linger loop reads from now on
    if (ec) {
      if (ec != asio::error::operation_aborted)
        down(ec.message());
      return;
    }
    auto n = ::recv(fd_, recv_buf.data(), recv_buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      auto len = static_cast<std::size_t>(n);
      unconsumed_ += len;
      deliver(std::vector<std::byte>(recv_buf.data(), recv_buf.data() + len));
      do_read();
    } else if (n == 0) {
      down("connection closed by peer");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      do_read();
    } else {
      down(std::strerror(errno));
    }
  }

  void down(std::string why) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!closing_) {
        fail_locked(std::move(why));
        return;
      }
    }
    do_abort();
  }

  // -- writing (the socket's loop) --------------------------------------------

  void arm_write_locked() {
    if (writing_)
      return;
    writing_ = true;
    asio::post(sock_.get_executor(), [self = shared_from_this()] {
      self->sock_.async_wait(tcp::socket::wait_write,
                             [self](boost::system::error_code ec) {
                               self->on_writable(ec);
                             });
    });
  }

  void on_writable(boost::system::error_code ec) {
    std::unique_lock<std::mutex> guard{mtx_};
    writing_ = false;
    if (ec || failed_) {
      if (ec && ec != asio::error::operation_aborted)
        fail_locked(ec.message());
      return;
    }
    while (!out_.empty()) {
      iovec iov[max_iov];
      auto g = gather(std::span<const queued>{out_}, 0, iov);
      auto written = send_iov(iov, g.iovs);
      if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          arm_write_locked();
          return;
        }
        fail_locked(std::strerror(errno));
        return;
      }
      auto w = static_cast<std::size_t>(written);
      buffered_ -= w;
      std::size_t done = 0;
      while (w > 0) {
        auto& front = out_[done];
        if (w >= front.size) {
          w -= front.size;
          ++done;
        } else {
          front.data += w; // the rest of it goes next time
          front.size -= w;
          w = 0;
        }
      }
      out_.erase(out_.begin(), out_.begin() + static_cast<long>(done));
    }
    out_.shrink_to_fit();
    if (closing_) {
      guard.unlock();
      do_shutdown();
      return;
    }
    if (owner_)
      caf::anon_send(owner_, written_atom::value, std::size_t{0});
  }

  // -- closing (the socket's loop) --------------------------------------------

  void do_shutdown() {
    if (!sock_.is_open() || lingering_)
      return;
    // Send FIN after the data, then read until the peer closes, so that
    // unread input does not turn our close into a reset that could destroy
    // the close frame still in flight.
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_send, ec);
    lingering_ = true;
    start_linger_timer();
    do_linger_read();
  }

  void start_linger_timer() {
    if (linger_timer_ || !sock_.is_open())
      return;
    linger_timer_ = std::make_unique<asio::steady_timer>(sock_.get_executor());
    linger_timer_->expires_after(linger_);
    linger_timer_->async_wait(
      [self = shared_from_this()](boost::system::error_code ec) {
        if (!ec)
          self->do_abort();
      });
  }

  void do_linger_read() {
    sock_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](boost::system::error_code ec) {
                       if (ec) {
                         self->do_abort();
                         return;
                       }
                       auto n = ::recv(self->fd_, recv_buf.data(),
                                       recv_buf.size(), MSG_DONTWAIT);
                       if (n > 0 || (n < 0 && errno == EAGAIN))
                         self->do_linger_read();
                       else
                         self->do_abort();
                     });
  }

  void do_abort() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      closing_ = true;
      failed_ = true;
      owner_ = nullptr;
      out_.clear();
      buffered_ = 0;
    }
    if (linger_timer_)
      linger_timer_->cancel();
    boost::system::error_code ec;
    if (sock_.is_open()) {
      // An abortive close: RST instead of FIN for terminate().
      sock_.close(ec);
    }
  }

  stream_socket sock_;
  std::string remote_;
  // What happened before start(), made only when something did (most
  // connections have nothing here by the time the actor starts them).
  struct early_events {
    // Bytes the client sent with or right after its handshake request.
    std::vector<std::byte> bytes;
    // Why the socket failed, if it did.
    std::string down;
  };
  std::unique_ptr<early_events> early_;
  early_events& before_start() {
    if (!early_)
      early_ = std::make_unique<early_events>();
    return *early_;
  }
  std::size_t read_credit_;
  std::chrono::milliseconds linger_;

  mutable std::mutex mtx_;
  caf::actor owner_;
  std::vector<queued> out_;
  std::atomic<std::size_t> buffered_{0};
  bool writing_ = false;
  bool closing_ = false;
  bool failed_ = false;

  // The socket's loop only.
  bool reading_ = false;
  bool lingering_ = false;
  // Made only when closing: idle connections do not carry a timer.
  std::unique_ptr<asio::steady_timer> linger_timer_;

  std::atomic<std::size_t> unconsumed_{0};
  std::atomic<bool> credit_paused_{false};
  std::atomic<bool> user_paused_{false};
  // Here, next to the flags: one size class smaller per connection.
  int fd_ = -1;
};

} // namespace

transport_ptr make_tcp_transport(stream_socket sock, std::string remote,
                                 std::vector<std::byte> initial,
                                 tcp_transport_options opts) {
  auto t = std::make_shared<tcp_transport>(std::move(sock), std::move(remote),
                                           std::move(initial), opts);
  t->begin();
  return t;
}

} // namespace herald::net
