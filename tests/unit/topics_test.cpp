// Topic actors and the registry, with plain actors and connections as
// subscribers. The registry has three shards here (as on three loops;
// subscribers go to shard `id % 3`), so most tests span several.
#define CAF_SUITE topics

#include <algorithm>
#include <chrono>

#include <caf/test/dsl.hpp>

#include <herald/actors/connection.hpp>
#include <herald/actors/topics.hpp>
#include <herald/net/fake_transport.hpp>

using herald::net::client_frame;
using herald::net::fake_transport;
using herald::net::opcode;

namespace {

using inbox = std::shared_ptr<std::vector<std::string>>;

// A plain actor subscriber: records "topic:payload" for each delivery.
caf::behavior recorder(caf::event_based_actor*, inbox box) {
  return {
    [box](const herald::msg::delivery& d) {
      for (auto& m : d.messages)
        box->push_back(*d.topic + ":" + std::string{m.text()});
    },
  };
}

template <std::size_t Shards>
struct fixture_n : test_coordinator_fixture<> {
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::topic_registry handle =
    herald::spawn_topic_registry(sys, counts, {}, Shards);
  herald::msg::registry_actor registry = handle.actor();

  std::pair<caf::actor, inbox> make_recorder() {
    auto box = std::make_shared<std::vector<std::string>>();
    return {sys.spawn(recorder, box), box};
  }

  void subscribe(const std::string& topic, const caf::actor& who) {
    self->send(registry, caf::subscribe_atom::value, topic, who);
    sched.run();
  }

  void unsubscribe(const std::string& topic, const caf::actor& who) {
    self->send(registry, caf::unsubscribe_atom::value, topic, who);
    sched.run();
  }

  // A connection actor with `h`, on a fake transport, started.
  std::shared_ptr<fake_transport>
  connect(const herald::websocket_handlers<int>& h, bool run = true) {
    auto handlers = std::make_shared<const herald::websocket_handlers<int>>(h);
    auto t = std::make_shared<fake_transport>();
    herald::connection_args args;
    args.transport = t;
    args.hooks =
      std::make_unique<herald::typed_hooks<int>>(handlers, handlers->options(),
                                                 0);
    // With the shards, as a server's connections have them.
    args.env = std::make_shared<const herald::connection_env>(
      herald::connection_env{handle, nullptr, {}, nullptr});
    last = herald::spawn_connection(sys, std::move(args));
    if (run)
      sched.run();
    return t;
  }
  // The connection actor connect() made last.
  caf::actor last;

  // Runs the connection connect(h, false) made last, and nothing else,
  // until it has started (run open): the registry has seen nothing of it.
  void start_last(fake_transport& t) {
    while (!t.started() && sched.prioritize(last))
      sched.run_once();
    CAF_REQUIRE(t.started());
  }

  // Sends publications to the registry without running the scheduler:
  // the topic gets them as one burst.
  void queue_publish(const std::string& topic, std::string_view text,
                     caf::actor_addr exclude = {}) {
    self->send(registry, caf::publish_atom::value, topic,
               herald::msg::publication{herald::net::make_frame(opcode::text,
                                                                text),
                                        exclude});
  }

  static std::vector<std::string> texts(fake_transport& t) {
    std::vector<std::string> out;
    for (auto& f : t.frames())
      out.push_back(f.payload);
    return out;
  }

  void publish(const std::string& topic, std::string_view text,
               caf::actor_addr exclude = {}) {
    self->send(registry, caf::publish_atom::value, topic,
               herald::msg::publication{herald::net::make_frame(opcode::text,
                                                                text),
                                        exclude});
    sched.run();
  }
};

using fixture = fixture_n<3>;
// All subscribers on one shard (one loop), for what one topic actor does
// with many members.
using one_shard = fixture_n<1>;

} // namespace

CAF_TEST_FIXTURE_SCOPE(topic_tests, fixture)

CAF_TEST(a publish reaches every subscriber exactly once) {
  auto [a, abox] = make_recorder();
  auto [b, bbox] = make_recorder();
  subscribe("room", a);
  subscribe("room", b);
  subscribe("room", b); // twice: still one membership
  CAF_CHECK_EQUAL(counts->get("room"), 2u);
  publish("room", "hi");
  CAF_CHECK_EQUAL(*abox, std::vector<std::string>{"room:hi"});
  CAF_CHECK_EQUAL(*bbox, std::vector<std::string>{"room:hi"});
}

CAF_TEST(publish excludes the sender when asked) {
  std::vector<std::string> seen_by_a;
  std::vector<std::string> seen_by_b;
  auto make = [&](std::vector<std::string>& seen) {
    // (An unused argument: CAF 0.17 trips UBSan on argument-less lambdas.)
    return sys.spawn(
      [&seen](caf::event_based_actor* self, int) -> caf::behavior {
        return {[&seen, self](const herald::msg::delivery& d) {
          d.each(self->address(), [&](const herald::msg::topic_message& m) {
            seen.emplace_back(m.text());
          });
        }};
      },
      0);
  };
  auto a = make(seen_by_a);
  auto b = make(seen_by_b);
  subscribe("room", a);
  subscribe("room", b);
  publish("room", "from a", a.address());
  publish("room", "from server");
  CAF_CHECK_EQUAL(seen_by_a, std::vector<std::string>{"from server"});
  CAF_CHECK_EQUAL(seen_by_b,
                  (std::vector<std::string>{"from a", "from server"}));
}

CAF_TEST(a burst of publishes reaches each subscriber as one delivery) {
  auto deliveries = std::make_shared<int>(0);
  auto counter = sys.spawn(
    [deliveries](caf::event_based_actor*, int) -> caf::behavior {
      return {[deliveries](const herald::msg::delivery&) { ++*deliveries; }};
    },
    0);
  subscribe("room", counter);
  for (int i = 0; i < 50; ++i)
    self->send(registry, caf::publish_atom::value, std::string{"room"},
               herald::msg::publication{
                 herald::net::make_frame(opcode::text, std::to_string(i)),
                 {}});
  sched.run();
  CAF_CHECK_EQUAL(*deliveries, 1);
}

CAF_TEST(a big topic lingers and sends what came meanwhile as one delivery) {
  auto lingering =
    herald::spawn_topic_registry(sys, std::make_shared<herald::topic_counts>(),
                                 {.linger = std::chrono::milliseconds{20},
                                  .linger_min_subscribers = 2})
      .actor();
  auto deliveries = std::make_shared<std::vector<std::string>>();
  auto sub = [&](const std::string& topic) {
    // An argument, as above: CAF 0.17 spawns argument-less functions
    // through a null tuple (UBSan reports it).
    auto a = sys.spawn(
      [deliveries](caf::event_based_actor*, int) -> caf::behavior {
        return {[deliveries](const herald::msg::delivery& d) {
          std::string s = *d.topic + ":";
          for (auto& m : d.messages)
            s += std::string{m.text()};
          deliveries->push_back(s);
        }};
      },
      0);
    self->send(lingering, caf::subscribe_atom::value, topic, a);
    sched.run();
    return a;
  };
  auto b1 = sub("big");
  auto b2 = sub("big");
  auto s1 = sub("small");
  auto publish = [&](const std::string& topic, std::string text) {
    self->send(lingering, caf::publish_atom::value, topic,
               herald::msg::publication{herald::net::make_frame(opcode::text,
                                                                text),
                                        {}});
    sched.run();
  };
  publish("big", "a");
  publish("small", "x"); // one subscriber: no wait
  CAF_CHECK_EQUAL(*deliveries, std::vector<std::string>{"small:x"});
  sched.clock().advance_time(std::chrono::milliseconds{19});
  sched.run();
  publish("big", "b");
  CAF_CHECK_EQUAL(deliveries->size(), 1u);
  sched.clock().advance_time(std::chrono::milliseconds{1});
  sched.run();
  CAF_CHECK_EQUAL(*deliveries,
                  (std::vector<std::string>{"small:x", "big:ab", "big:ab"}));
  anon_send_exit(lingering, caf::exit_reason::user_shutdown);
  for (auto& a : {b1, b2, s1})
    anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(a subscribe while a topic lingers does not split the batch) {
  auto lingering =
    herald::spawn_topic_registry(sys, std::make_shared<herald::topic_counts>(),
                                 {.linger = std::chrono::milliseconds{20},
                                  .linger_min_subscribers = 1})
      .actor();
  auto deliveries = std::make_shared<std::vector<std::string>>();
  auto sub = [&](std::string tag) {
    auto a = sys.spawn(
      [deliveries, tag](caf::event_based_actor*, int) -> caf::behavior {
        return {[deliveries, tag](const herald::msg::delivery& d) {
          std::string s = tag + ":";
          for (auto& m : d.messages)
            s += std::string{m.text()};
          deliveries->push_back(s);
        }};
      },
      0);
    self->send(lingering, caf::subscribe_atom::value, std::string{"big"}, a);
    sched.run();
    return a;
  };
  auto publish = [&](std::string text) {
    self->send(lingering, caf::publish_atom::value, std::string{"big"},
               herald::msg::publication{herald::net::make_frame(opcode::text,
                                                                text),
                                        {}});
    sched.run();
  };
  auto a = sub("a");
  publish("1");
  auto b = sub("b"); // joins while "1" waits
  publish("2");
  auto c = sub("c");
  publish("3");
  CAF_CHECK(deliveries->empty());
  sched.clock().advance_time(std::chrono::milliseconds{20});
  sched.run();
  // a had all three in one delivery; b and c what came after them.
  CAF_CHECK_EQUAL(*deliveries,
                  (std::vector<std::string>{"a:123", "b:23", "c:3"}));
  publish("4");
  sched.clock().advance_time(std::chrono::milliseconds{20});
  sched.run();
  CAF_CHECK_EQUAL(deliveries->size(), 6u);
  anon_send_exit(lingering, caf::exit_reason::user_shutdown);
  for (auto& x : {a, b, c})
    anon_send_exit(x, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(messages from one publisher arrive in order) {
  auto [a, abox] = make_recorder();
  subscribe("room", a);
  for (int i = 0; i < 100; ++i)
    self->send(registry, caf::publish_atom::value, std::string{"room"},
               herald::msg::publication{
                 herald::net::make_frame(opcode::text, std::to_string(i)),
                 {}});
  sched.run();
  CAF_REQUIRE_EQUAL(abox->size(), 100u);
  for (int i = 0; i < 100; ++i)
    CAF_CHECK_EQUAL((*abox)[i], "room:" + std::to_string(i));
}

CAF_TEST(a subscriber gets what reaches the topic between its
           subscribe and unsubscribe) {
  auto [a, abox] = make_recorder();
  auto [b, bbox] = make_recorder();
  subscribe("room", a);
  // One burst for the topic, with b joining and a leaving inside it.
  queue_publish("room", "1");
  self->send(registry, caf::subscribe_atom::value, std::string{"room"}, b);
  queue_publish("room", "2");
  self->send(registry, caf::unsubscribe_atom::value, std::string{"room"}, a);
  queue_publish("room", "3");
  sched.run();
  CAF_CHECK_EQUAL(*abox, (std::vector<std::string>{"room:1", "room:2"}));
  CAF_CHECK_EQUAL(*bbox, (std::vector<std::string>{"room:2", "room:3"}));
}

CAF_TEST(unsubscribe stops deliveries and the last leave stops the topic) {
  auto running = sys.registry().running();
  auto [a, abox] = make_recorder();
  subscribe("room", a);
  CAF_CHECK_EQUAL(sys.registry().running(), running + 2); // a + topic
  unsubscribe("room", a);
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 0u);
  publish("room", "hi");
  CAF_CHECK(abox->empty());
  CAF_CHECK_EQUAL(sys.registry().running(), running + 1); // a only
}

CAF_TEST(a subscriber that goes down leaves all its topics) {
  auto [a, abox] = make_recorder();
  auto [b, bbox] = make_recorder();
  subscribe("x", a);
  subscribe("y", a);
  subscribe("y", b);
  caf::anon_send_exit(a, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("x"), 0u);
  CAF_CHECK_EQUAL(counts->get("y"), 1u);
  publish("y", "still here");
  CAF_CHECK_EQUAL(*bbox, std::vector<std::string>{"y:still here"});
}

CAF_TEST(a subscriber in three topics leaves them one by one) {
  auto [a, abox] = make_recorder();
  subscribe("x", a);
  subscribe("y", a);
  subscribe("z", a);
  subscribe("y", a); // again: no second membership
  CAF_CHECK_EQUAL(counts->get("y"), 1u);
  unsubscribe("x", a); // the first of its topics
  CAF_CHECK_EQUAL(counts->get("x"), 0u);
  publish("x", "1");
  publish("y", "2");
  publish("z", "3");
  CAF_CHECK_EQUAL(*abox, (std::vector<std::string>{"y:2", "z:3"}));
  unsubscribe("z", a);
  publish("z", "4");
  CAF_CHECK_EQUAL(abox->size(), 2u);
  caf::anon_send_exit(a, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("y"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 0u);
}

CAF_TEST(a publish shares one frame among all subscribers) {
  std::vector<herald::net::frame_ptr> seen;
  auto keep = [&](caf::event_based_actor*, int) -> caf::behavior {
    return {[&](const herald::msg::delivery& d) {
      for (auto& m : d.messages)
        seen.push_back(m.frame);
    }};
  };
  for (int i = 0; i < 10; ++i)
    subscribe("room", sys.spawn(keep, 0));
  publish("room", "shared payload");
  CAF_REQUIRE_EQUAL(seen.size(), 10u);
  for (auto& f : seen)
    CAF_CHECK_EQUAL(f.get(), seen[0].get());
  // Ten handles here, nothing else holds it: no copy was ever made.
  CAF_CHECK_EQUAL(seen[0]->use_count(), 10);
}

CAF_TEST(a hundred thousand topics leave no actors or memory behind) {
  auto running = sys.registry().running();
  // One frame for every publish: whatever keeps a delivery keeps it.
  auto frame = herald::net::make_frame(opcode::text, "x");
  auto [a, abox] = make_recorder();
  for (int i = 0; i < 100000; ++i) {
    auto topic = "t" + std::to_string(i);
    self->send(registry, caf::subscribe_atom::value, topic, a);
    self->send(registry, caf::publish_atom::value, topic,
               herald::msg::publication{frame, {}});
    self->send(registry, caf::unsubscribe_atom::value, topic, a);
    if (i % 1000 == 0)
      sched.run();
  }
  sched.run();
  CAF_CHECK_EQUAL(abox->size(), 100000u);
  abox->clear();
  CAF_CHECK_EQUAL(counts->topics(), 0u);
  CAF_CHECK_EQUAL(sys.registry().running(), running + 1); // only a
  CAF_CHECK_EQUAL(frame->use_count(), 1);
}

CAF_TEST(connections publish to each other but not to themselves) {
  herald::websocket_handlers<int> h;
  h.message = [](herald::socket<int>& ws, herald::message m) {
    if (m.text() == "join")
      ws.subscribe("room");
    else
      ws.publish("room", m.text());
  };
  auto make = [&](bool to_self) {
    auto hh = h;
    hh.publish_to_self = to_self;
    auto t = connect(hh);
    t->feed(client_frame(opcode::text, "join"));
    sched.run();
    return t;
  };
  auto a = make(false);
  auto b = make(false);
  auto c = make(true);
  a->feed(client_frame(opcode::text, "from a"));
  sched.run();
  c->feed(client_frame(opcode::text, "from c"));
  sched.run();
  auto texts = [](std::shared_ptr<fake_transport>& t) {
    std::vector<std::string> out;
    for (auto& f : t->frames())
      out.push_back(f.payload);
    return out;
  };
  CAF_CHECK_EQUAL(texts(a), std::vector<std::string>{"from c"});
  CAF_CHECK_EQUAL(texts(b), (std::vector<std::string>{"from a", "from c"}));
  CAF_CHECK_EQUAL(texts(c), (std::vector<std::string>{"from a", "from c"}));
}

CAF_TEST(a closed connection leaves its topics) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  auto t = connect(h);
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  t->feed(herald::net::client_close(1000));
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
}

CAF_TEST(a subscription on its way keeps a topic from looking empty) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  auto t = connect(h, false);
  CAF_CHECK(!counts->may_have_subscribers("room"));
  // The connection starts and runs open; the registry has not seen the
  // subscription yet: counted anyway, and the topic may have one.
  while (!t->started() && sched.try_run_once())
    ;
  CAF_REQUIRE(t->started());
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK(counts->may_have_subscribers("room"));
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK(counts->may_have_subscribers("room"));
  // Settled: other topics look empty again.
  CAF_CHECK(!counts->may_have_subscribers("elsewhere"));
}

CAF_TEST(
  herald::subscribe counts a plain actor while its subscription travels) {
  auto [a, box] = make_recorder();
  CAF_CHECK(!counts->may_have_subscribers("room"));
  herald::subscribe(handle, "room", a);
  // Not at the registry yet: counted, and the topic may have one.
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK(counts->may_have_subscribers("room"));
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK(!counts->may_have_subscribers("elsewhere"));
  publish("room", "hi");
  CAF_CHECK_EQUAL(*box, std::vector<std::string>{"room:hi"});
}

CAF_TEST(a connection sees its own subscribe and unsubscribe in the count) {
  // What open saw, in order: the count after each step, all before the
  // registry could run.
  auto seen = std::make_shared<std::vector<std::size_t>>();
  herald::websocket_handlers<int> h;
  h.open = [c = counts, seen](herald::socket<int>& ws) {
    ws.subscribe("room");
    seen->push_back(c->get("room"));
    ws.subscribe("room"); // a duplicate changes nothing
    seen->push_back(c->get("room"));
    ws.subscribe("other");
    ws.unsubscribe("other");
    seen->push_back(c->get("other"));
    ws.unsubscribe("other"); // nor does leaving twice
    seen->push_back(c->get("other"));
  };
  auto t = connect(h, false);
  start_last(*t);
  CAF_CHECK_EQUAL(*seen, (std::vector<std::size_t>{1, 1, 0, 0}));
  CAF_CHECK_EQUAL(counts->topics(), 1u);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK_EQUAL(counts->get("other"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 1u);
  CAF_CHECK(!counts->may_have_subscribers("other"));
}

CAF_TEST(connections opened one after another count 1 to N in open) {
  auto seen = std::make_shared<std::vector<std::size_t>>();
  herald::websocket_handlers<int> h;
  h.open = [c = counts, seen](herald::socket<int>& ws) {
    ws.subscribe("room");
    seen->push_back(c->get("room"));
  };
  h.message = [c = counts, seen](herald::socket<int>& ws, herald::message) {
    ws.unsubscribe("room");
    seen->push_back(c->get("room"));
  };
  // Only the connection runs, never the registry: every count is what
  // the connections recorded on the way.
  std::vector<std::shared_ptr<fake_transport>> ts;
  for (int i = 0; i < 4; ++i) {
    ts.push_back(connect(h, false));
    start_last(*ts.back());
  }
  CAF_CHECK_EQUAL(*seen, (std::vector<std::size_t>{1, 2, 3, 4}));
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 4u);
  ts[0]->feed(client_frame(opcode::text, "bye"));
  ts[1]->feed(client_frame(opcode::text, "bye"));
  sched.run();
  CAF_CHECK_EQUAL(*seen, (std::vector<std::size_t>{1, 2, 3, 4, 3, 2}));
  CAF_CHECK_EQUAL(counts->get("room"), 2u);
}

CAF_TEST(a connection that closes right after subscribing leaves no count) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) {
    ws.subscribe("room");
    ws.terminate(); // gone at once, before the registry has the subscribe
  };
  auto t = connect(h, false);
  start_last(*t);
  sched.run();
  // The registry got the subscribe of an actor already gone, then its
  // down message: the count ends at zero, the topic is gone.
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 0u);
  CAF_CHECK(!counts->may_have_subscribers("room"));
}

CAF_TEST(a subscriber that goes down is taken off the count once) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) {
    ws.subscribe("room");
    ws.subscribe("hall");
  };
  auto t1 = connect(h);
  auto c1 = last;
  auto t2 = connect(h);
  CAF_CHECK_EQUAL(counts->get("room"), 2u);
  // Gone without a close: the registry's monitor removes it.
  caf::anon_send_exit(c1, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  CAF_CHECK_EQUAL(counts->get("hall"), 1u);
  CAF_CHECK_EQUAL(counts->topics(), 2u);
  t2->feed(herald::net::client_close(1000));
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 0u);
}

CAF_TEST(herald::subscribe twice and unsubscribe settle to the registry) {
  auto [a, box] = make_recorder();
  herald::subscribe(handle, "room", a);
  herald::subscribe(handle, "room", a);
  // Counted from the calls: twice until the registry has the duplicate.
  CAF_CHECK_EQUAL(counts->get("room"), 2u);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  herald::unsubscribe(handle, "room", a);
  // Not counted on its way: the registry has not seen it yet.
  CAF_CHECK_EQUAL(counts->get("room"), 1u);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
  // An unsubscribe of a non-member changes nothing.
  herald::unsubscribe(handle, "room", a);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 0u);
  CAF_CHECK_EQUAL(counts->topics(), 0u);
}

CAF_TEST(a handlers publishes keep their order with its subscribes and the
           servers publishes) {
  // A connection's publishes wait for the end of the message it handles
  // and go to the shards together; what the handler does after them must
  // not overtake them.
  herald::websocket_handlers<int> h;
  h.publish_to_self = true;
  h.message = [this](herald::socket<int>& ws, herald::message m) {
    if (m.text() == "join") {
      ws.subscribe("room");
    } else if (m.text() == "late") {
      // Published before it subscribes: not for it.
      ws.publish("other", "before");
      ws.subscribe("other");
      ws.publish("other", "after");
    } else if (m.text() == "leave") {
      // Published while still subscribed: for it.
      ws.publish("room", "last");
      ws.unsubscribe("room");
    } else {
      ws.publish("room", "a");
      ws.publish("aside", "x");
      ws.publish("room", "b");
      herald::publish_text(handle, "room", "server");
      ws.publish("room", "c");
    }
  };
  auto t = connect(h);
  t->feed(client_frame(opcode::text, "join"));
  sched.run();
  auto [r, box] = make_recorder();
  subscribe("room", r);
  t->feed(client_frame(opcode::text, "go"));
  t->feed(client_frame(opcode::text, "late"));
  t->feed(client_frame(opcode::text, "leave"));
  sched.run();
  CAF_CHECK_EQUAL(*box,
                  (std::vector<std::string>{"room:a", "room:b", "room:server",
                                            "room:c", "room:last"}));
  // Its own: room in order; of other only what came after its subscribe
  // (topics are not ordered with each other).
  auto got = texts(*t);
  auto room = got;
  room.erase(std::remove(room.begin(), room.end(), "after"), room.end());
  CAF_CHECK_EQUAL(room,
                  (std::vector<std::string>{"a", "b", "server", "c", "last"}));
  CAF_CHECK_EQUAL(std::count(got.begin(), got.end(), "after"), 1);
  CAF_CHECK_EQUAL(std::count(got.begin(), got.end(), "before"), 0);
}

CAF_TEST(each shard keeps the members of its loop and the counts add up) {
  // One subscriber per shard (a plain actor goes to shard id % 3).
  std::vector<caf::actor> subs;
  std::vector<inbox> boxes;
  std::vector<bool> taken(3, false);
  while (subs.size() < 3) {
    auto [a, box] = make_recorder();
    if (taken[a.id() % 3]) {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      continue;
    }
    taken[a.id() % 3] = true;
    subs.push_back(a);
    boxes.push_back(box);
    herald::subscribe(handle, "room", a);
  }
  sched.run();
  // What a registry actor (a shard or the front) answers to count_atom.
  auto count = [&](const herald::msg::registry_actor& r) {
    auto n = std::make_shared<std::size_t>(99);
    sys.spawn(
      [r, n](caf::event_based_actor* asker, int) {
        asker
          ->request(r, caf::infinite, herald::msg::count_atom::value,
                    std::string{"room"})
          .then([n](std::size_t k) { *n = k; });
      },
      0);
    sched.run();
    return *n;
  };
  for (auto& s : handle.shards())
    CAF_CHECK_EQUAL(count(s), 1u);
  CAF_CHECK_EQUAL(count(registry), 3u);
  CAF_CHECK_EQUAL(counts->get("room"), 3u);
  // Straight to the shards, and through the registry's actor.
  herald::publish_text(handle, "room", "one");
  sched.run();
  publish("room", "two");
  for (auto& box : boxes)
    CAF_CHECK_EQUAL(*box, (std::vector<std::string>{"room:one", "room:two"}));
  // One shard's member goes: the others keep theirs.
  caf::anon_send_exit(subs[1], caf::exit_reason::user_shutdown);
  sched.run();
  CAF_CHECK_EQUAL(counts->get("room"), 2u);
  herald::publish_text(handle, "room", "three");
  sched.run();
  CAF_CHECK_EQUAL(boxes[0]->back(), "room:three");
  CAF_CHECK_EQUAL(boxes[1]->back(), "room:two");
  CAF_CHECK_EQUAL(boxes[2]->back(), "room:three");
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(one_shard_tests, one_shard)

CAF_TEST(a burst is written to each connection as one piece) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  std::vector<std::shared_ptr<fake_transport>> ts;
  for (int i = 0; i < 3; ++i)
    ts.push_back(connect(h));
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back("message " + std::to_string(i));
    queue_publish("room", sent.back());
  }
  sched.run();
  for (auto& t : ts) {
    // The topic joined the burst's frames once: one piece, one write.
    CAF_CHECK_EQUAL(t->batches(), std::vector<std::size_t>{1});
    CAF_CHECK_EQUAL(texts(*t), sent);
  }
}

CAF_TEST(frames too large to join are written in place between runs) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  auto t1 = connect(h);
  auto t2 = connect(h);
  std::string big(70000, 'x');
  std::vector<std::string> sent{"a", "b", big, "c", "d", "e"};
  for (auto& m : sent)
    queue_publish("room", m);
  sched.run();
  for (auto& t : {t1, t2}) {
    // "a b" joined, the big frame on its own, "c d e" joined.
    CAF_CHECK_EQUAL(t->batches(), std::vector<std::size_t>{3});
    CAF_CHECK_EQUAL(texts(*t), sent);
  }
}

CAF_TEST(a run skips the messages that leave a subscriber out) {
  herald::websocket_handlers<int> h;
  h.open = [](herald::socket<int>& ws) { ws.subscribe("room"); };
  auto x = connect(h);
  auto xa = last.address();
  auto y = connect(h);
  auto ya = last.address();
  auto z = connect(h);
  queue_publish("room", "m1", xa);
  queue_publish("room", "m2");
  queue_publish("room", "m3", ya);
  queue_publish("room", "m4");
  sched.run();
  CAF_CHECK_EQUAL(texts(*x), (std::vector<std::string>{"m2", "m3", "m4"}));
  CAF_CHECK_EQUAL(texts(*y), (std::vector<std::string>{"m1", "m2", "m4"}));
  CAF_CHECK_EQUAL(texts(*z),
                  (std::vector<std::string>{"m1", "m2", "m3", "m4"}));
  // Still ranges of the one run: adjacent messages stay one piece.
  CAF_CHECK_EQUAL(x->batches(), std::vector<std::size_t>{1});
  CAF_CHECK_EQUAL(y->batches(), std::vector<std::size_t>{2});
  CAF_CHECK_EQUAL(z->batches(), std::vector<std::size_t>{1});
}

CAF_TEST(walking a delivery offers clean runs whole and the rest one by one) {
  using herald::msg::delivery;
  using take = delivery::take;
  // Only its address matters. (An argument: CAF 0.17 spawns a lambda of no
  // arguments through a null argument tuple, which UBSan reports.)
  auto self = sys.spawn([](caf::event_based_actor*, int) {}, 0);
  auto frame = [](std::string_view text) {
    return herald::net::make_frame(herald::net::opcode::text, text);
  };
  // m0 excludes self; m1 m2 a clean run; m3 (excludes self) m4 a mixed run.
  delivery d;
  for (auto t : {"m0", "m1", "m2", "m3", "m4"})
    d.messages.push_back({frame(t), {}, false});
  d.messages[0].exclude = self.address();
  d.messages[3].exclude = self.address();
  auto sz = static_cast<std::uint32_t>(d.messages[1].frame->size());
  const herald::net::frame* clean[] = {d.messages[1].frame.get(),
                                       d.messages[2].frame.get()};
  const herald::net::frame* mixed[] = {d.messages[3].frame.get(),
                                       d.messages[4].frame.get()};
  d.runs = {herald::net::make_run(clean), herald::net::make_run(mixed)};
  d.run_infos = {{2, 2 * sz, false}, {2, 2 * sz, true}};
  d.placements = {{delivery::placement::none, 0},
                  {0, 0},
                  {0, sz},
                  {1, 0},
                  {1, sz}};
  std::vector<std::string> seen;
  auto walk = [&](take t, std::size_t stop_after) {
    seen.clear();
    return d.walk(
      self->ctrl(),
      [&](std::uint32_t run, const delivery::run_info&) {
        seen.push_back("run" + std::to_string(run));
        return t;
      },
      [&](std::size_t i) {
        seen.push_back("m" + std::to_string(i));
        return seen.size() < stop_after;
      });
  };
  // Taken: the clean run whole; the mixed one is never offered, and its
  // message that excludes self is skipped.
  CAF_CHECK(walk(take::run, 99));
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"run0", "m4"}));
  // Declined: its messages one by one.
  CAF_CHECK(walk(take::each, 99));
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"run0", "m1", "m2", "m4"}));
  // Either callback ends the walk.
  CAF_CHECK(!walk(take::stop, 99));
  CAF_CHECK_EQUAL(seen, std::vector<std::string>{"run0"});
  CAF_CHECK(!walk(take::each, 2));
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"run0", "m1"}));
  // each(): every message for self, runs or not.
  seen.clear();
  d.each(self.address(), [&](const herald::msg::topic_message& m) {
    seen.emplace_back(reinterpret_cast<const char*>(m.frame->payload().data()),
                      m.frame->payload().size());
  });
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"m1", "m2", "m4"}));
}

CAF_TEST_FIXTURE_SCOPE_END()
