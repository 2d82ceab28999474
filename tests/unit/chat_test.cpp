// The chat app's room logic (app/chat/room.hpp), tested with the testing
// kit: the same handlers main() serves, run against fake clients.
//
// Needs app/chat/room.hpp (chat::member, chat::handlers(),
// chat::open_socket(), chat::valid_label()); until it exists this file
// compiles to nothing. Link app/chat/room.cpp and app/chat/json.cpp.
#define CAF_SUITE chat

// Client options are written with designated initializers, leaving out
// what they do not need; -Wextra would flag each.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#if __has_include(<herald/app/chat/room.hpp>)

// Boost.JSON before CAF's test DSL, whose macros have common names.
#include <boost/json.hpp>

#include <herald/actors/testing.hpp>
#include <herald/app/chat/room.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using herald::testing::close_frame;
using herald::testing::frame_event;
using herald::testing::upgrade_request;

namespace json = boost::json;

namespace {

using strings = std::vector<std::string>;

// A chat event without its timestamp: "join general ann",
// "message general ann hello", "error <what>"; anything that is not a chat
// event (binary, control frames, bad JSON) shows as its to_string().
std::string summary(const frame_event& e) {
  if (!e.is_text())
    return to_string(e);
  json::error_code ec;
  auto v = json::parse(e.data, ec);
  auto* o = ec ? nullptr : v.if_object();
  if (!o || !o->contains("type"))
    return to_string(e);
  auto str = [&](const char* key) -> std::string {
    auto* x = o->if_contains(key);
    return x && x->is_string() ? std::string{x->get_string()} : "?";
  };
  auto type = str("type");
  if (type == "error")
    return "error " + str("error");
  auto out = type + " " + str("room") + " " + str("name");
  if (type == "message")
    out += " " + str("text");
  // Every event but welcome carries a time in milliseconds.
  if (type != "welcome" && !(o->contains("time") && o->at("time").is_int64()))
    out += " (no time)";
  return out;
}

strings summaries(const std::vector<frame_event>& events) {
  strings out;
  for (auto& e : events)
    out.push_back(summary(e));
  return out;
}

std::string say(std::string_view text) {
  json::object o;
  o["type"] = "message";
  o["text"] = text;
  return json::serialize(o);
}

struct chat_fixture : herald::testing::fixture<chat::member> {
  chat_fixture() : fixture(chat::handlers()) {}

  // Connects `name` to `room` and forgets what it received on the way.
  client& join(std::string name, std::string room = "general") {
    auto& c = connect({std::move(name), std::move(room)});
    c.take();
    return c;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(chat_tests, chat_fixture)

CAF_TEST(a new member is welcomed and sees its own join) {
  auto& ann = connect({"ann", "general"});
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  (strings{"welcome general ann", "join general ann"}));
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
}

CAF_TEST(the room sees who joins and other rooms do not) {
  auto& ann = join("ann");
  auto& dan = join("dan", "attic");
  auto& bob = connect({"bob", "general"});
  CAF_CHECK_EQUAL(summaries(ann.take()), strings{"join general bob"});
  CAF_CHECK_EQUAL(summaries(bob.take()),
                  (strings{"welcome general bob", "join general bob"}));
  CAF_CHECK(dan.take().empty());
}

CAF_TEST(a message reaches the whole room once and the sender once) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  auto& dan = join("dan", "attic");
  ann.take(); // bob's join
  ann.send_text(say("hello"));
  run();
  CAF_CHECK_EQUAL(summaries(ann.take()), strings{"message general ann hello"});
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"message general ann hello"});
  CAF_CHECK(dan.take().empty());
}

CAF_TEST(bad input gets an error for the sender only) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  ann.send_text("not json");
  ann.send_text(R"({"type":"shout","text":"hi"})");
  ann.send_text(R"({"type":"message","text":7})");
  ann.send_text(say(""));
  ann.send_text(say(std::string(chat::max_text + 1, 'x')));
  run();
  auto shape = "error expected {\"type\":\"message\",\"text\":...}";
  auto length = "error text must be 1 to 4000 characters";
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  (strings{shape, shape, shape, length, length}));
  CAF_CHECK(bob.take().empty());
  CAF_CHECK(!ann.closed());
  ann.send_text(say(std::string(chat::max_text, 'x')));
  run();
  CAF_CHECK_EQUAL(bob.take().size(), 1u);
}

CAF_TEST(binary messages close the connection with 1003) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  ann.send_binary("\x01\x02");
  run();
  CAF_CHECK_EQUAL(ann.take(), std::vector<frame_event>{
                                close_frame(1003, "text messages only")});
  CAF_CHECK(ann.closed());
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"leave general ann"});
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
}

CAF_TEST(leaving by close or by vanishing tells the room) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  auto& cid = join("cid");
  auto& dan = join("dan", "attic");
  ann.take();
  bob.take();
  ann.close(1001);
  bob.vanish();
  run();
  CAF_CHECK_EQUAL(summaries(cid.take()),
                  (strings{"leave general ann", "leave general bob"}));
  CAF_CHECK(dan.take().empty());
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
  cid.close();
  run();
  CAF_CHECK_EQUAL(subscriber_count("general"), 0u);
  CAF_CHECK_EQUAL(topic_count(), 1u); // attic
}

CAF_TEST(messages arrive in the order they were sent) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  strings expected;
  for (int i = 0; i < 100; ++i) {
    ann.send_text(say(std::to_string(i)));
    expected.push_back("message general ann " + std::to_string(i));
  }
  run();
  CAF_CHECK_EQUAL(summaries(bob.take()), expected);
  CAF_CHECK_EQUAL(summaries(ann.take()), expected);
}

CAF_TEST(a silent member is dropped after the idle timeout) {
  auto& ann = join("ann");
  auto& bob = connect({"bob", "general"}, {.answer_pings = false});
  ann.take();
  advance(119s);
  CAF_CHECK(!bob.closed());
  advance(1s);
  CAF_CHECK_EQUAL(bob.close_code(), 1001);
  CAF_CHECK(!ann.closed()); // ann's browser answers pings
  CAF_CHECK_EQUAL(summaries(ann.take_messages()),
                  strings{"leave general bob"});
}

CAF_TEST(the socket endpoint checks name and room before upgrading) {
  auto ok = fetch(chat::open_socket, upgrade_request("/ws?name=ann&room=r1"));
  CAF_CHECK_EQUAL(ok.status, 101);
  CAF_REQUIRE(ok.client != nullptr);
  CAF_CHECK_EQUAL(ok.client->data().name, "ann");
  CAF_CHECK_EQUAL(ok.client->data().room, "r1");
  auto general = fetch(chat::open_socket, upgrade_request("/ws?name=bob"));
  CAF_REQUIRE(general.client != nullptr);
  CAF_CHECK_EQUAL(general.client->data().room, "general");
  for (auto target : {"/ws", "/ws?name=", "/ws?name=a%01b",
                      "/ws?name=ann&room=", "/ws?name=ann&room=%7F",
                      "/ws?name=012345678901234567890123456789012"}) {
    auto r = fetch(chat::open_socket, upgrade_request(target));
    CAF_CHECK_EQUAL(r.status, 400);
    CAF_CHECK(r.client == nullptr);
  }
  auto plain = fetch(chat::open_socket,
                     herald::testing::http_request("GET", "/ws?name=ann"));
  CAF_CHECK_EQUAL(plain.status, 400);
  CAF_CHECK_EQUAL(plain.body, "WebSocket upgrade expected\n");
  CAF_CHECK(chat::valid_label(std::string(chat::max_name, 'x')));
  CAF_CHECK(!chat::valid_label(std::string(chat::max_name + 1, 'x')));
}

CAF_TEST_FIXTURE_SCOPE_END()

#endif // __has_include(<herald/app/chat/room.hpp>)
