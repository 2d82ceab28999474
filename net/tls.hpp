// TLS for a server's port (wss:// and https://): the options, the counters
// and the certificate set that handshakes use. OpenSSL stays inside
// net/tls*.cpp; this header names none of its types.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace herald::net {

/// A further certificate, chosen when a client asks for `server_name`
/// (SNI).
struct tls_sni_entry {
  /// The host name it serves, exactly as clients send it (any case).
  std::string server_name;
  /// PEM certificate chain (leaf first).
  std::string cert_file;
  /// PEM private key of the leaf (same passphrase as the default key).
  std::string key_file;
};

/// TLS settings of a server; off while `cert_file` is empty.
struct tls_options {
  /// PEM certificate chain (leaf first), used when no SNI entry matches.
  std::string cert_file;
  /// PEM private key of that certificate.
  std::string key_file;
  /// Passphrase of encrypted keys; empty: keys are not encrypted.
  std::string passphrase;
  /// File whose first line is the passphrase (as `openssl -pass file:`),
  /// read at every load (start and reload); when set it takes the place of
  /// `passphrase` (the programs take it so: no passphrase on a command
  /// line).
  std::string passphrase_file;
  /// PEM file of CAs whose client certificates are required; empty (the
  /// default): no client certificates.
  std::string ca_file;
  /// Further certificates by server name.
  std::vector<tls_sni_entry> sni;

  /// True when TLS is configured.
  bool enabled() const noexcept {
    return !cert_file.empty() || !key_file.empty();
  }
};

/// A TLS setting that cannot be used, with a one-line reason.
class tls_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// TLS counters of one server; safe to read from any thread.
struct tls_counters {
  /// TCP connections over TLS open now (HTTP and WebSocket).
  std::atomic<std::int64_t> open{0};
  /// Handshakes completed.
  std::atomic<std::uint64_t> handshakes{0};
  /// Handshakes that failed (bad ClientHello, plain HTTP, no common
  /// version or cipher, missing client certificate).
  std::atomic<std::uint64_t> handshake_failures{0};
  /// Certificate reloads that took effect.
  std::atomic<std::uint64_t> reloads{0};
  /// Certificate reloads refused (the old certificates stay).
  std::atomic<std::uint64_t> reload_failures{0};
};

/// The certificates of a server. Handshakes take the set current when they
/// start; `reload` swaps in a new one without touching open connections.
class tls_context {
public:
  /// Loads and checks every certificate and key of `opts`; throws
  /// tls_error (one line naming the file and the reason) when one is
  /// missing, unreadable, expired, not yet valid or does not match its key.
  tls_context(tls_options opts, std::shared_ptr<tls_counters> counters);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  /// Reads the files again. On success new handshakes use them; on failure
  /// the old certificates stay, the reason is logged and returned.
  /// Returns an empty string on success.
  std::string reload();
  /// The counters.
  tls_counters& counters() noexcept { return *counters_; }

  /// The implementation (net/tls.cpp).
  struct impl;
  /// For net/*.cpp only.
  impl& get() noexcept { return *impl_; }

private:
  std::unique_ptr<impl> impl_;
  std::shared_ptr<tls_counters> counters_;
};

/// Shared handle to a server's certificates.
using tls_context_ptr = std::shared_ptr<tls_context>;

} // namespace herald::net
