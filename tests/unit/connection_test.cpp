// The connection actor, driven step by step through a fake transport.
#define CAF_SUITE connection

#include <caf/test/dsl.hpp>

#include <herald/actors/connection.hpp>
#include <herald/actors/topics.hpp>
#include <herald/net/fake_transport.hpp>

using herald::net::client_close;
using herald::net::client_frame;
using herald::net::fake_transport;
using herald::net::opcode;

namespace {

struct user {
  std::string name;
  int messages = 0;
};

using handlers_t = herald::websocket_handlers<user>;

struct conn {
  std::shared_ptr<fake_transport> t;
  caf::actor a;
};

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<herald::topic_counts> counts =
    std::make_shared<herald::topic_counts>();
  herald::topic_registry handle = herald::spawn_topic_registry(sys, counts);
  herald::msg::registry_actor registry = handle.actor();
  std::vector<std::string> log;
  handlers_t h;

  fixture() {
    h.message = [this](herald::socket<user>& ws, herald::message m) {
      ++ws.data().messages;
      log.push_back(ws.data().name + (m.is_text() ? " text " : " binary ")
                    + std::string{m.text()});
      if (m.is_text())
        ws.send_text(m.text());
      else
        ws.send_binary(m.bytes());
    };
    h.open = [this](herald::socket<user>& ws) {
      log.push_back(ws.data().name + " open");
    };
    h.close = [this](herald::socket<user>& ws, int code,
                     std::string_view reason) {
      log.push_back(ws.data().name + " close " + std::to_string(code) + " "
                    + std::string{reason});
    };
  }

  std::vector<caf::actor> spawned;
  std::shared_ptr<fake_transport> last; // of the latest connect()

  ~fixture() {
    // Stop connections while the handlers' state (log) still exists.
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  std::shared_ptr<herald::connection_list> list; // joined when set

  conn connect(std::string name, std::string response = {}) {
    auto handlers = std::make_shared<const handlers_t>(h);
    herald::connection_args args;
    auto t = std::make_shared<fake_transport>();
    if (!response.empty())
      t->expect_http_response();
    last = t;
    args.transport = t;
    if (!response.empty())
      args.response = herald::net::make_raw(
        std::as_bytes(std::span<const char>{response.data(), response.size()}));
    args.hooks =
      std::make_unique<herald::typed_hooks<user>>(handlers, handlers->options(),
                                                  user{std::move(name)});
    args.env = std::make_shared<const herald::connection_env>(
      herald::connection_env{registry, nullptr, {}, list});
    auto a = herald::spawn_connection(sys, std::move(args));
    spawned.push_back(a);
    sched.run();
    return {t, a};
  }

  // Runs all messages (no timers).
  void step() { sched.run(); }

  bool has(const std::string& line) const {
    return std::find(log.begin(), log.end(), line) != log.end();
  }
};

std::vector<std::byte> concat(std::vector<std::vector<std::byte>> parts) {
  std::vector<std::byte> out;
  for (auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(connection_tests, fixture)

CAF_TEST(connections are listed while they live) {
  list = std::make_shared<herald::connection_list>();
  auto ann = connect("ann");
  auto bob = connect("bob");
  CAF_CHECK_EQUAL(list->size(), 2u);
  auto hs = list->handles();
  CAF_REQUIRE_EQUAL(hs.size(), 2u);
  CAF_CHECK((hs[0] == ann.a && hs[1] == bob.a)
            || (hs[0] == bob.a && hs[1] == ann.a));
  hs.clear();
  // when_empty waits for the last one out, and a later call replaces an
  // earlier one.
  int first = 0;
  int empty = 0;
  list->when_empty([&] { ++first; });
  list->when_empty([&] { ++empty; });
  // A close from the peer ends the actor: it leaves the list.
  ann.t->feed(client_close(1000, "bye"));
  step();
  CAF_CHECK_EQUAL(list->size(), 1u);
  CAF_CHECK_EQUAL(empty, 0);
  // So does one killed from outside.
  caf::anon_send_exit(bob.a, caf::exit_reason::kill);
  step();
  CAF_CHECK_EQUAL(list->size(), 0u);
  CAF_CHECK(list->handles().empty());
  CAF_CHECK_EQUAL(first, 0);
  CAF_CHECK_EQUAL(empty, 1);
  // An empty list calls at once.
  list->when_empty([&] { ++empty; });
  CAF_CHECK_EQUAL(empty, 2);
}

CAF_TEST(open runs the open handler and starts reading) {
  auto c = connect("ann");
  CAF_CHECK(c.t->started());
  CAF_CHECK(has("ann open"));
}

CAF_TEST(the upgrade response leaves with what open sends in one write) {
  const std::string response = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n\r\n";
  h.open = [this](herald::socket<user>& ws) {
    // Nothing is written while open runs: the client cannot see the
    // upgrade before open's subscriptions are on their way.
    log.push_back("writes during open " + std::to_string(last->write_calls()));
    ws.subscribe("room");
    ws.send_text("welcome");
  };
  auto c = connect("ann", response);
  CAF_CHECK(has("writes during open 0"));
  CAF_CHECK_EQUAL(c.t->write_calls(), 1u);
  CAF_CHECK_EQUAL(c.t->http_response(), response);
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].payload, "welcome");
  herald::publish_text(handle, "room", "news");
  step();
  out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 2u);
  CAF_CHECK_EQUAL(out[1].payload, "news");
}

CAF_TEST(messages reach the handler with their kind and replies go out) {
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "hello"));
  c.t->feed(client_frame(opcode::binary, "\x01\x02"));
  step();
  CAF_CHECK(has("ann text hello"));
  CAF_CHECK(has("ann binary \x01\x02"));
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 2u);
  CAF_CHECK(out[0].op == opcode::text);
  CAF_CHECK_EQUAL(out[0].payload, "hello");
  CAF_CHECK(out[1].op == opcode::binary);
  CAF_CHECK_EQUAL(out[1].payload, "\x01\x02");
}

CAF_TEST(replies to messages waiting in the mailbox leave after the last) {
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "a"));
  c.t->feed(client_frame(opcode::text, "b"));
  c.t->feed(client_frame(opcode::text, "c"));
  step();
  // Three messages, three handler calls, one write once the mailbox is
  // empty (no flush message of its own).
  CAF_CHECK_EQUAL(c.t->write_calls(), 1u);
  CAF_CHECK_EQUAL(c.t->batches(), std::vector<std::size_t>{3});
  CAF_CHECK_EQUAL(c.t->frames().size(), 3u);
}

CAF_TEST(frames queued in one batch leave in one gathered write) {
  auto c = connect("ann");
  c.t->feed(
    concat({client_frame(opcode::text, "a"), client_frame(opcode::text, "b"),
            client_frame(opcode::text, "c")}));
  step();
  CAF_CHECK_EQUAL(c.t->write_calls(), 1u);
  CAF_REQUIRE_EQUAL(c.t->batches().size(), 1u);
  CAF_CHECK_EQUAL(c.t->batches()[0], 3u);
  CAF_CHECK_EQUAL(c.t->consumed_bytes(), 3u * 7u);
}

CAF_TEST(per connection data stays with its connection) {
  auto a = connect("ann");
  auto b = connect("bob");
  a.t->feed(client_frame(opcode::text, "1"));
  a.t->feed(client_frame(opcode::text, "2"));
  b.t->feed(client_frame(opcode::text, "3"));
  step();
  auto* ann = caf::actor_cast<herald::connection_actor*>(a.a);
  auto* bob = caf::actor_cast<herald::connection_actor*>(b.a);
  auto data = [](herald::connection_actor* x) -> user& {
    auto& s = x->core().hooks().socket();
    return static_cast<herald::socket<user>&>(s).data();
  };
  CAF_CHECK_EQUAL(data(ann).messages, 2);
  CAF_CHECK_EQUAL(data(bob).messages, 1);
  CAF_CHECK(has("ann text 1"));
  CAF_CHECK(has("bob text 3"));
  CAF_CHECK_EQUAL(a.t->frames().size(), 2u);
  CAF_CHECK_EQUAL(b.t->frames().size(), 1u);
}

CAF_TEST(a ping is answered with a pong carrying the same data) {
  std::string pinged;
  h.ping = [&](herald::socket<user>&, std::span<const std::byte> d) {
    pinged.assign(reinterpret_cast<const char*>(d.data()), d.size());
  };
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::ping, "are you there"));
  step();
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK(out[0].op == opcode::pong);
  CAF_CHECK_EQUAL(out[0].payload, "are you there");
  CAF_CHECK_EQUAL(pinged, "are you there");
}

CAF_TEST(a pong reaches the pong handler) {
  std::string ponged;
  h.pong = [&](herald::socket<user>&, std::span<const std::byte> d) {
    ponged.assign(reinterpret_cast<const char*>(d.data()), d.size());
  };
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::pong, "p"));
  step();
  CAF_CHECK_EQUAL(ponged, "p");
  CAF_CHECK(c.t->frames().empty());
}

CAF_TEST(a client close is echoed and the transport closes gracefully) {
  auto c = connect("ann");
  c.t->feed(client_close(4000, "bye"));
  step();
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK(out[0].op == opcode::close);
  CAF_CHECK_EQUAL(out[0].close_code, 4000);
  CAF_CHECK(c.t->closed());
  CAF_CHECK(c.t->graceful());
  CAF_CHECK(has("ann close 4000 bye"));
}

CAF_TEST(data after a close frame is ignored) {
  auto c = connect("ann");
  c.t->feed(concat({client_close(1000), client_frame(opcode::text, "late")}));
  step();
  CAF_CHECK(!has("ann text late"));
  CAF_CHECK_EQUAL(c.t->frames().size(), 1u);
}

CAF_TEST(a protocol error closes with its code and runs close once) {
  auto c = connect("ann");
  // An unmasked frame from a client: 1002.
  c.t->feed({std::byte{0x81}, std::byte{0x01}, std::byte{'x'}});
  step();
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 1002);
  CAF_CHECK(c.t->closed());
  auto closes = std::count_if(log.begin(), log.end(), [](auto& l) {
    return l.rfind("ann close", 0) == 0;
  });
  CAF_CHECK_EQUAL(closes, 1);
  CAF_CHECK(has("ann close 1002 unmasked frame from client"));
}

CAF_TEST(invalid utf8 closes with 1007) {
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "\xC0\xAF"));
  step();
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 1007);
}

CAF_TEST(a message over max_payload_length closes with 1009) {
  h.max_payload_length = 10;
  auto c = connect("ann");
  auto f = client_frame(opcode::binary, std::string(11, 'x'));
  f.resize(6); // the header alone (with mask key) is enough to refuse it
  c.t->feed(f);
  step();
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 1009);
  CAF_CHECK(c.t->closed());
}

CAF_TEST(a throwing handler reaches error and closes with 1011) {
  std::string error;
  h.message = [](herald::socket<user>&, herald::message) {
    throw std::runtime_error("boom");
  };
  h.error = [&](herald::socket<user>&, std::string_view what) { error = what; };
  auto c = connect("ann");
  auto other = connect("bob");
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  CAF_CHECK_EQUAL(error, "boom");
  auto out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 1011);
  CAF_CHECK(has("ann close 1011 internal error"));
  CAF_CHECK(!other.t->closed());
}

CAF_TEST(close from the server waits for the peer then closes) {
  h.message = [](herald::socket<user>& ws, herald::message) {
    ws.close(4001, "done");
    CAF_CHECK(ws.ready_state() == herald::ready_state::closing);
  };
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  auto out = c.t->frames(true);
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 4001);
  CAF_CHECK_EQUAL(out[0].close_reason, "done");
  CAF_CHECK(!c.t->closed());
  c.t->feed(client_close(4001, "done"));
  step();
  CAF_CHECK(c.t->closed());
  CAF_CHECK(c.t->frames().empty()); // no second close frame
  CAF_CHECK(has("ann close 4001 done"));
}

CAF_TEST(close from the server gives up when the peer never answers) {
  h.message = [](herald::socket<user>& ws, herald::message) {
    ws.close(1000, "");
  };
  h.idle_timeout = std::chrono::seconds{0};
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  CAF_CHECK(!c.t->closed());
  trigger_timeout();
  step();
  CAF_CHECK(c.t->closed());
  CAF_CHECK(!c.t->graceful());
  CAF_CHECK(has("ann close 1006 "));
}

CAF_TEST(terminate drops the connection without a close frame) {
  h.message = [](herald::socket<user>& ws, herald::message) { ws.terminate(); };
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  CAF_CHECK(c.t->frames().empty());
  CAF_CHECK(c.t->closed());
  CAF_CHECK(!c.t->graceful());
  CAF_CHECK(has("ann close 1006 "));
}

CAF_TEST(a vanished peer runs close with 1006) {
  auto c = connect("ann");
  c.t->vanish();
  step();
  CAF_CHECK(has("ann close 1006 "));
  CAF_CHECK(c.t->closed());
}

CAF_TEST(an idle connection is pinged then closed with 1001) {
  h.idle_timeout = std::chrono::seconds{10};
  auto c = connect("ann");
  trigger_timeout(); // first quiet tick: ping
  step();
  auto out = c.t->frames(true);
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK(out[0].op == opcode::ping);
  trigger_timeout(); // second quiet tick: close
  step();
  out = c.t->frames();
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0].close_code, 1001);
  CAF_CHECK(c.t->closed());
  CAF_CHECK(has("ann close 1001 idle timeout"));
}

CAF_TEST(a peer that answers pings stays open) {
  h.idle_timeout = std::chrono::seconds{10};
  auto c = connect("ann");
  for (int i = 0; i < 5; ++i) {
    trigger_timeout();
    step();
    c.t->feed(client_frame(opcode::pong, ""));
    step();
  }
  CAF_CHECK(!c.t->closed());
}

CAF_TEST(without pings an idle connection is closed without a ping) {
  h.idle_timeout = std::chrono::seconds{10};
  h.send_pings = false;
  auto c = connect("ann");
  trigger_timeout();
  step();
  CAF_CHECK(c.t->frames().empty());
  trigger_timeout();
  step();
  CAF_CHECK(c.t->closed());
}

CAF_TEST(a peer we stopped reading is heard while its unread input grows) {
  h.idle_timeout = std::chrono::seconds{10};
  h.backpressure_limit = 100;
  auto c = connect("ann");
  c.t->stall();
  c.t->feed(client_frame(opcode::text, std::string(120, 'x')));
  step();
  c.t->feed(client_frame(opcode::text, "y")); // its echo is dropped
  step();
  CAF_REQUIRE(c.t->paused());
  c.t->frames(true);
  trigger_timeout(); // the input above
  step();
  // Its pings arrive but wait unread: it is there, whatever its backlog.
  for (std::size_t unread : {6u, 12u, 18u}) {
    c.t->set_unread(unread);
    trigger_timeout();
    step();
    CAF_CHECK(c.t->frames().empty());
  }
  trigger_timeout(); // nothing more arrived: a ping
  step();
  auto out = c.t->frames(true);
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK(out[0].op == opcode::ping);
  trigger_timeout(); // still nothing: closed
  step();
  CAF_CHECK(c.t->closed());
  CAF_CHECK(has("ann close 1001 idle timeout"));
}

CAF_TEST(a peer that takes some of its backlog is not idle) {
  h.idle_timeout = std::chrono::seconds{10};
  h.send_pings = false;
  auto c = connect("ann");
  c.t->stall();
  c.t->feed(client_frame(opcode::text, std::string(1000, 'x')));
  step();
  CAF_REQUIRE(!c.t->paused());
  trigger_timeout(); // the input above; the backlog is 1004 bytes
  step();
  for (int i = 0; i < 3; ++i) {
    c.t->drain_some(100);
    trigger_timeout();
    step();
    CAF_CHECK(!c.t->closed());
  }
  trigger_timeout(); // took nothing: quiet
  step();
  CAF_CHECK(!c.t->closed());
  trigger_timeout(); // twice: closed
  step();
  CAF_CHECK(c.t->closed());
  CAF_CHECK(has("ann close 1001 idle timeout"));
}

CAF_TEST(send reports bytes then backpressure then drops) {
  std::vector<herald::send_status> results;
  h.message = [&](herald::socket<user>& ws, herald::message m) {
    results.push_back(ws.send_text(m.text()));
  };
  h.backpressure_limit = 100;
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, std::string(40, 'a')));
  step();
  CAF_REQUIRE_EQUAL(results.size(), 1u);
  CAF_CHECK_EQUAL(results[0], 42); // frame size: 2 + 40
  c.t->stall();
  c.t->feed(client_frame(opcode::text, std::string(60, 'b')));
  step();
  // The write went to a stalled socket: 62 bytes now wait.
  c.t->feed(client_frame(opcode::text, std::string(10, 'c')));
  step();
  CAF_REQUIRE_EQUAL(results.size(), 3u);
  CAF_CHECK_EQUAL(results[2], herald::send_backpressure);
  c.t->feed(client_frame(opcode::text, std::string(10, 'd')));
  step();
  // 62 + 12 buffered: under 100, queued behind backpressure.
  CAF_CHECK_EQUAL(results[3], herald::send_backpressure);
  c.t->feed(client_frame(opcode::text, std::string(30, 'e')));
  c.t->feed(client_frame(opcode::text, std::string(30, 'f')));
  step();
  CAF_REQUIRE_EQUAL(results.size(), 6u);
  CAF_CHECK_EQUAL(results[5], herald::send_dropped);
  CAF_CHECK(!c.t->closed());
}

CAF_TEST(drain runs once the backlog is written) {
  int drained = 0;
  h.drain = [&](herald::socket<user>&) { ++drained; };
  auto c = connect("ann");
  c.t->stall();
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  CAF_CHECK_EQUAL(drained, 0);
  c.t->drain();
  step();
  CAF_CHECK_EQUAL(drained, 1);
}

CAF_TEST(close_on_backpressure_limit closes with 1008) {
  h.backpressure_limit = 10;
  h.close_on_backpressure_limit = true;
  auto c = connect("ann");
  c.t->stall();
  c.t->feed(client_frame(opcode::text, std::string(20, 'x')));
  step();
  c.t->feed(client_frame(opcode::text, "y"));
  step();
  CAF_CHECK(c.t->closed());
  auto out = c.t->frames();
  CAF_REQUIRE(!out.empty());
  CAF_CHECK_EQUAL(out.back().close_code, 1008);
}

CAF_TEST(a peer that does not read is paused once its sends are dropped) {
  h.backpressure_limit = 100;
  auto c = connect("ann");
  c.t->stall();
  // The echo is accepted: the backlog passes the limit, nothing is
  // dropped yet, and the peer is still heard.
  c.t->feed(client_frame(opcode::text, std::string(120, 'x')));
  step();
  CAF_CHECK(!c.t->paused());
  c.t->feed(client_frame(opcode::text, "y"));
  step();
  CAF_CHECK(has("ann text y"));
  // Its echo was dropped: reading pauses until the backlog is written.
  CAF_CHECK(c.t->paused());
  c.t->drain();
  step();
  CAF_CHECK(!c.t->paused());
  // Reading resumed with the drops forgotten: over the limit again without
  // a drop, the peer is still heard.
  c.t->stall();
  c.t->feed(client_frame(opcode::text, std::string(120, 'z')));
  step();
  CAF_CHECK(!c.t->paused());
}

CAF_TEST(a peer that only pings without reading is paused at twice the limit) {
  // Pongs are never dropped: the backlog grows past the limit without a
  // drop, and reading pauses at twice the limit.
  h.backpressure_limit = 100;
  auto c = connect("ann");
  c.t->stall();
  for (int i = 0; i < 4; ++i) {
    c.t->feed(client_frame(opcode::ping, std::string(40, 'p')));
    step();
  }
  CAF_CHECK(!c.t->paused()); // 4 pongs of 42 bytes: 168
  c.t->feed(client_frame(opcode::ping, std::string(40, 'p')));
  step();
  CAF_CHECK(c.t->paused()); // 210
  c.t->drain();
  step();
  CAF_CHECK(!c.t->paused());
}

CAF_TEST(without a backpressure limit reading pauses at 16 MiB) {
  h.backpressure_limit = 0;
  auto c = connect("ann");
  c.t->stall();
  c.t->feed(client_frame(opcode::binary, std::string((8u << 20), 'x')));
  step();
  CAF_CHECK(!c.t->paused());
  c.t->feed(client_frame(opcode::binary, std::string((8u << 20), 'x')));
  step();
  CAF_CHECK(c.t->paused());
}

CAF_TEST(cork sends everything in one write) {
  h.message = [](herald::socket<user>& ws, herald::message) {
    ws.cork([&] {
      ws.send_text("1");
      ws.send_text("2");
      ws.send_text("3");
    });
  };
  auto c = connect("ann");
  c.t->feed(client_frame(opcode::text, "x"));
  step();
  CAF_REQUIRE_EQUAL(c.t->batches().size(), 1u);
  CAF_CHECK_EQUAL(c.t->batches()[0], 3u);
}

CAF_TEST(a killed connection actor still runs close and closes its socket) {
  auto c = connect("ann");
  caf::anon_send_exit(c.a, caf::exit_reason::kill);
  step();
  CAF_CHECK(has("ann close 1006 "));
  CAF_CHECK(c.t->closed());
}

CAF_TEST_FIXTURE_SCOPE_END()
