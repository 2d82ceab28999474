// A transport with no socket, for deterministic tests: what the connection
// writes is recorded, and the test injects input, stalls and failures.
// Everything happens through the owner's mailbox, so CAF's test coordinator
// decides when each step runs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <caf/send.hpp>

#include "herald/net/client_frame.hpp"
#include "herald/net/frame_parser.hpp"
#include "herald/net/transport.hpp"

namespace herald::net {

/// One frame the server wrote, decoded.
struct written_frame {
  /// Opcode (text, binary, close, ping, pong).
  net::opcode op;
  /// The payload (for close: code bytes and reason).
  std::string payload;
  /// For close frames: the code (1005 when empty).
  std::uint16_t close_code = 0;
  /// For close frames: the reason.
  std::string close_reason;
};

/// The fake transport.
class fake_transport final : public transport {
public:
  // -- transport --------------------------------------------------------------

  void start(caf::actor owner) override {
    owner_ = std::move(owner);
    started_ = true;
  }
  std::size_t write(std::span<const slice> pieces) override {
    ++write_calls_;
    batches_.push_back(pieces.size());
    for (auto& p : pieces) {
      record(p);
      if (stalled_)
        backlog_ += p.size;
    }
    if (on_write_)
      on_write_();
    return backlog_;
  }
  std::size_t buffered_amount() const override { return backlog_; }
  void consumed(std::size_t n) override { consumed_ += n; }
  void pause_reading() override { paused_ = true; }
  void resume_reading() override { paused_ = false; }
  std::size_t unread_input() const override { return closed_ ? 0 : unread_; }
  void close(bool graceful) override {
    if (closed_)
      return;
    closed_ = true;
    graceful_ = graceful;
    owner_ = nullptr;
  }
  std::string remote_address() const override { return remote_; }

  // -- test controls ----------------------------------------------------------

  /// Delivers bytes as if read from the socket.
  void feed(std::vector<std::byte> bytes) {
    if (owner_)
      caf::anon_send(owner_, inbound{std::move(bytes)});
  }
  /// Makes writes pile up as if the peer stopped reading.
  void stall() { stalled_ = true; }
  /// Writes `n` bytes of the backlog (not all of it: no `written_atom`).
  void drain_some(std::size_t n) { backlog_ -= std::min(n, backlog_); }
  /// Sets the bytes unread_input() reports: what the peer sent while
  /// reading was paused.
  void set_unread(std::size_t n) { unread_ = n; }
  /// Writes the backlog and tells the owner, as a writable socket would.
  void drain() {
    stalled_ = false;
    backlog_ = 0;
    if (owner_)
      caf::anon_send(owner_, written_atom::value, std::size_t{0});
  }
  /// The first bytes written are an HTTP response (a connection made with
  /// `connection_args::response`): kept as text, see http_response().
  void expect_http_response() { http_pending_ = true; }
  /// Sets the address remote_address() reports (default "127.0.0.1:50000").
  void set_remote_address(std::string address) { remote_ = std::move(address); }
  /// Calls `fn` at the end of every write (where the connection writes).
  void on_write(std::function<void()> fn) { on_write_ = std::move(fn); }
  /// The peer vanished (reset, EOF without a close frame).
  void vanish() {
    if (owner_)
      caf::anon_send(owner_, transport_down_atom::value,
                     std::string{"peer vanished"});
  }

  // -- what happened ----------------------------------------------------------

  /// True once the connection started reading.
  bool started() const noexcept { return started_; }
  /// True once the connection closed the transport.
  bool closed() const noexcept { return closed_; }
  /// True when that close was graceful (after flushing).
  bool graceful() const noexcept { return graceful_; }
  /// Calls to write() so far (each one gathered write).
  std::size_t write_calls() const noexcept { return write_calls_; }
  /// Pieces per write() call (a piece is a frame, or consecutive frames
  /// of one run: see net::make_run).
  const std::vector<std::size_t>& batches() const noexcept { return batches_; }
  /// The HTTP response written ahead of the frames (see
  /// expect_http_response()).
  const std::string& http_response() const noexcept { return http_; }
  /// Input bytes the connection reported as processed.
  std::size_t consumed_bytes() const noexcept { return consumed_; }
  /// True while reading is paused.
  bool paused() const noexcept { return paused_; }
  /// Every frame written, as shared buffers: a frame written whole is the
  /// connection's own (tests compare identities), frames written from a
  /// run are decoded into copies.
  const std::vector<frame_ptr>& raw_frames() const noexcept { return frames_; }

  /// Every frame written, decoded; `take` removes them from the record.
  std::vector<written_frame> frames(bool take = false) {
    std::vector<written_frame> out;
    for (auto& f : frames_) {
      written_frame w{f->opcode(), std::string{f->payload_view()}, 0, {}};
      if (w.op == opcode::close) {
        if (w.payload.size() >= 2) {
          w.close_code = static_cast<std::uint16_t>(
            (static_cast<std::uint8_t>(w.payload[0]) << 8)
            | static_cast<std::uint8_t>(w.payload[1]));
          w.close_reason = w.payload.substr(2);
        } else {
          w.close_code = 1005;
        }
      }
      out.push_back(std::move(w));
    }
    if (take)
      frames_.clear();
    return out;
  }

private:
  void record(slice p) {
    if (http_pending_) {
      // Up to and including the blank line that ends the header.
      std::string_view text{reinterpret_cast<const char*>(p.data), p.size};
      auto end = text.find("\r\n\r\n");
      auto n = end == std::string_view::npos ? text.size() : end + 4;
      http_.append(text.substr(0, n));
      http_pending_ = end == std::string_view::npos;
      p.data += n;
      p.size -= n;
      if (p.size == 0)
        return;
    }
    auto& f = *p.owner;
    bool is_frame = f.payload().size() != f.size(); // a run has no header
    if (is_frame && p.data == f.bytes().data() && p.size == f.size()) {
      frames_.emplace_back(&f);
      return;
    }
    // Server frames are unmasked: header, length, payload.
    auto* b = reinterpret_cast<const std::uint8_t*>(p.data);
    std::size_t at = 0;
    while (at + 2 <= p.size) {
      auto b0 = b[at];
      std::uint64_t len = b[at + 1] & 0x7F;
      std::size_t hs = 2;
      if (len == 126) {
        len = (std::uint64_t{b[at + 2]} << 8) | b[at + 3];
        hs = 4;
      } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i)
          len = (len << 8) | b[at + 2 + i];
        hs = 10;
      }
      frames_.push_back(
        make_frame(static_cast<opcode>(b0 & 0x0F),
                   std::span<const std::byte>{p.data + at + hs,
                                              static_cast<std::size_t>(len)},
                   (b0 & 0x40) != 0, (b0 & 0x80) != 0));
      at += hs + static_cast<std::size_t>(len);
    }
  }

  caf::actor owner_;
  std::function<void()> on_write_;
  std::string remote_ = "127.0.0.1:50000";
  bool started_ = false;
  bool closed_ = false;
  bool graceful_ = false;
  bool stalled_ = false;
  bool paused_ = false;
  bool http_pending_ = false;
  std::string http_;
  std::size_t backlog_ = 0;
  std::size_t unread_ = 0;
  std::size_t consumed_ = 0;
  std::size_t write_calls_ = 0;
  std::vector<std::size_t> batches_;
  std::vector<frame_ptr> frames_;
};

} // namespace herald::net
