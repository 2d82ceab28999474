// Incremental UTF-8 validation (RFC 3629) for text messages that arrive in
// pieces: fragments, or frames split across reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace herald::net {

/// Validates UTF-8 across any number of chunks. Rejects overlong forms,
/// surrogates (U+D800..U+DFFF) and code points above U+10FFFF, and reports
/// the error at the first byte that makes the input invalid.
class utf8_validator {
public:
  /// Feeds more bytes; false as soon as the input cannot be valid UTF-8.
  bool feed(std::span<const std::byte> bytes) noexcept;
  /// True when the input so far ends on a code point boundary.
  bool complete() const noexcept { return need_ == 0; }
  /// Forgets all state, ready for a new message.
  void reset() noexcept { need_ = 0, lo_ = 0x80, hi_ = 0xBF; }

private:
  std::uint8_t need_ = 0;  // continuation bytes still expected
  std::uint8_t lo_ = 0x80; // allowed range of the next continuation byte
  std::uint8_t hi_ = 0xBF;
};

/// Validates one complete string.
bool valid_utf8(std::string_view text) noexcept;

} // namespace herald::net
