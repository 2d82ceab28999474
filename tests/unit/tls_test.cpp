// TLS: the engine against an OpenSSL client in memory (handshake, ALPN,
// data both ways, full records), the TLS transport on real loopback
// sockets (a batch of small frames leaves as few full records; the session
// ticket goes out with the first write or the close), and the
// one-line errors of certificates that cannot be used. Certificates are
// made at test time with the openssl command-line tool.
#define CAF_SUITE tls

#include <caf/test/dsl.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>

#include <openssl/ssl.h>

#include <herald/net/frame.hpp>
#include <herald/net/tls.hpp>
#include <herald/net/tls_engine.hpp>
#include <herald/net/tls_transport.hpp>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using herald::net::tls_engine;

namespace {

// A self-signed certificate for `name` in `dir`; returns {cert, key}.
std::pair<std::string, std::string> make_cert(const fs::path& dir,
                                              const std::string& name) {
  auto cert = (dir / (name + ".crt")).string();
  auto key = (dir / (name + ".key")).string();
  auto cmd = "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN="
             + name + " -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0)
    CAF_FAIL("openssl req failed: " << cmd);
  return {cert, key};
}

// An OpenSSL client whose records go through memory.
struct mem_client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* in = BIO_new(BIO_s_mem());  // from the server
  BIO* out = BIO_new(BIO_s_mem()); // to the server

  mem_client() {
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "localhost");
  }
  ~mem_client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }

  std::vector<std::byte> take_output() {
    std::vector<std::byte> bytes(static_cast<std::size_t>(BIO_pending(out)));
    if (!bytes.empty())
      BIO_read(out, bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }

  void give(std::vector<std::byte>& bytes) {
    if (!bytes.empty())
      BIO_write(in, bytes.data(), static_cast<int>(bytes.size()));
    bytes.clear();
  }
};

// Runs the handshake between `c` and `e` in memory.
bool handshake(mem_client& c, tls_engine& e) {
  std::byte buf[256];
  for (int i = 0; i < 20; ++i) {
    SSL_do_handshake(c.ssl);
    auto bytes = c.take_output();
    e.input(bytes);
    std::size_t n = 0;
    while (e.read(buf, sizeof buf, n) == tls_engine::status::data) {
    }
    c.give(e.out());
    if (SSL_is_init_finished(c.ssl) && e.established())
      return true;
  }
  return false;
}

// Runs the handshake between `c` and `e` in memory as a session does when
// the client's Finished comes with its request: the session ticket the
// server writes then stays in `e.out()`; returns it.
std::vector<std::byte> handshake_keeping_ticket(mem_client& c, tls_engine& e) {
  std::byte buf[256];
  std::size_t n = 0;
  SSL_do_handshake(c.ssl);
  auto hello = c.take_output();
  e.input(hello);
  if (e.read(buf, sizeof buf, n) != tls_engine::status::want)
    return {};
  c.give(e.out());
  if (SSL_do_handshake(c.ssl) != 1)
    return {};
  auto finished = c.take_output();
  e.input(finished);
  if (e.read(buf, sizeof buf, n) != tls_engine::status::want
      || !e.established())
    return {};
  return e.out();
}

// Sizes of the TLS records in `bytes` (header included).
std::vector<std::size_t> record_sizes(const std::vector<std::byte>& bytes) {
  std::vector<std::size_t> sizes;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    auto len = (std::to_integer<std::size_t>(bytes[pos + 3]) << 8)
               | std::to_integer<std::size_t>(bytes[pos + 4]);
    sizes.push_back(5 + len);
    pos += 5 + len;
  }
  return sizes;
}

herald::net::tls_options
options(std::string cert, std::string key,
        std::vector<herald::net::tls_sni_entry> sni = {}) {
  herald::net::tls_options o;
  o.cert_file = std::move(cert);
  o.key_file = std::move(key);
  o.sni = std::move(sni);
  return o;
}

struct fixture {
  fs::path dir;
  std::string cert;
  std::string key;
  std::shared_ptr<herald::net::tls_context> ctx;

  fixture() {
    char tmpl[] = "/tmp/herald-tls-unit.XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::tie(cert, key) = make_cert(dir, "localhost");
    ctx =
      std::make_shared<herald::net::tls_context>(options(cert, key), nullptr);
  }
  ~fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// A connected loopback pair: the test's plain client socket and a TLS
// transport on the server's end of it, with the engine `e` handshook.
struct loopback_pair {
  asio::io_context io;
  tcp::socket client{io};
  herald::net::transport_ptr transport;

  explicit loopback_pair(std::unique_ptr<tls_engine> e) {
    herald::net::stream_socket server{io.get_executor()};
    tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    transport = herald::net::make_tls_transport(std::move(server), "test", {},
                                                std::move(e));
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(tls_tests, fixture)

CAF_TEST(the engine completes a handshake and selects http / 1.1) {
  mem_client c;
  tls_engine e{*ctx};
  CAF_REQUIRE(handshake(c, e));
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c.ssl, &proto, &len);
  CAF_CHECK_EQUAL(std::string(reinterpret_cast<const char*>(proto), len),
                  "http/1.1");
  CAF_CHECK_EQUAL(SSL_version(c.ssl), TLS1_3_VERSION);
  CAF_CHECK_EQUAL(ctx->counters().handshakes.load(), 1u);
  CAF_CHECK_EQUAL(ctx->counters().open.load(), 1);
  // Client to server.
  SSL_write(c.ssl, "hello", 5);
  auto bytes = c.take_output();
  e.input(bytes);
  std::byte buf[64];
  std::size_t n = 0;
  CAF_REQUIRE(e.read(buf, sizeof buf, n) == tls_engine::status::data);
  CAF_CHECK_EQUAL(std::string(reinterpret_cast<char*>(buf), n), "hello");
}

CAF_TEST(a large write becomes full records) {
  mem_client c;
  tls_engine e{*ctx};
  CAF_REQUIRE(handshake(c, e));
  e.out().clear();
  std::vector<std::byte> data(64u << 10, std::byte{'x'});
  CAF_REQUIRE(e.write(data.data(), data.size()));
  auto sizes = record_sizes(e.out());
  CAF_CHECK_EQUAL(sizes.size(), 4u);
}

CAF_TEST(the transport sends a batch of small frames as full records) {
  mem_client c;
  auto e = std::make_unique<tls_engine>(*ctx);
  CAF_REQUIRE(handshake(c, *e));
  // Tickets the handshake left are the client's business, not the batch's.
  std::vector<std::byte> pending;
  pending.swap(e->out());
  c.give(pending);
  loopback_pair pair{std::move(e)};
  auto& io = pair.io;
  auto& client = pair.client;
  auto& t = pair.transport;
  // 200 frames of 100 bytes, handed over in one write: 20,000 bytes.
  std::vector<herald::net::frame_ptr> frames;
  std::vector<herald::net::slice> pieces;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string text(100, static_cast<char>('a' + i % 26));
    expected += text;
    frames.push_back(herald::net::make_raw(
      {reinterpret_cast<const std::byte*>(text.data()), text.size()}));
    pieces.push_back(herald::net::whole(*frames.back()));
  }
  CAF_CHECK_EQUAL(t->write(pieces), 0u);
  // Two records: 16 KiB and the rest, each with 22 bytes of overhead.
  std::vector<std::byte> raw(16384 + 22 + 5 + (20000 - 16384) + 17);
  boost::system::error_code ec;
  asio::read(client, asio::buffer(raw), ec);
  CAF_REQUIRE(!ec);
  auto sizes = record_sizes(raw);
  CAF_REQUIRE_EQUAL(sizes.size(), 2u);
  CAF_CHECK_EQUAL(sizes[0], 16384u + 5 + 17);
  c.give(raw);
  std::string got(20000, '\0');
  std::size_t total = 0;
  while (total < got.size()) {
    auto n =
      SSL_read(c.ssl, got.data() + total, static_cast<int>(got.size() - total));
    if (n <= 0)
      break;
    total += static_cast<std::size_t>(n);
  }
  CAF_CHECK_EQUAL(total, expected.size());
  CAF_CHECK(got == expected);
  t->close(false);
  io.run();
}

CAF_TEST(a ticket the session left goes out with the first write) {
  mem_client c;
  auto e = std::make_unique<tls_engine>(*ctx);
  auto ticket = handshake_keeping_ticket(c, *e);
  // One ticket per handshake.
  CAF_REQUIRE_EQUAL(record_sizes(ticket).size(), 1u);
  loopback_pair pair{std::move(e)};
  auto& io = pair.io;
  auto& client = pair.client;
  auto& t = pair.transport;
  CAF_CHECK_EQUAL(client.available(), 0u);
  std::string text = "hello";
  auto frame = herald::net::make_raw(
    {reinterpret_cast<const std::byte*>(text.data()), text.size()});
  herald::net::slice piece = herald::net::whole(*frame);
  CAF_CHECK_EQUAL(t->write({&piece, 1}), 0u);
  // The ticket, then the data's record (5 bytes, 22 of overhead).
  std::vector<std::byte> raw(ticket.size() + 5 + 22);
  boost::system::error_code ec;
  asio::read(client, asio::buffer(raw), ec);
  CAF_REQUIRE(!ec);
  CAF_CHECK(std::equal(ticket.begin(), ticket.end(), raw.begin()));
  c.give(raw);
  char got[16];
  auto n = SSL_read(c.ssl, got, sizeof got);
  CAF_REQUIRE_EQUAL(n, 5);
  CAF_CHECK_EQUAL(std::string(got, 5), text);
  t->close(false);
  io.run();
}

CAF_TEST(a transport closed before its first write still sends the ticket) {
  mem_client c;
  auto e = std::make_unique<tls_engine>(*ctx);
  auto ticket = handshake_keeping_ticket(c, *e);
  CAF_REQUIRE(!ticket.empty());
  loopback_pair pair{std::move(e)};
  auto& io = pair.io;
  auto& client = pair.client;
  auto& t = pair.transport;
  t->close(true);
  std::thread loop{[&io] { io.run(); }};
  // The ticket, close_notify, then the end of the stream.
  std::vector<std::byte> raw;
  std::array<std::byte, 4096> chunk;
  boost::system::error_code ec;
  for (;;) {
    auto k = client.read_some(asio::buffer(chunk), ec);
    if (ec)
      break;
    raw.insert(raw.end(), chunk.begin(), chunk.begin() + k);
  }
  CAF_CHECK(ec == asio::error::eof);
  client.close();
  loop.join();
  CAF_REQUIRE(raw.size() > ticket.size());
  CAF_CHECK(std::equal(ticket.begin(), ticket.end(), raw.begin()));
  c.give(raw);
  char got[16];
  CAF_CHECK(SSL_read(c.ssl, got, sizeof got) <= 0);
  CAF_CHECK_EQUAL(SSL_get_error(c.ssl, -1), SSL_ERROR_ZERO_RETURN);
}

CAF_TEST(certificates that cannot be used are a one - line error) {
  auto [other_cert, other_key] = make_cert(dir, "other");
  auto error_of = [](herald::net::tls_options o) -> std::string {
    try {
      herald::net::tls_context bad{std::move(o), nullptr};
    } catch (const herald::net::tls_error& e) {
      return e.what();
    }
    return "";
  };
  CAF_CHECK_EQUAL(error_of(options(cert, other_key)),
                  "key " + other_key + " does not match certificate " + cert);
  CAF_CHECK_EQUAL(error_of(options((dir / "none.crt").string(), key)),
                  "cannot read certificate " + (dir / "none.crt").string()
                    + ": No such file or directory");
  CAF_CHECK_EQUAL(error_of(options(cert, key, {{"", other_cert, other_key}})),
                  "SNI entry for " + other_cert + " has no server name");
}

CAF_TEST(a reload with a broken file keeps the old certificates) {
  {
    std::FILE* f = std::fopen(cert.c_str(), "w");
    std::fputs("broken\n", f);
    std::fclose(f);
  }
  auto why = ctx->reload();
  CAF_CHECK_EQUAL(why, "certificate " + cert + ": no start line");
  CAF_CHECK_EQUAL(ctx->counters().reload_failures.load(), 1u);
  // Handshakes still work, with the old certificate.
  mem_client c;
  tls_engine e{*ctx};
  CAF_CHECK(handshake(c, e));
  make_cert(dir, "localhost");
  CAF_CHECK_EQUAL(ctx->reload(), "");
  CAF_CHECK_EQUAL(ctx->counters().reloads.load(), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
