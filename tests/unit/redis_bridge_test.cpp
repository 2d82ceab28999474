// The registry's side of the Redis bridge (first/last subscriber, local
// publishes, publications from other nodes), the envelope and the URL
// (credentials, database, IPv6, errors, redaction).
// The Redis side runs against a real redis-server in
// tests/integration/redis.test.mjs.
#define CAF_SUITE redis_bridge

#include <algorithm>

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

// Stands in for the Redis link: records what the bridge asks of it.
class fake_link final : public herald::net::redis_link {
public:
  explicit fake_link(log_ptr log) : log_(std::move(log)) {}
  void subscribe(std::string channel) override {
    log_->push_back("SUBSCRIBE " + channel);
  }
  void unsubscribe(std::string channel) override {
    log_->push_back("UNSUBSCRIBE " + channel);
  }
  void publish(std::vector<herald::net::redis_publication> batch) override {
    for (auto& p : batch)
      log_->push_back("PUBLISH " + p.first);
  }
  void close() override {}
  void close(std::function<void()> done) override { done(); }

private:
  log_ptr log_;
};

// A registry of two shards (as on two loops) with the real bridge actor
// over a fake link.
struct sharded_fixture : test_coordinator_fixture<> {
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::topic_registry reg = herald::spawn_topic_registry(sys, counts, {}, 2);
  log_ptr link_log = std::make_shared<std::vector<std::string>>();
  herald::msg::bridge_actor bridge =
    herald::spawn_redis_bridge(sys, std::make_shared<fake_link>(link_log),
                               "herald:", 1, reg.actor());

  sharded_fixture() {
    for (auto& s : reg.shards())
      self->send(s, herald::msg::bridge_atom::value, bridge);
    sched.run();
  }

  // A subscriber that goes to shard `k` (its id decides).
  caf::actor on_shard(std::size_t k) {
    for (;;) {
      auto log = std::make_shared<std::vector<std::string>>();
      auto a = sys.spawn(recorder, log);
      if (a.id() % 2 == k)
        return a;
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  }

  std::vector<std::string> take_link_log() {
    sched.run();
    auto out = std::move(*link_log);
    link_log->clear();
    return out;
  }
};

using strings = std::vector<std::string>;

} // namespace

CAF_TEST_FIXTURE_SCOPE(sharded_bridge_tests, sharded_fixture)

CAF_TEST(the channel stays subscribed while any shard has a subscriber) {
  auto a = on_shard(0);
  auto b = on_shard(1);
  herald::subscribe(reg, "room", a);
  herald::subscribe(reg, "room", b);
  // Both shards joined; Redis is asked once.
  CAF_CHECK_EQUAL(take_link_log(), strings{"SUBSCRIBE herald:room"});
  herald::unsubscribe(reg, "room", a);
  CAF_CHECK_EQUAL(take_link_log(), strings{});
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  // The last one, on the other shard.
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  CAF_CHECK_EQUAL(take_link_log(), strings{"UNSUBSCRIBE herald:room"});
  herald::subscribe(reg, "room", a);
  CAF_CHECK_EQUAL(take_link_log(), strings{"SUBSCRIBE herald:room"});
}

CAF_TEST(a publish reaches redis once whatever the number of shards) {
  auto a = on_shard(0);
  auto b = on_shard(1);
  herald::subscribe(reg, "room", a);
  herald::subscribe(reg, "room", b);
  take_link_log();
  herald::publish_text(reg, "room", "one");
  // Through the registry's actor, and to a topic nobody here has.
  caf::anon_send(
    reg.actor(), caf::publish_atom::value, std::string{"far"},
    herald::msg::publication{herald::net::make_frame(opcode::text, "two"), {}});
  CAF_CHECK_EQUAL(take_link_log(),
                  (strings{"PUBLISH herald:room", "PUBLISH herald:far"}));
}

CAF_TEST(each shard tells the bridge of its first and last member and one passes
           each publish on) {
  auto two =
    herald::spawn_topic_registry(sys, std::make_shared<herald::topic_counts>(),
                                 {}, 2);
  auto log = std::make_shared<std::vector<std::string>>();
  self->send(two.actor(), herald::msg::bridge_atom::value,
             sys.spawn(fake_bridge, log));
  sched.run();
  auto a = on_shard(0);
  auto b = on_shard(1);
  herald::subscribe(two, "room", a);
  herald::subscribe(two, "room", b);
  sched.run();
  CAF_CHECK_EQUAL(*log, (strings{"join room", "join room"}));
  log->clear();
  for (std::size_t origin = 0; origin < 2; ++origin)
    herald::publish(
      two, "room",
      herald::msg::publication{herald::net::make_frame(opcode::text,
                                                       std::to_string(origin)),
                               {}},
      origin);
  sched.run();
  // Once each, from the shard named as its origin (in whichever order the
  // shards ran).
  std::sort(log->begin(), log->end());
  CAF_CHECK_EQUAL(*log, (strings{"publish room 0", "publish room 1"}));
  log->clear();
  herald::unsubscribe(two, "room", a);
  sched.run();
  CAF_CHECK_EQUAL(*log, strings{"leave room"});
  herald::unsubscribe(two, "room", b);
  sched.run();
  CAF_CHECK_EQUAL(*log, (strings{"leave room", "leave room"}));
}

CAF_TEST_FIXTURE_SCOPE_END()

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
  CAF_CHECK(!a->auth);
  CAF_CHECK_EQUAL(a->db, 0u);
  auto b = herald::net::parse_redis_url("redis://cache/0");
  CAF_REQUIRE(b.has_value());
  CAF_CHECK_EQUAL(b->host, "cache");
  CAF_CHECK_EQUAL(b->port, 6379);
  CAF_CHECK_EQUAL(b->db, 0u);
  auto c = herald::net::parse_redis_url("REDIS://my-cache_1.local/");
  CAF_REQUIRE(c.has_value());
  CAF_CHECK_EQUAL(c->host, "my-cache_1.local");
}

CAF_TEST(redis urls carry credentials and a database) {
  using herald::net::parse_redis_url;
  auto acl = parse_redis_url("redis://herald:s3cret@10.0.0.5:6380/2");
  CAF_REQUIRE(acl.has_value());
  CAF_CHECK(acl->auth);
  CAF_CHECK_EQUAL(acl->user, "herald");
  CAF_CHECK_EQUAL(acl->password, "s3cret");
  CAF_CHECK_EQUAL(acl->host, "10.0.0.5");
  CAF_CHECK_EQUAL(acl->port, 6380);
  CAF_CHECK_EQUAL(acl->db, 2u);
  // ":password@" logs in as the default user (AUTH password).
  auto pw = parse_redis_url("redis://:s3cret@cache");
  CAF_REQUIRE(pw.has_value());
  CAF_CHECK(pw->auth);
  CAF_CHECK_EQUAL(pw->user, "");
  CAF_CHECK_EQUAL(pw->password, "s3cret");
  // An ACL user without a password ("nopass" users accept any).
  auto nopass = parse_redis_url("redis://bot:@cache");
  CAF_REQUIRE(nopass.has_value());
  CAF_CHECK(nopass->auth);
  CAF_CHECK_EQUAL(nopass->user, "bot");
  CAF_CHECK_EQUAL(nopass->password, "");
  // Percent-decoding; an unencoded '@', ':' or '/' in the password works
  // too, as credentials run to the last '@'.
  auto enc = parse_redis_url("redis://us%65r%3a1:p%40ss%3Aw%2Frd%25@h:1/3");
  CAF_REQUIRE(enc.has_value());
  CAF_CHECK_EQUAL(enc->user, "user:1");
  CAF_CHECK_EQUAL(enc->password, "p@ss:w/rd%");
  CAF_CHECK_EQUAL(enc->host, "h");
  CAF_CHECK_EQUAL(enc->db, 3u);
  auto raw = parse_redis_url("redis://u:p@s:s/w@h");
  CAF_REQUIRE(raw.has_value());
  CAF_CHECK_EQUAL(raw->password, "p@s:s/w");
  CAF_CHECK_EQUAL(raw->host, "h");
  auto bin = parse_redis_url("redis://:a%00b@h");
  CAF_REQUIRE(bin.has_value());
  CAF_CHECK_EQUAL(bin->password, std::string("a\0b", 3));
}

CAF_TEST(redis urls take an IPv6 host in brackets) {
  using herald::net::parse_redis_url;
  auto a = parse_redis_url("redis://[::1]:6390/1");
  CAF_REQUIRE(a.has_value());
  CAF_CHECK_EQUAL(a->host, "::1");
  CAF_CHECK_EQUAL(a->port, 6390);
  CAF_CHECK_EQUAL(a->db, 1u);
  CAF_CHECK_EQUAL(a->address(), "[::1]:6390");
  auto b = parse_redis_url("redis://u:p@[2001:db8::7]");
  CAF_REQUIRE(b.has_value());
  CAF_CHECK_EQUAL(b->host, "2001:db8::7");
  CAF_CHECK_EQUAL(b->port, 6379);
  CAF_CHECK_EQUAL(b->user, "u");
}

CAF_TEST(malformed redis urls say what is wrong without quoting the url) {
  using herald::net::parse_redis_url;
  auto error_of = [](std::string_view url) {
    std::string why;
    auto ep = parse_redis_url(url, &why);
    CAF_CHECK(!ep.has_value());
    return why;
  };
  CAF_CHECK_EQUAL(error_of("http://x:1"), "not a redis:// URL");
  CAF_CHECK_EQUAL(error_of("redis:/x"), "not a redis:// URL");
  CAF_CHECK_EQUAL(error_of("rediss://x"),
                  "rediss:// (TLS to Redis) is not supported, only redis://");
  CAF_CHECK_EQUAL(error_of("redis://"), "no host");
  CAF_CHECK_EQUAL(error_of("redis://:6379"), "no host");
  CAF_CHECK_EQUAL(error_of("redis://u:p@"), "no host");
  CAF_CHECK_EQUAL(error_of("redis://x:0"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://x:99999"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://x:"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://x:63a"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://x:-1"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://secretonly@x"),
                  "credentials are user:password@ or :password@");
  CAF_CHECK_EQUAL(error_of("redis://:@x"), "empty credentials");
  CAF_CHECK_EQUAL(error_of("redis://:p%4@x"),
                  "bad percent-encoding in the credentials");
  CAF_CHECK_EQUAL(error_of("redis://:p%zz@x"),
                  "bad percent-encoding in the credentials");
  CAF_CHECK_EQUAL(error_of("redis://u%@x"),
                  "credentials are user:password@ or :password@");
  CAF_CHECK_EQUAL(error_of("redis://::1"),
                  "an IPv6 host goes in brackets, as in redis://[::1]:6379");
  CAF_CHECK_EQUAL(error_of("redis://[::1"), "'[' without ']' around the host");
  CAF_CHECK_EQUAL(error_of("redis://[]:1"), "no IPv6 address in the brackets");
  CAF_CHECK_EQUAL(error_of("redis://[cache]:1"),
                  "no IPv6 address in the brackets");
  CAF_CHECK_EQUAL(error_of("redis://[::1]x"),
                  "unexpected text after the host's ']'");
  CAF_CHECK_EQUAL(error_of("redis://[::1]:"),
                  "the port is a number from 1 to 65535");
  CAF_CHECK_EQUAL(error_of("redis://ca che"),
                  "a host name has letters, digits, '-', '.' and '_' only");
  CAF_CHECK_EQUAL(error_of("redis://x/db1"),
                  "the database after '/' is a number (0 to 2147483647)");
  CAF_CHECK_EQUAL(error_of("redis://x/1/2"),
                  "the database after '/' is a number (0 to 2147483647)");
  CAF_CHECK_EQUAL(error_of("redis://x/-1"),
                  "the database after '/' is a number (0 to 2147483647)");
  CAF_CHECK_EQUAL(error_of("redis://x/2147483648"),
                  "the database after '/' is a number (0 to 2147483647)");
  CAF_CHECK_EQUAL(error_of("redis://x?db=1"),
                  "query parameters are not supported");
  CAF_CHECK_EQUAL(error_of("redis://x/1?timeout=3"),
                  "the database after '/' is a number (0 to 2147483647)");
  CAF_CHECK_EQUAL(error_of("redis://x#f"), "a fragment is not supported");
  // No error text quotes the URL, so no credentials either.
  for (auto url : {"redis://u:hunter2@x:0", "redis://:hunter2@[::1",
                   "redis://u:hunter2%zz@x", "redis://u:hunter2@x/y"})
    CAF_CHECK_EQUAL(error_of(url).find("hunter2"), std::string::npos);
}

CAF_TEST(redis urls are redacted for logs and errors) {
  using herald::net::parse_redis_url;
  using herald::net::redact_redis_url;
  CAF_CHECK_EQUAL(redact_redis_url("redis://herald:hunter2@127.0.0.1:6380/2"),
                  "redis://herald:***@127.0.0.1:6380/2");
  CAF_CHECK_EQUAL(redact_redis_url("redis://:hunter2@cache"),
                  "redis://:***@cache:6379");
  CAF_CHECK_EQUAL(redact_redis_url("redis://a%20b:hunter2@[::1]:7/0"),
                  "redis://a%20b:***@[::1]:7");
  CAF_CHECK_EQUAL(redact_redis_url("redis://cache"), "redis://cache:6379");
  CAF_CHECK_EQUAL(parse_redis_url("redis://u:p%40w@h/4")->redacted(),
                  "redis://u:***@h:6379/4");
  // URLs that do not parse lose everything up to their last '@'.
  CAF_CHECK_EQUAL(redact_redis_url("redis://u:hunter2@x:0"), "redis://***@x:0");
  CAF_CHECK_EQUAL(redact_redis_url("rediss://u:hunter2@x"), "rediss://***@x");
  CAF_CHECK_EQUAL(redact_redis_url("u:hunter2@x"), "***@x");
  CAF_CHECK_EQUAL(redact_redis_url("redis://u:hunter2@x/a@b"),
                  "redis://u:***@b:6379");
  CAF_CHECK_EQUAL(redact_redis_url("redis://u:hunter2@x/a@b:0"),
                  "redis://***@b:0");
  CAF_CHECK_EQUAL(redact_redis_url("redis://x:0"), "redis://x:0");
  // A log line stays one line.
  CAF_CHECK_EQUAL(redact_redis_url("redis://x\n:0"), "redis://x?:0");
}

CAF_TEST(a database scopes the channel names) {
  using herald::net::parse_redis_url;
  CAF_CHECK_EQUAL(parse_redis_url("redis://h")->channel_scope(), "");
  CAF_CHECK_EQUAL(parse_redis_url("redis://h/0")->channel_scope(), "");
  CAF_CHECK_EQUAL(parse_redis_url("redis://h/12")->channel_scope(), "db12:");
}

CAF_TEST_FIXTURE_SCOPE_END()
