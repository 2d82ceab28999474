// The testing kit from the installed headers alone: a fixture, a client, a
// published message (run by run.sh after the server check).
#define CAF_SUITE consumer_kit
#include <caf/test/unit_test_impl.hpp>

#include <herald/actors/testing.hpp>

namespace {

struct member {};

herald::websocket_handlers<member> room() {
  return {
    .open = [](herald::socket<member>& ws) { ws.subscribe("room"); },
    .message = [](herald::socket<member>& ws,
                  herald::message m) { ws.publish("room", m.text()); },
  };
}

struct fixture : herald::testing::fixture<member> {
  fixture() : herald::testing::fixture<member>(room()) {}
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(consumer_kit_tests, fixture)

CAF_TEST(a message reaches the other member) {
  auto& ann = connect();
  auto& bob = connect();
  ann.send_text("hi");
  run();
  CAF_CHECK_EQUAL(bob.next(), herald::testing::text_frame("hi"));
  CAF_CHECK(!ann.has_next());
}

CAF_TEST_FIXTURE_SCOPE_END()
