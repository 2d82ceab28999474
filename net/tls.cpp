// OpenSSL behind tls_context and tls_engine: certificate sets, SNI, ALPN,
// reload, and a BIO that reads from the caller's span and writes into a
// byte vector.
#include "herald/net/tls.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "herald/net/log.hpp"
#include "herald/net/tls_engine.hpp"

namespace herald::net {

namespace {

// True when the PEM file at `path` holds an encrypted private key
// (PKCS#8 "ENCRYPTED PRIVATE KEY" or a legacy "Proc-Type: 4,ENCRYPTED").
bool pem_encrypted(const std::string& path) {
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);)
    if (line.find("ENCRYPTED") != std::string::npos)
      return true;
  return false;
}

// The reason of the oldest queued OpenSSL error (the queue is cleared).
std::string ssl_reason(const char* fallback = "TLS error") {
  auto e = ERR_get_error();
  ERR_clear_error();
  if (e == 0)
    return fallback;
  if (auto* r = ERR_reason_error_string(e))
    return r;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string asn1_time(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, t);
  char* p = nullptr;
  auto n = BIO_get_mem_data(b, &p);
  std::string s{p, static_cast<std::size_t>(n > 0 ? n : 0)};
  BIO_free(b);
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return s;
}

// -- the BIO ----------------------------------------------------------------

tls_engine* engine_of(BIO* b) {
  return static_cast<tls_engine*>(BIO_get_data(b));
}

int bio_read(BIO* b, char* out, std::size_t len, std::size_t* got) {
  BIO_clear_retry_flags(b);
  auto& in = engine_of(b)->in_span();
  if (in.empty()) {
    BIO_set_retry_read(b);
    *got = 0;
    return 0;
  }
  auto n = std::min(len, in.size());
  std::memcpy(out, in.data(), n);
  in = in.subspan(n);
  *got = n;
  return 1;
}

int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* put) {
  BIO_clear_retry_flags(b);
  auto& out = engine_of(b)->out();
  auto* p = reinterpret_cast<const std::byte*>(data);
  out.insert(out.end(), p, p + len);
  *put = len;
  return 1;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* engine_bio() {
  static BIO_METHOD* m = [] {
    auto* m =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herald");
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return m;
}

// -- certificate sets -------------------------------------------------------

// One loaded generation of certificates: the default and the SNI ones.
struct cert_set {
  SSL_CTX* def = nullptr;
  std::vector<std::pair<std::string, SSL_CTX*>> by_name;
  std::string passphrase;

  cert_set() = default;
  cert_set(const cert_set&) = delete;
  cert_set& operator=(const cert_set&) = delete;
  ~cert_set() {
    SSL_CTX_free(def);
    for (auto& [name, ctx] : by_name)
      SSL_CTX_free(ctx);
  }
};

int on_passphrase(char* buf, int size, int, void* user) {
  // Never prompt on a terminal: no passphrase fails the key instead.
  auto* pass = static_cast<const std::string*>(user);
  if (!pass || pass->empty() || size <= 0)
    return 0;
  auto n = std::min(static_cast<int>(pass->size()), size);
  std::memcpy(buf, pass->data(), static_cast<std::size_t>(n));
  return n;
}

int on_server_name(SSL* ssl, int*, void* arg) {
  auto* set = static_cast<const cert_set*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name)
    return SSL_TLSEXT_ERR_OK;
  auto key = lower(name);
  for (auto& [n, ctx] : set->by_name)
    if (n == key) {
      SSL_set_SSL_CTX(ssl, ctx);
      return SSL_TLSEXT_ERR_OK;
    }
  // Unknown names get the default certificate, as most servers do.
  return SSL_TLSEXT_ERR_OK;
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
            const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; // no ALPN then, rather than no connection
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

void on_info(const SSL* ssl, int where, int ret) {
  // OpenSSL answers a renegotiation request with this warning alert.
  if ((where & SSL_CB_WRITE_ALERT) != SSL_CB_WRITE_ALERT
      || (ret & 0xff) != SSL_AD_NO_RENEGOTIATION)
    return;
  if (auto* e = static_cast<tls_engine*>(SSL_get_app_data(ssl)))
    e->note_renegotiation();
}

void check_readable(const std::string& what, const std::string& file) {
  if (file.empty())
    throw tls_error{what + " file not set"};
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f)
    throw tls_error{"cannot read " + what + " " + file + ": "
                    + std::strerror(errno)};
  std::fclose(f);
}

SSL_CTX* make_ctx(const tls_options& opts, const std::string& cert,
                  const std::string& key, cert_set& set) {
  check_readable("certificate", cert);
  check_readable("key", key);
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    throw tls_error{"TLS: " + ssl_reason()};
  auto fail = [&](std::string why) {
    SSL_CTX_free(ctx);
    throw tls_error{std::move(why)};
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // AES-128-GCM first (as browsers offer on AES-NI hardware and Mozilla's
  // "intermediate" profile orders it), then AES-256-GCM and ChaCha20; forward
  // secrecy only.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                "TLS_AES_256_GCM_SHA384:"
                                "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
                               "ECDHE-RSA-AES128-GCM-SHA256:"
                               "ECDHE-ECDSA-AES256-GCM-SHA384:"
                               "ECDHE-RSA-AES256-GCM-SHA384:"
                               "ECDHE-ECDSA-CHACHA20-POLY1305:"
                               "ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION
                             | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_NO_COMPRESSION);
  // Idle connections give their 16 KiB record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(ctx, on_passphrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &set.passphrase);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    fail("certificate " + cert + ": " + ssl_reason());
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    auto why = ssl_reason();
    if (why == "key values mismatch")
      fail("key " + key + " does not match certificate " + cert);
    // Judged by the file, not the reason: a wrong passphrase that happens
    // to give valid padding fails later, as "unsupported".
    if (why == "bad decrypt" || pem_encrypted(key))
      fail("key " + key
           + (set.passphrase.empty()
                ? " is encrypted and no passphrase was given"
                : ": wrong passphrase"));
    fail("key " + key + ": " + why);
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail("key " + key + " does not match certificate " + cert);
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
    fail("certificate " + cert + " expired on "
         + asn1_time(X509_get0_notAfter(leaf)));
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0)
    fail("certificate " + cert + " is not valid before "
         + asn1_time(X509_get0_notBefore(leaf)));
  if (!opts.ca_file.empty()) {
    check_readable("client CA", opts.ca_file);
    if (SSL_CTX_load_verify_locations(ctx, opts.ca_file.c_str(), nullptr) != 1)
      fail("client CA " + opts.ca_file + ": " + ssl_reason());
    if (auto* names = SSL_load_client_CA_file(opts.ca_file.c_str()))
      SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  static const unsigned char sid[] = "herald";
  SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  SSL_CTX_set_info_callback(ctx, on_info);
  // One TLS 1.3 session ticket instead of OpenSSL's two: a browser resumes
  // with one, and each ticket costs a session copy, an encryption and a
  // MAC in every full handshake.
  SSL_CTX_set_num_tickets(ctx, 1);
  return ctx;
}

// The first line of `file`, without its line end.
std::string read_passphrase(const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f)
    throw tls_error{"cannot read key passphrase file " + file + ": "
                    + std::strerror(errno)};
  std::string line;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) {
    line += buf;
    if (!line.empty() && line.back() == '\n')
      break;
  }
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed)
    throw tls_error{"cannot read key passphrase file " + file};
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.pop_back();
  if (line.empty())
    throw tls_error{"key passphrase file " + file + " is empty"};
  return line;
}

std::shared_ptr<const cert_set> load(const tls_options& opts) {
  auto set = std::make_shared<cert_set>();
  set->passphrase = opts.passphrase_file.empty()
                      ? opts.passphrase
                      : read_passphrase(opts.passphrase_file);
  set->def = make_ctx(opts, opts.cert_file, opts.key_file, *set);
  for (auto& e : opts.sni) {
    if (e.server_name.empty())
      throw tls_error{"SNI entry for " + e.cert_file + " has no server name"};
    auto* ctx = make_ctx(opts, e.cert_file, e.key_file, *set);
    set->by_name.emplace_back(lower(e.server_name), ctx);
  }
  SSL_CTX_set_tlsext_servername_callback(set->def, on_server_name);
  SSL_CTX_set_tlsext_servername_arg(set->def, set.get());
  return set;
}

} // namespace

// -- tls_context --------------------------------------------------------------

struct tls_context::impl {
  tls_options opts;
  std::mutex mtx;
  std::shared_ptr<const cert_set> current;
  std::shared_ptr<tls_counters> counters;

  std::shared_ptr<const cert_set> get() {
    std::lock_guard<std::mutex> guard{mtx};
    return current;
  }
};

tls_context::tls_context(tls_options opts,
                         std::shared_ptr<tls_counters> counters)
  : impl_(std::make_unique<impl>()), counters_(std::move(counters)) {
  if (!counters_)
    counters_ = std::make_shared<tls_counters>();
  impl_->counters = counters_;
  impl_->current = load(opts);
  impl_->opts = std::move(opts);
}

tls_context::~tls_context() = default;

std::string tls_context::reload() {
  try {
    auto fresh = load(impl_->opts);
    {
      std::lock_guard<std::mutex> guard{impl_->mtx};
      impl_->current = std::move(fresh);
    }
    counters_->reloads.fetch_add(1, std::memory_order_relaxed);
    HERALD_LOG(info,
               "TLS certificates reloaded from " << impl_->opts.cert_file);
    return {};
  } catch (const tls_error& e) {
    counters_->reload_failures.fetch_add(1, std::memory_order_relaxed);
    HERALD_LOG(error,
               "TLS reload failed, keeping the old certificates: " << e.what());
    return e.what();
  }
}

// -- tls_engine -------------------------------------------------------------

tls_engine::tls_engine(tls_context& ctx) : counters_(ctx.get().counters) {
  auto set = ctx.get().get();
  ssl_ = SSL_new(set->def);
  if (!ssl_)
    throw tls_error{"TLS: " + ssl_reason()};
  set_ = std::move(set);
  BIO* b = BIO_new(engine_bio());
  BIO_set_data(b, this);
  SSL_set_bio(ssl_, b, b);
  SSL_set_app_data(ssl_, this);
  SSL_set_accept_state(ssl_);
  counters_->open.fetch_add(1, std::memory_order_relaxed);
}

tls_engine::~tls_engine() {
  SSL_free(ssl_);
  counters_->open.fetch_sub(1, std::memory_order_relaxed);
}

void tls_engine::stash_input() {
  if (in_.empty() || in_.data() == stash_.data())
    return;
  stash_.assign(in_.begin(), in_.end());
  in_ = stash_;
}

bool tls_engine::established() const noexcept {
  return SSL_is_init_finished(ssl_) == 1;
}

void tls_engine::record_failure() {
  if (counted_)
    return;
  counted_ = true;
  counters_->handshake_failures.fetch_add(1, std::memory_order_relaxed);
}

tls_engine::status tls_engine::read(std::byte* buf, std::size_t size,
                                    std::size_t& n) {
  n = 0;
  ERR_clear_error();
  auto r =
    SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
  if (!counted_ && established()) {
    counted_ = true;
    counters_->handshakes.fetch_add(1, std::memory_order_relaxed);
  }
  if (r > 0) {
    n = static_cast<std::size_t>(r);
    return status::data;
  }
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return status::want;
    case SSL_ERROR_ZERO_RETURN:
      return status::closed;
    default:
      error_ = ssl_reason();
      record_failure();
      return status::failed;
  }
}

bool tls_engine::write(const std::byte* data, std::size_t size) {
  ERR_clear_error();
  while (size > 0) {
    auto chunk = static_cast<int>(std::min<std::size_t>(size, 1u << 30));
    auto r = SSL_write(ssl_, data, chunk);
    if (r <= 0) {
      error_ = ssl_reason();
      return false;
    }
    data += r;
    size -= static_cast<std::size_t>(r);
  }
  return true;
}

void tls_engine::shutdown() {
  ERR_clear_error();
  if (established())
    SSL_shutdown(ssl_);
  ERR_clear_error();
}

void tls_engine::note_renegotiation() noexcept {
  renegotiating_ = true;
}

bool tls_engine::renegotiation_attempted() noexcept {
  return std::exchange(renegotiating_, false);
}

} // namespace herald::net
