// Server-to-client WebSocket frames as immutable, shared byte buffers.
//
// A frame is built once (header and payload in one allocation) and then only
// read. Server frames are unmasked (RFC 6455 5.1), so the same bytes are valid
// on every connection: a publish hands every subscriber a reference to one
// frame instead of a copy of its payload.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <boost/smart_ptr/intrusive_ptr.hpp>

namespace herald::net {

/// WebSocket opcodes (RFC 6455 5.2).
enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// An immutable, reference-counted, fully encoded WebSocket frame.
class frame {
public:
  frame(const frame&) = delete;
  frame& operator=(const frame&) = delete;

  /// All bytes of the frame, header included.
  std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }
  /// Size of the encoded frame in bytes.
  std::size_t size() const noexcept { return size_; }
  /// The payload without the header (as stored, i.e. compressed if RSV1).
  std::span<const std::byte> payload() const noexcept {
    return {data() + header_size_, size_ - header_size_};
  }
  /// The payload viewed as characters.
  std::string_view payload_view() const noexcept {
    auto p = payload();
    return {reinterpret_cast<const char*>(p.data()), p.size()};
  }
  /// The frame's opcode.
  net::opcode opcode() const noexcept { return opcode_; }
  /// True when the payload is compressed (RSV1 set).
  bool compressed() const noexcept { return compressed_; }
  /// Current number of references (for tests that prove sharing).
  long use_count() const noexcept {
    return refs_.load(std::memory_order_relaxed);
  }

  friend void intrusive_ptr_add_ref(const frame* f) noexcept {
    f->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(const frame* f) noexcept {
    if (f->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      destroy(f);
  }

  /// The same message compressed with no context (permessage-deflate,
  /// RSV1 set), made once on first use and shared by every connection that
  /// asks; the frame itself when compressing does not make it smaller.
  /// The call that compresses adds 1 to `compressions` (if given).
  boost::intrusive_ptr<const frame>
  deflated(std::atomic<std::uint64_t>* compressions = nullptr) const;

private:
  friend boost::intrusive_ptr<frame>
  make_frame(net::opcode, std::span<const std::byte>, bool, bool);
  friend boost::intrusive_ptr<const frame>
    make_run(std::span<const frame* const>);
  friend boost::intrusive_ptr<const frame> make_raw(std::span<const std::byte>);
  friend boost::intrusive_ptr<const frame> make_raw(std::size_t, std::byte*&);

  frame(net::opcode op, bool compressed, std::size_t header_size,
        std::size_t size) noexcept
    : size_(size), header_size_(static_cast<std::uint8_t>(header_size)),
      opcode_(op), compressed_(compressed) {}

  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* data() const noexcept {
    return reinterpret_cast<const std::byte*>(this + 1);
  }
  static void destroy(const frame* f) noexcept;
  // Room for `n` bytes with no header of their own (runs, raw bytes).
  static frame* allocate_unframed(std::size_t n);

  mutable std::atomic<long> refs_{0};
  // The deflated sibling: 0 not made, 1 being made, 2 made, 3 not smaller.
  mutable std::atomic<std::uint8_t> deflate_state_{0};
  mutable const frame* deflated_ = nullptr;
  std::size_t size_;
  std::uint8_t header_size_;
  net::opcode opcode_;
  bool compressed_;
};

/// Shared handle to an immutable frame.
using frame_ptr = boost::intrusive_ptr<const frame>;

/// Builds one final, unmasked frame. `compressed` sets RSV1; `fin` false
/// builds a fragment (used only by tests and fragmenting senders).
boost::intrusive_ptr<frame> make_frame(opcode op,
                                       std::span<const std::byte> payload,
                                       bool compressed = false,
                                       bool fin = true);

/// Builds a frame from characters.
inline frame_ptr make_frame(opcode op, std::string_view payload,
                            bool compressed = false) {
  return make_frame(op,
                    std::span<const std::byte>{
                      reinterpret_cast<const std::byte*>(payload.data()),
                      payload.size()},
                    compressed, true);
}

/// Builds a close frame; code 1005 (no status) produces an empty payload.
frame_ptr make_close_frame(std::uint16_t code, std::string_view reason);

/// Several encoded frames back to back in one buffer (a topic joins the
/// frames of one burst once, so that a subscriber's write takes one range
/// of it instead of one piece per message: the kernel's per-piece cost is
/// paid once per burst). A run is not a frame itself: it has no header of
/// its own (opcode continuation, payload() == bytes()) and is only written.
frame_ptr make_run(std::span<const frame* const> frames);

/// Bytes written as they are, like a run (no header of its own): the HTTP
/// response a connection writes ahead of its first frames.
frame_ptr make_raw(std::span<const std::byte> bytes);

/// Raw bytes as make_raw, `n` of them, which the caller writes through
/// `out` in place (no copy) before it shares the frame.
frame_ptr make_raw(std::size_t n, std::byte*& out);

/// Bytes to write: a whole frame or a range of a run. `owner` holds the
/// bytes; a slice borrows them (whoever hands one to a transport keeps the
/// owner alive until write() returns, and the transport takes a reference
/// of its own for what it keeps longer).
struct slice {
  const frame* owner;
  const std::byte* data;
  std::size_t size;
};

/// The slice of a whole frame.
inline slice whole(const frame& f) noexcept {
  return {&f, f.bytes().data(), f.size()};
}

/// Size of the header for a payload of `n` bytes in an unmasked frame.
constexpr std::size_t header_size(std::size_t n) noexcept {
  return n < 126 ? 2 : (n <= 0xFFFF ? 4 : 10);
}

} // namespace herald::net
