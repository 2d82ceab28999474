// Per-connection limits (socket.hpp: rate_limit, max_subscriptions) through
// the testing kit: the token bucket runs on the kit's test clock, so every
// refill is exact and no test sleeps.
#define CAF_SUITE limits

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <herald/actors/testing.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using herald::testing::close_frame;
using herald::testing::text_frame;

namespace {

using strings = std::vector<std::string>;

struct peer {
  int close_code = 0;
  std::vector<std::string> limited; // what the limited handler saw
};

// Echoes messages; answers a dropped one with "limited: <text>".
herald::websocket_handlers<peer> echo(
  double rate, std::size_t burst,
  herald::rate_limit_policy policy = herald::rate_limit_policy::drop_and_notify,
  bool answer = true) {
  herald::websocket_handlers<peer> h;
  h.message = [](herald::socket<peer>& ws, herald::message m) {
    ws.send_text(m.text());
  };
  h.close = [](herald::socket<peer>& ws, int code, std::string_view) {
    ws.data().close_code = code;
  };
  if (answer)
    h.limited = [](herald::socket<peer>& ws, herald::message m) {
      ws.data().limited.emplace_back(m.text());
      ws.send_text("limited: " + std::string{m.text()});
    };
  h.message_rate = {rate, burst, policy};
  return h;
}

struct fixture : herald::testing::fixture<peer> {
  fixture() : herald::testing::fixture<peer>(echo(10, 3)) {}

  // The texts not yet taken.
  static strings fresh(herald::testing::fake_client<peer>& c) {
    strings out;
    for (auto& e : c.take_messages())
      out.push_back(e.data);
    return out;
  }

  // Sends "m0".."m{n-1}" at one instant of the test clock.
  void burst(herald::testing::fake_client<peer>& c, int n, int from = 0) {
    for (int i = from; i < from + n; ++i)
      c.send_text("m" + std::to_string(i));
    run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(limits_tests, fixture)

CAF_TEST(the bucket takes a burst and drops the rest) {
  auto& c = connect();
  burst(c, 5);
  CAF_CHECK_EQUAL(c.texts(),
                  (strings{"m0", "m1", "m2", "limited: m3", "limited: m4"}));
  CAF_CHECK_EQUAL(c.data().limited, (strings{"m3", "m4"}));
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 2u);
  CAF_CHECK(!c.closed());
}

CAF_TEST(the bucket refills at the rate and no further than the burst) {
  auto& c = connect();
  burst(c, 3);
  CAF_CHECK_EQUAL(fresh(c), (strings{"m0", "m1", "m2"}));
  advance(99ms); // 10 per second: not yet a token
  burst(c, 1, 10);
  CAF_CHECK_EQUAL(fresh(c), (strings{"limited: m10"}));
  advance(1ms);
  burst(c, 2, 20);
  CAF_CHECK_EQUAL(fresh(c), (strings{"m20", "limited: m21"}));
  advance(10s); // a long quiet spell fills the bucket to 3, not to 100
  burst(c, 4, 30);
  CAF_CHECK_EQUAL(fresh(c), (strings{"m30", "m31", "m32", "limited: m33"}));
}

CAF_TEST(a steady sender at the rate is never limited) {
  auto& c = connect();
  for (int i = 0; i < 50; ++i) {
    c.send_text("m" + std::to_string(i));
    advance(100ms);
  }
  CAF_CHECK_EQUAL(c.texts().size(), 50u);
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 0u);
}

CAF_TEST(control frames do not count) {
  auto& c = connect();
  for (int i = 0; i < 10; ++i)
    c.ping("p");
  run();
  CAF_CHECK_EQUAL(c.count(herald::testing::kind::pong), 10u);
  c.take();
  burst(c, 3);
  CAF_CHECK_EQUAL(c.texts(), (strings{"m0", "m1", "m2"}));
}

CAF_TEST(each connection has a bucket of its own) {
  auto& a = connect();
  auto& b = connect();
  burst(a, 4);
  burst(b, 3);
  auto got = a.texts();
  CAF_REQUIRE(!got.empty());
  CAF_CHECK_EQUAL(got.back(), "limited: m3");
  CAF_CHECK_EQUAL(b.texts(), (strings{"m0", "m1", "m2"}));
}

CAF_TEST(without a limited handler a message over the limit is dropped) {
  set_handlers(echo(10, 2, herald::rate_limit_policy::drop_and_notify, false));
  auto& c = connect();
  burst(c, 4);
  CAF_CHECK_EQUAL(c.texts(), (strings{"m0", "m1"}));
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 2u);
  CAF_CHECK(!c.closed());
}

CAF_TEST(the close policy closes with 1008) {
  set_handlers(echo(10, 2, herald::rate_limit_policy::close_1008));
  auto& c = connect();
  auto& other = connect();
  burst(c, 4);
  CAF_CHECK_EQUAL(c.texts(), (strings{"m0", "m1"}));
  CAF_CHECK_EQUAL(c.received().back(),
                  close_frame(1008, "rate limit exceeded"));
  CAF_CHECK(c.closed());
  CAF_CHECK_EQUAL(c.data().close_code, 1008);
  CAF_CHECK(c.data().limited.empty());
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 1u);
  burst(other, 1);
  CAF_CHECK_EQUAL(other.texts(), (strings{"m0"}));
}

CAF_TEST(no limit by default) {
  set_handlers(echo(0, 0));
  auto& c = connect();
  burst(c, 500);
  CAF_CHECK_EQUAL(c.texts().size(), 500u);
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 0u);
}

CAF_TEST(subscriptions stop at max_subscriptions) {
  herald::websocket_handlers<peer> h;
  std::vector<bool> results;
  h.message = [&results](herald::socket<peer>& ws, herald::message m) {
    auto t = std::string{m.text()};
    if (t.starts_with("-"))
      ws.unsubscribe(t.substr(1));
    else
      results.push_back(ws.subscribe(t));
  };
  h.max_subscriptions = 2;
  set_handlers(h);
  auto& c = connect();
  for (auto t : {"a", "b", "c", "a", "-a", "c"})
    c.send_text(t);
  run();
  CAF_CHECK_EQUAL(results, (std::vector<bool>{true, true, false, true, true}));
  CAF_CHECK_EQUAL(c.subscriptions(), (strings{"b", "c"}));
  CAF_CHECK_EQUAL(subscriber_count("c"), 1u);
  CAF_CHECK_EQUAL(stats().subscriptions_refused.load(), 1u);
}

CAF_TEST(no subscription cap by default) {
  herald::websocket_handlers<peer> h;
  h.open = [](herald::socket<peer>& ws) {
    for (int i = 0; i < 100; ++i)
      CAF_CHECK(ws.subscribe("t" + std::to_string(i)));
  };
  set_handlers(h);
  auto& c = connect();
  CAF_CHECK_EQUAL(c.subscriptions().size(), 100u);
  CAF_CHECK_EQUAL(stats().subscriptions_refused.load(), 0u);
}

CAF_TEST_FIXTURE_SCOPE_END()
