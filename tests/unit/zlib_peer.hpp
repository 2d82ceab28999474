// A permessage-deflate peer written against zlib alone, independent of
// Herald's net/deflate.cpp: what the unit tests and the fuzzers check
// Herald's compressed output with, and compress client messages with.
#pragma once

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

namespace herald::testing {

// A client's decompressor written against zlib alone: a raw inflater with
// exactly `window_bits`, reset after every message when the server keeps no
// context. It takes one output byte per inflate() call, so zlib checks every
// back-reference against its window and nothing else ("invalid distance too
// far back"; a larger output buffer would also let it reach into the current
// call's output).
class strict_inflater {
public:
  strict_inflater(int window_bits, bool reset_each) : reset_each_(reset_each) {
    if (inflateInit2(&s_, -window_bits) != Z_OK)
      throw std::runtime_error("inflateInit2 failed");
  }
  ~strict_inflater() { inflateEnd(&s_); }
  strict_inflater(const strict_inflater&) = delete;
  strict_inflater& operator=(const strict_inflater&) = delete;

  // The message, or nothing when zlib rejects the data or the message does
  // not end on a block boundary (it would corrupt the next one).
  std::optional<std::string> inflate(std::span<const std::byte> payload) {
    std::vector<unsigned char> in(payload.size() + 4);
    std::memcpy(in.data(), payload.data(), payload.size());
    in[in.size() - 2] = in[in.size() - 1] = 0xFF; // 00 00 FF FF
    s_.next_in = in.data();
    s_.avail_in = static_cast<uInt>(in.size());
    std::string out;
    // Whether the last call that made progress stopped between blocks (a
    // call without progress says nothing: it starts by leaving that state).
    bool boundary = false;
    // Each round consumes input or writes a byte, or zlib says it can't.
    for (;;) {
      unsigned char c = 0;
      s_.next_out = &c;
      s_.avail_out = 1;
      auto rc = ::inflate(&s_, Z_SYNC_FLUSH);
      if (s_.avail_out == 0)
        out += static_cast<char>(c);
      if (rc == Z_BUF_ERROR)
        break;
      if (rc != Z_OK) {
        error_ = s_.msg != nullptr ? s_.msg : "inflate error";
        return std::nullopt;
      }
      boundary = (s_.data_type & 128) != 0;
    }
    if (s_.avail_in != 0 || !boundary) {
      error_ = "message does not end on a block boundary";
      return std::nullopt;
    }
    if (reset_each_)
      inflateReset(&s_);
    return out;
  }

  const std::string& error() const noexcept { return error_; }

private:
  z_stream s_{};
  bool reset_each_;
  std::string error_;
};

// A client's compressor, zlib alone: context takeover unless told not to.
class client_deflater {
public:
  client_deflater(int window_bits, bool reset_each) : reset_each_(reset_each) {
    // zlib has no raw 256-byte window; its 512-byte one never reaches back
    // more than 250 bytes.
    if (deflateInit2(&s_, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                     -std::max(window_bits, 9), 8, Z_DEFAULT_STRATEGY)
        != Z_OK)
      throw std::runtime_error("deflateInit2 failed");
  }
  ~client_deflater() { deflateEnd(&s_); }
  client_deflater(const client_deflater&) = delete;
  client_deflater& operator=(const client_deflater&) = delete;

  std::string compress(std::string_view msg) {
    std::string out(deflateBound(&s_, msg.size()) + 16, '\0');
    s_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(msg.data()));
    s_.avail_in = static_cast<uInt>(msg.size());
    s_.next_out = reinterpret_cast<Bytef*>(out.data());
    s_.avail_out = static_cast<uInt>(out.size());
    deflate(&s_, Z_SYNC_FLUSH);
    out.resize(out.size() - s_.avail_out);
    if (out.size() >= 4)
      out.resize(out.size() - 4);
    else
      out = std::string(1, '\0');
    if (reset_each_)
      deflateReset(&s_);
    return out;
  }

private:
  z_stream s_{};
  bool reset_each_;
};

} // namespace herald::testing
