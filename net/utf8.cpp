#include "herald/net/utf8.hpp"

#include <cstring>

namespace herald::net {

bool utf8_validator::feed(std::span<const std::byte> bytes) noexcept {
  auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  auto* end = p + bytes.size();
  while (p < end) {
    if (need_ == 0) {
      // Fast path: skip ASCII eight bytes at a time.
      while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        if (w & 0x8080808080808080ull)
          break;
        p += 8;
      }
      if (p == end)
        break;
      auto b = *p++;
      if (b < 0x80)
        continue;
      lo_ = 0x80, hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need_ = 2;
        if (b == 0xE0)
          lo_ = 0xA0; // overlong
        else if (b == 0xED)
          hi_ = 0x9F; // surrogates
      } else if (b >= 0xF0 && b <= 0xF4) {
        need_ = 3;
        if (b == 0xF0)
          lo_ = 0x90; // overlong
        else if (b == 0xF4)
          hi_ = 0x8F; // above U+10FFFF
      } else {
        return false; // 0x80..0xC1 as a lead byte, or 0xF5..0xFF
      }
    } else {
      auto b = *p++;
      if (b < lo_ || b > hi_)
        return false;
      lo_ = 0x80, hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

bool valid_utf8(std::string_view text) noexcept {
  utf8_validator v;
  return v.feed({reinterpret_cast<const std::byte*>(text.data()), text.size()})
         && v.complete();
}

} // namespace herald::net
