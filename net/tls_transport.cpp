#include "herald/net/tls_transport.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>

#include "herald/net/log.hpp"
#include "herald/net/stream_transport.hpp"

namespace herald::net {

namespace {

// The largest TLS record's plaintext.
constexpr std::size_t record_size = 16u << 10;
// Plaintext encrypted ahead of what the socket took: a backlog stays as
// shared frames, encrypted only as the socket drains.
constexpr std::size_t batch_limit = 256u << 10;

// Per loop thread: plaintext decrypted.
thread_local std::array<std::byte, record_size> plain_buf;
// Per writing thread: small frames gathered into full records, encrypted
// with one SSL_write per batch (OpenSSL then sets up its record buffer once,
// not once per record). Allocated on a thread's first TLS write.
thread_local std::vector<std::byte> gather_buf;
// Per writing thread: the records of one batch. A connection keeps them
// only while the socket has not taken them all, so idle connections hold
// no ciphertext buffer.
thread_local std::vector<std::byte> cipher_scratch;

class tls_transport final : public stream_transport {
public:
  tls_transport(stream_socket sock, std::string remote,
                std::vector<std::byte> initial,
                std::unique_ptr<tls_engine> engine, tcp_transport_options opts)
    : stream_transport(std::move(sock), std::move(remote), std::move(initial),
                       opts),
      engine_(std::move(engine)) {}

  std::size_t write(std::span<const slice> pieces) override {
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
        fail("TLS: " + engine_->error());
        return 0;
      }
      if (!send_pending())
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
    arm_write();
    return buffered_;
  }

private:
  // Records that came with the request are decrypted first.
  bool on_begin() override {
    // Records the session left unsent (the session ticket) go out with the
    // first write, the 101.
    holding_ = true;
    auto open = decrypt();
    holding_ = false;
    return open;
  }

  bool on_received(std::span<const std::byte> bytes) override {
    engine_->input(bytes);
    return decrypt();
  }

  bool flushed() const override {
    return out_.empty() && sent_ == engine_->out().size();
  }

  void before_shutdown() override {
    // close_notify, then FIN: a peer can tell our close from a cut.
    engine_->shutdown();
    send_pending();
  }

  void clear_backlog() override { plain_bytes_ = 0; }

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
  bool send_pending() {
    auto& c = engine_->out();
    while (sent_ < c.size()) {
      auto n = ::send(fd_, c.data() + sent_, c.size() - sent_,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return false;
        fail(std::strerror(errno));
        return false;
      }
      sent_ += static_cast<std::size_t>(n);
    }
    c.clear();
    sent_ = 0;
    return true;
  }

  // -- reading (the socket's loop) --------------------------------------------

  // Decrypts the engine's input and hands the plaintext on. False when the
  // connection ended (close_notify or a TLS error).
  bool decrypt() {
    std::vector<std::byte> plain;
    auto st = tls_engine::status::want;
    std::string why;
    for (;;) {
      std::size_t n = 0;
      st = engine_->read(plain_buf.data(), plain_buf.size(), n);
      plain.insert(plain.end(), plain_buf.data(), plain_buf.data() + n);
      if (st != tls_engine::status::data)
        break;
    }
    if (st == tls_engine::status::failed)
      why = engine_->error();
    bool renegotiation = engine_->renegotiation_attempted();
    // Answers of the read itself (alerts, a key update) go out now.
    if (!failed_ && !writing_ && !holding_ && sent_ < engine_->out().size()
        && !send_pending() && !failed_)
      arm_write();
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

  // -- writing ----------------------------------------------------------------

  bool flush_backlog() override {
    for (;;) {
      if (!send_pending()) {
        if (!failed_) {
          update_buffered();
          arm_write();
        }
        return false;
      }
      if (out_.empty())
        break;
      borrow_scratch();
      std::size_t i = 0;
      std::size_t offset = 0;
      if (!encrypt(out_, i, offset)) {
        fail("TLS: " + engine_->error());
        return false;
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
    return true;
  }

  // Both directions use it (OpenSSL's state is shared), on the loop's
  // thread like the rest.
  std::unique_ptr<tls_engine> engine_;
  // out_ holds plaintext not yet encrypted.
  std::size_t plain_bytes_ = 0;
  std::size_t sent_ = 0; // of engine_->out()
  bool holding_ = false; // on_begin(): records wait for the first write
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
