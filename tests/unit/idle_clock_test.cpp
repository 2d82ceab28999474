// The idle clock: one actor per server that ticks connections for their
// idle timeout, instead of a CAF timer per connection.
#define CAF_SUITE idle_clock

#include <caf/test/dsl.hpp>

#include <herald/actors/connection.hpp>
#include <herald/actors/idle_clock.hpp>
#include <herald/actors/testing.hpp>
#include <herald/actors/topics.hpp>
#include <herald/messages/messages.hpp>
#include <herald/net/fake_transport.hpp>

using namespace std::chrono_literals;

namespace {

using time_point = caf::actor_clock::time_point;

// The kit's fixture for its test clock (advance, now); the clock under test
// is this one, not the kit's own.
struct fixture : herald::testing::fixture<int> {
  herald::msg::idle_clock_actor clock = herald::spawn_idle_clock(sys);
  time_point t0 = now();
  // Tick times of the recorders, by name.
  std::map<std::string, std::vector<caf::timespan>> ticks;

  ~fixture() {
    caf::anon_send_exit(clock, caf::exit_reason::kill);
    sched.run();
  }

  // An actor that records when it is ticked (as offsets from t0).
  caf::actor recorder(std::string name) {
    // The name is an argument: CAF 0.17 trips UBSan spawning a function
    // actor without any.
    return sys.spawn(
      [this](caf::event_based_actor*, std::string name) -> caf::behavior {
        return {
          [this, name](caf::tick_atom) { ticks[name].push_back(now() - t0); },
        };
      },
      std::move(name));
  }

  void watch(const caf::actor& who, caf::timespan period) {
    caf::anon_send(clock, herald::msg::idle_watch_atom::value, who.address(),
                   period);
    sched.run();
  }
};

std::vector<caf::timespan> at(std::initializer_list<caf::timespan> xs) {
  return xs;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(idle_clock_tests, fixture)

CAF_TEST(members are ticked every period counted from when they joined) {
  auto ann = recorder("ann");
  auto bob = recorder("bob");
  watch(ann, 5s);
  advance(2s);
  watch(bob, 5s);
  advance(13s);
  CAF_CHECK_EQUAL(ticks["ann"], at({5s, 10s, 15s}));
  CAF_CHECK_EQUAL(ticks["bob"], at({7s, 12s}));
}

CAF_TEST(a member that leaves is not ticked again) {
  auto ann = recorder("ann");
  watch(ann, 5s);
  advance(6s);
  caf::anon_send(clock, herald::msg::idle_forget_atom::value, ann.id());
  advance(20s);
  CAF_CHECK_EQUAL(ticks["ann"], at({5s}));
  // Nothing is left for the clock to wait for.
  CAF_CHECK(sched.clock().schedule().empty());
}

CAF_TEST(members due within ten milliseconds share a wake - up
         and are never early) {
  auto ann = recorder("ann");
  auto bob = recorder("bob");
  watch(ann, 1s);
  advance(1ms);
  watch(bob, 1s);
  advance(1s + 20ms);
  CAF_CHECK_EQUAL(ticks["ann"], at({1s}));
  // Due at 1.001 s; ticked with the next wake-up, 10 ms after the first.
  CAF_CHECK_EQUAL(ticks["bob"], at({1010ms}));
}

CAF_TEST(members with different periods are each ticked on their own) {
  auto ann = recorder("ann");
  auto bob = recorder("bob");
  watch(ann, 3s);
  watch(bob, 5s);
  advance(10s);
  CAF_CHECK_EQUAL(ticks["ann"], at({3s, 6s, 9s}));
  CAF_CHECK_EQUAL(ticks["bob"], at({5s, 10s}));
}

CAF_TEST(a clock that was held up keeps each member on its phase) {
  auto carl = recorder("carl");
  auto bob = recorder("bob");
  watch(carl, 1s); // due at 1 s
  // Time passes while the clock is busy: bob joins at 1.2 s (due at 2.2 s)
  // before the clock handles carl's tick, which it does at 1.5 s.
  sched.clock().current_time += 1200ms;
  watch(bob, 1s);
  sched.clock().advance_time(300ms);
  sched.run();
  // carl's next tick keeps its phase (2 s), ahead of bob's 2.2 s.
  advance(1s);
  CAF_CHECK_EQUAL(ticks["carl"], at({1500ms, 2s}));
  CAF_CHECK_EQUAL(ticks["bob"], at({2200ms}));
}

CAF_TEST(the clock keeps no member alive) {
  auto ann = recorder("ann");
  auto addr = ann.address();
  watch(ann, 5s);
  caf::anon_send_exit(ann, caf::exit_reason::kill);
  ann = nullptr;
  sched.run();
  CAF_CHECK(caf::actor_cast<caf::actor>(addr) == nullptr);
  // Its next tick finds it gone, and the clock forgets it.
  advance(5s);
  CAF_CHECK(ticks["ann"].empty());
  CAF_CHECK(sched.clock().schedule().empty());
}

// The reason for the clock: a connection timing its own idle ticks is kept
// alive by its pending tick (up to half the idle timeout) after it closed;
// one ticked by the clock is released as soon as it stops.
CAF_TEST(a closed connection is released at once) {
  herald::msg::registry_actor registry =
    herald::spawn_topic_registry(sys, std::make_shared<herald::topic_counts>())
      .actor();
  auto connect = [&](bool with_clock) {
    using handlers_t = herald::websocket_handlers<int>;
    handlers_t h;
    h.idle_timeout = 120s;
    auto handlers = std::make_shared<const handlers_t>(h);
    herald::connection_args args;
    args.transport = std::make_shared<herald::net::fake_transport>();
    args.hooks =
      std::make_unique<herald::typed_hooks<int>>(handlers, handlers->options(),
                                                 0);
    args.env =
      std::make_shared<const herald::connection_env>(herald::connection_env{
        registry, nullptr, with_clock ? clock : herald::msg::idle_clock_actor{},
        nullptr});
    auto t =
      std::static_pointer_cast<herald::net::fake_transport>(args.transport);
    auto addr = herald::spawn_connection(sys, std::move(args)).address();
    sched.run();
    t->feed(herald::net::client_close(1000, "bye"));
    sched.run();
    CAF_CHECK(t->closed());
    return addr;
  };
  auto self_timed = connect(false);
  auto clock_timed = connect(true);
  CAF_CHECK(caf::actor_cast<caf::actor>(self_timed) != nullptr);
  CAF_CHECK(caf::actor_cast<caf::actor>(clock_timed) == nullptr);
  // The clock holds nothing of it either.
  advance(60s);
  CAF_CHECK(caf::actor_cast<caf::actor>(self_timed) == nullptr);
  caf::anon_send_exit(registry, caf::exit_reason::kill);
  sched.run();
}

CAF_TEST_FIXTURE_SCOPE_END()
