// permessage-deflate (RFC 7692) with zlib: negotiation, compressors and the
// bounded inflater.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

/// How a server compresses and decompresses (the `per_message_deflate`
/// option). Memory per connection: a dedicated compressor holds about
/// 2^(window_bits + 2) + 2^(mem_level + 9) bytes (256 KiB at 15/8, 24 KiB at
/// 12/4); a dedicated decompressor about 2^15 + 7 KiB; shared ones nothing.
struct deflate_options {
  /// Offer-accepting on/off (Bun's default: off).
  bool enabled = false;
  /// "dedicated": a sliding window per connection (context takeover) for
  /// better ratios; otherwise "shared": no context takeover, so a publish
  /// is compressed once and every subscriber gets the same frame.
  bool dedicated_compressor = false;
  /// Window of a dedicated compressor (8..15; 8 compresses with zlib's
  /// 9-bit window, whose matches stay within 256 bytes).
  int window_bits = 15;
  /// zlib memory level of a dedicated compressor (1..9).
  int mem_level = 8;
  /// Keep the client's context between messages (honour its context
  /// takeover); false asks the client for client_no_context_takeover and
  /// shares one decompressor per thread.
  bool dedicated_decompressor = true;
  /// Messages smaller than this go out uncompressed even when asked.
  std::size_t threshold = 32;
};

namespace net {

/// What was agreed with one client.
struct deflate_params {
  /// The server resets its compressor after every message.
  bool server_no_context_takeover = true;
  /// The client resets its compressor after every message.
  bool client_no_context_takeover = false;
  /// The server's LZ77 window (8..15).
  int server_window_bits = 15;
};

/// Picks the first acceptable offer in the Sec-WebSocket-Extensions values
/// `offers` (all headers joined with ", "). Returns the agreed parameters and
/// the response header value, or nothing (then no extension is used; an
/// offer that cannot be honoured never fails the handshake).
std::optional<std::pair<deflate_params, std::string>>
negotiate_deflate(std::string_view offers, const deflate_options& opts);

/// Compresses messages for one connection (or, with no context takeover,
/// for anyone).
class deflater {
public:
  /// A compressor with `window_bits` and `mem_level`; `reset_each` drops the
  /// context after every message (no context takeover).
  deflater(int window_bits, int mem_level, bool reset_each);
  ~deflater();
  deflater(const deflater&) = delete;
  deflater& operator=(const deflater&) = delete;

  /// Compresses one message (without the trailing 00 00 FF FF).
  std::vector<std::byte> compress(std::span<const std::byte> in);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Compresses one message with no context, on a per-thread compressor: the
/// result is valid for every client that agreed to permessage-deflate with
/// a server window of at least `window_bits`.
std::vector<std::byte> deflate_shared(std::span<const std::byte> in,
                                      int window_bits = 15);

/// Decompresses messages from one client.
class inflater {
public:
  /// Outcome of `inflate`.
  enum class result { ok, too_big, invalid };

  /// `reset_each`: the client uses no context takeover.
  explicit inflater(bool reset_each);
  ~inflater();
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;

  /// Inflates one message into `out`, producing at most `limit` bytes:
  /// past that it stops and returns too_big (a deflate bomb costs no more
  /// than the limit).
  result inflate(std::span<const std::byte> in, std::size_t limit,
                 std::vector<std::byte>& out);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace net
} // namespace herald
