// The registry's side of the Redis bridge (first/last subscriber, local
// publishes, publications from other nodes), the envelope and the URL.
// The Redis side runs against a real redis-server in
// tests/integration/redis.test.mjs.
#define CAF_SUITE redis_bridge

#include <caf/test/dsl.hpp>

#include <herald/actors/redis_bridge.hpp>
#include <herald/actors/topics.hpp>
#include <herald/messages/messages.hpp>
#include <herald/net/redis.hpp>

using herald::net::opcode;

namespace {

using log_ptr = std::shared_ptr<std::vector<std::string>>;

// Stands in for the bridge actor: records what the registry tells it.
herald::msg::bridge_actor::behavior_type
fake_bridge(herald::msg::bridge_actor::pointer, log_ptr log) {
  return {
    [log](caf::join_atom, const std::string& t) {
      log->push_back("join " + t);
    },
    [log](caf::leave_atom, const std::string& t) {
      log->push_back("leave " + t);
    },
    [log](caf::publish_atom, const std::string& t,
          const herald::msg::publication& p) {
      log->push_back("publish " + t + " " + std::string{p.frame->payload_view()}
                     + (p.exclude ? " excluding" : ""));
    },
    [](herald::msg::flush_atom) {},
  };
}

// A subscriber: records the payload of each delivery meant for it.
caf::behavior recorder(caf::event_based_actor* self, log_ptr log) {
  return {
    [self, log](const herald::msg::delivery& d) {
      d.each(self->address(), [&](const herald::msg::topic_message& m) {
        log->push_back(*d.topic + ":" + std::string{m.text()});
      });
    },
  };
}

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::msg::registry_actor registry =
    herald::spawn_topic_registry(sys, counts).actor();
  log_ptr bridge_log = std::make_shared<std::vector<std::string>>();
  herald::msg::bridge_actor bridge = sys.spawn(fake_bridge, bridge_log);

  fixture() {
    self->send(registry, herald::msg::bridge_atom::value, bridge);
    sched.run();
  }

  std::pair<caf::actor, log_ptr> make_subscriber() {
    auto log = std::make_shared<std::vector<std::string>>();
    return {sys.spawn(recorder, log), log};
  }

  void subscribe(const std::string& topic, const caf::actor& who) {
    self->send(registry, caf::subscribe_atom::value, topic, who);
    sched.run();
  }

  void unsubscribe(const std::string& topic, const caf::actor& who) {
    self->send(registry, caf::unsubscribe_atom::value, topic, who);
    sched.run();
  }

  herald::msg::publication text(std::string_view s,
                                caf::actor_addr exclude = {}) {
    return {herald::net::make_frame(opcode::text, s), std::move(exclude)};
  }

  std::vector<std::string> take_bridge_log() {
    auto out = std::move(*bridge_log);
    bridge_log->clear();
    return out;
  }
};

using strings = std::vector<std::string>;

} // namespace

CAF_TEST_FIXTURE_SCOPE(redis_bridge_tests, fixture)

CAF_TEST(the bridge hears of a topics first subscriber and of its last) {
  auto [a, alog] = make_subscriber();
  auto [b, blog] = make_subscriber();
  subscribe("room", a);
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"join room"});
  subscribe("room", b);
  unsubscribe("room", a);
  CAF_CHECK_EQUAL(take_bridge_log(), strings{});
  unsubscribe("room", b);
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"leave room"});
  subscribe("room", b);
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"join room"});
  // A subscriber that goes away leaves too.
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  sched.run();
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"leave room"});
}

CAF_TEST(a bridge attached late hears of the topics that exist) {
  auto [a, alog] = make_subscriber();
  auto log2 = std::make_shared<std::vector<std::string>>();
  subscribe("x", a);
  auto late = sys.spawn(fake_bridge, log2);
  self->send(registry, herald::msg::bridge_atom::value, late);
  sched.run();
  CAF_CHECK_EQUAL(*log2, strings{"join x"});
}

CAF_TEST(local publishes reach the bridge also without local subscribers) {
  auto [a, alog] = make_subscriber();
  self->send(registry, caf::publish_atom::value, std::string{"nobody"},
             text("hi"));
  sched.run();
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"publish nobody hi"});
  subscribe("room", a);
  take_bridge_log();
  self->send(registry, caf::publish_atom::value, std::string{"room"},
             text("yo", a.address()));
  sched.run();
  // The exclusion travels with the local message only; the bridge leaves
  // it out of the envelope.
  CAF_CHECK_EQUAL(take_bridge_log(), strings{"publish room yo excluding"});
  CAF_CHECK_EQUAL(*alog, strings{});
}

CAF_TEST(publications from other nodes are delivered locally only) {
  auto [a, alog] = make_subscriber();
  subscribe("room", a);
  take_bridge_log();
  self->send(registry, herald::msg::remote_atom::value, std::string{"room"},
             text("from afar"));
  self->send(registry, herald::msg::remote_atom::value, std::string{"none"},
             text("nobody here"));
  sched.run();
  CAF_CHECK_EQUAL(*alog, strings{"room:from afar"});
  CAF_CHECK_EQUAL(take_bridge_log(), strings{});
}

CAF_TEST(envelopes keep kind flags origin and every byte) {
  std::vector<std::byte> payload;
  for (int i = 0; i < 256; ++i)
    payload.push_back(static_cast<std::byte>(i));
  auto enc =
    herald::redis_envelope::encode(0x0102030405060708ull, true, true, payload);
  CAF_CHECK_EQUAL(enc.size(), herald::redis_envelope::header_size + 256);
  auto dec = herald::redis_envelope::decode(
    {reinterpret_cast<const std::byte*>(enc.data()), enc.size()});
  CAF_REQUIRE(dec.has_value());
  CAF_CHECK_EQUAL(dec->node, 0x0102030405060708ull);
  CAF_CHECK(dec->binary);
  CAF_CHECK(dec->compress);
  CAF_CHECK(std::equal(dec->payload.begin(), dec->payload.end(),
                       payload.begin(), payload.end()));
  auto empty = herald::redis_envelope::encode(7, false, false, {});
  auto dec2 = herald::redis_envelope::decode(
    {reinterpret_cast<const std::byte*>(empty.data()), empty.size()});
  CAF_REQUIRE(dec2.has_value());
  CAF_CHECK(!dec2->binary);
  CAF_CHECK(!dec2->compress);
  CAF_CHECK_EQUAL(dec2->node, 7u);
  CAF_CHECK(dec2->payload.empty());
  // Anything else on the channel is not ours.
  std::string junk = "hello";
  CAF_CHECK(!herald::redis_envelope::decode(
               {reinterpret_cast<const std::byte*>(junk.data()), junk.size()})
               .has_value());
}

CAF_TEST(redis urls name a host and a port) {
  auto a = herald::net::parse_redis_url("redis://127.0.0.1:6380");
  CAF_REQUIRE(a.has_value());
  CAF_CHECK_EQUAL(a->host, "127.0.0.1");
  CAF_CHECK_EQUAL(a->port, 6380);
  auto b = herald::net::parse_redis_url("redis://cache/0");
  CAF_REQUIRE(b.has_value());
  CAF_CHECK_EQUAL(b->host, "cache");
  CAF_CHECK_EQUAL(b->port, 6379);
  CAF_CHECK(!herald::net::parse_redis_url("http://x:1").has_value());
  CAF_CHECK(!herald::net::parse_redis_url("redis://x:0").has_value());
  CAF_CHECK(!herald::net::parse_redis_url("redis://x:99999").has_value());
  CAF_CHECK(!herald::net::parse_redis_url("redis://").has_value());
  CAF_CHECK(!herald::net::parse_redis_url("redis://u:p@x:1").has_value());
}

CAF_TEST_FIXTURE_SCOPE_END()
