// permessage-deflate: negotiation, compressors, the bounded inflater, and
// compressed traffic through connection actors.
#define CAF_SUITE deflate

#include <caf/test/dsl.hpp>

#include <zlib.h>

#include <herald/actors/connection.hpp>
#include <herald/actors/topics.hpp>
#include <herald/net/deflate.hpp>
#include <herald/net/fake_transport.hpp>

using herald::deflate_options;
using herald::net::negotiate_deflate;
using herald::net::opcode;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text(const std::vector<std::byte>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

deflate_options shared() {
  deflate_options o;
  o.enabled = true;
  return o;
}

deflate_options dedicated() {
  auto o = shared();
  o.dedicated_compressor = true;
  return o;
}

// A raw deflate stream of `mib` MiB of zeros: a bomb when large. Each MiB
// after the first compresses to the same bytes (a sync flush ends every
// chunk on a byte boundary), so a gigabyte needs no gigabyte of work.
std::vector<std::byte> zeros_deflated(std::size_t mib) {
  z_stream s{};
  deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  std::vector<unsigned char> in(1u << 20, 0);
  auto chunk = [&] {
    std::vector<unsigned char> buf(1u << 16);
    s.next_in = in.data();
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = buf.data();
    s.avail_out = static_cast<uInt>(buf.size());
    deflate(&s, Z_SYNC_FLUSH);
    buf.resize(buf.size() - s.avail_out);
    return buf;
  };
  auto first = chunk();
  auto second = chunk();
  auto third = chunk();
  deflateEnd(&s);
  CAF_REQUIRE(second == third);
  std::vector<std::byte> out;
  auto append = [&](const std::vector<unsigned char>& b) {
    auto* p = reinterpret_cast<const std::byte*>(b.data());
    out.insert(out.end(), p, p + b.size());
  };
  append(first);
  for (std::size_t i = 1; i < mib; ++i)
    append(second);
  out.resize(out.size() - 4); // strip 00 00 FF FF as a sender does
  return out;
}

} // namespace

CAF_TEST(negotiation accepts a plain offer in shared mode) {
  auto r =
    negotiate_deflate("permessage-deflate; client_max_window_bits", shared());
  CAF_REQUIRE(r.has_value());
  CAF_CHECK_EQUAL(r->second, "permessage-deflate; server_no_context_takeover");
  CAF_CHECK(r->first.server_no_context_takeover);
  CAF_CHECK(!r->first.client_no_context_takeover);
}

CAF_TEST(negotiation keeps context in dedicated mode and honours limits) {
  auto r = negotiate_deflate("permessage-deflate", dedicated());
  CAF_REQUIRE(r.has_value());
  CAF_CHECK_EQUAL(r->second, "permessage-deflate");
  CAF_CHECK(!r->first.server_no_context_takeover);
  r = negotiate_deflate(
    "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
    dedicated());
  CAF_REQUIRE(r.has_value());
  CAF_CHECK_EQUAL(r->first.server_window_bits, 10);
  CAF_CHECK(r->first.client_no_context_takeover);
  CAF_CHECK_EQUAL(r->second, "permessage-deflate; client_no_context_takeover; "
                             "server_max_window_bits=10");
  r = negotiate_deflate("permessage-deflate; server_no_context_takeover",
                        dedicated());
  CAF_REQUIRE(r.has_value());
  CAF_CHECK(r->first.server_no_context_takeover);
  // zlib's 9-bit window serves a client that inflates with 8 bits
  // (deflate_rules checks the bytes).
  r = negotiate_deflate("permessage-deflate; server_max_window_bits=8",
                        dedicated());
  CAF_REQUIRE(r.has_value());
  CAF_CHECK_EQUAL(r->first.server_window_bits, 8);
  CAF_CHECK_EQUAL(r->second, "permessage-deflate; server_max_window_bits=8");
}

CAF_TEST(negotiation declines offers it cannot honour and takes the next) {
  CAF_CHECK(!negotiate_deflate("permessage-deflate", deflate_options{}));
  CAF_CHECK(!negotiate_deflate("permessage-deflate; server_max_window_bits=8",
                               shared()));
  CAF_CHECK(!negotiate_deflate("permessage-deflate; server_max_window_bits=10",
                               shared()));
  CAF_CHECK(!negotiate_deflate("permessage-deflate; foo=1", shared()));
  CAF_CHECK(
    !negotiate_deflate("permessage-deflate; server_no_context_takeover; "
                       "server_no_context_takeover",
                       shared()));
  CAF_CHECK(!negotiate_deflate("permessage-deflate; client_max_window_bits=16",
                               shared()));
  CAF_CHECK(!negotiate_deflate("x-webkit-deflate-frame", shared()));
  auto r = negotiate_deflate("permessage-deflate; foo, permessage-deflate; "
                             "client_max_window_bits=\"12\"",
                             shared());
  CAF_CHECK(r.has_value());
}

CAF_TEST(compress and inflate round trip with and without context) {
  for (bool reset : {true, false}) {
    herald::net::deflater d{15, 8, reset};
    herald::net::inflater i{reset};
    std::vector<std::byte> out;
    std::string msg(2000, 'a');
    for (int k = 0; k < 3; ++k) {
      auto packed = d.compress(bytes(msg));
      CAF_CHECK_LESS(packed.size(), msg.size());
      CAF_REQUIRE(i.inflate(packed, 1 << 20, out)
                  == herald::net::inflater::result::ok);
      CAF_CHECK_EQUAL(text(out), msg);
    }
  }
}

CAF_TEST(context takeover makes a repeated message smaller) {
  herald::net::deflater d{15, 8, false};
  std::string msg = "the quick brown fox jumps over the lazy dog, twice";
  auto first = d.compress(bytes(msg));
  auto second = d.compress(bytes(msg));
  CAF_CHECK_LESS(second.size(), first.size());
}

CAF_TEST(invalid compressed data is reported) {
  herald::net::inflater i{true};
  std::vector<std::byte> out;
  std::vector<std::byte> junk(64, std::byte{0xFF});
  CAF_CHECK(i.inflate(junk, 1 << 20, out)
            == herald::net::inflater::result::invalid);
}

CAF_TEST(the bomb builder makes real deflate data) {
  herald::net::inflater i{true};
  std::vector<std::byte> out;
  CAF_REQUIRE(i.inflate(zeros_deflated(4), 8u << 20, out)
              == herald::net::inflater::result::ok);
  CAF_CHECK_EQUAL(out.size(), 4u << 20);
  CAF_CHECK(std::all_of(out.begin(), out.end(),
                        [](std::byte b) { return b == std::byte{0}; }));
}

CAF_TEST(a deflate bomb stops at the limit) {
  auto bomb = zeros_deflated(1024); // 1 GiB of zeros
  CAF_MESSAGE("bomb: " << bomb.size() << " bytes for 1 GiB");
  CAF_CHECK_LESS(bomb.size(), 2u << 20);
  herald::net::inflater i{true};
  std::vector<std::byte> out;
  CAF_CHECK(i.inflate(bomb, 1 << 20, out)
            == herald::net::inflater::result::too_big);
  CAF_CHECK_LESS_OR_EQUAL(out.size(), (1u << 20) + 1);
  // The same inflater still works afterwards.
  auto ok = herald::net::deflate_shared(bytes("fine"));
  CAF_CHECK(i.inflate(ok, 100, out) == herald::net::inflater::result::ok);
  CAF_CHECK_EQUAL(text(out), "fine");
}

CAF_TEST(a frame is deflated once however many ask) {
  auto f = herald::net::make_frame(opcode::text,
                                   std::string_view{std::string(500, 'z')});
  std::atomic<std::uint64_t> count{0};
  auto a = f->deflated(&count);
  auto b = f->deflated(&count);
  CAF_CHECK_EQUAL(count.load(), 1u);
  CAF_CHECK_EQUAL(a.get(), b.get());
  CAF_CHECK(a->compressed());
  CAF_CHECK(a->bytes()[0] == std::byte{0xC1}); // FIN + RSV1 + text
  // Incompressible input: the frame itself.
  auto g = herald::net::make_frame(opcode::binary, std::string_view{"\x01"});
  CAF_CHECK_EQUAL(g->deflated().get(), g.get());
}

namespace {

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::topic_registry handle = herald::spawn_topic_registry(sys, counts);
  herald::msg::registry_actor registry = handle.actor();
  std::shared_ptr<herald::server_stats> stats =
    std::make_shared<herald::server_stats>();
  std::vector<std::string> got;
  std::vector<caf::actor> spawned;

  ~fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  std::shared_ptr<herald::net::fake_transport>
  connect(const deflate_options& opts, bool agreed, bool dedicated_ctx) {
    herald::websocket_handlers<int> h;
    h.per_message_deflate = opts;
    h.max_payload_length = 1 << 20;
    h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
    h.message = [this](herald::socket<int>& ws, herald::message m) {
      got.emplace_back(m.text());
      ws.send_text(m.text(), true);
    };
    auto handlers = std::make_shared<const herald::websocket_handlers<int>>(h);
    auto t = std::make_shared<herald::net::fake_transport>();
    herald::connection_args args;
    args.transport = t;
    args.hooks =
      std::make_unique<herald::typed_hooks<int>>(handlers, handlers->options(),
                                                 0);
    args.env = std::make_shared<const herald::connection_env>(
      herald::connection_env{registry, stats, {}, nullptr});
    if (agreed) {
      herald::net::deflate_params p;
      p.server_no_context_takeover = !dedicated_ctx;
      args.deflate = p;
    }
    spawned.push_back(herald::spawn_connection(sys, std::move(args)));
    sched.run();
    return t;
  }
};

// A masked client frame with RSV1 set around a compressed payload.
std::vector<std::byte> compressed_frame(const std::vector<std::byte>& packed) {
  return herald::net::client_frame(
    opcode::text, {reinterpret_cast<const char*>(packed.data()), packed.size()},
    true, 0x4);
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(deflate_connection_tests, fixture)

CAF_TEST(compressed messages are inflated and replies compressed) {
  auto t = connect(shared(), true, false);
  std::string msg(300, 'q');
  t->feed(compressed_frame(herald::net::deflate_shared(bytes(msg))));
  sched.run();
  CAF_REQUIRE_EQUAL(got.size(), 1u);
  CAF_CHECK_EQUAL(got[0], msg);
  auto& raw = t->raw_frames();
  CAF_REQUIRE_EQUAL(raw.size(), 1u);
  CAF_CHECK(raw[0]->compressed());
  herald::net::inflater i{true};
  std::vector<std::byte> out;
  CAF_REQUIRE(i.inflate(raw[0]->payload(), 1 << 20, out)
              == herald::net::inflater::result::ok);
  CAF_CHECK_EQUAL(text(out), msg);
}

CAF_TEST(without agreement replies stay uncompressed and RSV1 is refused) {
  auto t = connect(shared(), false, false);
  t->feed(herald::net::client_frame(opcode::text, std::string(300, 'q')));
  sched.run();
  CAF_REQUIRE_EQUAL(t->raw_frames().size(), 1u);
  CAF_CHECK(!t->raw_frames()[0]->compressed());
  t->feed(compressed_frame(herald::net::deflate_shared(bytes("abcabcabc"))));
  sched.run();
  auto out = t->frames();
  CAF_CHECK_EQUAL(out.back().close_code, 1002);
}

CAF_TEST(a compressed bomb closes with 1009) {
  auto t = connect(shared(), true, false);
  t->feed(compressed_frame(zeros_deflated(64)));
  sched.run();
  CAF_CHECK(got.empty());
  auto out = t->frames();
  CAF_REQUIRE(!out.empty());
  CAF_CHECK_EQUAL(out.back().close_code, 1009);
  CAF_CHECK(t->closed());
}

CAF_TEST(invalid compressed data closes with 1007) {
  auto t = connect(shared(), true, false);
  t->feed(compressed_frame(std::vector<std::byte>(40, std::byte{0xFF})));
  sched.run();
  auto out = t->frames();
  CAF_REQUIRE(!out.empty());
  CAF_CHECK_EQUAL(out.back().close_code, 1007);
}

CAF_TEST(a compressed publish is compressed once for all shared subscribers) {
  std::vector<std::shared_ptr<herald::net::fake_transport>> ts;
  for (int i = 0; i < 10; ++i)
    ts.push_back(connect(shared(), true, false));
  auto plain = connect(shared(), false, false);
  auto before = stats->deflated.load();
  self->send(registry, caf::publish_atom::value, std::string{"room"},
             herald::msg::publication{
               herald::net::make_frame(opcode::text,
                                       std::string_view{std::string(400, 'p')}),
               {},
               true});
  sched.run();
  CAF_CHECK_EQUAL(stats->deflated.load(), before + 1);
  auto* first = ts[0]->raw_frames().at(0).get();
  CAF_CHECK(first->compressed());
  for (auto& t : ts)
    CAF_CHECK_EQUAL(t->raw_frames().at(0).get(), first);
  CAF_CHECK(!plain->raw_frames().at(0)->compressed());
}

CAF_TEST(dedicated compressors keep their context per connection) {
  auto t = connect(dedicated(), true, true);
  std::string msg(200, 'k');
  auto packed = herald::net::deflate_shared(bytes(msg));
  t->feed(compressed_frame(packed));
  t->feed(compressed_frame(packed));
  sched.run();
  auto& raw = t->raw_frames();
  CAF_REQUIRE_EQUAL(raw.size(), 2u);
  // The second reply refers back to the first: smaller, and only a
  // decompressor that kept the context can read it.
  CAF_CHECK_LESS(raw[1]->size(), raw[0]->size());
  herald::net::inflater i{false};
  std::vector<std::byte> out;
  CAF_REQUIRE(i.inflate(raw[0]->payload(), 1 << 20, out)
              == herald::net::inflater::result::ok);
  CAF_REQUIRE(i.inflate(raw[1]->payload(), 1 << 20, out)
              == herald::net::inflater::result::ok);
  CAF_CHECK_EQUAL(text(out), msg);
}

CAF_TEST_FIXTURE_SCOPE_END()
