#include "herald/net/stream_transport.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <caf/send.hpp>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr std::size_t read_chunk = 64u << 10;

// One receive buffer per loop thread: idle connections hold none.
thread_local std::array<std::byte, read_chunk> recv_buf;

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

} // namespace

stream_transport::stream_transport(stream_socket sock, std::string remote,
                                   std::vector<std::byte> initial,
                                   tcp_transport_options opts)
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

stream_transport::~stream_transport() = default;

// Reading starts when the transport is made (on the socket's loop, see
// begin): what arrives before the owner exists is kept and handed over
// here, so starting costs no hop to another thread.
void stream_transport::start(caf::actor owner) {
  owner_ = std::move(owner);
  // Bytes read from now on are sent after these.
  if (early_) {
    if (!early_->bytes.empty())
      caf::anon_send(owner_, inbound{std::move(early_->bytes)});
    if (failed_ && !early_->down.empty())
      caf::anon_send(owner_, transport_down_atom::value,
                     std::move(early_->down));
    early_.reset();
  }
}

void stream_transport::begin() {
  if (early_)
    unconsumed_ += early_->bytes.size();
  if (on_begin())
    do_read();
}

std::size_t stream_transport::buffered_amount() const {
  return buffered_;
}

void stream_transport::consumed(std::size_t n) {
  unconsumed_ -= n;
  if (unconsumed_ < read_credit_ && std::exchange(credit_paused_, false))
    asio::post(sock_.get_executor(),
               [self = shared_from_this()] { self->do_read(); });
}

void stream_transport::pause_reading() {
  user_paused_ = true;
}

void stream_transport::resume_reading() {
  if (std::exchange(user_paused_, false))
    asio::post(sock_.get_executor(),
               [self = shared_from_this()] { self->do_read(); });
}

std::size_t stream_transport::unread_input() const {
  // Only while neither flag is set: do_abort sets them before it closes
  // the descriptor, so fd_ is still ours.
  if (closing_ || failed_)
    return 0;
  int n = 0;
  if (::ioctl(fd_, FIONREAD, &n) != 0 || n < 0)
    return 0;
  return static_cast<std::size_t>(n);
}

void stream_transport::close(bool graceful) {
  if (!sock_.get_executor().running_in_this_thread()) {
    // Another thread (a connection destroyed away from its loop), or the
    // loop is not running: the state is the loop's, so close there.
    asio::post(sock_.get_executor(), [self = shared_from_this(), graceful] {
      self->close(graceful);
    });
    return;
  }
  if (closing_)
    return;
  closing_ = true;
  owner_ = nullptr;
  if (graceful && !failed_) {
    bool empty = flushed();
    if (!empty)
      arm_write(); // a held backlog too: the completion shuts down
    asio::post(sock_.get_executor(), [self = shared_from_this(), empty] {
      // A peer that never reads would keep a backlog (and this socket)
      // forever: the linger deadline covers the flush too.
      self->start_linger_timer();
      if (empty)
        self->do_shutdown();
      // else: the write completion shuts down once the backlog is out.
    });
  } else {
    asio::post(sock_.get_executor(),
               [self = shared_from_this()] { self->do_abort(); });
  }
}

std::string stream_transport::remote_address() const {
  return remote_;
}

void stream_transport::deliver(std::vector<std::byte> bytes) {
  if (!owner_) {
    // Not started yet: keep the bytes for start() (or drop them: closing).
    if (!closing_) {
      auto& early = before_start().bytes;
      early.insert(early.end(), bytes.begin(), bytes.end());
    }
    return;
  }
  caf::anon_send(owner_, inbound{std::move(bytes)});
}

void stream_transport::fail(std::string why) {
  failed_ = true;
  out_.clear();
  clear_backlog();
  buffered_ = 0;
  if (owner_)
    caf::anon_send(owner_, transport_down_atom::value, std::move(why));
  else if (!closing_)
    before_start().down = std::move(why);
}

stream_transport::early_events& stream_transport::before_start() {
  if (!early_)
    early_ = std::make_unique<early_events>();
  return *early_;
}

// -- reading (the socket's loop) ----------------------------------------------

void stream_transport::do_read() {
  if (reading_ || user_paused_ || lingering_ || !sock_.is_open())
    return;
  if (unconsumed_ >= read_credit_) {
    credit_paused_ = true; // consumed() reads on
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

void stream_transport::on_readable(boost::system::error_code ec) {
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
    if (on_received({recv_buf.data(), static_cast<std::size_t>(n)}))
      do_read();
  } else if (n == 0) {
    down("connection closed by peer");
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    do_read();
  } else {
    // Most connections end here (a peer's reset): the error's English
    // text, without strerror's look-up of a translation.
    auto* text = ::strerrordesc_np(errno);
    down(text ? text : std::strerror(errno));
  }
}

void stream_transport::down(std::string why) {
  if (!closing_)
    fail(std::move(why));
  else
    do_abort();
}

// -- writing ------------------------------------------------------------------

void stream_transport::arm_write() {
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

void stream_transport::on_writable(boost::system::error_code ec) {
  writing_ = false;
  if (ec || failed_) {
    if (ec && ec != asio::error::operation_aborted)
      fail(ec.message());
    return;
  }
  if (!flush_backlog())
    return;
  if (closing_) {
    do_shutdown();
    return;
  }
  if (owner_)
    caf::anon_send(owner_, written_atom::value, std::size_t{0});
}

// -- closing (the socket's loop) ----------------------------------------------

void stream_transport::do_shutdown() {
  if (!sock_.is_open() || lingering_)
    return;
  if (!failed_)
    before_shutdown();
  // Send FIN after the data, then read until the peer closes, so that
  // unread input does not turn our close into a reset that could destroy
  // the close frame still in flight.
  boost::system::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  lingering_ = true;
  start_linger_timer();
  do_linger_read();
}

void stream_transport::start_linger_timer() {
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

void stream_transport::do_linger_read() {
  sock_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](
                                             boost::system::error_code ec) {
    if (ec) {
      self->do_abort();
      return;
    }
    auto n = ::recv(self->fd_, recv_buf.data(), recv_buf.size(), MSG_DONTWAIT);
    if (n > 0 || (n < 0 && errno == EAGAIN))
      self->do_linger_read();
    else
      self->do_abort();
  });
}

void stream_transport::do_abort() {
  closing_ = true;
  failed_ = true;
  owner_ = nullptr;
  out_.clear();
  clear_backlog();
  buffered_ = 0;
  if (linger_timer_)
    linger_timer_->cancel();
  boost::system::error_code ec;
  if (sock_.is_open()) {
    // An abortive close: RST instead of FIN for terminate().
    sock_.close(ec);
  }
}

} // namespace herald::net
