#include "herald/net/frame.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "herald/net/deflate.hpp"

namespace herald::net {

void frame::destroy(const frame* f) noexcept {
  if (f->deflated_ != nullptr)
    intrusive_ptr_release(f->deflated_);
  f->~frame();
  ::operator delete(const_cast<frame*>(f));
}

boost::intrusive_ptr<const frame>
frame::deflated(std::atomic<std::uint64_t>* compressions) const {
  auto state = deflate_state_.load(std::memory_order_acquire);
  if (state == 0) {
    std::uint8_t expected = 0;
    if (deflate_state_.compare_exchange_strong(expected, 1,
                                               std::memory_order_acq_rel)) {
      auto packed = deflate_shared(payload());
      if (compressions != nullptr)
        compressions->fetch_add(1, std::memory_order_relaxed);
      if (packed.size() < payload().size()) {
        auto f = make_frame(opcode_, packed, true);
        intrusive_ptr_add_ref(f.get()); // owned by this frame now
        deflated_ = f.get();
        deflate_state_.store(2, std::memory_order_release);
      } else {
        deflate_state_.store(3, std::memory_order_release);
      }
    }
    // Another thread is compressing: wait for it (a short, bounded job).
    while ((state = deflate_state_.load(std::memory_order_acquire)) == 1)
      std::this_thread::yield();
  }
  if (state == 2)
    return boost::intrusive_ptr<const frame>{deflated_};
  return boost::intrusive_ptr<const frame>{this};
}

boost::intrusive_ptr<frame> make_frame(opcode op,
                                       std::span<const std::byte> payload,
                                       bool compressed, bool fin) {
  auto n = payload.size();
  auto hs = header_size(n);
  auto* mem = ::operator new(sizeof(frame) + hs + n);
  auto* f = new (mem) frame(op, compressed, hs, hs + n);
  auto* out = reinterpret_cast<std::uint8_t*>(f + 1);
  out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (compressed ? 0x40 : 0)
                                     | static_cast<std::uint8_t>(op));
  if (n < 126) {
    out[1] = static_cast<std::uint8_t>(n);
  } else if (n <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(n >> 8);
    out[3] = static_cast<std::uint8_t>(n);
  } else {
    out[1] = 127;
    for (int i = 0; i < 8; ++i)
      out[2 + i] = static_cast<std::uint8_t>(std::uint64_t{n} >> (56 - 8 * i));
  }
  if (n > 0)
    std::memcpy(out + hs, payload.data(), n);
  return boost::intrusive_ptr<frame>{f};
}

frame* frame::allocate_unframed(std::size_t n) {
  auto* mem = ::operator new(sizeof(frame) + n);
  auto* f = new (mem) frame(opcode::continuation, false, 0, n);
  return f;
}

frame_ptr make_run(std::span<const frame* const> frames) {
  std::size_t n = 0;
  for (auto& f : frames)
    n += f->size();
  auto* run = frame::allocate_unframed(n);
  auto* out = run->data();
  for (auto& f : frames) {
    std::memcpy(out, f->bytes().data(), f->size());
    out += f->size();
  }
  return frame_ptr{run};
}

frame_ptr make_raw(std::span<const std::byte> bytes) {
  auto* raw = frame::allocate_unframed(bytes.size());
  if (!bytes.empty())
    std::memcpy(raw->data(), bytes.data(), bytes.size());
  return frame_ptr{raw};
}

frame_ptr make_raw(std::size_t n, std::byte*& out) {
  auto* raw = frame::allocate_unframed(n);
  out = raw->data();
  return frame_ptr{raw};
}

frame_ptr make_close_frame(std::uint16_t code, std::string_view reason) {
  if (code == 1005)
    return make_frame(opcode::close, std::span<const std::byte>{});
  // A close payload is limited to 125 bytes: 2 for the code, 123 for text.
  if (reason.size() > 123) {
    // Cut at a code point boundary so the reason stays valid UTF-8.
    std::size_t cut = 123;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80)
      --cut;
    reason = reason.substr(0, cut);
  }
  std::byte buf[125];
  buf[0] = static_cast<std::byte>(code >> 8);
  buf[1] = static_cast<std::byte>(code & 0xFF);
  if (!reason.empty()) // memcpy from a null pointer is undefined
    std::memcpy(buf + 2, reason.data(), reason.size());
  return make_frame(opcode::close,
                    std::span<const std::byte>{buf, 2 + reason.size()});
}

} // namespace herald::net
