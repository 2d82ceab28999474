// The chat app's room logic (app/chat: handlers, presence and history
// actors), tested with the testing kit: the same handlers and actors main()
// serves, run against fake clients on CAF's deterministic test scheduler.
// Link herald_chat_room.
#define CAF_SUITE chat

// Client options are written with designated initializers, leaving out
// what they do not need; -Wextra would flag each.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

// Boost.JSON before CAF's test DSL, whose macros have common names.
#include <boost/json.hpp>

#include <herald/actors/testing.hpp>
#include <herald/app/chat/room.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using herald::testing::close_frame;
using herald::testing::frame_event;
using herald::testing::upgrade_request;

namespace json = boost::json;

namespace {

using strings = std::vector<std::string>;

// A chat event without its timestamp: "join general ann 1 2 #3" (ann's
// connections, the names in the room, the event's number), "members
// general [ann bob] 2 #3" (the page, the count, the number of the last
// event before it; " more" when names follow, " after X" for a later
// page), "message general ann hello", "history general [ann:m1 ann:m2]",
// "error <what>"; anything that is not a chat event (binary, control frames,
// bad JSON) shows as its to_string().
std::string summary(const frame_event& e) {
  if (!e.is_text())
    return to_string(e);
  json::error_code ec;
  auto v = json::parse(e.data, ec);
  auto* o = ec ? nullptr : v.if_object();
  if (!o || !o->contains("type"))
    return to_string(e);
  auto str = [](const json::object& x, const char* key) -> std::string {
    auto* y = x.if_contains(key);
    return y && y->is_string() ? std::string{y->get_string()} : "?";
  };
  auto list = [&](const char* key) {
    std::string out = "[";
    if (auto* a = o->if_contains(key); a && a->is_array())
      for (auto& x : a->get_array()) {
        if (out.size() > 1)
          out += ' ';
        if (x.is_string())
          out += x.get_string();
        else if (x.is_object())
          out +=
            str(x.get_object(), "name") + ":" + str(x.get_object(), "text");
      }
    return out + "]";
  };
  auto type = str(*o, "type");
  if (type == "error")
    return "error " + str(*o, "error");
  if (type == "history")
    return "history " + str(*o, "room") + " " + list("messages");
  auto num = [&](const char* key) {
    auto* y = o->if_contains(key);
    return y && y->is_int64() ? std::to_string(y->get_int64())
                              : std::string{"?"};
  };
  if (type == "members") {
    auto out = "members " + str(*o, "room") + " " + list("members") + " "
               + num("count") + " #" + num("seq");
    if (auto* m = o->if_contains("more"); m && m->is_bool() && m->get_bool())
      out += " more";
    if (o->contains("after"))
      out += " after " + str(*o, "after");
    return out;
  }
  auto out = type + " " + str(*o, "room") + " " + str(*o, "name");
  if (type == "message") {
    out += " " + str(*o, "text");
    if (!o->contains("id"))
      out += " (no id)";
  }
  if (type == "join" || type == "leave")
    out += " " + num("connections") + " " + num("count") + " #" + num("seq");
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

constexpr std::size_t history_size = 3;
constexpr auto history_ttl = 60s;

struct chat_fixture : herald::testing::fixture<chat::member> {
  caf::actor presence;

  chat_fixture() {
    presence = chat::spawn_presence(sys, registry(),
                                    {.history = history_size,
                                     .history_ttl = history_ttl});
    set_handlers(chat::handlers(presence, history_size));
  }

  // Connects `name` to `room`, runs until idle and forgets what it received
  // on the way.
  client& join(std::string name, std::string room = "general") {
    auto& c = connect({std::move(name), std::move(room)});
    run();
    c.take();
    return c;
  }

  // The ids of the message events in `events`, those in a history
  // included.
  static strings ids(const std::vector<frame_event>& events) {
    strings out;
    auto add = [&](const json::object& o) {
      if (auto* id = o.if_contains("id"); id && id->is_string())
        out.emplace_back(id->get_string());
    };
    for (auto& e : events) {
      json::error_code ec;
      auto v = json::parse(e.data, ec);
      auto* o = ec ? nullptr : v.if_object();
      if (!o)
        continue;
      add(*o);
      if (auto* h = o->if_contains("messages"); h && h->is_array())
        for (auto& m : h->get_array())
          if (m.is_object())
            add(m.get_object());
    }
    return out;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(chat_tests, chat_fixture)

CAF_TEST(a new member is welcomed then sees its join and the history) {
  auto& ann = connect({"ann", "general"});
  run();
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  (strings{"welcome general ann", "members general [] 0 #0",
                           "join general ann 1 1 #1", "history general []"}));
  // The member, its presence actor and the room's history actor.
  CAF_CHECK_EQUAL(subscriber_count("general"), 3u);
}

CAF_TEST(the room sees who joins with the count and other rooms do not ) {
  auto& ann = join("ann");
  auto& dan = join("dan", "attic");
  auto& bob = connect({"bob", "general"});
  run();
  CAF_CHECK_EQUAL(summaries(ann.take()), strings{"join general bob 1 2 #2"});
  // The joiner's first page shows the room before it; its own join is the
  // next event.
  CAF_CHECK_EQUAL(summaries(bob.take()),
                  (strings{"welcome general bob", "members general [ann] 1 #1",
                           "join general bob 1 2 #2", "history general []"}));
  CAF_CHECK(dan.take().empty());
}

CAF_TEST(a message reaches the whole room once and the sender once) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  auto& dan = join("dan", "attic");
  ann.take(); // bob's join
  ann.send_text(say("hello"));
  run();
  auto a = ann.take();
  auto b = bob.take();
  CAF_CHECK_EQUAL(summaries(a), strings{"message general ann hello"});
  CAF_CHECK_EQUAL(summaries(b), strings{"message general ann hello"});
  // One event, one id, the same for everyone.
  CAF_CHECK_EQUAL(ids(a), ids(b));
  CAF_CHECK(dan.take().empty());
}

CAF_TEST(a later member receives the last messages as history) {
  auto& ann = join("ann");
  for (int i = 1; i <= 5; ++i)
    ann.send_text(say("m" + std::to_string(i)));
  run();
  auto sent = ids(ann.take());
  CAF_REQUIRE_EQUAL(sent.size(), 5u);
  auto& bob = connect({"bob", "general"});
  run();
  auto got = bob.take();
  CAF_CHECK_EQUAL(summaries(got),
                  (strings{"welcome general bob", "members general [ann] 1 #1",
                           "join general bob 1 2 #2",
                           "history general [ann:m3 ann:m4 ann:m5]"}));
  // The history holds the very events the room saw (same ids).
  CAF_CHECK_EQUAL(ids(got), (strings{sent[2], sent[3], sent[4]}));
}

CAF_TEST(history and live messages leave no gap while a member joins) {
  auto& ann = join("ann");
  ann.send_text(say("before"));
  run();
  ann.take();
  // bob joins while ann keeps talking; nothing runs in between.
  auto& bob = connect({"bob", "general"});
  ann.send_text(say("during"));
  run();
  ann.send_text(say("after"));
  run();
  // Every message reaches bob: live, in history, or both (same id).
  strings seen;
  for (auto& e : bob.take()) {
    auto s = summary(e);
    if (s.starts_with("message "))
      seen.push_back(s.substr(s.rfind(' ') + 1));
    else if (s.starts_with("history "))
      for (auto& t : {"before", "during", "after"})
        if (s.find(std::string{"ann:"} + t) != std::string::npos)
          seen.push_back(t);
  }
  for (auto t : {"before", "during", "after"})
    CAF_CHECK(std::find(seen.begin(), seen.end(), t) != seen.end());
}

CAF_TEST(two tabs with one name count as one member) {
  auto& ann1 = join("ann");
  auto& ann2 = connect({"ann", "general"});
  run();
  // A second tab: ann has two connections, the room still one name.
  CAF_CHECK_EQUAL(summaries(ann1.take()), strings{"join general ann 2 1 #2"});
  ann2.take();
  auto& bob = join("bob");
  ann1.take();
  ann2.close();
  run();
  // One tab left: ann is still there.
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"leave general ann 1 2 #4"});
  ann1.close();
  run();
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"leave general ann 0 1 #5"});
}

CAF_TEST(members answers with the room list) {
  auto& ann = join("ann");
  join("bob");
  join("dan", "attic");
  ann.take();
  ann.send_text(R"({"type":"members"})");
  run();
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  strings{"members general [ann bob] 2 #2"});
}

CAF_TEST(members pages through the list with after and limit) {
  auto& ann = join("ann");
  for (auto n : {"bob", "cid", "dan", "eve"})
    join(n);
  join("fay", "attic");
  ann.take();
  ann.send_text(R"({"type":"members","limit":2})");
  ann.send_text(R"({"type":"members","after":"bob","limit":2})");
  ann.send_text(R"({"type":"members","after":"dan","limit":2})");
  ann.send_text(R"({"type":"members","after":"zed"})");
  ann.send_text(R"({"type":"members","after":7})");
  ann.send_text(R"({"type":"members","limit":0})");
  ann.send_text(R"({"type":"members","limit":501})");
  run();
  // Errors come from the connection itself, pages from presence.
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  (strings{"error \"after\" must be a name",
                           "error \"limit\" must be 1 to 500",
                           "error \"limit\" must be 1 to 500",
                           "members general [ann bob] 5 #5 more",
                           "members general [cid dan] 5 #5 more after bob",
                           "members general [eve] 5 #5 after dan",
                           "members general [] 5 #5 after zed"}));
}

CAF_TEST(a big room sends the list once in pages and events stay small) {
  constexpr std::size_t n = chat::max_members_page + 1;
  std::vector<client*> members;
  for (std::size_t i = 0; i < n; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "m%04zu", i);
    members.push_back(&connect({name, "big"}));
  }
  run();
  // The last joiner's first page: 500 names of the 501 before it.
  auto got = members.back()->take();
  CAF_REQUIRE_GREATER_OR_EQUAL(got.size(), 3u);
  auto page = json::parse(got[1].data).as_object();
  CAF_CHECK_EQUAL(page.at("type").as_string(), "members");
  CAF_CHECK_EQUAL(page.at("members").as_array().size(), chat::max_members_page);
  CAF_CHECK_EQUAL(page.at("count").as_int64(), 500);
  CAF_CHECK_EQUAL(page.at("more").as_bool(), false);
  CAF_CHECK_EQUAL(summary(got[2]), "join big m0500 1 501 #501");
  // The first member heard 500 joins of a few dozen bytes each.
  auto first = members.front()->take();
  std::size_t joins = 0, bytes = 0;
  for (auto& e : first)
    if (summary(e).starts_with("join big ")) {
      ++joins;
      bytes += e.data.size();
      CAF_CHECK_LESS(e.data.size(), 200u);
    }
  CAF_CHECK_EQUAL(joins, n);
  CAF_CHECK_LESS(bytes, n * 200);
  members.front()->send_text(R"({"type":"members"})");
  members.front()->send_text(R"({"type":"members","after":"m0499"})");
  run();
  auto pages = summaries(members.front()->take());
  CAF_REQUIRE_EQUAL(pages.size(), 2u);
  CAF_CHECK(pages[0].starts_with("members big [m0000 m0001 "));
  CAF_CHECK(pages[0].ends_with(" m0499] 501 #501 more"));
  CAF_CHECK_EQUAL(pages[1], "members big [m0500] 501 #501 after m0499");
}

CAF_TEST(a flooding sender gets errors and the room gets the burst) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  for (std::size_t i = 0; i < chat::message_burst + 5; ++i)
    ann.send_text(say("m" + std::to_string(i)));
  run();
  auto errors = 0;
  for (auto& s : summaries(ann.take()))
    if (s == "error " + std::string{chat::rate_limit_error})
      ++errors;
  CAF_CHECK_EQUAL(errors, 5);
  CAF_CHECK_EQUAL(bob.take().size(), chat::message_burst);
  CAF_CHECK_EQUAL(stats().rate_limited.load(), 5u);
  // A tenth of a second later one more message is allowed.
  advance(100ms);
  ann.send_text(say("later"));
  run();
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"message general ann later"});
}

CAF_TEST(bad input gets an error for the sender only) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  ann.send_text("not json");
  ann.send_text("[1,2]");
  ann.send_text(R"({"type":"shout","text":"hi"})");
  ann.send_text(R"({"type":"message","text":7})");
  ann.send_text(R"({"type":"message"})");
  ann.send_text(say(""));
  ann.send_text(say(std::string(chat::max_text + 1, 'x')));
  run();
  auto shape = "error expected a JSON object with a \"type\"";
  auto no_text = "error a message needs a \"text\" string";
  auto length = "error text must be 1 to 4000 characters";
  CAF_CHECK_EQUAL(summaries(ann.take()),
                  (strings{shape, shape, "error unknown type", no_text, no_text,
                           length, length}));
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
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"leave general ann 0 1 #3"});
}

CAF_TEST(oversized messages close the connection with 1009) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  ann.send_text(std::string(chat::max_message_bytes + 1, 'x'));
  run();
  CAF_CHECK_EQUAL(ann.close_code(), 1009);
  CAF_CHECK_EQUAL(summaries(bob.take()), strings{"leave general ann 0 1 #3"});
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
  CAF_CHECK_EQUAL(summaries(cid.take()), (strings{"leave general ann 0 2 #4",
                                                  "leave general bob 0 1 #5"}));
  CAF_CHECK(dan.take().empty());
  cid.close();
  run();
  // Only the room's history actor is left in it.
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
}

CAF_TEST(a member whose connection actor dies is removed) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  // No close handler runs: presence learns it from its monitor.
  caf::anon_send_exit(bob.actor(), caf::exit_reason::kill);
  run();
  CAF_CHECK_EQUAL(summaries(ann.take()), strings{"leave general bob 0 1 #3"});
}

CAF_TEST(history outlives an empty room for its time to live only) {
  auto& ann = join("ann");
  ann.send_text(say("kept"));
  run();
  ann.close();
  run();
  advance(history_ttl - 1s);
  // Only the history actor is still subscribed.
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
  auto& bob = connect({"bob", "general"});
  run();
  auto got = summaries(bob.take());
  CAF_REQUIRE(!got.empty());
  CAF_CHECK_EQUAL(got.back(), "history general [ann:kept]");
  bob.close();
  run();
  CAF_CHECK_EQUAL(subscriber_count("general"), 1u);
  // The first timer (armed when ann left) finds the room in use again and
  // does nothing; the one armed when bob left ends the history.
  advance(history_ttl);
  CAF_CHECK_EQUAL(subscriber_count("general"), 0u);
  CAF_CHECK_EQUAL(topic_count(), 0u);
  auto& cid = connect({"cid", "general"});
  run();
  got = summaries(cid.take());
  CAF_REQUIRE(!got.empty());
  CAF_CHECK_EQUAL(got.back(), "history general []");
}

CAF_TEST(messages arrive in the order they were sent) {
  auto& ann = join("ann");
  auto& bob = join("bob");
  ann.take();
  strings expected;
  for (int i = 0; i < 100; ++i) {
    ann.send_text(say(std::to_string(i)));
    expected.push_back("message general ann " + std::to_string(i));
    advance(100ms); // at the rate limit, never over it
  }
  run();
  CAF_CHECK_EQUAL(summaries(bob.take()), expected);
  CAF_CHECK_EQUAL(summaries(ann.take()), expected);
}

CAF_TEST(a silent member is dropped after the idle timeout) {
  auto& ann = join("ann");
  auto& bob = connect({"bob", "general"}, {.answer_pings = false});
  run();
  ann.take();
  advance(119s);
  CAF_CHECK(!bob.closed());
  advance(1s);
  CAF_CHECK_EQUAL(bob.close_code(), 1001);
  CAF_CHECK(!ann.closed()); // ann's browser answers pings
  CAF_CHECK_EQUAL(summaries(ann.take_messages()),
                  strings{"leave general bob 0 1 #3"});
}

CAF_TEST(the socket endpoint checks the token then name and room) {
  auto open = [](herald::request& req, herald::server<chat::member>& srv) {
    return chat::open_socket(req, srv);
  };
  auto ok = fetch(open, upgrade_request("/ws?name=ann&room=r1"));
  CAF_CHECK_EQUAL(ok.status, 101);
  CAF_REQUIRE(ok.client != nullptr);
  CAF_CHECK_EQUAL(ok.client->data().name, "ann");
  CAF_CHECK_EQUAL(ok.client->data().room, "r1");
  auto general = fetch(open, upgrade_request("/ws?name=bob"));
  CAF_REQUIRE(general.client != nullptr);
  CAF_CHECK_EQUAL(general.client->data().room, "general");
  for (auto target :
       {"/ws", "/ws?name=", "/ws?name=a%01b",
        "/ws?name=ann&room=", "/ws?name=ann&room=%7F", "/ws?name=%FF%FE",
        "/ws?name=012345678901234567890123456789012"}) {
    auto r = fetch(open, upgrade_request(target));
    CAF_CHECK_EQUAL(r.status, 400);
    CAF_CHECK(r.client == nullptr);
  }
  auto plain =
    fetch(open, herald::testing::http_request("GET", "/ws?name=ann"));
  CAF_CHECK_EQUAL(plain.status, 400);
  CAF_CHECK_EQUAL(plain.body, "WebSocket upgrade expected\n");
  CAF_CHECK(chat::valid_label(std::string(chat::max_name, 'x')));
  CAF_CHECK(!chat::valid_label(std::string(chat::max_name + 1, 'x')));
  // With a token: 401 without it or with a wrong one, before anything
  // else. The auth actor decides while the request waits (fetch settles
  // it after running the actors).
  auto auth = chat::spawn_auth(sys, "s3cret");
  chat::attach_registry(auth, registry());
  auto guarded = [auth](herald::request& req,
                        herald::server<chat::member>& srv) {
    return chat::open_socket(req, srv, auth);
  };
  for (auto target : {"/ws?name=ann", "/ws?name=ann&token=s3cre",
                      "/ws?name=ann&token=s3cret2", "/ws?token=nope"}) {
    auto r = fetch(guarded, upgrade_request(target));
    CAF_CHECK_EQUAL(r.status, 401);
    CAF_CHECK(r.client == nullptr);
  }
  CAF_CHECK_EQUAL(
    fetch(guarded, upgrade_request("/ws?name=ann&token=s3cret")).status, 101);
  CAF_CHECK_EQUAL(fetch(guarded,
                        upgrade_request("/ws?name=ann",
                                        {{"Authorization", "Bearer s3cret"}}))
                    .status,
                  101);
  CAF_CHECK_EQUAL(fetch(guarded,
                        upgrade_request("/ws?name=ann",
                                        {{"Authorization", "Bearer wrong!"}}))
                    .status,
                  401);
}

CAF_TEST_FIXTURE_SCOPE_END()
