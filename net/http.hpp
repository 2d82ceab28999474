// HTTP requests and responses as `fetch` handlers see them. No Beast types
// here: the parser lives in net/http_session.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/net/deflate.hpp"

namespace herald {

class connection_hooks;

/// A header list: (name, value) pairs in the order they arrived.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One HTTP request, as `fetch` receives it.
class request {
public:
  /// Creates a request (the HTTP session does this; tests may too).
  request(std::string method, std::string target, header_list headers,
          std::string body = {}, std::string remote_address = {},
          int version = 11);
  ~request();
  request(request&&) noexcept;
  request& operator=(request&&) noexcept;

  /// The method, e.g. "GET".
  std::string_view method() const noexcept { return method_; }
  /// HTTP version times ten: 11 for HTTP/1.1, 10 for HTTP/1.0.
  int version() const noexcept { return version_; }
  /// The request target as sent ("/chat?name=ann").
  std::string_view target() const noexcept { return target_; }
  /// The path part of the target, percent-decoded ("/chat").
  const std::string& path() const noexcept { return path_; }
  /// The query string without '?' (raw).
  std::string_view query_string() const noexcept;
  /// A query parameter, percent-decoded ('+' as space); none if absent.
  std::optional<std::string> query(std::string_view name) const;
  /// A header's value (first of that name, case-insensitive); none if absent.
  std::optional<std::string_view> header(std::string_view name) const;
  /// All values of a header joined with ", " (empty if absent).
  std::string header_values(std::string_view name) const;
  /// All headers in arrival order.
  const header_list& headers() const noexcept { return headers_; }
  /// The request body.
  const std::string& body() const noexcept { return body_; }
  /// The peer's address as "ip:port".
  const std::string& remote_address() const noexcept { return remote_; }
  /// Subprotocols offered in Sec-WebSocket-Protocol, in order.
  std::vector<std::string> protocols() const;
  /// True when this request carries a WebSocket upgrade (Upgrade header
  /// containing "websocket").
  bool is_upgrade() const;

  // -- used by the server -----------------------------------------------------

  /// Attaches the connection that a successful upgrade will run.
  void accept_upgrade(std::unique_ptr<connection_hooks> hooks,
                      header_list extra_headers,
                      std::optional<net::deflate_params> deflate = {});
  /// permessage-deflate parameters agreed for the pending upgrade.
  const std::optional<net::deflate_params>& upgrade_deflate() const noexcept {
    return deflate_;
  }
  /// Records why an upgrade failed (status and its extra headers).
  void reject_upgrade(int status, std::string reason);
  /// The pending upgrade, if `accept_upgrade` was called.
  std::unique_ptr<connection_hooks>& upgrade_hooks() noexcept {
    return hooks_;
  }
  /// Headers the handler asked to add to the 101 response.
  const header_list& upgrade_headers() const noexcept { return up_headers_; }
  /// Status of a failed upgrade attempt (0 if none failed).
  int upgrade_failure() const noexcept { return up_fail_status_; }
  /// Why the upgrade attempt failed.
  const std::string& upgrade_failure_reason() const noexcept {
    return up_fail_reason_;
  }

private:
  std::string method_;
  std::string target_;
  std::string path_;
  header_list headers_;
  std::string body_;
  std::string remote_;
  int version_ = 11;
  std::unique_ptr<connection_hooks> hooks_;
  header_list up_headers_;
  std::optional<net::deflate_params> deflate_;
  int up_fail_status_ = 0;
  std::string up_fail_reason_;
};

/// An HTTP response returned by `fetch`.
struct response {
  /// Status code.
  int status = 200;
  /// Body (sent with Content-Length).
  std::string body;
  /// Extra headers; Content-Type defaults to text/plain.
  header_list headers;

  response() = default;
  /// A response with a status and a body.
  response(int s, std::string b = {}) : status(s), body(std::move(b)) {}
  /// A response with a status, body and headers.
  response(int s, std::string b, header_list h)
    : status(s), body(std::move(b)), headers(std::move(h)) {}
};

/// What `fetch` returns: a response, `herald::upgraded`, or nothing (404).
using fetch_result = std::optional<response>;

/// Returned by `fetch` after a successful `upgrade`.
inline const response upgraded{101};

/// Decodes %XX escapes (and '+' as space when `plus_as_space`).
std::string percent_decode(std::string_view in, bool plus_as_space);

} // namespace herald
