#include "herald/net/frame_parser.hpp"

#include <algorithm>
#include <cstring>

namespace herald::net {

namespace {

bool is_control(opcode op) noexcept {
  return static_cast<std::uint8_t>(op) >= 0x8;
}

std::size_t header_length(std::uint8_t b1) noexcept {
  std::size_t n = 2;
  auto len7 = b1 & 0x7F;
  if (len7 == 126)
    n += 2;
  else if (len7 == 127)
    n += 8;
  if (b1 & 0x80)
    n += 4;
  return n;
}

} // namespace

void frame_parser::fail(parser_events& ev, std::uint16_t code,
                        std::string_view why) {
  state_ = state::stopped;
  msg_.clear();
  ev.on_protocol_error(code, why);
}

void frame_parser::unmask(std::byte* p, std::size_t n) noexcept {
  if (!masked_ || n == 0)
    return;
  std::size_t i = 0;
  // Align to the mask position, then XOR eight bytes at a time.
  while (i < n && mask_pos_ != 0) {
    p[i++] ^= static_cast<std::byte>(mask_[mask_pos_]);
    mask_pos_ = (mask_pos_ + 1) & 3;
  }
  if (n - i >= 8) {
    std::uint64_t m;
    std::uint8_t m8[8];
    for (int k = 0; k < 8; ++k)
      m8[k] = mask_[k & 3];
    std::memcpy(&m, m8, 8);
    for (; n - i >= 8; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      w ^= m;
      std::memcpy(p + i, &w, 8);
    }
  }
  for (; i < n; ++i) {
    p[i] ^= static_cast<std::byte>(mask_[mask_pos_]);
    mask_pos_ = (mask_pos_ + 1) & 3;
  }
}

bool frame_parser::parse_header(parser_events& ev) {
  auto b0 = hdr_[0];
  auto b1 = hdr_[1];
  fin_ = (b0 & 0x80) != 0;
  bool rsv1 = (b0 & 0x40) != 0;
  auto op_bits = b0 & 0x0F;
  masked_ = (b1 & 0x80) != 0;
  if (b0 & 0x30) {
    fail(ev, close_code::protocol_error, "reserved bits set");
    return false;
  }
  switch (op_bits) {
    case 0x0:
    case 0x1:
    case 0x2:
    case 0x8:
    case 0x9:
    case 0xA:
      break;
    default:
      fail(ev, close_code::protocol_error, "reserved opcode");
      return false;
  }
  op_ = static_cast<opcode>(op_bits);
  if (masked_ != (role_ == role::server)) {
    fail(ev, close_code::protocol_error,
         masked_ ? "masked frame from server" : "unmasked frame from client");
    return false;
  }
  std::uint64_t len = b1 & 0x7F;
  std::size_t pos = 2;
  if (len == 126) {
    len = (std::uint64_t{hdr_[2]} << 8) | hdr_[3];
    pos = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i)
      len = (len << 8) | hdr_[2 + i];
    pos = 10;
    if (len >> 63) {
      fail(ev, close_code::protocol_error, "payload length over 2^63");
      return false;
    }
  }
  if (masked_)
    std::memcpy(mask_, hdr_ + pos, 4);
  mask_pos_ = 0;
  remaining_ = len;
  if (is_control(op_)) {
    if (!fin_) {
      fail(ev, close_code::protocol_error, "fragmented control frame");
      return false;
    }
    if (len > 125) {
      fail(ev, close_code::protocol_error, "control frame over 125 bytes");
      return false;
    }
    if (rsv1) {
      fail(ev, close_code::protocol_error, "RSV1 on a control frame");
      return false;
    }
    ctl_len_ = 0;
    return true;
  }
  if (rsv1 && (!rsv1_allowed_ || op_ == opcode::continuation)) {
    fail(ev, close_code::protocol_error,
         rsv1_allowed_ ? "RSV1 on a continuation frame"
                       : "RSV1 set without a negotiated extension");
    return false;
  }
  if (op_ == opcode::continuation) {
    if (!in_message_) {
      fail(ev, close_code::protocol_error, "continuation without a message");
      return false;
    }
    if (len > max_message_ - std::min(max_message_, msg_.size())) {
      fail(ev, close_code::too_big, "message too big");
      return false;
    }
  } else {
    if (in_message_) {
      fail(ev, close_code::protocol_error,
           "new data frame inside a fragmented message");
      return false;
    }
    if (len > max_message_) {
      fail(ev, close_code::too_big, "message too big");
      return false;
    }
    in_message_ = true;
    msg_op_ = op_;
    msg_compressed_ = rsv1;
    msg_.clear();
    utf8_.reset();
  }
  return true;
}

void frame_parser::dispatch_control(std::span<std::byte> payload,
                                    parser_events& ev) {
  switch (op_) {
    case opcode::ping:
      ev.on_ping(payload);
      break;
    case opcode::pong:
      ev.on_pong(payload);
      break;
    default: { // close
      if (payload.empty()) {
        state_ = state::stopped;
        ev.on_close(close_code::no_status, {});
        return;
      }
      if (payload.size() == 1) {
        fail(ev, close_code::protocol_error, "close payload of one byte");
        return;
      }
      auto code =
        static_cast<std::uint16_t>((std::to_integer<unsigned>(payload[0]) << 8)
                                   | std::to_integer<unsigned>(payload[1]));
      if (!valid_close_code(code)) {
        fail(ev, close_code::protocol_error, "invalid close code");
        return;
      }
      std::string_view reason{reinterpret_cast<const char*>(payload.data()) + 2,
                              payload.size() - 2};
      if (!valid_utf8(reason)) {
        fail(ev, close_code::invalid_payload, "close reason is not UTF-8");
        return;
      }
      state_ = state::stopped;
      ev.on_close(code, reason);
    }
  }
}

void frame_parser::finish_message(parser_events& ev) {
  in_message_ = false;
  if (msg_op_ == opcode::text && !msg_compressed_ && !utf8_.complete()) {
    fail(ev, close_code::invalid_payload, "text message is not UTF-8");
    return;
  }
  ev.on_message(msg_op_, msg_, msg_compressed_);
  // Give back memory a large message held; keep small buffers for reuse.
  if (msg_.capacity() > (64u << 10))
    std::vector<std::byte>{}.swap(msg_);
  else
    msg_.clear();
}

void frame_parser::feed(std::span<std::byte> data, parser_events& ev) {
  std::size_t i = 0;
  const std::size_t n = data.size();
  while (state_ != state::stopped) {
    if (state_ == state::header) {
      if (i == n)
        return;
      if (hdr_len_ < 2) {
        auto take = std::min<std::size_t>(2 - hdr_len_, n - i);
        std::memcpy(hdr_ + hdr_len_, data.data() + i, take);
        hdr_len_ += static_cast<std::uint8_t>(take);
        i += take;
        if (hdr_len_ < 2)
          return;
      }
      auto need = header_length(hdr_[1]);
      if (hdr_len_ < need) {
        auto take = std::min<std::size_t>(need - hdr_len_, n - i);
        std::memcpy(hdr_ + hdr_len_, data.data() + i, take);
        hdr_len_ += static_cast<std::uint8_t>(take);
        i += take;
        if (hdr_len_ < need)
          return;
      }
      hdr_len_ = 0;
      if (!parse_header(ev))
        return;
      state_ = state::payload;
      fresh_ = true;
    }
    // Payload: also entered with no bytes left for empty frames.
    auto avail = n - i;
    if (is_control(op_)) {
      if (fresh_ && remaining_ <= avail) {
        // The whole control frame is in this read: unmask it in place.
        auto payload = data.subspan(i, static_cast<std::size_t>(remaining_));
        unmask(payload.data(), payload.size());
        i += payload.size();
        remaining_ = 0;
        state_ = state::header;
        dispatch_control(payload, ev);
        continue;
      }
      // Split across reads: collect it (at most 125 bytes), in a buffer
      // made the first time a connection needs one.
      fresh_ = false;
      if (!ctl_)
        ctl_ = std::make_unique<std::uint8_t[]>(max_control_payload);
      auto take =
        static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail));
      // An empty read may be a span with no data: memcpy from a null
      // pointer is undefined even for zero bytes.
      if (take > 0)
        std::memcpy(ctl_.get() + ctl_len_, data.data() + i, take);
      unmask(reinterpret_cast<std::byte*>(ctl_.get() + ctl_len_), take);
      ctl_len_ += static_cast<std::uint8_t>(take);
      remaining_ -= take;
      i += take;
      if (remaining_ > 0)
        return;
      state_ = state::header;
      dispatch_control({reinterpret_cast<std::byte*>(ctl_.get()), ctl_len_},
                       ev);
      continue;
    }
    if (fresh_ && op_ != opcode::continuation && fin_ && remaining_ <= avail) {
      // Whole unfragmented message in this read: hand out a view, no copy.
      auto len = static_cast<std::size_t>(remaining_);
      auto payload = data.subspan(i, len);
      unmask(payload.data(), len);
      i += len;
      remaining_ = 0;
      state_ = state::header;
      in_message_ = false;
      if (op_ == opcode::text && !msg_compressed_
          && !valid_utf8(
            {reinterpret_cast<const char*>(payload.data()), len})) {
        fail(ev, close_code::invalid_payload, "text message is not UTF-8");
        return;
      }
      ev.on_message(op_, payload, msg_compressed_);
      continue;
    }
    fresh_ = false;
    auto take =
      static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail));
    auto piece = data.subspan(i, take);
    unmask(piece.data(), take);
    // Validate as the text arrives so bad UTF-8 fails fast.
    if (msg_op_ == opcode::text && !msg_compressed_ && !utf8_.feed(piece)) {
      fail(ev, close_code::invalid_payload, "text message is not UTF-8");
      return;
    }
    msg_.insert(msg_.end(), piece.begin(), piece.end());
    remaining_ -= take;
    i += take;
    if (remaining_ > 0)
      return;
    state_ = state::header;
    if (fin_)
      finish_message(ev);
  }
}

} // namespace herald::net
