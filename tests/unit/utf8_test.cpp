// Unit tests of the incremental UTF-8 validator (net/utf8.hpp).
#define CAF_SUITE utf8

#include "herald/net/utf8.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "caf/test/dsl.hpp"

using herald::net::utf8_validator;
using herald::net::valid_utf8;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Feeds `s` in one call; true when it is accepted and complete.
bool whole(std::string_view s) {
  utf8_validator v;
  return v.feed(bytes(s)) && v.complete();
}

// Feeds `s` in two parts split at `at`; true when accepted and complete.
bool split(std::string_view s, std::size_t at) {
  utf8_validator v;
  return v.feed(bytes(s.substr(0, at))) && v.feed(bytes(s.substr(at)))
         && v.complete();
}

// Feeds `s` one byte at a time; true when accepted and complete.
bool bytewise(std::string_view s) {
  utf8_validator v;
  for (auto c : s)
    if (!v.feed(bytes(std::string_view{&c, 1})))
      return false;
  return v.complete();
}

// Index of the first byte whose feed (one byte at a time) fails, or npos.
std::size_t first_failing_byte(std::string_view s) {
  utf8_validator v;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!v.feed(bytes(s.substr(i, 1))))
      return i;
  return std::string_view::npos;
}

// Valid inputs: ASCII (long enough for the eight-byte fast path), and every
// sequence length at the edges of its range.
const std::vector<std::string> valid_inputs = {
  "",
  "a",
  "hello, world! this is plain ASCII text longer than 8 bytes",
  "\x7F",
  "\xC2\x80",         // U+0080, smallest 2-byte
  "\xC3\xA9",         // U+00E9
  "\xDF\xBF",         // U+07FF, largest 2-byte
  "\xE0\xA0\x80",     // U+0800, smallest 3-byte
  "\xE2\x82\xAC",     // U+20AC
  "\xED\x9F\xBF",     // U+D7FF, just below the surrogates
  "\xEE\x80\x80",     // U+E000, just above the surrogates
  "\xEF\xBF\xBF",     // U+FFFF
  "\xF0\x90\x80\x80", // U+10000, smallest 4-byte
  "\xF0\x9F\x98\x80", // U+1F600
  "\xF4\x8F\xBF\xBF", // U+10FFFF, the largest code point
  "abcdefgh\xC3\xA9ijklmnop\xE2\x82\xAC"
  "qrstuvwx\xF0\x9F\x98\x80yz",
};

} // namespace

CAF_TEST(valid sequences are accepted) {
  for (auto& s : valid_inputs) {
    CAF_MESSAGE("input of " << s.size() << " bytes");
    CAF_CHECK(whole(s));
    CAF_CHECK(valid_utf8(s));
  }
}

CAF_TEST(invalid sequences are rejected) {
  const std::vector<std::string> invalid = {
    std::string{"\xC0\x80", 2},         // overlong NUL, 2 bytes
    "\xC1\xBF",                         // overlong, 2 bytes
    std::string{"\xE0\x80\x80", 3},     // overlong, 3 bytes
    "\xE0\x9F\xBF",                     // overlong U+07FF
    std::string{"\xF0\x80\x80\x80", 4}, // overlong, 4 bytes
    "\xF0\x8F\xBF\xBF",                 // overlong U+FFFF
    "\xED\xA0\x80",                     // U+D800, high surrogate
    "\xED\xBF\xBF",                     // U+DFFF, low surrogate
    "\xF4\x90\x80\x80",                 // U+110000
    "\x80",                             // stray continuation bytes
    "\xBF",
    "a\x80z",
    "\xC3\xA9\xA9",
    "\xF5\x80\x80\x80", // lead bytes that never occur
    "\xF7\xBF\xBF\xBF",
    "\xF8\x88\x80\x80\x80",
    "\xFC\x84\x80\x80\x80\x80",
    "\xFE",
    "\xFF",
    "\xC3", // truncated sequences
    "\xE2\x82",
    "\xF0\x9F\x98",
    "\xC3"
    "a", // a lead byte followed by ASCII
    "\xE2\x82"
    "a",
    "abcdefghijklmnop\xED\xA0\x80qrstuvwx", // bad byte after the fast path
  };
  for (auto& s : invalid) {
    CAF_MESSAGE("input of " << s.size() << " bytes");
    CAF_CHECK(!whole(s));
    CAF_CHECK(!valid_utf8(s));
    CAF_CHECK(!bytewise(s));
  }
  // Every byte from F5 to FF is invalid anywhere.
  for (int b = 0xF5; b <= 0xFF; ++b) {
    std::string s{static_cast<char>(b)};
    CAF_CHECK(!whole(s));
    CAF_CHECK(!whole("abc" + s + "\x80\x80\x80"));
  }
  // Every byte from 80 to C1 is invalid as a lead byte.
  for (int b = 0x80; b <= 0xC1; ++b) {
    std::string s{static_cast<char>(b)};
    CAF_CHECK(!whole(s + "\x80"));
  }
}

CAF_TEST(the verdict does not depend on how the input is split) {
  std::vector<std::string> inputs = valid_inputs;
  inputs.insert(inputs.end(), {
                                std::string{"ab\xC0\x80yz", 6},
                                std::string{"\xE0\x80\x80", 3},
                                "x\xED\xA0\x80y",
                                "\xF4\x90\x80\x80",
                                "abc\x80",
                                "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xFF",
                                "\xE2\x82",
                                "abcdefghij\xF0\x9F\x98",
                              });
  for (auto& s : inputs) {
    auto expected = valid_utf8(s);
    CAF_CHECK_EQUAL(bytewise(s), expected);
    for (std::size_t at = 0; at <= s.size(); ++at)
      if (split(s, at) != expected)
        CAF_FAIL("split at " << at << " of a " << s.size()
                             << "-byte input changed the verdict");
  }
}

CAF_TEST(a truncated sequence feeds fine but is not complete) {
  for (std::string_view s :
       {"\xC3", "\xE2\x82", "\xF0\x9F\x98", "abc\xF0", "\xC3\xA9\xE2"}) {
    utf8_validator v;
    CAF_CHECK(v.feed(bytes(s)));
    CAF_CHECK(!v.complete());
  }
  // Completing the sequence in a later feed makes it complete.
  utf8_validator v;
  CAF_CHECK(v.feed(bytes("\xF0\x9F")));
  CAF_CHECK(!v.complete());
  CAF_CHECK(v.feed(bytes("\x98")));
  CAF_CHECK(!v.complete());
  CAF_CHECK(v.feed(bytes("\x80")));
  CAF_CHECK(v.complete());
}

CAF_TEST(errors are reported at the chunk holding the first bad byte) {
  // Byte by byte, the failing feed is the one of the first bad byte.
  CAF_CHECK_EQUAL(first_failing_byte(std::string{"ab\xC0\x80", 4}), 2u);
  CAF_CHECK_EQUAL(first_failing_byte("ab\xE0\x9F\xBF"), 3u);
  CAF_CHECK_EQUAL(first_failing_byte("\xED\xA0\x80"), 1u);
  CAF_CHECK_EQUAL(first_failing_byte("\xF4\x90\x80\x80"), 1u);
  CAF_CHECK_EQUAL(first_failing_byte("\xF0\x9F\x98"
                                     "a"),
                  3u);
  CAF_CHECK_EQUAL(first_failing_byte("\xC3\xA9\x80"), 2u);
  CAF_CHECK_EQUAL(first_failing_byte("abcdefghijklmnop\xF5"), 16u);
  CAF_CHECK_EQUAL(first_failing_byte("\xC3\xA9\xE2\x82\xAC"),
                  std::string_view::npos);
  // In chunks: the chunk with the bad byte fails, even though more input
  // follows, and earlier chunks succeed.
  utf8_validator v;
  CAF_CHECK(v.feed(bytes("hello \xE2\x82")));
  CAF_CHECK(!v.feed(bytes("\xC0 and more text that never gets looked at")));
  // A chunk that ends in the middle of a sequence which can no longer be
  // valid fails right there, without waiting for the rest.
  utf8_validator w;
  CAF_CHECK(w.feed(bytes("ok")));
  CAF_CHECK(!w.feed(bytes("\xED\xA0")));
}

CAF_TEST(reset forgets a pending sequence) {
  utf8_validator v;
  CAF_CHECK(v.feed(bytes("\xE2\x82")));
  v.reset();
  CAF_CHECK(v.complete());
  CAF_CHECK(v.feed(bytes("a")));
  CAF_CHECK(v.complete());
  // After a reset a continuation byte is stray again, not the end of the
  // forgotten sequence.
  CAF_CHECK(v.feed(bytes("\xC3")));
  v.reset();
  CAF_CHECK(!v.feed(bytes("\xA9")));
}
