// HTTP requests and responses as `fetch` handlers see them. No Beast types
// here: the parser lives in net/http_session.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/net/deflate.hpp"

namespace herald {

class deferral;

namespace net {

/// What the server attaches to a request it upgrades: the connection to run
/// once the 101 is written. The HTTP layer only holds it and hands it back
/// with the request (http_handler::upgraded); it never looks inside.
class upgrade_payload {
public:
  virtual ~upgrade_payload() = default;
};

/// Limits of the HTTP layer.
struct http_limits {
  /// Largest request head (request line and headers); larger gets 431.
  std::size_t max_header_size = 16u << 10;
  /// Largest request body; larger gets 413.
  std::size_t max_body_size = 1u << 20;
  /// A client that has not sent a whole request by then is dropped.
  std::chrono::milliseconds request_timeout{10000};
  /// An idle keep-alive HTTP connection is closed after this long.
  std::chrono::milliseconds keep_alive_timeout{5000};
  /// Kernel send buffer (SO_SNDBUF) of each WebSocket connection; 0 (the
  /// default) leaves it to the kernel's autotuning. A bound keeps more of a
  /// backlog in Herald's queue, where it is shared frames rather than a
  /// private copy in each socket: less memory and less cache traffic when
  /// large messages fan out, but one connection then carries at most about
  /// 2 x bound per round trip (256 KiB: 5 MB/s at 100 ms), and bursts
  /// larger than the bound take more writes.
  std::size_t websocket_send_buffer = 0;
  /// A deferred request (server::defer) not answered by then gets 503;
  /// 0: never.
  std::chrono::milliseconds deferred_timeout{10000};
  /// Most deferred requests waiting at once (0: no limit); beyond it a
  /// request that fetch defers gets 503.
  std::size_t max_deferred = 10000;
};

} // namespace net

/// A header list: (name, value) pairs in the order they arrived.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// The address part of "ip:port" (without brackets for IPv6).
std::string endpoint_address(std::string_view endpoint);
/// The port part of "ip:port" (0 when missing or invalid).
std::uint16_t endpoint_port(std::string_view endpoint);

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
  /// The peer's IP address, as Bun's `server.requestIP(req).address`.
  std::string remote_address() const { return endpoint_address(remote_); }
  /// The peer's port (0 when unknown).
  std::uint16_t remote_port() const { return endpoint_port(remote_); }
  /// The peer's address and port, "ip:port" ("[ip]:port" for IPv6).
  const std::string& remote_endpoint() const noexcept { return remote_; }
  /// Subprotocols offered in Sec-WebSocket-Protocol, in order.
  std::vector<std::string> protocols() const;
  /// True when this request carries a WebSocket upgrade (Upgrade header
  /// containing "websocket").
  bool is_upgrade() const;

  // -- used by the server -----------------------------------------------------

  /// Attaches the connection that a successful upgrade will run.
  void accept_upgrade(std::unique_ptr<net::upgrade_payload> payload,
                      header_list extra_headers,
                      std::optional<net::deflate_params> deflate = {});
  /// permessage-deflate parameters agreed for the pending upgrade.
  const std::optional<net::deflate_params>& upgrade_deflate() const noexcept {
    return deflate_;
  }
  /// Records why an upgrade failed (status and its extra headers).
  void reject_upgrade(int status, std::string reason);
  /// The pending upgrade, if `accept_upgrade` was called.
  std::unique_ptr<net::upgrade_payload>& upgrade_payload() noexcept {
    return payload_;
  }
  /// Headers the handler asked to add to the 101 response.
  const header_list& upgrade_headers() const noexcept { return up_headers_; }
  /// Status of a failed upgrade attempt (0 if none failed).
  int upgrade_failure() const noexcept { return up_fail_status_; }
  /// Why the upgrade attempt failed.
  const std::string& upgrade_failure_reason() const noexcept {
    return up_fail_reason_;
  }
  /// Marks the request as answered later through `d` (server::defer).
  void set_deferral(std::shared_ptr<deferral> d) noexcept {
    deferral_ = std::move(d);
  }
  /// The deferral `server::defer` made for this request, if any.
  const std::shared_ptr<deferral>& get_deferral() const noexcept {
    return deferral_;
  }

private:
  std::string method_;
  std::string target_;
  std::string path_;
  header_list headers_;
  std::string body_;
  std::string remote_;
  int version_ = 11;
  std::unique_ptr<net::upgrade_payload> payload_;
  header_list up_headers_;
  std::optional<net::deflate_params> deflate_;
  int up_fail_status_ = 0;
  std::string up_fail_reason_;
  std::shared_ptr<deferral> deferral_;
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

/// Status of `deferred` (never sent: no HTTP status is 0).
constexpr int deferred_status = 0;

/// Returned by `fetch` after `server.defer(req)`: the answer comes later,
/// from whoever holds the handle.
inline const response deferred{deferred_status};

/// The shared state of a request answered later (see server<T>::defer and
/// deferred_request<T>): a copy of the request, how it ended, and how to
/// wake its HTTP session. Thread-safe: the application completes it from
/// any thread, the request's loop watches the peer and the timeout.
class deferral {
public:
  /// Where the request stands.
  enum class state {
    pending,   // waiting for an answer
    completed, // answered (a response or an upgrade), not yet sent
    gone,      // the client disconnected first
    timed_out, // no answer in time: the server sent 503
    refused,   // the server answered itself (503 over the bound, ...)
  };

  /// Keeps `copy`, the request's data, for the handle's holders.
  explicit deferral(request copy) : req_(std::move(copy)) {}
  deferral(const deferral&) = delete;
  deferral& operator=(const deferral&) = delete;

  /// The request (a copy, valid as long as the deferral). Its upgrade
  /// fields are the server's business.
  const request& req() const noexcept { return req_; }
  /// Where the request stands now.
  state current() const;
  /// True while an answer is awaited.
  bool pending() const { return current() == state::pending; }

  /// Completes with `r`; false unless pending.
  bool respond(response r);
  /// Completes with an upgrade: `attach(req)` accepts or rejects the
  /// upgrade on the copy and returns true, or returns false when the
  /// request is no upgrade attempt (then it stays pending). Returns what
  /// `attach` returned, false unless pending.
  bool upgrade(const std::function<bool(request&)>& attach);

  // -- used by the server -----------------------------------------------------

  /// Sets how to wake the session once completed (cleared after use);
  /// true when already completed (no wake-up will come).
  bool arm(std::function<void()> wake);
  /// Ends a pending request as `why`; false when it was not pending.
  bool finish(state why);
  /// After completion: the response (none for an upgrade).
  std::optional<response>& result() noexcept { return res_; }
  /// After completion: the copy, carrying the upgrade if there was one.
  request& completed_request() noexcept { return req_; }

private:
  void settle(std::unique_lock<std::mutex>& guard);

  mutable std::mutex mtx_;
  state state_ = state::pending;
  request req_;
  std::optional<response> res_;
  std::function<void()> wake_;
};

/// Decodes %XX escapes (and '+' as space when `plus_as_space`).
std::string percent_decode(std::string_view in, bool plus_as_space);

} // namespace herald
