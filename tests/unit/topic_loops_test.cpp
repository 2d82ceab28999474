// Topics on the event loops: the registry has a shard on each loop that
// keeps that loop's members, with topic actors on the same loop, and an
// idle connection takes a delivery from its topic at once
// (connection_actor::deliver_now), dropping at its backpressure limit and
// leaving out its own publishes as the mailbox path does. Real loops and
// threads with fake transports: a connection does everything on its loop,
// so the tests look at its transport there too (on_loop).
#define CAF_SUITE topic_loops

#include <caf/test/unit_test.hpp>

#include <chrono>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/scoped_actor.hpp>

#include <herald/actors/connection.hpp>
#include <herald/actors/runtime.hpp>
#include <herald/actors/topics.hpp>
#include <herald/net/fake_transport.hpp>

using herald::net::client_close;
using herald::net::client_frame;
using herald::net::fake_transport;
using herald::net::opcode;
using namespace std::chrono_literals;

namespace {

using handlers_t = herald::websocket_handlers<int>;

// What a connection's transport saw at each write, on its loop.
struct writes {
  // Whether the connection's mailbox was blocked (the actor idle, not
  // resumed: the delivery came from the topic's job directly).
  std::vector<bool> blocked;
  // The loop the write ran on.
  std::vector<std::size_t> loops;
};

struct member {
  caf::actor actor;
  std::shared_ptr<fake_transport> t;
  std::shared_ptr<writes> w;
  std::size_t loop;
};

herald::runtime_options two_loops() {
  herald::runtime_options o;
  o.worker_threads = 2;
  o.tune_allocator = false;
  o.release_check = 0ms;
  return o;
}

struct fixture {
  herald::runtime rt{two_loops()};
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::topic_registry reg =
    herald::spawn_topic_registry(rt.system(), counts);
  std::deque<member> members; // connect() hands out references

  ~fixture() {
    for (auto& m : members)
      caf::anon_send_exit(m.actor, caf::exit_reason::kill);
    caf::anon_send_exit(caf::actor{reg}, caf::exit_reason::kill);
    rt.system().await_all_actors_done();
  }

  // Runs `fn` on loop `i` and returns its result.
  template <class F>
  auto on_loop(std::size_t i, F fn) -> decltype(fn()) {
    std::promise<decltype(fn())> p;
    rt.io().post(i, [&] { p.set_value(fn()); });
    return p.get_future().get();
  }

  // Waits until `pred` holds on loop `i` (false after 20 s: the
  // bound only keeps a broken build from hanging).
  template <class F>
  bool eventually(std::size_t i, F pred) {
    for (int n = 0; n < 2000; ++n) {
      if (on_loop(i, pred))
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // A connection with `h` on loop `loop`, started.
  member& connect(std::size_t loop, handlers_t h = {}) {
    h.idle_timeout = 0s; // no timers
    auto handlers = std::make_shared<const handlers_t>(h);
    auto t = std::make_shared<fake_transport>();
    auto w = std::make_shared<writes>();
    auto a = on_loop(loop, [&] {
      herald::connection_args args;
      args.transport = t;
      args.hooks =
        std::make_unique<herald::typed_hooks<int>>(handlers,
                                                   handlers->options(), 0);
      args.env = std::make_shared<const herald::connection_env>(
        herald::connection_env{reg, nullptr, {}, nullptr});
      return herald::spawn_connection(rt.system(), std::move(args));
    });
    CAF_REQUIRE(eventually(loop, [&] { return t->started(); }));
    auto* c = static_cast<herald::connection_actor*>(
      caf::actor_cast<caf::abstract_actor*>(a));
    on_loop(loop, [&] {
      t->on_write([c, w] {
        w->blocked.push_back(c->mailbox().blocked());
        w->loops.push_back(herald::net::io_service::current());
      });
      return 0;
    });
    members.push_back(member{std::move(a), std::move(t), std::move(w), loop});
    return members.back();
  }

  // Two members of "room" on loop 0: the first with `h`, the second plain.
  std::pair<member&, member&> in_room(handlers_t h) {
    auto& a = connect(0, h);
    auto& b = connect(0);
    subscribe(a, "room");
    subscribe(b, "room");
    return {a, b};
  }

  // As in_room, with a first member whose transport takes no more bytes.
  std::pair<member&, member&> stalled_and_plain(handlers_t h) {
    auto pair = in_room(h);
    on_loop(0, [&] {
      pair.first.t->stall();
      return 0;
    });
    return pair;
  }

  // The client of `m` sends `bytes` (a frame).
  void feed(const member& m, std::vector<std::byte> bytes) {
    on_loop(m.loop, [&] {
      m.t->feed(bytes);
      return 0;
    });
  }

  void subscribe(const member& m, const std::string& topic) {
    herald::subscribe(reg, topic, m.actor);
  }

  void publish(const std::string& topic, std::string_view text) {
    herald::publish_text(reg, topic, text);
  }

  // The payloads of the data frames `m` wrote so far.
  std::vector<std::string> texts(const member& m) {
    return on_loop(m.loop, [&] {
      std::vector<std::string> out;
      for (auto& f : m.t->frames())
        if (f.op == opcode::text)
          out.push_back(f.payload);
      return out;
    });
  }

  // Waits until `m` wrote `n` data frames; returns their payloads.
  std::vector<std::string> await_texts(const member& m, std::size_t n) {
    CAF_CHECK(eventually(m.loop, [&] {
      std::size_t k = 0;
      for (auto& f : m.t->frames())
        k += f.op == opcode::text ? 1 : 0;
      return k >= n;
    }));
    return texts(m);
  }

  writes seen(const member& m) {
    return on_loop(m.loop, [&] { return *m.w; });
  }
};

using strings = std::vector<std::string>;

} // namespace

CAF_TEST_FIXTURE_SCOPE(topic_loop_tests, fixture)

CAF_TEST(an idle member takes a delivery on its loop without its mailbox) {
  auto& a = connect(0);
  subscribe(a, "room");
  publish("room", "p");
  CAF_CHECK_EQUAL(await_texts(a, 1), strings{"p"});
  auto w = seen(a);
  CAF_REQUIRE_EQUAL(w.blocked.size(), 1u);
  // Written while the actor was not resumed: no mailbox element made.
  CAF_CHECK(w.blocked[0]);
  CAF_CHECK_EQUAL(w.loops[0], 0u);
}

CAF_TEST(a member with queued messages gets the delivery after them) {
  auto& b = connect(0);
  handlers_t echo;
  echo.message = [](herald::socket<int>& ws, herald::message m) {
    ws.send_text("reply:" + std::string{m.text()});
  };
  auto& a = connect(0, echo);
  // B comes first in the loop's members: its write, made by the topic's
  // job, puts a client message into A's mailbox before the job reaches A.
  subscribe(b, "room");
  subscribe(a, "room");
  auto ta = a.t;
  on_loop(0, [&] {
    auto fed = std::make_shared<bool>(false);
    b.t->on_write([ta, fed] {
      if (!std::exchange(*fed, true))
        ta->feed(client_frame(opcode::text, "x"));
    });
    return 0;
  });
  publish("room", "p");
  CAF_CHECK_EQUAL(await_texts(b, 1), strings{"p"});
  // A's own reply to what it had queued goes first.
  CAF_CHECK_EQUAL(await_texts(a, 2), (strings{"reply:x", "p"}));
  auto w = seen(a);
  CAF_REQUIRE_EQUAL(w.blocked.size(), 1u); // one write for both
  CAF_CHECK(!w.blocked[0]);
  // Idle again: the next delivery is direct.
  publish("room", "q");
  CAF_CHECK_EQUAL(await_texts(a, 3), (strings{"reply:x", "p", "q"}));
  w = seen(a);
  CAF_REQUIRE_EQUAL(w.blocked.size(), 2u);
  CAF_CHECK(w.blocked[1]);
}

CAF_TEST(members on two loops each get every delivery on their own loop) {
  auto& a = connect(0);
  auto& b = connect(1);
  auto& c = connect(1);
  for (auto* m : {&a, &b, &c})
    subscribe(*m, "room");
  publish("room", "p1");
  publish("room", "p2");
  for (auto* m : {&a, &b, &c}) {
    CAF_CHECK_EQUAL(await_texts(*m, 2), (strings{"p1", "p2"}));
    auto w = seen(*m);
    CAF_REQUIRE(!w.loops.empty());
    for (auto l : w.loops)
      CAF_CHECK_EQUAL(l, m->loop);
    for (auto blocked : w.blocked)
      CAF_CHECK(blocked);
  }
  CAF_CHECK_EQUAL(counts->get("room"), 3u);
}

CAF_TEST(a closing member gets no delivery and leaves the topic) {
  handlers_t h;
  auto closes = std::make_shared<std::vector<int>>();
  h.message = [](herald::socket<int>& ws, herald::message) {
    ws.close(1000, "bye");
  };
  h.close = [closes](herald::socket<int>&, int code, std::string_view) {
    closes->push_back(code);
  };
  auto pair = in_room(h); // not bound: lambdas capture these
  auto& a = pair.first;
  auto& b = pair.second;
  // A closes: its close frame is out, the peer's answer not yet in.
  feed(a, client_frame(opcode::text, "go"));
  CAF_REQUIRE(eventually(0, [&] { return !a.t->frames().empty(); }));
  publish("room", "p");
  CAF_CHECK_EQUAL(await_texts(b, 1), strings{"p"});
  feed(a, client_close(1000, "ok"));
  CAF_CHECK(eventually(0, [&] { return a.t->closed() && !closes->empty(); }));
  CAF_CHECK_EQUAL(texts(a), strings{});
  CAF_CHECK_EQUAL(on_loop(0, [&] { return *closes; }), std::vector<int>{1000});
  CAF_CHECK(eventually(0, [&] { return counts->get("room") == 1; }));
  publish("room", "q");
  CAF_CHECK_EQUAL(await_texts(b, 2), (strings{"p", "q"}));
}

CAF_TEST(a member closed at its backpressure limit ends and leaves) {
  handlers_t h;
  h.backpressure_limit = 1;
  h.close_on_backpressure_limit = true;
  auto pair = stalled_and_plain(h); // not bound: lambdas capture these
  auto& a = pair.first;
  auto& b = pair.second;
  // The first fits (nothing buffered); the second finds the backlog over
  // the limit and closes the connection with 1008.
  publish("room", "p");
  CAF_CHECK_EQUAL(await_texts(b, 1), strings{"p"});
  publish("room", "q");
  CAF_CHECK_EQUAL(await_texts(b, 2), (strings{"p", "q"}));
  CAF_CHECK(eventually(0, [&] { return a.t->closed(); }));
  auto frames = on_loop(0, [&] { return a.t->frames(); });
  CAF_REQUIRE_EQUAL(frames.size(), 2u);
  CAF_CHECK_EQUAL(frames[0].payload, "p");
  CAF_CHECK_EQUAL(frames[1].close_code, 1008);
  // The actor ended (it left through its exit, not only its socket).
  CAF_CHECK(eventually(0, [&] { return counts->get("room") == 1; }));
}

CAF_TEST(each loop has a shard and a connection joins through its own) {
  CAF_REQUIRE_EQUAL(reg.shards().size(), 2u);
  for (std::size_t i = 0; i < 2; ++i)
    CAF_CHECK_EQUAL(herald::detail::topic_actor_loop(
                      caf::actor_cast<caf::abstract_actor*>(reg.shards()[i])),
                    i);
  // Subscribed by the connections themselves (open), not from outside.
  handlers_t h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  auto& a = connect(0, h);
  connect(1, h);
  connect(1, h);
  // Applied: every shard has handled its subscriptions.
  CAF_CHECK(eventually(0, [&] { return counts->applied("room") == 3; }));
  caf::scoped_actor self{rt.system()};
  auto count = [&](const herald::msg::registry_actor& r) {
    std::size_t n = 99;
    self
      ->request(r, caf::infinite, herald::msg::count_atom::value,
                std::string{"room"})
      .receive([&](std::size_t k) { n = k; }, [](caf::error&) {});
    return n;
  };
  CAF_CHECK_EQUAL(count(reg.shards()[0]), 1u);
  CAF_CHECK_EQUAL(count(reg.shards()[1]), 2u);
  CAF_CHECK_EQUAL(count(reg.actor()), 3u);
  publish("room", "p");
  for (auto& m : members)
    CAF_CHECK_EQUAL(await_texts(m, 1), strings{"p"});
  // A connection that ends leaves through its shard.
  caf::anon_send_exit(a.actor, caf::exit_reason::kill);
  CAF_CHECK(eventually(0, [&] { return counts->applied("room") == 2; }));
  CAF_CHECK_EQUAL(count(reg.shards()[0]), 0u);
  CAF_CHECK_EQUAL(count(reg.shards()[1]), 2u);
}

CAF_TEST(a connection joins and leaves its idle shard without a message) {
  // Seen on the loop's thread while the connection runs: through a message
  // the shard, on the same thread, could not have handled it yet.
  auto in_open = std::make_shared<std::size_t>(99);
  auto at_exit = std::make_shared<std::size_t>(99);
  handlers_t h;
  h.open = [in_open, c = counts](herald::socket<int>& ws) {
    ws.subscribe("room");
    *in_open = c->applied("room");
  };
  auto& a = connect(0, h);
  CAF_CHECK_EQUAL(on_loop(0, [&] { return *in_open; }), 1u);
  publish("room", "p");
  CAF_CHECK_EQUAL(await_texts(a, 1), strings{"p"});
  // Attached functions run after on_exit, in the same job.
  a.actor->attach_functor(
    [at_exit, c = counts] { *at_exit = c->applied("room"); });
  caf::anon_send_exit(a.actor, caf::exit_reason::kill);
  CAF_CHECK(eventually(0, [&] { return *at_exit != 99; }));
  CAF_CHECK_EQUAL(on_loop(0, [&] { return *at_exit; }), 0u);
}

CAF_TEST(an idle member over its backpressure limit drops the delivery) {
  handlers_t h;
  h.backpressure_limit = 1;
  auto drains = std::make_shared<int>(0);
  h.drain = [drains](herald::socket<int>&) { ++*drains; };
  auto pair = stalled_and_plain(h); // not bound: lambdas capture these
  auto& a = pair.first;
  auto& b = pair.second;
  // The first fits (nothing buffered) and stays in the backlog; the second
  // finds it over the limit: dropped, the connection stays open.
  publish("room", "p");
  publish("room", "q");
  CAF_CHECK_EQUAL(await_texts(b, 2), (strings{"p", "q"}));
  CAF_CHECK_EQUAL(texts(a), strings{"p"});
  // Once the backlog is gone the next delivery is written, and directly.
  on_loop(0, [&] {
    a.t->drain();
    return 0;
  });
  CAF_CHECK(eventually(0, [&] { return *drains == 1; }));
  publish("room", "r");
  CAF_CHECK_EQUAL(await_texts(a, 2), (strings{"p", "r"}));
  auto w = seen(a);
  CAF_REQUIRE_EQUAL(w.blocked.size(), 2u);
  CAF_CHECK(w.blocked[0] && w.blocked[1]);
  CAF_CHECK(on_loop(0, [&] { return !a.t->closed(); }));
}

CAF_TEST(a member that publishes gets none of its own messages) {
  handlers_t h;
  h.message = [](herald::socket<int>& ws, herald::message m) {
    ws.publish("room", std::string{m.text()});
  };
  auto pair = in_room(h);
  auto& a = pair.first;
  auto& b = pair.second;
  feed(a, client_frame(opcode::text, "mine"));
  CAF_CHECK_EQUAL(await_texts(b, 1), strings{"mine"});
  publish("room", "theirs");
  CAF_CHECK_EQUAL(await_texts(b, 2), (strings{"mine", "theirs"}));
  CAF_CHECK_EQUAL(await_texts(a, 1), strings{"theirs"});
  // Both deliveries reached A idle: the first wrote nothing.
  auto w = seen(a);
  CAF_REQUIRE_EQUAL(w.blocked.size(), 1u);
  CAF_CHECK(w.blocked[0]);
}

CAF_TEST_FIXTURE_SCOPE_END()
