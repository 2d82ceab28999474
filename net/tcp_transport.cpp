#include "herald/net/tcp_transport.hpp"

#include <array>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "herald/net/stream_transport.hpp"

namespace herald::net {

namespace {

constexpr std::size_t max_iov = 512;

// Frames up to this size are copied into the scratch buffer when written.
constexpr std::size_t copy_limit = 512;
constexpr std::size_t scratch_size = 128u << 10;

// One gather buffer per writing thread (the loops);
// it only lives for the duration of one sendmsg.
thread_local std::array<std::byte, scratch_size> write_scratch;

class tcp_transport final : public stream_transport {
public:
  tcp_transport(stream_socket sock, std::string remote,
                std::vector<std::byte> initial, tcp_transport_options opts)
    : stream_transport(std::move(sock), std::move(remote), std::move(initial),
                       opts) {}

  std::size_t write(std::span<const slice> pieces) override {
    if (closing_ || failed_)
      return 0;
    if (!out_.empty()) {
      for (auto& p : pieces)
        keep(p, 0);
      return buffered_;
    }
    // Nothing queued: write at once. One piece (a lone delivery) goes from
    // where it is, without the copy into the scratch buffer.
    if (pieces.size() == 1)
      return write_one(pieces[0]);
    return write_gathered(pieces);
  }

private:
  std::size_t write_gathered(std::span<const slice> pieces) {
    std::size_t i = 0;
    std::size_t offset = 0;
    while (i < pieces.size()) {
      iovec iov[max_iov];
      auto g = gather(pieces.subspan(i), offset, iov);
      auto written = send_iov(iov, g.iovs);
      if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        fail(std::strerror(errno));
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
    arm_write();
    return buffered_;
  }

  std::size_t write_one(const slice& p) {
    auto written = send_to(p.data, p.size);
    if (written < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail(std::strerror(errno));
        return 0;
      }
      written = 0;
    }
    auto w = static_cast<std::size_t>(written);
    if (w == p.size)
      return 0;
    keep(p, w);
    arm_write();
    return buffered_;
  }

  struct gathered {
    std::size_t iovs = 0;  // iovec entries filled
    std::size_t bytes = 0; // bytes they cover
  };

  bool on_received(std::span<const std::byte> bytes) override {
    unconsumed_ += bytes.size();
    deliver(std::vector<std::byte>(bytes.begin(), bytes.end()));
    return true;
  }

  bool flushed() const override { return out_.empty(); }

  bool flush_backlog() override {
    while (!out_.empty()) {
      iovec iov[max_iov];
      auto g = gather(std::span<const queued>{out_}, 0, iov);
      auto written = send_iov(iov, g.iovs);
      if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          arm_write();
          return false;
        }
        fail(std::strerror(errno));
        return false;
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
    return true;
  }

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

  // The system calls themselves: libc's send and sendmsg are cancellation
  // points, which switch asynchronous cancellation on and off around every
  // call, and no thread here is ever cancelled.
  ssize_t send_to(const void* data, std::size_t size) {
    return ::syscall(SYS_sendto, fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT,
                     nullptr, 0);
  }

  ssize_t send_iov(iovec* iov, std::size_t n) {
    // One piece (small ones gathered into the scratch buffer) goes through
    // sendto: the kernel then copies no iovec array in.
    if (n == 1)
      return send_to(iov[0].iov_base, iov[0].iov_len);
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    return ::syscall(SYS_sendmsg, fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
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
