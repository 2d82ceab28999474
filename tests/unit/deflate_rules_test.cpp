// permessage-deflate as a client sees it: every combination of the four
// negotiation parameters (both context takeover flags, both window sizes 8
// to 15) in both server modes, through the real upgrade path; the server's
// output is inflated with plain zlib under exactly the window and context
// rules its 101 response announced. Also empty messages with context
// takeover, which need at least one byte of deflate data (RFC 7692 7.2.1).
#define CAF_SUITE deflate_rules

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <herald/actors/testing.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "zlib_peer.hpp"

using herald::testing::client_deflater;
using herald::testing::strict_inflater;
using herald::testing::upgrade_request;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);
  return s;
}

// What a client concludes from the server's Sec-WebSocket-Extensions.
struct answer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0; // 0: absent (the server may use 15)
  int client_max_window_bits = 0;
};

std::optional<answer> parse_answer(std::string_view v) {
  answer a;
  bool first = true;
  while (!v.empty()) {
    auto semi = v.find(';');
    auto part = trim(v.substr(0, semi));
    v =
      semi == std::string_view::npos ? std::string_view{} : v.substr(semi + 1);
    auto eq = part.find('=');
    auto name = part.substr(0, eq);
    int value = eq == std::string_view::npos
                  ? 0
                  : std::stoi(std::string{part.substr(eq + 1)});
    if (first) {
      if (part != "permessage-deflate")
        return std::nullopt;
      first = false;
    } else if (name == "server_no_context_takeover") {
      a.server_no_context_takeover = true;
    } else if (name == "client_no_context_takeover") {
      a.client_no_context_takeover = true;
    } else if (name == "server_max_window_bits") {
      a.server_max_window_bits = value;
    } else if (name == "client_max_window_bits") {
      a.client_max_window_bits = value;
    } else {
      return std::nullopt;
    }
  }
  if (first)
    return std::nullopt;
  return a;
}

std::string letters(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> d{'a', 'z'};
  std::string s(n, ' ');
  for (auto& c : s)
    c = static_cast<char>(d(rng));
  return s;
}

// A block of text that recurs after gaps of random letters, so the only
// long matches a compressor can find reach back 264, 664, ... 20064 bytes:
// beyond every window from 8 to 14 bits, and each within the next one's
// reach (zlib's matches reach at most 2^bits - 262 bytes back).
std::string long_message(std::mt19937& rng, const std::string& block) {
  std::string m = block;
  for (std::size_t gap : {200, 600, 1400, 3000, 6200, 12000, 20000}) {
    m += letters(rng, gap);
    m += block;
  }
  return m;
}

struct fixture : herald::testing::fixture<int> {
  static herald::websocket_handlers<int> echo(herald::deflate_options o) {
    return {
      .open = [](herald::socket<int>& ws) { ws.subscribe("t"); },
      .message = [](herald::socket<int>& ws,
                    herald::message m) { ws.send_text(m.text(), true); },
      .per_message_deflate = o,
    };
  }

  static herald::deflate_options mode(bool dedicated) {
    return {.enabled = true, .dedicated_compressor = dedicated};
  }

  // Upgrades as server.upgrade does with `offer`; the answer's header value.
  std::pair<client*, std::string> upgrade(const std::string& offer) {
    auto out = fetch(
      [](herald::request& req,
         herald::server<int>& srv) -> herald::fetch_result {
        srv.upgrade(req, 0);
        return herald::upgraded;
      },
      upgrade_request("/", {{"Sec-WebSocket-Extensions", offer}}));
    CAF_REQUIRE_EQUAL(out.status, 101);
    std::string ext;
    for (auto& [k, v] : out.headers)
      if (k == "Sec-WebSocket-Extensions")
        ext = v;
    return {out.client, ext};
  }
};

// -1 leaves a window parameter out, 0 offers it without a value (only
// client_max_window_bits may go without one).
std::string offer_for(bool server_nct, bool client_nct, int server_bits,
                      int client_bits) {
  std::string o = "permessage-deflate";
  if (server_nct)
    o += "; server_no_context_takeover";
  if (client_nct)
    o += "; client_no_context_takeover";
  if (server_bits > 0)
    o += "; server_max_window_bits=" + std::to_string(server_bits);
  if (client_bits == 0)
    o += "; client_max_window_bits";
  else if (client_bits > 0)
    o += "; client_max_window_bits=" + std::to_string(client_bits);
  return o;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(deflate_rules_tests, fixture)

CAF_TEST(every offer is answered by the rules and honoured to the byte) {
  std::mt19937 rng{7};
  auto block = letters(rng, 64);
  auto big = long_message(rng, block);
  // Starts with the end of the last message: a compressor with context
  // takeover refers back to it.
  auto small = block + letters(rng, 500);
  std::size_t agreed = 0, declined = 0;
  for (bool dedicated : {false, true}) {
    set_handlers(echo(mode(dedicated)));
    for (bool server_nct : {false, true})
      for (bool client_nct : {false, true})
        for (int server_bits = -1; server_bits <= 15; ++server_bits) {
          if (server_bits == 0)
            server_bits = 8;
          for (int client_bits = -1; client_bits <= 15; ++client_bits) {
            if (client_bits == 1)
              client_bits = 8;
            auto offer =
              offer_for(server_nct, client_nct, server_bits, client_bits);
            CAF_MESSAGE((dedicated ? "dedicated: " : "shared: ") << offer);
            auto [c, ext] = upgrade(offer);
            if (ext.empty()) {
              // Only the shared compressor declines: it has one window.
              CAF_CHECK(!dedicated && server_bits > 0 && server_bits < 15);
              ++declined;
              c->send_text(big);
              run();
              auto& raw = c->raw_frames();
              CAF_REQUIRE_EQUAL(raw.size(), 1u);
              CAF_CHECK(!raw[0]->compressed());
              c->close();
              run();
              continue;
            }
            ++agreed;
            auto a = parse_answer(ext);
            CAF_REQUIRE(a);
            // RFC 7692 7.1.1.1, 7.1.2: what the offer asked must be
            // granted; a window is at most the one offered.
            CAF_CHECK(a->server_no_context_takeover
                      == (server_nct || !dedicated));
            CAF_CHECK(a->client_no_context_takeover >= client_nct);
            if (server_bits > 0) {
              CAF_CHECK_GREATER_OR_EQUAL(a->server_max_window_bits, 8);
              CAF_CHECK_LESS_OR_EQUAL(a->server_max_window_bits, server_bits);
            } else {
              CAF_CHECK_EQUAL(a->server_max_window_bits, 0);
            }
            CAF_CHECK(client_bits >= 0 || a->client_max_window_bits == 0);
            int client_window = a->client_max_window_bits > 0
                                  ? a->client_max_window_bits
                                  : std::max(client_bits, 15);
            client_deflater out{client_window, a->client_no_context_takeover};
            std::vector<std::string> sent{big, small};
            for (auto& m : sent) {
              auto packed = out.compress(m);
              c->send_raw(herald::net::client_frame(herald::net::opcode::text,
                                                    packed, true, 4));
            }
            run();
            publish("t", big, true);
            sent.push_back(big);
            run();
            int server_window =
              a->server_max_window_bits > 0 ? a->server_max_window_bits : 15;
            strict_inflater in{server_window, a->server_no_context_takeover};
            auto& raw = c->raw_frames();
            CAF_REQUIRE_EQUAL(raw.size(), sent.size());
            for (std::size_t i = 0; i < raw.size(); ++i) {
              CAF_REQUIRE(raw[i]->compressed());
              auto got = in.inflate(raw[i]->payload());
              if (!got)
                CAF_FAIL(offer << " -> " << ext << ": message " << i << ": "
                               << in.error());
              CAF_CHECK(*got == sent[i]);
            }
            c->close();
            run();
          }
        }
  }
  CAF_CHECK_EQUAL(agreed + declined, 2u * 4 * 9 * 10);
  CAF_CHECK_EQUAL(declined, 4u * 7 * 10); // shared mode, windows 8 to 14
}

CAF_TEST(a list of offers is answered by its first acceptable one) {
  std::mt19937 rng{11};
  auto block = letters(rng, 64);
  auto big = long_message(rng, block);
  for (bool dedicated : {false, true}) {
    set_handlers(echo(mode(dedicated)));
    auto [c, ext] = upgrade("permessage-deflate; server_max_window_bits=10; "
                            "server_no_context_takeover, permessage-deflate");
    CAF_CHECK_EQUAL(ext, dedicated ? "permessage-deflate; "
                                     "server_no_context_takeover; "
                                     "server_max_window_bits=10"
                                   : "permessage-deflate; "
                                     "server_no_context_takeover");
    c->send_text(big);
    run();
    publish("t", big, true);
    run();
    strict_inflater in{dedicated ? 10 : 15, true};
    auto& raw = c->raw_frames();
    CAF_REQUIRE_EQUAL(raw.size(), 2u);
    for (auto& f : raw) {
      CAF_REQUIRE(f->compressed());
      auto got = in.inflate(f->payload());
      if (!got)
        CAF_FAIL(in.error());
      CAF_CHECK(*got == big);
    }
  }
}

CAF_TEST(empty messages with context takeover are one byte of deflate data) {
  auto o = mode(true);
  o.threshold = 0;
  set_handlers(echo(o));
  auto [c, ext] = upgrade("permessage-deflate");
  CAF_REQUIRE_EQUAL(ext, "permessage-deflate");
  std::vector<std::string> sent{"hello hello hello", "", "", "hello again", ""};
  for (auto& m : sent)
    c->send_text(m);
  run();
  strict_inflater in{15, false};
  auto& raw = c->raw_frames();
  CAF_REQUIRE_EQUAL(raw.size(), sent.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    CAF_REQUIRE(raw[i]->compressed());
    CAF_CHECK_GREATER_OR_EQUAL(raw[i]->payload().size(), 1u);
    auto got = in.inflate(raw[i]->payload());
    if (!got)
      CAF_FAIL("message " << i << ": " << in.error());
    CAF_CHECK_EQUAL(*got, sent[i]);
  }
}

CAF_TEST(an empty compressed message is empty and keeps the context) {
  auto o = mode(true);
  set_handlers(echo(o));
  auto [c, ext] = upgrade("permessage-deflate");
  CAF_REQUIRE_EQUAL(ext, "permessage-deflate");
  // A client with the zlib quirk the server had: nothing at all for an
  // empty message after a flush. Its stream is unchanged by it.
  client_deflater out{15, false};
  auto m1 = std::string(100, 'x') + "first";
  auto m2 = std::string(100, 'x') + "second";
  auto frame = [](std::string_view payload) {
    return herald::net::client_frame(herald::net::opcode::text, payload, true,
                                     4);
  };
  c->send_raw(frame(out.compress(m1)));
  c->send_raw(frame({}));
  c->send_raw(frame(out.compress(m2)));
  run();
  CAF_CHECK_EQUAL(c->texts(), (std::vector<std::string>{m1, "", m2}));
  CAF_CHECK(!c->got_close());
}

CAF_TEST(a message that ends inside a stored block closes with 1007) {
  set_handlers(echo(mode(true)));
  auto [c, ext] = upgrade("permessage-deflate");
  CAF_REQUIRE_EQUAL(ext, "permessage-deflate");
  // A stored block of 16 bytes that brings 2: with the appended 00 00 FF FF
  // still 10 short, so the next message would be read as its rest.
  std::string payload{"\x00\x10\x00\xEF\xFF"
                      "AA",
                      7};
  c->send_raw(
    herald::net::client_frame(herald::net::opcode::binary, payload, true, 4));
  run();
  CAF_CHECK(c->messages().empty());
  CAF_CHECK_EQUAL(c->close_code(), 1007);
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST(the deflater never leaves an empty message without data) {
  // Context takeover on both sides, window 15, mem_level 8 (the fuzzer's
  // minimized case: three empty messages).
  for (bool reset : {false, true}) {
    herald::net::deflater d{15, 8, reset};
    strict_inflater zlib_in{15, reset};
    herald::net::inflater herald_in{reset};
    for (auto m : {"", "", "", "after three empty ones", "", "x"}) {
      auto packed = d.compress(bytes(m));
      CAF_CHECK_EQUAL(packed.size() == 1, std::string_view{m}.empty());
      auto got = zlib_in.inflate(packed);
      if (!got)
        CAF_FAIL(zlib_in.error());
      CAF_CHECK_EQUAL(*got, m);
      std::vector<std::byte> out;
      CAF_REQUIRE(herald_in.inflate(packed, 1 << 20, out)
                  == herald::net::inflater::result::ok);
      CAF_CHECK_EQUAL(
        std::string_view(reinterpret_cast<const char*>(out.data()), out.size()),
        m);
    }
  }
}

CAF_TEST(the inflater takes an empty payload as an empty message) {
  for (bool reset : {false, true}) {
    client_deflater d{15, reset};
    herald::net::inflater in{reset};
    std::vector<std::byte> out;
    auto m = std::string(50, 'y') + "z";
    for (auto payload : {d.compress(m), std::string{}, d.compress(m)}) {
      CAF_REQUIRE(in.inflate(bytes(payload), 1 << 20, out)
                  == herald::net::inflater::result::ok);
      CAF_CHECK_EQUAL(out.size(), payload.empty() ? 0 : m.size());
    }
    CAF_CHECK_EQUAL(std::string_view(reinterpret_cast<const char*>(out.data()),
                                     out.size()),
                    m);
    // Not the same as data that stops inside a block.
    CAF_CHECK(in.inflate(bytes(std::string{"\x00\x10\x00\xEF\xFF"
                                           "AA",
                                           7}),
                         1 << 20, out)
              == herald::net::inflater::result::invalid);
  }
}

CAF_TEST(a message that ends its deflate stream needs no more bytes) {
  // RFC 7692 7.2.3.4: a sender may end each message with a final block
  // (BFINAL) instead of a flush; the appended 00 00 FF FF then lies past the
  // end of the stream. With or without a trailing 00 (the RFC's example has
  // one), the next message starts a fresh stream.
  const std::string hello_final{"\xF3\x48\xCD\xC9\xC9\x07\x00", 7};
  client_deflater d{15, true};
  for (auto first : {hello_final, hello_final + std::string(1, '\0')}) {
    herald::net::inflater in{false};
    std::vector<std::byte> out;
    CAF_REQUIRE(in.inflate(bytes(first), 1 << 20, out)
                == herald::net::inflater::result::ok);
    CAF_CHECK_EQUAL(std::string_view(reinterpret_cast<const char*>(out.data()),
                                     out.size()),
                    "Hello");
    CAF_REQUIRE(in.inflate(bytes(d.compress("again")), 1 << 20, out)
                == herald::net::inflater::result::ok);
    CAF_CHECK_EQUAL(std::string_view(reinterpret_cast<const char*>(out.data()),
                                     out.size()),
                    "again");
  }
}

CAF_TEST(zlib windows of 9 bits never reach back past 256 bytes) {
  // Why an 8-bit window can be granted: zlib's raw deflate refuses 8 bits
  // and limits matches to 2^bits - 262 bytes back. Text made of one block
  // repeating at every distance from 200 to 600 bytes, with and without
  // context between messages, inflated with a 256-byte window.
  std::mt19937 rng{3};
  auto block = letters(rng, 40);
  std::string text;
  for (std::size_t gap = 160; gap <= 560; gap += 7)
    text += block + letters(rng, gap);
  for (bool reset : {false, true}) {
    herald::net::deflater d{8, 8, reset};
    strict_inflater in{8, reset};
    for (int i = 0; i < 3; ++i) {
      auto got = in.inflate(d.compress(bytes(text)));
      if (!got)
        CAF_FAIL(in.error());
      CAF_CHECK(*got == text);
    }
  }
}
