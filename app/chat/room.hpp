// The chat app's connection handlers and HTTP endpoints, apart from main()
// so the tests run the very code the program serves
// (tests/unit/chat_test.cpp with the testing kit, tests/integration and
// tests/e2e against the program). Protocol: docs/chat-protocol.md.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include <caf/actor.hpp>

#include <herald/herald.hpp>

#include "presence.hpp"
#include "protocol.hpp"

namespace chat {

/// One member: who and in which room.
struct member {
  /// Display name.
  std::string name;
  /// Room (a topic).
  std::string room;
};

/// The WebSocket handlers of the chat: `presence` is the server's presence
/// actor (spawn_presence); `history` is announced in `welcome`.
herald::websocket_handlers<member> handlers(caf::actor presence,
                                            std::size_t history);

/// True when `token` is empty or the request carries it (`?token=` or
/// `Authorization: Bearer`).
bool authorized(const herald::request& req, std::string_view token);

/// The /ws endpoint. With an auth actor (spawn_auth) the request is handed
/// to it and answered there; without one it is admitted at once (no token
/// to check).
herald::fetch_result open_socket(herald::request& req,
                                 herald::server<member>& srv,
                                 const caf::actor& auth = {});

/// Decides a /ws request: 401 without the token, 400 for a bad name or
/// room, else the upgrade.
void admit(const herald::deferred_request<member>& d, std::string_view token);

/// The auth actor: checks the token of every /ws request handed to it
/// (open_socket) while the request waits without a thread, as a check
/// against an outside service would. It ends with the registry that
/// `attach_registry(auth, registry)` gives it.
caf::actor spawn_auth(caf::actor_system& sys, std::string token);

/// The page's files (index.html, app.js, style.css), read once at start.
class site {
public:
  /// Reads the files from `dir`; throws std::runtime_error when one is
  /// missing.
  explicit site(const std::string& dir);
  /// The file for a path ("/" is index.html), or null.
  const herald::response* file(std::string_view path) const;

private:
  std::map<std::string, herald::response, std::less<>> files_;
};

/// Everything herald-chat answers over HTTP: the page, /ws, /health,
/// /metrics and POST /rooms/ROOM/messages.
/// `auth` is the auth actor when a token is required (else null).
herald::fetch_result route(herald::request& req, herald::server<member>& srv,
                           const site& pages, std::string_view token,
                           const caf::actor& auth = {});

} // namespace chat
