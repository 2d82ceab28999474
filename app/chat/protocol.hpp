// The chat's JSON protocol (docs/chat-protocol.md): limits, validation and
// the events the server sends, built with Boost.JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

/// Longest name or room, in bytes.
constexpr std::size_t max_name = 32;
/// Longest message text, in bytes.
constexpr std::size_t max_text = 4000;
/// Largest WebSocket message a client may send (larger: close 1009).
constexpr std::size_t max_message_bytes = 16 * 1024;

/// A valid name or room: 1..32 bytes of UTF-8, no control characters.
bool valid_label(std::string_view s);

/// Milliseconds since the Unix epoch.
std::int64_t now_ms();

/// A message id unique to this process and (very likely) across processes:
/// a random prefix chosen at start and a counter.
std::string next_id();

/// `{"type":"welcome","room","name","history"}`.
std::string welcome_event(std::string_view room, std::string_view name,
                          std::size_t history);
/// `{"type":"message","id","room","name","text","time"[,"server":true]}`.
std::string message_event(std::string_view room, std::string_view name,
                          std::string_view text, bool from_server = false);
/// `{"type":"join"|"leave","room","name","members","time"}`.
std::string presence_event(std::string_view type, std::string_view room,
                           std::string_view name,
                           const std::vector<std::string>& members);
/// `{"type":"members","room","members"}`.
std::string members_event(std::string_view room,
                          const std::vector<std::string>& members);
/// `{"type":"history","room","messages":[...]}` from serialized `message`
/// events (oldest first), spliced in as they are.
std::string history_event(std::string_view room,
                          std::span<const std::string_view> messages);
/// `{"type":"error","error"}`.
std::string error_event(std::string_view what);

/// True when `json` is a serialized `message` event (as message_event
/// writes them: the type comes first).
bool is_message_event(std::string_view json) noexcept;

/// What a client sent, parsed.
struct client_request {
  enum kind_t { message, members, invalid } kind = invalid;
  /// The text of a message.
  std::string text;
  /// Why it is invalid (for the error event).
  std::string error;
};

/// Parses and checks one text message from a client.
client_request parse_request(std::string_view json);

} // namespace chat
