// The chat's JSON protocol (docs/chat-protocol.md): limits, validation and
// the events the server sends, built with Boost.JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
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
/// Most names in one `members` message (a page of the member list).
constexpr std::size_t max_members_page = 500;
/// Messages per second a connection may send, and how many at once.
constexpr double message_rate = 10;
constexpr std::size_t message_burst = 20;
/// The `error` that answers a message over the rate limit (it is dropped).
constexpr std::string_view rate_limit_error =
  "rate limit: at most 10 messages per second (20 at once); message dropped";

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
/// `{"type":"join"|"leave","room","name","connections","count","seq",
/// "time"}`: `connections` of that name and `count` of names in the room
/// after the change; `seq` numbers the room's presence events.
std::string presence_event(std::string_view type, std::string_view room,
                           std::string_view name, std::size_t connections,
                           std::size_t count, std::uint64_t seq);
/// `{"type":"members","room","members","count","more","seq"[,"after"]}`:
/// a page of the sorted member list, the names after `after` (all from the
/// first when null), `more` when names follow the page.
std::string members_event(std::string_view room,
                          std::span<const std::string_view> members,
                          std::size_t count, bool more, std::uint64_t seq,
                          const std::string* after);
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
  /// For members: the page starts after this name (else at the first).
  std::optional<std::string> after;
  /// For members: most names in the page (1 to max_members_page).
  std::size_t limit = max_members_page;
  /// Why it is invalid (for the error event).
  std::string error;
};

/// Parses and checks one text message from a client.
client_request parse_request(std::string_view json);

} // namespace chat
