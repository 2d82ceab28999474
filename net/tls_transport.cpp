#include "herald/net/tls_transport.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/send.hpp>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr std::size_t read_chunk = 64u << 10;
// The largest TLS record's plaintext.
constexpr std::size_t record_size = 16u << 10;
// Plaintext encrypted ahead of what the socket took: a backlog stays as
// shared frames, encrypted only as the socket drains.
constexpr std::size_t batch_limit = 256u << 10;

// Per loop thread: ciphertext read, plaintext decrypted.
thread_local std::array<std::byte, read_chunk> recv_buf;
thread_local std::array<std::byte, record_size> plain_buf;
// Per writing thread: small frames gathered into full records, encrypted
// with one SSL_write per batch (OpenSSL then sets up its record buffer once,
// not once per record). Allocated on a thread's first TLS write.
thread_local std::vector<std::byte> gather_buf;
// Per writing thread: the records of one batch. A connection keeps them
// only while the socket has not taken them all, so idle connections hold
// no ciphertext buffer.
thread_local std::vector<std::byte> cipher_scratch;

class tls_transport final : public transport,
                            public std::enable_shared_from_this<tls_transport> {
public:
  tls_transport(stream_socket sock, std::string remote,
                std::vector<std::byte> initial,
                std::unique_ptr<tls_engine> engine, tcp_transport_options opts)
    : sock_(std::move(sock)), remote_(std::move(remote)),
      read_credit_(opts.read_credit), linger_(opts.linger),
      engine_(std::move(engine)) {
    if (!initial.empty())
      before_start().bytes = std::move(initial);
    boost::system::error_code ec;
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

  void start(caf::actor owner) override {
    std::lock_guard<std::mutex> guard{mtx_};
    owner_ = std::move(owner);
    if (early_) {
      if (!early_->bytes.empty())
        caf::anon_send(owner_, inbound{std::move(early_->bytes)});
      if (failed_ && !early_->down.empty())
        caf::anon_send(owner_, transport_down_atom::value,
                       std::move(early_->down));
      early_.reset();
    }
  }

  // Called once by make_tls_transport, on the socket's loop: records that
  // came with the request are decrypted first.
  void begin() {
    if (early_)
      unconsumed_ += early_->bytes.size();
    // Records the session left unsent (the session ticket) go out with
    // the first write, the 101.
    holding_ = true;
    auto open = decrypt();
    holding_ = false;
    if (open)
      do_read();
  }

  std::size_t write(std::span<const slice> pieces) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closing_ || failed_)
      return 0;
    if (!out_.empty() || writing_) {
      // A backlog: the write completion encrypts these after it.
      for (auto& p : pieces)
        keep(p, 0);
      update_buffered();
      return buffered_;
    }
    std::size_t i = 0;
    std::size_t offset = 0;
    borrow_scratch();
    for (;;) {
      if (!encrypt(pieces, i, offset)) {
        fail_locked("TLS: " + engine_->error());
        return 0;
      }
      if (!send_locked())
        break;
      if (i == pieces.size()) {
        return_scratch();
        update_buffered();
        return 0;
      }
    }
    if (failed_)
      return 0;
    return_scratch();
    if (i < pieces.size()) {
      keep(pieces[i], offset);
      for (auto j = i + 1; j < pieces.size(); ++j)
        keep(pieces[j], 0);
    }
    update_buffered();
    arm_write_locked();
    return buffered_;
  }

  std::size_t buffered_amount() const override {
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
    // Records the peer sent that we have not read (the idle timeout hears a
    // peer whose reading is paused). Under the lock and only while neither
    // flag is set: do_abort sets them under it before closing fd_.
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
      bool flushed = out_.empty() && sent_ == engine_->out().size();
      if (!flushed)
        arm_write_locked(); // held records too: the completion shuts down
      asio::post(sock_.get_executor(), [self = shared_from_this(), flushed] {
        self->start_linger_timer();
        if (flushed)
          self->do_shutdown();
      });
    } else {
      asio::post(sock_.get_executor(),
                 [self = shared_from_this()] { self->do_abort(); });
    }
  }

  std::string remote_address() const override { return remote_; }

private:
  struct queued : slice {
    frame_ptr keep;
  };

  void keep(const slice& p, std::size_t offset) {
    out_.push_back(
      queued{{p.owner, p.data + offset, p.size - offset}, frame_ptr{p.owner}});
    plain_bytes_ += p.size - offset;
  }

  void update_buffered() {
    buffered_ = plain_bytes_ + (engine_->out().size() - sent_);
  }

  // Lends the thread's ciphertext buffer to an engine with none pending.
  void borrow_scratch() {
    if (engine_->out().empty())
      std::swap(engine_->out(), cipher_scratch);
  }

  // Takes it back once the socket took everything.
  void return_scratch() {
    if (engine_->out().empty() && cipher_scratch.empty())
      std::swap(engine_->out(), cipher_scratch);
  }

  // Encrypts from pieces[i] at `offset` on, up to batch_limit bytes:
  // small pieces are gathered into full records, large ones encrypted in
  // place. Advances i and offset past what it took.
  template <class Piece>
  bool encrypt(std::span<const Piece> pieces, std::size_t& i,
               std::size_t& offset) {
    if (gather_buf.size() < batch_limit)
      gather_buf.resize(batch_limit);
    std::size_t fill = 0;
    std::size_t done = 0;
    bool ok = true;
    auto flush = [&] {
      if (fill > 0 && ok)
        ok = engine_->write(gather_buf.data(), fill);
      fill = 0;
    };
    while (ok && i < pieces.size() && done < batch_limit) {
      const std::byte* p = pieces[i].data + offset;
      auto len = pieces[i].size - offset;
      std::size_t take;
      if (len >= record_size && fill % record_size == 0) {
        flush(); // the gathered records end here: this piece goes in place
        if (!ok)
          break;
      }
      if (fill == 0 && len >= record_size) {
        take = std::min(len, std::max(record_size, batch_limit - done));
        if (take < len)
          take -= take % record_size; // whole records; the rest goes next
        ok = engine_->write(p, take);
      } else {
        // A large piece fills only the current record; its rest is
        // encrypted in place next.
        auto room = len >= record_size ? record_size - fill % record_size
                                       : batch_limit - fill;
        take = std::min({len, room, batch_limit - fill});
        std::memcpy(gather_buf.data() + fill, p, take);
        fill += take;
      }
      done += take;
      offset += take;
      if (offset == pieces[i].size) {
        ++i;
        offset = 0;
      }
    }
    flush();
    return ok;
  }

  template <class Piece>
  bool encrypt(const std::vector<Piece>& v, std::size_t& i,
               std::size_t& offset) {
    return encrypt(std::span<const Piece>{v}, i, offset);
  }

  // Sends the pending records; true when all went out. On an error the
  // transport has failed.
  bool send_locked() {
    auto& c = engine_->out();
    while (sent_ < c.size()) {
      auto n = ::send(fd_, c.data() + sent_, c.size() - sent_,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return false;
        fail_locked(std::strerror(errno));
        return false;
      }
      sent_ += static_cast<std::size_t>(n);
    }
    c.clear();
    sent_ = 0;
    return true;
  }

  void deliver(std::vector<std::byte> bytes) {
    caf::actor owner;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!owner_ && !closing_) {
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
    plain_bytes_ = 0;
    buffered_ = 0;
    if (owner_)
      caf::anon_send(owner_, transport_down_atom::value, std::move(why));
    else if (!closing_)
      before_start().down = std::move(why);
  }

  // -- reading (the socket's loop) --------------------------------------------

  // Decrypts the engine's input and hands the plaintext on. False when the
  // connection ended (close_notify or a TLS error).
  bool decrypt() {
    std::vector<std::byte> plain;
    auto st = tls_engine::status::want;
    std::string why;
    bool renegotiation = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      for (;;) {
        std::size_t n = 0;
        st = engine_->read(plain_buf.data(), plain_buf.size(), n);
        plain.insert(plain.end(), plain_buf.data(), plain_buf.data() + n);
        if (st != tls_engine::status::data)
          break;
      }
      if (st == tls_engine::status::failed)
        why = engine_->error();
      renegotiation = engine_->renegotiation_attempted();
      // Answers of the read itself (alerts, a key update) go out now.
      if (!failed_ && !writing_ && !holding_ && sent_ < engine_->out().size()
          && !send_locked() && !failed_)
        arm_write_locked();
    }
    if (renegotiation)
      HERALD_LOG(info, "refused TLS renegotiation from " << remote_);
    if (!plain.empty()) {
      unconsumed_ += plain.size();
      deliver(std::move(plain));
    }
    if (st == tls_engine::status::closed) {
      down("connection closed by peer (TLS close_notify)");
      return false;
    }
    if (st == tls_engine::status::failed) {
      HERALD_LOG(debug, "TLS error from " << remote_ << ": " << why);
      down("TLS: " + why);
      return false;
    }
    return true;
  }

  void do_read() {
    if (reading_ || user_paused_ || lingering_ || !sock_.is_open())
      return;
    if (unconsumed_.load() >= read_credit_) {
      credit_paused_ = true;
      if (unconsumed_.load() >= read_credit_ || !credit_paused_.exchange(false))
        return;
    }
    reading_ = true;
    sock_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](boost::system::error_code ec) {
                       self->on_readable(ec);
                     });
  }

  void on_readable(boost::system::error_code ec) {
    reading_ = false;
    if (lingering_)
      return;
    if (ec) {
      if (ec != asio::error::operation_aborted)
        down(ec.message());
      return;
    }
    auto n = ::recv(fd_, recv_buf.data(), recv_buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        engine_->input({recv_buf.data(), static_cast<std::size_t>(n)});
      }
      if (decrypt())
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

  // -- writing ----------------------------------------------------------------

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
    for (;;) {
      if (!send_locked()) {
        if (!failed_) {
          update_buffered();
          arm_write_locked();
        }
        return;
      }
      if (out_.empty())
        break;
      borrow_scratch();
      std::size_t i = 0;
      std::size_t offset = 0;
      if (!encrypt(out_, i, offset)) {
        fail_locked("TLS: " + engine_->error());
        return;
      }
      for (std::size_t j = 0; j < i; ++j)
        plain_bytes_ -= out_[j].size;
      out_.erase(out_.begin(), out_.begin() + static_cast<long>(i));
      if (offset > 0) {
        out_.front().data += offset;
        out_.front().size -= offset;
        plain_bytes_ -= offset;
      }
    }
    return_scratch();
    out_.shrink_to_fit();
    update_buffered();
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
    {
      // close_notify, then FIN: a peer can tell our close from a cut.
      std::lock_guard<std::mutex> guard{mtx_};
      if (!failed_) {
        engine_->shutdown();
        send_locked();
      }
    }
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
      plain_bytes_ = 0;
      buffered_ = 0;
    }
    if (linger_timer_)
      linger_timer_->cancel();
    boost::system::error_code ec;
    if (sock_.is_open())
      sock_.close(ec);
  }

  stream_socket sock_;
  int fd_ = -1;
  std::string remote_;
  struct early_events {
    std::vector<std::byte> bytes;
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

  // Guards the engine too: OpenSSL's state is shared by both directions.
  mutable std::mutex mtx_;
  std::unique_ptr<tls_engine> engine_;
  caf::actor owner_;
  std::vector<queued> out_; // plaintext not yet encrypted
  std::size_t plain_bytes_ = 0;
  std::size_t sent_ = 0; // of engine_->out()
  std::atomic<std::size_t> buffered_{0};
  bool writing_ = false;
  bool holding_ = false; // begin(): pending records wait for the first write
  bool closing_ = false;
  bool failed_ = false;

  bool reading_ = false;
  bool lingering_ = false;
  std::unique_ptr<asio::steady_timer> linger_timer_;

  std::atomic<std::size_t> unconsumed_{0};
  std::atomic<bool> credit_paused_{false};
  std::atomic<bool> user_paused_{false};
};

} // namespace

transport_ptr make_tls_transport(stream_socket sock, std::string remote,
                                 std::vector<std::byte> initial,
                                 std::unique_ptr<tls_engine> engine,
                                 tcp_transport_options opts) {
  engine->stash_input();
  auto t = std::make_shared<tls_transport>(std::move(sock), std::move(remote),
                                           std::move(initial),
                                           std::move(engine), opts);
  t->begin();
  return t;
}

} // namespace herald::net
