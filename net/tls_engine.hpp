// One TLS connection's OpenSSL state (internal to net/). OpenSSL reads
// ciphertext from a span the caller sets and writes records into a byte
// vector the caller sends: no socket in it, so the HTTP session and the
// WebSocket transport drive it with their own I/O, and the transport sends
// a whole batch of records with one system call.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "herald/net/tls.hpp"

struct ssl_st;

namespace herald::net {

/// Server side of one TLS connection. Not thread-safe: callers serialize.
class tls_engine {
public:
  /// What a read produced.
  enum class status {
    data,   ///< plaintext read
    want,   ///< more ciphertext needed
    closed, ///< the peer sent close_notify
    failed, ///< a TLS error (see `error()`); an alert may be in `out()`
  };

  /// A connection with the certificate set current in `ctx`.
  explicit tls_engine(tls_context& ctx);
  ~tls_engine();
  tls_engine(const tls_engine&) = delete;
  tls_engine& operator=(const tls_engine&) = delete;

  /// Ciphertext to read from next; must stay valid until a read returns
  /// `want` or the bytes are stashed.
  void input(std::span<const std::byte> bytes) noexcept { in_ = bytes; }
  /// Copies unread input into the engine, for input that does not outlive
  /// the caller (a handover from the HTTP session to the transport).
  void stash_input();
  /// True when input is left unread.
  bool has_input() const noexcept { return !in_.empty(); }
  /// Decrypts into `buf` (runs the handshake first); `n`: bytes read.
  status read(std::byte* buf, std::size_t size, std::size_t& n);
  /// Encrypts `size` bytes into `out()` (records of up to 16 KiB).
  bool write(const std::byte* data, std::size_t size);
  /// Appends a close_notify alert to `out()`.
  void shutdown();
  /// Records to send, oldest first; the caller erases what it sent.
  std::vector<std::byte>& out() noexcept { return out_; }
  /// True once the handshake completed.
  bool established() const noexcept;
  /// Why the last read or write failed.
  const std::string& error() const noexcept { return error_; }
  /// Counts a handshake refused before OpenSSL saw it (plain HTTP).
  void refuse() { record_failure(); }
  /// True (once) when the peer tried to renegotiate since the last call.
  bool renegotiation_attempted() noexcept;

  /// For the OpenSSL callbacks.
  std::span<const std::byte>& in_span() noexcept { return in_; }
  /// For the OpenSSL callbacks.
  void note_renegotiation() noexcept;

private:
  void record_failure();

  std::shared_ptr<const void> set_; // the certificate set it started with
  std::shared_ptr<tls_counters> counters_;
  ssl_st* ssl_ = nullptr;
  std::span<const std::byte> in_;
  std::vector<std::byte> stash_;
  std::vector<std::byte> out_;
  std::string error_;
  bool counted_ = false; // handshake counted as done or failed
  bool renegotiating_ = false;
};

} // namespace herald::net
