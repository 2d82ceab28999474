// The chat app's room logic, apart from main() so the tests run the very
// handlers the program serves (tests/unit/chat_test.cpp, with the kit).
//
// Protocol (JSON text messages):
//   client -> server  {"type":"message","text":"..."}
//   server -> client  {"type":"message","room":R,"name":N,"text":T,"time":MS}
//                     {"type":"join","room":R,"name":N,"time":MS}
//                     {"type":"leave","room":R,"name":N,"time":MS}
//                     {"type":"welcome","room":R,"name":N}
//                     {"type":"error","error":"..."}
// A binary message closes the connection with 1003.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <herald/actors/herald.hpp>

namespace chat {

/// One member: who and in which room.
struct member {
  /// Display name.
  std::string name;
  /// Room (a topic).
  std::string room;
};

/// Longest name or room.
constexpr std::size_t max_name = 32;
/// Longest message text.
constexpr std::size_t max_text = 4000;

/// A valid name or room: 1..32 characters, no control characters.
bool valid_label(std::string_view s);

/// The WebSocket handlers of a chat room.
herald::websocket_handlers<member> handlers();

/// The /ws endpoint: checks name and room, then upgrades (400 otherwise).
herald::fetch_result open_socket(herald::request& req,
                                 herald::server<member>& srv);

} // namespace chat
