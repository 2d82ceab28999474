#include "herald/net/deflate.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <stdexcept>

#include <zlib.h>

#include "herald/net/text.hpp"

namespace herald::net {

namespace {

constexpr std::byte deflate_tail[4] = {std::byte{0x00}, std::byte{0x00},
                                       std::byte{0xFF}, std::byte{0xFF}};

// Splits on `sep` outside double quotes.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"')
      quoted = !quoted;
    else if (s[i] == sep && !quoted) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(trim(s.substr(start)));
  return out;
}

// A window size parameter: 8..15, optionally quoted; -1 when invalid.
int window_value(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
    v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 2)
    return -1;
  int n = 0;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return -1;
    n = n * 10 + (c - '0');
  }
  if (v.size() == 2 && v[0] == '0')
    return -1;
  return n >= 8 && n <= 15 ? n : -1;
}

struct offer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0; // 0: not offered
};

// Parses one permessage-deflate offer; nothing when it is malformed.
std::optional<offer> parse_offer(const std::vector<std::string_view>& parts) {
  offer o;
  bool seen_cmwb = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto p = parts[i];
    auto eq = p.find('=');
    auto name = trim(p.substr(0, eq));
    auto value = eq == std::string_view::npos ? std::string_view{}
                                              : trim(p.substr(eq + 1));
    bool has_value = eq != std::string_view::npos;
    if (name == "server_no_context_takeover") {
      if (has_value || o.server_no_context_takeover)
        return std::nullopt;
      o.server_no_context_takeover = true;
    } else if (name == "client_no_context_takeover") {
      if (has_value || o.client_no_context_takeover)
        return std::nullopt;
      o.client_no_context_takeover = true;
    } else if (name == "server_max_window_bits") {
      if (!has_value || o.server_max_window_bits != 0)
        return std::nullopt;
      auto n = window_value(value);
      if (n < 0)
        return std::nullopt;
      o.server_max_window_bits = n;
    } else if (name == "client_max_window_bits") {
      if (seen_cmwb || (has_value && window_value(value) < 0))
        return std::nullopt;
      seen_cmwb = true; // we inflate with a 32 KiB window: any size is fine
    } else {
      return std::nullopt;
    }
  }
  return o;
}

} // namespace

std::optional<std::pair<deflate_params, std::string>>
negotiate_deflate(std::string_view offers, const deflate_options& opts) {
  if (!opts.enabled)
    return std::nullopt;
  for (auto ext : split(offers, ',')) {
    auto parts = split(ext, ';');
    if (parts.empty() || parts[0] != "permessage-deflate")
      continue;
    auto o = parse_offer(parts);
    if (!o)
      continue;
    deflate_params p;
    p.server_no_context_takeover =
      !opts.dedicated_compressor || o->server_no_context_takeover;
    p.server_window_bits = std::clamp(opts.window_bits, 8, 15);
    if (o->server_max_window_bits != 0) {
      // The shared compressor's frames are made once, with the full window.
      if (!opts.dedicated_compressor && o->server_max_window_bits < 15)
        continue;
      p.server_window_bits =
        std::min(p.server_window_bits, o->server_max_window_bits);
    }
    if (!opts.dedicated_compressor)
      p.server_window_bits = 15;
    p.client_no_context_takeover =
      o->client_no_context_takeover || !opts.dedicated_decompressor;
    std::string response = "permessage-deflate";
    if (p.server_no_context_takeover)
      response += "; server_no_context_takeover";
    if (p.client_no_context_takeover)
      response += "; client_no_context_takeover";
    if (o->server_max_window_bits != 0)
      response +=
        "; server_max_window_bits=" + std::to_string(p.server_window_bits);
    return std::make_pair(p, std::move(response));
  }
  return std::nullopt;
}

// -- deflater -----------------------------------------------------------------

struct deflater::impl {
  z_stream strm{};
  bool reset_each;
};

namespace {

// zlib has no raw deflate with a 256-byte window (it refuses 8 bits). Its
// 512-byte one serves a peer that inflates with 256 bytes: zlib's matches
// reach at most 2^bits - 262 bytes back (MAX_DIST in its deflate.h), 250.
int zlib_window(int window_bits) {
  return std::clamp(window_bits, 9, 15);
}

} // namespace

deflater::deflater(int window_bits, int mem_level, bool reset_each)
  : impl_(std::make_unique<impl>()) {
  impl_->reset_each = reset_each;
  if (deflateInit2(&impl_->strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                   -zlib_window(window_bits), std::clamp(mem_level, 1, 9),
                   Z_DEFAULT_STRATEGY)
      != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
}

deflater::~deflater() {
  deflateEnd(&impl_->strm);
}

std::vector<std::byte> deflater::compress(std::span<const std::byte> in) {
  auto& s = impl_->strm;
  std::vector<std::byte> out(deflateBound(&s, in.size()) + 16);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  for (;;) {
    s.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    s.avail_out = static_cast<uInt>(out.size() - produced);
    auto rc = deflate(&s, Z_SYNC_FLUSH);
    produced = out.size() - s.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      throw std::runtime_error("deflate failed");
    if (s.avail_out != 0)
      break;
    out.resize(out.size() * 2);
  }
  // A sync flush ends with 00 00 FF FF, which the receiver appends itself
  // (RFC 7692 7.2.1). A flush with no input since the last one writes
  // nothing at all (Z_BUF_ERROR), but the message still needs the empty
  // stored block's first byte: without it the receiver's 00 00 FF FF reads
  // as the start of a 65,280-byte block.
  if (produced >= 4) {
    produced -= 4;
  } else {
    out[0] = std::byte{0};
    produced = 1;
  }
  out.resize(produced);
  if (impl_->reset_each)
    deflateReset(&s);
  return out;
}

std::vector<std::byte> deflate_shared(std::span<const std::byte> in,
                                      int window_bits) {
  // One per window size and thread, made when first asked for; reset after
  // each message, so it carries nothing from one caller to the next.
  thread_local std::unique_ptr<deflater> shared[16];
  auto& d = shared[zlib_window(window_bits)];
  if (!d)
    d = std::make_unique<deflater>(zlib_window(window_bits), 8, true);
  return d->compress(in);
}

// -- inflater -----------------------------------------------------------------

struct inflater::impl {
  z_stream strm{};
  bool reset_each;
};

inflater::inflater(bool reset_each) : impl_(std::make_unique<impl>()) {
  impl_->reset_each = reset_each;
  if (inflateInit2(&impl_->strm, -15) != Z_OK)
    throw std::runtime_error("inflateInit2 failed");
}

inflater::~inflater() {
  inflateEnd(&impl_->strm);
}

inflater::result inflater::inflate(std::span<const std::byte> in,
                                   std::size_t limit,
                                   std::vector<std::byte>& out) {
  auto& s = impl_->strm;
  out.clear();
  // No deflate data at all: an empty message, the context untouched (what
  // a sender whose zlib wrote nothing for it means; see compress()).
  if (in.empty())
    return result::ok;
  auto res = result::ok;
  bool boundary = false; // the last step stopped between two blocks
  bool ended = false;    // the input ended with the stream (BFINAL)
  auto run = [&](std::span<const std::byte> piece) {
    s.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(piece.data()));
    s.avail_in = static_cast<uInt>(piece.size());
    bool more = s.avail_in > 0;
    while (more) {
      // Room for one byte past the limit tells "too big" from "exactly".
      auto room = std::min<std::size_t>(64u << 10, limit + 1 - out.size());
      if (room == 0)
        return result::too_big;
      auto old = out.size();
      out.resize(old + room);
      s.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      s.avail_out = static_cast<uInt>(room);
      auto rc = ::inflate(&s, Z_SYNC_FLUSH);
      out.resize(old + room - s.avail_out);
      if (out.size() > limit)
        return result::too_big;
      if (rc == Z_STREAM_END) {
        // The client ended the stream (BFINAL): a fresh one follows.
        inflateReset(&s);
        ended = s.avail_in == 0;
        boundary = false;
      } else if (rc == Z_BUF_ERROR && s.avail_out != 0) {
        break; // no progress possible: input exhausted
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return result::invalid;
      } else {
        // zlib's data_type has 128 while it waits for the next block (a
        // call that made no progress says nothing).
        ended = false;
        boundary = (s.data_type & 128) != 0;
      }
      // Go on while input is left or the output filled up (more may come).
      more = s.avail_in > 0 || s.avail_out == 0;
    }
    return result::ok;
  };
  res = run(in);
  // After a final block the tail would lie past the stream's end.
  if (res == result::ok && !ended)
    res = run(deflate_tail);
  // A message that stops inside a block would make the next one its rest.
  if (res == result::ok && !ended && !boundary)
    res = result::invalid;
  if (res != result::ok || impl_->reset_each)
    inflateReset(&s);
  return res;
}

} // namespace herald::net
