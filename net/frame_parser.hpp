// The RFC 6455 frame parser: a state machine with no socket in it.
//
// It takes bytes as they arrive (any split: a header cut across reads, many
// frames in one read), unmasks in place, validates everything the RFC asks of
// a receiver, and reports whole messages and control frames. Unfragmented
// frames that sit wholly in one read are handed out as views into the read
// buffer; only fragmented or split messages are copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "herald/net/frame.hpp"
#include "herald/net/utf8.hpp"

namespace herald::net {

/// Close codes used by Herald (RFC 6455 7.4.1).
namespace close_code {
constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t going_away = 1001;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t unsupported_data = 1003;
constexpr std::uint16_t no_status = 1005;
constexpr std::uint16_t abnormal = 1006;
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t policy_violation = 1008;
constexpr std::uint16_t too_big = 1009;
constexpr std::uint16_t internal_error = 1011;
} // namespace close_code

/// True for codes a peer may send in a close frame (RFC 6455 7.4).
constexpr bool valid_close_code(std::uint32_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
         || (code >= 3000 && code <= 4999);
}

/// Receives what the parser finds. Views are valid only during the call.
class parser_events {
public:
  virtual ~parser_events() = default;
  /// A complete text or binary message (text is valid UTF-8 unless
  /// `compressed`, in which case validation happens after inflating).
  virtual void on_message(opcode op, std::span<std::byte> payload,
                          bool compressed) = 0;
  /// A ping with its application data.
  virtual void on_ping(std::span<const std::byte> payload) = 0;
  /// A pong with its application data.
  virtual void on_pong(std::span<const std::byte> payload) = 0;
  /// A valid close frame; code 1005 when the frame had no payload.
  virtual void on_close(std::uint16_t code, std::string_view reason) = 0;
  /// The input broke the protocol; the connection must close with `code`.
  virtual void on_protocol_error(std::uint16_t code, std::string_view why) = 0;
};

/// Incremental WebSocket frame parser for one connection.
class frame_parser {
public:
  /// Which side of the connection parses: servers require masked frames,
  /// clients require unmasked ones.
  enum class role : std::uint8_t { server, client };

  /// Creates a parser; messages above `max_message` bytes fail with 1009.
  explicit frame_parser(role r = role::server,
                        std::size_t max_message = 16u << 20) noexcept
    : role_(r), max_message_(max_message) {}

  /// Allows RSV1 on the first frame of data messages (permessage-deflate).
  void allow_rsv1(bool on) noexcept { rsv1_allowed_ = on; }
  /// Changes the message size limit.
  void max_message(std::size_t n) noexcept { max_message_ = n; }
  /// The message size limit.
  std::size_t max_message() const noexcept { return max_message_; }

  /// The most bytes a compressed message may take on the wire with a limit
  /// of `max_message`: more than the limit by deflate's overhead on data it
  /// cannot shrink (stored blocks: about 5 bytes per 16 KiB, zlib's
  /// deflateBound); its inflated size is held to the limit where it is
  /// inflated.
  static constexpr std::size_t
  max_compressed(std::size_t max_message) noexcept {
    auto extra = max_message / 4096 + max_message / 16384 + 64;
    return max_message > SIZE_MAX - extra ? SIZE_MAX : max_message + extra;
  }

  /// Parses `data` (modified in place by unmasking) and reports events.
  /// After a close frame or an error every further byte is ignored.
  void feed(std::span<std::byte> data, parser_events& ev);

  /// Stops parsing: every further byte is ignored.
  void stop() noexcept { state_ = state::stopped; }
  /// True after a close frame or a protocol error.
  bool stopped() const noexcept { return state_ == state::stopped; }
  /// Bytes held for an incomplete message (for memory accounting).
  std::size_t buffered() const noexcept { return msg_.size(); }

private:
  enum class state : std::uint8_t { header, payload, stopped };

  // Parses the header in hdr_; returns false on error (already reported).
  bool parse_header(parser_events& ev);
  void fail(parser_events& ev, std::uint16_t code, std::string_view why);
  void unmask(std::byte* p, std::size_t n) noexcept;
  void dispatch_control(std::span<std::byte> payload, parser_events& ev);
  void finish_message(parser_events& ev);
  // The most bytes a message may take on the wire.
  std::size_t wire_limit(bool compressed) const noexcept {
    return compressed ? max_compressed(max_message_) : max_message_;
  }

  // (Ordered for size: this is part of every connection.)
  role role_;
  state state_ = state::header;
  bool rsv1_allowed_ = false;
  // The fragmented or split message being assembled (also msg_, utf8_).
  bool in_message_ = false;
  opcode msg_op_ = opcode::continuation;
  bool msg_compressed_ = false;
  bool fresh_ = false;       // no payload byte of this frame seen yet
  std::uint8_t ctl_len_ = 0; // bytes in ctl_
  std::size_t max_message_;

  // Header spill: a header may arrive split across reads (at most 14 bytes).
  std::uint8_t hdr_[14];
  std::uint8_t hdr_len_ = 0;

  // The frame being read.
  bool fin_ = false;
  opcode op_ = opcode::continuation;
  bool masked_ = false;
  std::uint8_t mask_[4] = {0, 0, 0, 0};
  std::uint8_t mask_pos_ = 0;
  utf8_validator utf8_;
  std::uint64_t remaining_ = 0; // payload bytes of the frame still to come
  std::vector<std::byte> msg_;

  // A control frame's payload when it arrives split across reads; made on
  // first use (an idle connection does not carry 125 bytes for it).
  static constexpr std::size_t max_control_payload = 125;
  std::unique_ptr<std::uint8_t[]> ctl_;
};

} // namespace herald::net
