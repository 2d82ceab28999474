// The testing kit (actors/testing.hpp), used as an application would use
// it: an echo app and a small room app, each a function returning its
// websocket_handlers<T> (what main() would pass to serve as .websocket).
// The last part checks the kit itself: deliberately buggy variants of the
// apps must be caught by the same checks the correct apps pass.
#define CAF_SUITE kit

// Handlers and options are written with designated initializers, leaving
// out what they do not need, as the README does; -Wextra would flag each.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <herald/actors/testing.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using herald::testing::binary_frame;
using herald::testing::client_options;
using herald::testing::close_frame;
using herald::testing::frame_event;
using herald::testing::kind;
using herald::testing::ping_frame;
using herald::testing::pong_frame;
using herald::testing::text_frame;

namespace {

using strings = std::vector<std::string>;

// -- the apps under test -------------------------------------------------------

// Echo: every message comes back as it came, text as text, binary as binary.
struct nobody {};

herald::websocket_handlers<nobody> echo_app() {
  return {
    .message =
      [](herald::socket<nobody>& ws, herald::message m) {
        if (m.is_text())
          ws.send_text(m.text());
        else
          ws.send_binary(m.bytes());
      },
  };
}

// A room: members of a room see each other's messages (never their own),
// who joins and who leaves. "/quit" makes the server close with 4001.
struct member {
  std::string name;
  std::string room = "lobby";
  // What the close handler saw (tests read it through client.data()).
  int close_code = 0;
  std::string close_reason;
};

// Relays a message to `room` as "name: payload", keeping its kind.
void relay(herald::socket<member>& ws, std::string_view room,
           herald::message m) {
  auto line = ws.data().name + ": " + std::string{m.text()};
  if (m.is_binary())
    ws.publish_binary(room, {reinterpret_cast<const std::byte*>(line.data()),
                             line.size()});
  else
    ws.publish_text(room, line);
}

herald::websocket_handlers<member> room_app() {
  return {
    .open =
      [](herald::socket<member>& ws) {
        ws.subscribe(ws.data().room);
        ws.send_text("welcome " + ws.data().name);
        ws.publish(ws.data().room, ws.data().name + " joined");
      },
    .message =
      [](herald::socket<member>& ws, herald::message m) {
        if (m.text() == "/quit") {
          ws.close(4001, "bye " + ws.data().name);
          return;
        }
        relay(ws, ws.data().room, m);
      },
    .close =
      [](herald::socket<member>& ws, int code, std::string_view why) {
        ws.data().close_code = code;
        ws.data().close_reason = why;
        ws.publish(ws.data().room, ws.data().name + " left");
      },
  };
}

// -- fixtures -----------------------------------------------------------------

struct echo_fixture : herald::testing::fixture<nobody> {
  // What the close handler saw, "code reason" per close.
  strings closes;

  echo_fixture() : fixture(with_close_log(echo_app())) {}

  herald::websocket_handlers<nobody>
  with_close_log(herald::websocket_handlers<nobody> h) {
    h.close = [this](herald::socket<nobody>&, int code, std::string_view r) {
      closes.push_back(std::to_string(code) + " " + std::string{r});
    };
    return h;
  }
};

struct room_fixture : herald::testing::fixture<member> {
  room_fixture() : fixture(room_app()) {}
};

} // namespace

// -- echo ----------------------------------------------------------------------

CAF_TEST_FIXTURE_SCOPE(echo_tests, echo_fixture)

CAF_TEST(echo returns text as text and binary as binary in order) {
  auto& c = connect();
  c.send_text("hello");
  c.send_binary("\x00\x01\xFF");
  c.send_text("");
  run();
  CAF_CHECK_EQUAL(c.take(),
                  (std::vector<frame_event>{text_frame("hello"),
                                            binary_frame("\x00\x01\xFF"),
                                            text_frame("")}));
  CAF_CHECK_EQUAL(c.next(), frame_event{}); // nothing more
  CAF_CHECK(!c.closed());
}

CAF_TEST(nothing happens until the test runs the scheduler) {
  auto& c = connect();
  c.send_text("x");
  CAF_CHECK(c.received().empty());
  // One message: the connection reads the frame, the handler queues the
  // echo, and as no other message waits, the batch ends and it is written.
  CAF_CHECK(step());
  CAF_CHECK_EQUAL(c.received(), std::vector<frame_event>{text_frame("x")});
  CAF_CHECK(!step());
  CAF_CHECK_EQUAL(run(), 0u);
}

CAF_TEST(a ping is answered with a pong carrying its data) {
  auto& c = connect();
  c.ping("are you there");
  run();
  CAF_CHECK_EQUAL(c.next(), pong_frame("are you there"));
  CAF_CHECK_EQUAL(c.count(kind::pong), 1u);
}

CAF_TEST(a client close is echoed with its code and the server hangs up) {
  auto& c = connect();
  c.close(4000, "bye");
  run();
  CAF_CHECK_EQUAL(c.take(), std::vector<frame_event>{close_frame(4000)});
  CAF_CHECK(c.closed());
  CAF_CHECK_EQUAL(c.close_code(), 4000);
  CAF_CHECK_EQUAL(closes, strings{"4000 bye"});
  CAF_CHECK(c.ready_state() == herald::ready_state::closed);
  CAF_CHECK_EQUAL(open_connections(), 0u);
}

CAF_TEST(a close frame without a code reaches the handler as 1005) {
  auto& c = connect();
  c.close(1005);
  run();
  CAF_CHECK(c.closed());
  CAF_CHECK_EQUAL(closes, strings{"1005 "});
}

CAF_TEST(a vanished client runs close with 1006 and gets nothing) {
  auto& c = connect();
  c.vanish();
  c.send_text("too late"); // a vanished client sends nothing
  run();
  CAF_CHECK(c.received().empty());
  CAF_CHECK(c.closed());
  CAF_CHECK_EQUAL(c.close_code(), 1006);
  CAF_CHECK_EQUAL(closes, strings{"1006 "});
}

CAF_TEST(protocol violations close with the codes of RFC 6455) {
  auto& unmasked = connect();
  auto& bad_utf8 = connect();
  auto& bad_code = connect();
  unmasked.send_raw({std::byte{0x81}, std::byte{0x01}, std::byte{'x'}});
  bad_utf8.send_text("\xC0\xAF");
  bad_code.close(999);
  run();
  CAF_CHECK_EQUAL(unmasked.close_code(), 1002);
  CAF_CHECK_EQUAL(bad_utf8.close_code(), 1007);
  CAF_CHECK_EQUAL(bad_code.close_code(), 1002);
  CAF_CHECK(unmasked.closed() && bad_utf8.closed() && bad_code.closed());
}

CAF_TEST(a throwing handler closes only its connection with 1011) {
  auto h = handlers();
  std::string error;
  h.message = [](herald::socket<nobody>&, herald::message) {
    throw std::runtime_error("boom");
  };
  h.error = [&](herald::socket<nobody>&, std::string_view what) {
    error = what;
  };
  set_handlers(h);
  auto& c = connect();
  auto& other = connect();
  c.send_text("x");
  run();
  CAF_CHECK_EQUAL(error, "boom");
  CAF_CHECK_EQUAL(c.take(), std::vector<frame_event>{
                              close_frame(1011, "internal error")});
  CAF_CHECK(!other.closed());
}

CAF_TEST(an idle client that does not answer pings is closed with 1001) {
  auto h = handlers();
  h.idle_timeout = 10s;
  set_handlers(h);
  auto& c = connect(nobody{}, {.answer_pings = false});
  advance(4s);
  CAF_CHECK(c.received().empty());
  advance(1s); // half the idle timeout: a ping
  CAF_CHECK_EQUAL(c.take(), std::vector<frame_event>{ping_frame()});
  advance(4s);
  CAF_CHECK(!c.closed());
  advance(1s); // the whole idle timeout without an answer: closed
  CAF_CHECK_EQUAL(c.take(),
                  std::vector<frame_event>{close_frame(1001, "idle timeout")});
  CAF_CHECK(c.closed());
  CAF_CHECK_EQUAL(closes, strings{"1001 idle timeout"});
}

CAF_TEST(a client that answers pings stays open for as long as it likes) {
  auto h = handlers();
  h.idle_timeout = 10s;
  set_handlers(h);
  auto& c = connect(); // answers pings, as browsers do
  advance(10min);
  CAF_CHECK(!c.closed());
  // Ticks every 5 s; a ping after each quiet tick, and the pong makes the
  // next tick a busy one: one ping per 10 s.
  CAF_CHECK_EQUAL(c.count(kind::ping), 60u);
  CAF_CHECK_EQUAL(c.count(kind::close), 0u);
}

CAF_TEST(next_timer fires one timer instant at a time) {
  auto h = handlers();
  h.idle_timeout = 10s;
  h.send_pings = false;
  set_handlers(h);
  auto& c = connect();
  auto t0 = now();
  CAF_CHECK(next_timer());
  CAF_CHECK(now() - t0 == 5s);
  CAF_CHECK(!c.closed());
  CAF_CHECK(next_timer());
  CAF_CHECK(now() - t0 == 10s);
  CAF_CHECK(c.closed()); // no pings: two quiet ticks close it
  CAF_CHECK_EQUAL(c.take(),
                  std::vector<frame_event>{close_frame(1001, "idle timeout")});
}

CAF_TEST(a stalled client makes backpressure and drain runs once it reads) {
  auto h = handlers();
  int drained = 0;
  std::vector<herald::send_status> results;
  h.message = [&](herald::socket<nobody>& ws, herald::message m) {
    results.push_back(ws.send_text(m.text()));
  };
  h.drain = [&](herald::socket<nobody>&) { ++drained; };
  set_handlers(h);
  auto& c = connect();
  c.stall();
  c.send_text("a");
  run();
  c.send_text("b");
  run();
  CAF_CHECK_EQUAL(results, (std::vector<herald::send_status>{3, -1}));
  CAF_CHECK_EQUAL(drained, 0);
  c.drain();
  run();
  CAF_CHECK_EQUAL(drained, 1);
}

CAF_TEST(client options reach the handlers and counters follow) {
  auto h = handlers();
  h.open = [](herald::socket<nobody>& ws) {
    ws.send_text(ws.remote_endpoint() + " " + ws.remote_address() + " "
                 + std::string{ws.protocol()});
  };
  set_handlers(h);
  auto& c = connect(nobody{},
                    {.remote_address = "10.1.2.3:4567", .protocol = "chat.v2"});
  CAF_CHECK_EQUAL(c.texts(), strings{"10.1.2.3:4567 10.1.2.3 chat.v2"});
  c.send_text("one");
  c.send_text("two");
  run();
  CAF_CHECK_EQUAL(stats().messages_in.load(), 2u);
  CAF_CHECK_EQUAL(stats().connections_total.load(), 1u);
  CAF_CHECK_EQUAL(open_connections(), 1u);
}

CAF_TEST(messages in are counted while the connection writes nothing) {
  auto h = handlers();
  std::size_t heard = 0;
  h.message = [&](herald::socket<nobody>&, herald::message) { ++heard; };
  set_handlers(h);
  auto& c = connect();
  c.send_text("one");
  c.send_binary("two");
  run();
  CAF_CHECK_EQUAL(heard, 2u);
  CAF_CHECK(c.received().empty());
  CAF_CHECK(!c.closed());
  CAF_CHECK_EQUAL(stats().messages_in.load(), 2u);
  CAF_CHECK_EQUAL(stats().bytes_in.load(), 6u);
}

CAF_TEST(permessage - deflate is negotiated and used as by the server) {
  auto h = handlers();
  h.per_message_deflate.enabled = true;
  h.message = [](herald::socket<nobody>& ws, herald::message m) {
    ws.send_text(m.text(), true); // compress when agreed and worth it
  };
  set_handlers(h);
  auto& zipped = connect(nobody{}, {.extensions = std::string{
                                      herald::testing::browser_deflate_offer}});
  auto& plain = connect();
  CAF_CHECK(zipped.deflate().has_value());
  CAF_CHECK(!plain.deflate().has_value());
  std::string long_text(200, 'a');
  for (auto* c : {&zipped, &plain}) {
    c->send_text(long_text);
    c->send_text("short");               // under the threshold
    c->send_text(long_text + "!", true); // the client compresses too
  }
  run();
  auto z = zipped.take();
  CAF_REQUIRE_EQUAL(z.size(), 3u);
  CAF_CHECK_EQUAL(z[0], text_frame(long_text)); // inflated for comparison
  CAF_CHECK(z[0].compressed);
  CAF_CHECK(!z[1].compressed);
  CAF_CHECK_EQUAL(z[2], text_frame(long_text + "!"));
  CAF_CHECK(z[2].compressed);
  // Without the extension the same handlers send plain frames, and a
  // compressed frame from the client is a protocol error.
  auto p = plain.take();
  CAF_REQUIRE_EQUAL(p.size(), 3u);
  CAF_CHECK_EQUAL(p[0], text_frame(long_text));
  CAF_CHECK(!p[0].compressed);
  CAF_CHECK_EQUAL(p[2].kind, kind::close);
  CAF_CHECK_EQUAL(p[2].code, 1002);
}

CAF_TEST(a compressed server publish is compressed only where agreed) {
  auto h = handlers();
  h.per_message_deflate.enabled = true;
  h.open = [](herald::socket<nobody>& ws) { ws.subscribe("news"); };
  set_handlers(h);
  auto& zipped = connect(nobody{}, {.extensions = std::string{
                                      herald::testing::browser_deflate_offer}});
  auto& plain = connect();
  std::string story(500, 'n');
  CAF_CHECK_GREATER(publish("news", story, true), 0);
  run();
  auto z = zipped.next();
  auto p = plain.next();
  CAF_CHECK_EQUAL(z, text_frame(story));
  CAF_CHECK(z.compressed);
  CAF_CHECK_EQUAL(p, text_frame(story));
  CAF_CHECK(!p.compressed);
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- room ----------------------------------------------------------------------

CAF_TEST_FIXTURE_SCOPE(room_tests, room_fixture)

CAF_TEST(a message reaches everyone else in the room but not the sender) {
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  auto& cid = connect({"cid"});
  auto& dan = connect({"dan", "attic"});
  CAF_CHECK_EQUAL(ann.texts(),
                  (strings{"welcome ann", "bob joined", "cid joined"}));
  CAF_CHECK_EQUAL(dan.texts(), strings{"welcome dan"});
  for (auto* c : clients())
    c->take();
  ann.send_text("hi");
  run();
  CAF_CHECK_EQUAL(bob.take(), std::vector<frame_event>{text_frame("ann: hi")});
  CAF_CHECK_EQUAL(cid.take(), std::vector<frame_event>{text_frame("ann: hi")});
  CAF_CHECK(ann.take().empty()); // the sender is left out
  CAF_CHECK(dan.take().empty()); // other rooms hear nothing
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 3u);
  CAF_CHECK_EQUAL(subscriber_count("attic"), 1u);
  CAF_CHECK_EQUAL(ann.subscriptions(), strings{"lobby"});
}

CAF_TEST(with publish_to_self the sender gets its own message) {
  auto h = handlers();
  h.publish_to_self = true;
  set_handlers(h);
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  ann.take();
  bob.take();
  ann.send_text("hi");
  run();
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("ann: hi")});
  CAF_CHECK_EQUAL(bob.take(), std::vector<frame_event>{text_frame("ann: hi")});
}

CAF_TEST(a vanished member leaves its room and the others are told) {
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  auto& cid = connect({"cid"});
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 3u);
  ann.take();
  cid.take();
  bob.vanish();
  run();
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 2u);
  CAF_CHECK_EQUAL(bob.data().close_code, 1006);
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("bob left")});
  CAF_CHECK_EQUAL(cid.take(), std::vector<frame_event>{text_frame("bob left")});
  ann.close();
  cid.close(1001, "navigating away");
  run();
  CAF_CHECK_EQUAL(cid.data().close_code, 1001);
  CAF_CHECK_EQUAL(cid.data().close_reason, "navigating away");
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 0u);
  CAF_CHECK_EQUAL(topic_count(), 0u); // the last one out stops the topic
  CAF_CHECK_EQUAL(open_connections(), 0u);
}

CAF_TEST(a hundred messages from one sender arrive in order) {
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  auto& cid = connect({"cid"});
  for (auto* c : clients())
    c->take(); // welcomes and joins
  std::vector<frame_event> sent;
  for (int i = 0; i < 100; ++i) {
    sent.push_back(text_frame("ann: " + std::to_string(i)));
    ann.send_text(std::to_string(i));
  }
  run();
  CAF_CHECK_EQUAL(bob.take(), sent);
  CAF_CHECK_EQUAL(cid.take(), sent);
  CAF_CHECK(ann.take().empty());
}

CAF_TEST(two senders interleave but each keeps its own order) {
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  auto& cid = connect({"cid"});
  cid.take();
  for (int i = 0; i < 50; ++i) {
    ann.send_text(std::to_string(i));
    bob.send_text(std::to_string(i));
  }
  run();
  strings from_ann, from_bob;
  for (auto& e : cid.take()) {
    if (e.data.starts_with("ann: "))
      from_ann.push_back(e.data.substr(5));
    else if (e.data.starts_with("bob: "))
      from_bob.push_back(e.data.substr(5));
  }
  strings expected;
  for (int i = 0; i < 50; ++i)
    expected.push_back(std::to_string(i));
  CAF_CHECK_EQUAL(from_ann, expected);
  CAF_CHECK_EQUAL(from_bob, expected);
}

CAF_TEST(server publish reaches every subscriber and needs subscribers) {
  auto& ann = connect({"ann"});
  auto& bob = connect({"bob"});
  ann.take();
  bob.take();
  CAF_CHECK_EQUAL(publish("lobby", "news"), 6); // the frame's size
  CAF_CHECK_EQUAL(publish("nowhere", "news"), herald::send_dropped);
  run();
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("news")});
  CAF_CHECK_EQUAL(bob.take(), std::vector<frame_event>{text_frame("news")});
}

CAF_TEST(a plain actor subscribed with herald::subscribe gets a publish made
           before the registry saw it) {
  // An application actor (not a connection) joins through the free
  // function; a server publish right after it, with nothing run in
  // between, must not be dropped as "no subscribers".
  auto got = std::make_shared<strings>();
  // Spawned with an argument: CAF 0.17 trips UBSan on a function-based
  // actor spawned without one.
  auto listener = sys.spawn(
    [](caf::event_based_actor*, std::shared_ptr<strings> out) -> caf::behavior {
      return {
        [out](const herald::msg::delivery& d) {
          for (auto& m : d.messages)
            out->push_back(std::string{m.text()});
        },
      };
    },
    got);
  herald::subscribe(registry(), "alerts", listener);
  // Still on its way, but counted from the call.
  CAF_CHECK_EQUAL(subscriber_count("alerts"), 1u);
  CAF_CHECK_EQUAL(publish("alerts", "fire"), 6);
  run();
  CAF_CHECK_EQUAL(subscriber_count("alerts"), 1u);
  CAF_CHECK_EQUAL(*got, strings{"fire"});
  // Settled: a topic nobody joined is empty again.
  CAF_CHECK_EQUAL(publish("nowhere", "news"), herald::send_dropped);
}

CAF_TEST(a server close waits for the answer of the client) {
  auto& ann = connect({"ann"});
  ann.take();
  ann.send_text("/quit");
  run(); // the client answers the close frame at once, as browsers do
  CAF_CHECK_EQUAL(ann.take(),
                  std::vector<frame_event>{close_frame(4001, "bye ann")});
  CAF_CHECK(ann.closed());
  CAF_CHECK_EQUAL(ann.data().close_code, 4001); // the client's echo
}

CAF_TEST(a server close gives up on a client that never answers) {
  auto& ann = connect({"ann"}, {.answer_close = false});
  ann.send_text("/quit");
  run();
  CAF_CHECK(ann.got_close());
  CAF_CHECK(!ann.closed());
  CAF_CHECK(ann.ready_state() == herald::ready_state::closing);
  advance(5s); // the close timeout
  CAF_CHECK(ann.closed());
  CAF_CHECK_EQUAL(ann.close_code(), 4001);
  CAF_CHECK_EQUAL(ann.data().close_code, 1006);
}

CAF_TEST(each connection keeps its own data) {
  auto& ann = connect({"ann", "attic"});
  auto& bob = connect({"bob"});
  CAF_CHECK_EQUAL(ann.data().room, "attic");
  CAF_CHECK_EQUAL(bob.data().room, "lobby");
  CAF_CHECK(ann.is_subscribed("attic"));
  CAF_CHECK(!bob.is_subscribed("attic"));
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- fetch ---------------------------------------------------------------------

namespace {

// The room app's HTTP side: /room?name=N upgrades, / says hello.
herald::fetch_result room_fetch(herald::request& req,
                                herald::server<member>& srv) {
  if (req.path() == "/room") {
    auto name = req.query("name").value_or("");
    if (name.empty())
      return herald::response{400, "name required\n"};
    herald::header_list extra;
    auto offered = req.protocols();
    if (std::find(offered.begin(), offered.end(), "room.v1") != offered.end())
      extra.emplace_back("Sec-WebSocket-Protocol", "room.v1");
    if (srv.upgrade(req, member{name}, extra))
      return herald::upgraded;
    return herald::response{400, "upgrade expected\n"};
  }
  if (req.path() == "/boom")
    throw std::runtime_error("boom");
  if (req.path() == "/")
    return herald::response{200, "hello"};
  return std::nullopt;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(fetch_tests, room_fixture)

CAF_TEST(fetch upgrades with the data it chose) {
  using herald::testing::upgrade_request;
  auto r = fetch(room_fetch, upgrade_request("/room?name=ann"));
  CAF_CHECK_EQUAL(r.status, 101);
  CAF_REQUIRE(r.client != nullptr);
  CAF_CHECK_EQUAL(r.client->data().name, "ann");
  CAF_CHECK_EQUAL(r.client->texts(), strings{"welcome ann"});
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 1u);
  auto p = fetch(room_fetch,
                 upgrade_request("/room?name=bob",
                                 {{"Sec-WebSocket-Protocol", "x, room.v1"}},
                                 "10.0.0.9:999"));
  CAF_REQUIRE(p.client != nullptr);
  CAF_CHECK_EQUAL(p.headers,
                  (herald::header_list{{"Sec-WebSocket-Protocol", "room.v1"}}));
  CAF_CHECK_EQUAL(p.client->remote_address(), "10.0.0.9:999");
  CAF_CHECK(!p.client->deflate());
  CAF_CHECK_EQUAL(r.client->texts(), (strings{"welcome ann", "bob joined"}));
}

CAF_TEST(fetch negotiates permessage - deflate as the server does) {
  auto h = handlers();
  h.per_message_deflate.enabled = true;
  set_handlers(h);
  auto r = fetch(room_fetch,
                 herald::testing::upgrade_request(
                   "/room?name=ann",
                   {{"Sec-WebSocket-Extensions",
                     std::string{herald::testing::browser_deflate_offer}}}));
  CAF_REQUIRE(r.client != nullptr);
  CAF_CHECK(r.client->deflate().has_value());
  CAF_REQUIRE_EQUAL(r.headers.size(), 1u);
  CAF_CHECK_EQUAL(r.headers[0].first, "Sec-WebSocket-Extensions");
}

CAF_TEST(fetch answers like the server when there is no upgrade) {
  using herald::testing::http_request;
  using herald::testing::upgrade_request;
  auto bad_name = fetch(room_fetch, upgrade_request("/room"));
  CAF_CHECK_EQUAL(bad_name.status, 400);
  CAF_CHECK_EQUAL(bad_name.body, "name required\n");
  CAF_CHECK(bad_name.client == nullptr);
  CAF_CHECK_EQUAL(fetch(room_fetch, http_request("GET", "/")).status, 200);
  CAF_CHECK_EQUAL(fetch(room_fetch, http_request("GET", "/x")).status, 404);
  CAF_CHECK_EQUAL(fetch(room_fetch, http_request("GET", "/boom")).status, 500);
  // Plain GET to /room: no upgrade attempt, fetch's own answer.
  CAF_CHECK_EQUAL(fetch(room_fetch, http_request("GET", "/room?name=a")).body,
                  "upgrade expected\n");
  // A broken upgrade gets the handshake's answer whatever fetch returns.
  auto old =
    fetch(room_fetch,
          herald::testing::http_request("GET", "/room?name=a",
                                        {{"Host", "localhost"},
                                         {"Upgrade", "websocket"},
                                         {"Connection", "Upgrade"},
                                         {"Sec-WebSocket-Key",
                                          "dGhlIHNhbXBsZSBub25jZQ=="},
                                         {"Sec-WebSocket-Version", "8"}}));
  CAF_CHECK_EQUAL(old.status, 426);
  CAF_CHECK_EQUAL(old.headers,
                  (herald::header_list{{"Sec-WebSocket-Version", "13"}}));
  auto no_key =
    fetch(room_fetch,
          herald::testing::http_request("GET", "/room?name=a",
                                        {{"Host", "localhost"},
                                         {"Upgrade", "websocket"},
                                         {"Connection", "Upgrade"},
                                         {"Sec-WebSocket-Version", "13"}}));
  CAF_CHECK_EQUAL(no_key.status, 400);
  CAF_CHECK_EQUAL(no_key.body, "missing or invalid Sec-WebSocket-Key\n");
  CAF_CHECK_EQUAL(topic_count(), 0u);
}

CAF_TEST(fetch publishes through its server) {
  auto& ann = connect({"ann"});
  ann.take();
  auto say = [](herald::request& req,
                herald::server<member>& srv) -> herald::fetch_result {
    auto n = srv.subscriber_count("lobby");
    srv.publish("lobby", req.body());
    return herald::response{200, std::to_string(n)};
  };
  auto r = fetch(say, herald::testing::http_request("POST", "/say", {}, "hi"));
  CAF_CHECK_EQUAL(r.status, 200);
  CAF_CHECK_EQUAL(r.body, "1");
  run();
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("hi")});
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- deferred fetch ------------------------------------------------------------

namespace {

using herald::testing::http_request;
using herald::testing::upgrade_request;
using deferred_member = herald::deferred_request<member>;
using approve_atom = caf::atom_constant<caf::atom("approve")>;

// An auth service as an actor: names on its list are upgraded, others get
// 403. It answers when told to (approve_atom), as a slow service would.
caf::behavior
auth_actor(caf::stateful_actor<std::vector<deferred_member>>* self,
           strings allowed) {
  return {
    [=](deferred_member& d) { self->state.push_back(std::move(d)); },
    [=](approve_atom) {
      for (auto& d : self->state) {
        auto name = d.req().query("name").value_or("");
        if (std::find(allowed.begin(), allowed.end(), name) != allowed.end())
          d.upgrade(member{name});
        else
          d.respond(herald::response{403, "not on the list\n"});
      }
      self->state.clear();
    },
  };
}

struct deferred_fixture : herald::testing::fixture<member> {
  deferred_fixture() : fixture(room_app()) {
    auth = sys.spawn(auth_actor, strings{"ann", "bob"});
  }
  ~deferred_fixture() override {
    caf::anon_send_exit(auth, caf::exit_reason::kill);
  }
  herald::fetch_result via_auth(herald::request& req,
                                herald::server<member>& srv) {
    return srv.defer_to(req, auth);
  }
  template <class... Ts>
  herald::testing::fetch_outcome<member> ask(Ts&&... xs) {
    return fetch(
      [this](herald::request& req, herald::server<member>& srv) {
        return via_auth(req, srv);
      },
      std::forward<Ts>(xs)...);
  }
  caf::actor auth;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(deferred_tests, deferred_fixture)

CAF_TEST(a deferred upgrade waits for the actor then connects) {
  auto r = ask(upgrade_request("/room?name=ann"));
  CAF_CHECK(r.deferred);
  CAF_CHECK_EQUAL(r.status, 0);
  CAF_CHECK(r.client == nullptr);
  CAF_CHECK_EQUAL(pending_requests(), 1u);
  CAF_CHECK_EQUAL(settle(r).status, 0); // nobody answered yet
  caf::anon_send(auth, approve_atom::value);
  auto done = settle(r);
  CAF_CHECK(!done.deferred);
  CAF_CHECK_EQUAL(done.status, 101);
  CAF_REQUIRE(done.client != nullptr);
  CAF_CHECK_EQUAL(done.client->data().name, "ann");
  CAF_CHECK_EQUAL(done.client->texts(), strings{"welcome ann"});
  CAF_CHECK_EQUAL(subscriber_count("lobby"), 1u);
  CAF_CHECK_EQUAL(pending_requests(), 0u);
  // Settling again reports the same answer, connects no second client.
  CAF_CHECK_EQUAL(settle(r).client, done.client);
  CAF_CHECK_EQUAL(clients().size(), 1u);
}

CAF_TEST(a deferred request can be refused over HTTP) {
  auto r = ask(upgrade_request("/room?name=eve"));
  caf::anon_send(auth, approve_atom::value);
  auto done = settle(r);
  CAF_CHECK_EQUAL(done.status, 403);
  CAF_CHECK_EQUAL(done.body, "not on the list\n");
  CAF_CHECK(done.client == nullptr);
  CAF_CHECK_EQUAL(open_connections(), 0u);
}

CAF_TEST(a client that leaves while pending makes answers no - ops) {
  std::vector<deferred_member> kept;
  auto keep = [&](herald::request& req,
                  herald::server<member>& srv) -> herald::fetch_result {
    kept.push_back(srv.defer(req));
    return herald::deferred;
  };
  auto r = fetch(keep, upgrade_request("/room?name=ann"));
  CAF_REQUIRE_EQUAL(kept.size(), 1u);
  CAF_CHECK(kept[0].pending());
  CAF_CHECK_EQUAL(kept[0].req().query("name"),
                  std::optional<std::string>{"ann"});
  hang_up(r);
  CAF_CHECK(!kept[0].pending());
  CAF_CHECK(kept[0].gone());
  CAF_CHECK(!kept[0].upgrade(member{"ann"}));
  CAF_CHECK(!kept[0].respond(herald::response{200, "late"}));
  CAF_CHECK_EQUAL(settle(r).status, 0);
  CAF_CHECK_EQUAL(open_connections(), 0u);
  CAF_CHECK_EQUAL(pending_requests(), 0u);
}

CAF_TEST(an unanswered request times out with 503
         and a late answer is a no - op) {
  auto r = ask(http_request("GET", "/room?name=ann"));
  auto late = time_out(r);
  CAF_CHECK_EQUAL(late.status, 503);
  caf::anon_send(auth, approve_atom::value);
  run(); // the actor answers: nothing happens
  CAF_CHECK_EQUAL(open_connections(), 0u);
  CAF_CHECK_EQUAL(pending_requests(), 0u);
}

CAF_TEST(a deferred plain request is not upgraded and answers twice only once) {
  std::vector<deferred_member> kept;
  auto keep = [&](herald::request& req,
                  herald::server<member>& srv) -> herald::fetch_result {
    kept.push_back(srv.defer(req));
    return herald::deferred;
  };
  auto r = fetch(keep, http_request("GET", "/room?name=ann"));
  CAF_REQUIRE_EQUAL(kept.size(), 1u);
  CAF_CHECK(!kept[0].upgrade(member{"ann"})); // no upgrade attempt
  CAF_CHECK(kept[0].pending());               // so it still waits
  CAF_CHECK(kept[0].respond(herald::response{200, "first"}));
  CAF_CHECK(!kept[0].respond(herald::response{200, "second"}));
  auto done = settle(r);
  CAF_CHECK_EQUAL(done.status, 200);
  CAF_CHECK_EQUAL(done.body, "first");
}

CAF_TEST(a malformed deferred upgrade gets the handshake answer) {
  auto r = ask(http_request("GET", "/room?name=ann",
                            {{"Host", "localhost"},
                             {"Upgrade", "websocket"},
                             {"Connection", "Upgrade"},
                             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                             {"Sec-WebSocket-Version", "8"}}));
  caf::anon_send(auth, approve_atom::value);
  auto done = settle(r);
  CAF_CHECK_EQUAL(done.status, 426);
  CAF_CHECK(done.client == nullptr);
}

CAF_TEST(deferred without defer and defer without deferred) {
  auto bad = fetch([](herald::request&, herald::server<member>&)
                     -> herald::fetch_result { return herald::deferred; },
                   http_request("GET", "/"));
  CAF_CHECK_EQUAL(bad.status, 500);
  deferred_member kept;
  auto changed_mind = fetch(
    [&](herald::request& req,
        herald::server<member>& srv) -> herald::fetch_result {
      kept = srv.defer(req);
      return herald::response{200, "at once"};
    },
    http_request("GET", "/"));
  CAF_CHECK_EQUAL(changed_mind.status, 200);
  CAF_CHECK(!kept.pending());
  CAF_CHECK(!kept.respond(herald::response{200, "later"}));
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- the server inside handlers -----------------------------------------------

namespace {

// Bun's chat example: the handlers publish through the server; "count"
// asks the server how many are in the room.
herald::websocket_handlers<member> server_room() {
  herald::websocket_handlers<member> h;
  h.open = [](herald::socket<member>& ws) {
    ws.subscribe(ws.data().room);
    ws.server().publish(ws.data().room, ws.data().name + " joined");
  };
  h.message = [](herald::socket<member>& ws, herald::message m) {
    auto srv = ws.server();
    if (m.text() == "count") {
      ws.send("count " + std::to_string(srv.subscriber_count(ws.data().room)));
      return;
    }
    // The server's publish reaches the sender too; forwarding keeps the
    // message's kind.
    srv.publish(ws.data().room, m);
    ws.send(m);
  };
  return h;
}

struct server_fixture : herald::testing::fixture<member> {
  server_fixture() : fixture(server_room()) {}
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(server_in_handlers, server_fixture)

CAF_TEST(handlers reach their server) {
  auto& ann = connect({"ann"});
  CAF_CHECK_EQUAL(ann.take(),
                  std::vector<frame_event>{text_frame("ann joined")});
  auto& bob = connect({"bob"});
  CAF_CHECK_EQUAL(ann.take(),
                  std::vector<frame_event>{text_frame("bob joined")});
  CAF_CHECK_EQUAL(bob.take(),
                  std::vector<frame_event>{text_frame("bob joined")});
  bob.send_text("count");
  run();
  CAF_CHECK_EQUAL(bob.take(), std::vector<frame_event>{text_frame("count 2")});
  bob.send_binary("\x01\x02");
  bob.send_text("hi");
  run();
  CAF_CHECK_EQUAL(ann.take(),
                  (std::vector<frame_event>{binary_frame("\x01\x02"),
                                            text_frame("hi")}));
  // bob: its own publish (the server excludes nobody) and its echo.
  CAF_CHECK_EQUAL(bob.take_messages().size(), 4u);
  CAF_CHECK_EQUAL(server_handle().subscriber_count("lobby"), 2u);
}

CAF_TEST(open counts its own subscription as subscriberCount does in Bun) {
  // Bun's documented use: subscribe in open, then tell the room how many
  // are online; unsubscribe, then tell the rest. The counts are taken in
  // the handlers, before the registry has the change.
  herald::websocket_handlers<member> h;
  auto online = [](herald::socket<member>& ws) {
    auto srv = ws.server();
    auto& room = ws.data().room;
    srv.publish(room, std::to_string(srv.subscriber_count(room)) + " online");
  };
  h.open = [=](herald::socket<member>& ws) {
    ws.subscribe(ws.data().room);
    ws.subscribe(ws.data().room); // twice is once
    online(ws);
  };
  h.message = [=](herald::socket<member>& ws, herald::message) {
    ws.unsubscribe(ws.data().room);
    online(ws);
  };
  herald::testing::fixture<member> f{std::move(h)};
  auto& ann = f.connect({"ann"});
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("1 online")});
  auto& bob = f.connect({"bob"});
  auto& cid = f.connect({"cid"});
  CAF_CHECK_EQUAL(ann.take(),
                  (std::vector<frame_event>{text_frame("2 online"),
                                            text_frame("3 online")}));
  CAF_CHECK_EQUAL(bob.take(),
                  (std::vector<frame_event>{text_frame("2 online"),
                                            text_frame("3 online")}));
  CAF_CHECK_EQUAL(cid.take(), std::vector<frame_event>{text_frame("3 online")});
  bob.send_text("leave");
  f.run();
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{text_frame("2 online")});
  CAF_CHECK(bob.take().empty());
  CAF_CHECK_EQUAL(f.subscriber_count("lobby"), 2u);
  // A vanished member is taken off once, by the registry.
  cid.vanish();
  f.run();
  CAF_CHECK_EQUAL(f.subscriber_count("lobby"), 1u);
  CAF_CHECK_EQUAL(f.topic_count(), 1u);
  ann.send_text("leave");
  f.run();
  CAF_CHECK_EQUAL(f.subscriber_count("lobby"), 0u);
  CAF_CHECK_EQUAL(f.topic_count(), 0u);
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- the kit itself ------------------------------------------------------------

namespace {

// The checks a room test makes, run on `app`; returns the ones that fail.
// The correct app must pass them all, and each buggy app below must fail
// exactly the check that describes its bug: proof that a test written with
// the kit goes red when the behaviour is wrong.
strings room_spec(herald::websocket_handlers<member> app) {
  strings failed;
  auto check = [&](bool ok, const char* what) {
    if (!ok)
      failed.push_back(what);
  };
  herald::testing::fixture<member> f{std::move(app)};
  auto& ann = f.connect({"ann"});
  auto& bob = f.connect({"bob"});
  auto& dan = f.connect({"dan", "attic"});
  for (auto* c : f.clients())
    c->take();
  ann.send_text("1");
  ann.send_text("2");
  ann.send_text("3");
  f.run();
  check(ann.take().empty(), "the sender does not get its own message");
  check(bob.take()
          == std::vector<frame_event>{text_frame("ann: 1"),
                                      text_frame("ann: 2"),
                                      text_frame("ann: 3")},
        "the others get every message once, in order");
  check(dan.take().empty(), "other rooms hear nothing");
  ann.send_binary("\x01\x02");
  f.run();
  check(bob.take() == std::vector<frame_event>{binary_frame("ann: \x01\x02")},
        "binary stays binary");
  ann.vanish();
  f.run();
  check(bob.take() == std::vector<frame_event>{text_frame("ann left")},
        "the others hear who left");
  check(f.subscriber_count("lobby") == 1, "who left is unsubscribed");
  return failed;
}

// Bug: publishes to itself although the app promises to leave the sender
// out (a reasonable-looking option that changes behaviour).
herald::websocket_handlers<member> room_app_echoing_sender() {
  auto h = room_app();
  h.publish_to_self = true;
  return h;
}

// Bug: forgets the leave notice.
herald::websocket_handlers<member> room_app_silent_leave() {
  auto h = room_app();
  h.close = [](herald::socket<member>& ws, int code, std::string_view) {
    ws.data().close_code = code;
  };
  return h;
}

// Bug: relays everything as text, binary included.
herald::websocket_handlers<member> room_app_binary_as_text() {
  auto h = room_app();
  h.message = [](herald::socket<member>& ws, herald::message m) {
    ws.publish_text(ws.data().room,
                    ws.data().name + ": " + std::string{m.text()});
  };
  return h;
}

// Bug: relays messages in the wrong order (queues two, sends newest first).
herald::websocket_handlers<member> room_app_reordering() {
  auto h = room_app();
  h.message = [held =
                 std::make_shared<std::string>()](herald::socket<member>& ws,
                                                  herald::message m) {
    auto line = ws.data().name + ": " + std::string{m.text()};
    if (held->empty()) {
      *held = line;
      return;
    }
    ws.publish(ws.data().room, line);
    ws.publish(ws.data().room, *held);
    held->clear();
  };
  return h;
}

// Bug: relays to every room instead of the member's own.
herald::websocket_handlers<member> room_app_wrong_room() {
  auto h = room_app();
  h.message = [](herald::socket<member>& ws, herald::message m) {
    for (auto room : {"lobby", "attic"})
      relay(ws, room, m);
  };
  return h;
}

} // namespace

CAF_TEST(the correct room app passes its spec) {
  CAF_CHECK_EQUAL(room_spec(room_app()), strings{});
}

CAF_TEST(a room app that does not leave the sender out is caught) {
  CAF_CHECK_EQUAL(room_spec(room_app_echoing_sender()),
                  strings{"the sender does not get its own message"});
}

CAF_TEST(a room app that forgets the leave notice is caught) {
  CAF_CHECK_EQUAL(room_spec(room_app_silent_leave()),
                  strings{"the others hear who left"});
}

CAF_TEST(a room app that turns binary into text is caught) {
  CAF_CHECK_EQUAL(room_spec(room_app_binary_as_text()),
                  strings{"binary stays binary"});
}

CAF_TEST(a room app that reorders messages is caught) {
  auto failed = room_spec(room_app_reordering());
  CAF_CHECK(std::find(failed.begin(), failed.end(),
                      "the others get every message once, in order")
            != failed.end());
}

CAF_TEST(a room app that publishes to the wrong room is caught) {
  CAF_CHECK_EQUAL(room_spec(room_app_wrong_room()),
                  strings{"other rooms hear nothing"});
}

CAF_TEST(the echo checks catch an echo that turns binary into text) {
  auto observe = [](herald::websocket_handlers<nobody> app) {
    herald::testing::fixture<nobody> f{std::move(app)};
    auto& c = f.connect();
    c.send_binary("\x01\x02");
    f.run();
    return c.next();
  };
  auto buggy = echo_app();
  buggy.message = [](herald::socket<nobody>& ws, herald::message m) {
    ws.send_text(m.text());
  };
  CAF_CHECK_EQUAL(observe(echo_app()), binary_frame("\x01\x02"));
  CAF_CHECK_NOT_EQUAL(observe(buggy), binary_frame("\x01\x02"));
  CAF_CHECK_EQUAL(observe(buggy), text_frame("\x01\x02"));
}

CAF_TEST(frame comparisons tell kinds codes and reasons apart) {
  CAF_CHECK_NOT_EQUAL(text_frame("x"), binary_frame("x"));
  CAF_CHECK_NOT_EQUAL(ping_frame("x"), pong_frame("x"));
  CAF_CHECK_NOT_EQUAL(close_frame(1000), close_frame(1001));
  CAF_CHECK_NOT_EQUAL(close_frame(1000, "a"), close_frame(1000, "b"));
  CAF_CHECK_NOT_EQUAL(frame_event{}, text_frame(""));
  CAF_CHECK_EQUAL(to_string(close_frame(1001, "idle timeout")),
                  "close 1001 \"idle timeout\"");
  CAF_CHECK_EQUAL(to_string(binary_frame("\x01z")), "binary \"\\x01z\"");
  CAF_CHECK_EQUAL(to_string(frame_event{}), "none");
}

CAF_TEST(tearing a fixture down runs no handler) {
  int closes = 0;
  {
    auto app = room_app();
    app.close = [&closes](herald::socket<member>&, int, std::string_view) {
      ++closes;
    };
    herald::testing::fixture<member> f{std::move(app)};
    f.connect({"ann"});
    f.connect({"bob"});
    f.run();
  }
  // The connections were stopped with the fixture, without calling back
  // into handlers whose captured state may already be gone.
  CAF_CHECK_EQUAL(closes, 0);
}
