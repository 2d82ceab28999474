// The topic registry and topic actors, driven through the testing kit by a
// fuzzed sequence of subscribe, unsubscribe, publish (by clients and by the
// server), close, vanish and crash, checked against a model: each client
// gets exactly the messages published to its topics while it was
// subscribed, in order, its own only with publish_to_self; and the
// registry's counts match.
//
// Input: an option byte (bit 0 publish_to_self), then operations of two
// bytes each: what (the first byte modulo 8) and with whom / which topic.
#define CAF_SUITE topics_fuzz
#define CAF_TEST_NO_MAIN

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <caf/test/unit_test_impl.hpp>

#include <herald/actors/testing.hpp>

#include <array>
#include <set>
#include <string>
#include <vector>

#include "input.hpp"

namespace {

using namespace herald;

constexpr std::size_t max_clients = 6;
constexpr std::array<std::string_view, 3> topics{"a", "b", "c"};

// Commands a client sends: "s" topic, "u" topic, "p" topic payload.
websocket_handlers<int> topic_app(bool to_self) {
  return {
    .message =
      [](socket<int>& ws, message m) {
        auto t = m.text();
        auto topic = t.substr(1, 1);
        if (t[0] == 's')
          ws.subscribe(topic);
        else if (t[0] == 'u')
          ws.unsubscribe(topic);
        else if (t[0] == 'p')
          ws.publish(topic, t.substr(2));
      },
    .publish_to_self = to_self,
  };
}

struct model_client {
  testing::fixture<int>::client* c = nullptr;
  bool alive = false;
  std::set<std::string_view> subs;
  std::vector<std::string> expected;
};

struct harness : testing::fixture<int> {
  explicit harness(bool to_self)
    : fixture(topic_app(to_self)), to_self(to_self) {}

  bool to_self;
  std::vector<model_client> clients;
  int seq = 0;

  void deliver(std::string_view topic, const std::string& payload,
               const model_client* sender) {
    for (auto& m : clients)
      if (m.alive && m.subs.contains(topic) && (&m != sender || to_self))
        m.expected.push_back(payload);
  }

  void check() {
    for (auto& m : clients)
      if (m.c != nullptr)
        HERALD_FUZZ_CHECK(m.c->texts() == m.expected);
    for (auto topic : topics) {
      std::size_t n = 0;
      for (auto& m : clients)
        n += m.alive && m.subs.contains(topic) ? 1 : 0;
      HERALD_FUZZ_CHECK(subscriber_count(topic) == n);
    }
  }

  void step(std::uint8_t what, std::uint8_t arg) {
    auto topic = topics[(arg >> 4) % topics.size()];
    auto* m = clients.empty() ? nullptr : &clients[arg % clients.size()];
    switch (what % 8) {
      case 0: // connect
        if (clients.size() < max_clients)
          clients.push_back({&connect(0), true, {}, {}});
        break;
      case 1: // subscribe
        if (m && m->alive) {
          m->c->send_text("s" + std::string{topic});
          m->subs.insert(topic);
        }
        break;
      case 2: // unsubscribe
        if (m && m->alive) {
          m->c->send_text("u" + std::string{topic});
          m->subs.erase(topic);
        }
        break;
      case 3: // a client publishes
      case 4:
        if (m && m->alive) {
          auto payload =
            std::to_string(arg % clients.size()) + ":" + std::to_string(seq++);
          m->c->send_text("p" + std::string{topic} + payload);
          deliver(topic, payload, m);
        }
        break;
      case 5: { // the server publishes
        auto payload = "server:" + std::to_string(seq++);
        publish(topic, payload);
        deliver(topic, payload, nullptr);
        break;
      }
      case 6: // close or vanish
        if (m && m->alive) {
          if (arg & 8)
            m->c->vanish();
          else
            m->c->close();
          m->alive = false;
        }
        break;
      default: // crash: the connection actor dies
        if (m && m->alive) {
          caf::anon_send_exit(m->c->actor(), caf::exit_reason::kill);
          m->alive = false;
        }
    }
    run();
    check();
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  herald::fuzz::input in{data, size};
  harness h{(in.byte() & 1) != 0};
  for (int i = 0; i < 64 && !in.empty(); ++i) {
    auto what = in.byte();
    h.step(what, in.byte());
  }
  return 0;
}
