// The server side of the RFC 6455 opening handshake (section 4.2).
#pragma once

#include <string>
#include <string_view>

#include "herald/net/frame.hpp"
#include "herald/net/http.hpp"

namespace herald::net {

/// The verdict on an upgrade request.
struct handshake_verdict {
  /// 0 when the request is a valid upgrade; else 400 or 426.
  int status = 0;
  /// Why the request was refused (for the response body and logs).
  std::string reason;
};

/// Checks an upgrade request: GET over HTTP/1.1 or later with a Host,
/// headers Upgrade: websocket and
/// Connection: upgrade, a Sec-WebSocket-Key of 16 base64-encoded bytes, and
/// Sec-WebSocket-Version 13 (426 for any other version).
handshake_verdict check_upgrade(const request& req);

/// True when `req` tries to open a WebSocket (an Upgrade: websocket header
/// or a Sec-WebSocket-Key), valid or not.
bool is_upgrade_attempt(const request& req);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key.
std::string accept_key(std::string_view key);

/// True when `list` (a comma-separated header value) holds `token`,
/// compared case-insensitively.
bool has_token(std::string_view list, std::string_view token);

/// Builds the whole 101 response for a checked request.
std::string switching_protocols(const request& req);

/// The 101 response of switching_protocols as raw bytes in a frame (see
/// make_raw), which the connection writes ahead of its first frames.
frame_ptr switching_protocols_frame(const request& req);

} // namespace herald::net
