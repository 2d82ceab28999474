// Reads a fuzzer's input as a few choices (options, cut points) followed by
// data, so one input file fixes a whole run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

namespace herald::fuzz {

class input {
public:
  input(const std::uint8_t* data, std::size_t size) : data_(data, size) {}

  /// The next byte; 0 once the input is used up.
  std::uint8_t byte() {
    if (data_.empty())
      return 0;
    auto b = data_[0];
    data_ = data_.subspan(1);
    return b;
  }

  /// The next two bytes, little-endian.
  std::uint16_t u16() {
    auto lo = byte();
    return static_cast<std::uint16_t>(lo | (byte() << 8));
  }

  /// A count below `bound`.
  std::size_t below(std::size_t bound) { return byte() % bound; }

  /// Up to `max` cut points (sorted offsets into the rest of the input):
  /// where the data is split into reads.
  std::vector<std::size_t> cuts(std::size_t max) {
    std::vector<std::size_t> out(below(max + 1));
    for (auto& c : out)
      c = u16();
    return out;
  }

  /// The next `n` bytes (fewer at the end).
  std::span<const std::uint8_t> take(std::size_t n) {
    n = n < data_.size() ? n : data_.size();
    auto out = data_.first(n);
    data_ = data_.subspan(n);
    return out;
  }

  /// Everything not read yet.
  std::span<const std::uint8_t> rest() {
    auto out = data_;
    data_ = {};
    return out;
  }

  bool empty() const noexcept { return data_.empty(); }

private:
  std::span<const std::uint8_t> data_;
};

/// Stops the run: libFuzzer records the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

#define HERALD_FUZZ_CHECK(cond)                                                \
  do {                                                                         \
    if (!(cond))                                                               \
      ::herald::fuzz::fail(#cond);                                             \
  } while (false)

} // namespace herald::fuzz
