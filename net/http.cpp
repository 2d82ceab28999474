#include "herald/net/http.hpp"

#include "herald/net/handshake.hpp"
#include "herald/net/text.hpp"

namespace herald {

namespace {

// True when percent_decode would change `in` (most paths and query keys
// hold no escape).
bool needs_decoding(std::string_view in, bool plus_as_space) noexcept {
  for (auto c : in)
    if (c == '%' || (plus_as_space && c == '+'))
      return true;
  return false;
}

} // namespace

std::string percent_decode(std::string_view in, bool plus_as_space) {
  if (!needs_decoding(in, plus_as_space))
    return std::string{in};
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      auto hi = net::hex_value(in[i + 1]);
      auto lo = net::hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_as_space && c == '+') ? ' ' : c;
  }
  return out;
}

request::request(std::string method, std::string target, header_list headers,
                 std::string body, std::string remote_address, int version)
  : method_(std::move(method)), target_(std::move(target)),
    headers_(std::move(headers)), body_(std::move(body)),
    remote_(std::move(remote_address)), version_(version) {
  std::string_view t{target_};
  path_ = percent_decode(t.substr(0, t.find('?')), false);
}

std::string endpoint_address(std::string_view endpoint) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos)
    return std::string{endpoint};
  auto ip = endpoint.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']')
    ip = ip.substr(1, ip.size() - 2);
  return std::string{ip};
}

std::uint16_t endpoint_port(std::string_view endpoint) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == endpoint.size())
    return 0;
  unsigned long v = 0;
  for (auto c : endpoint.substr(colon + 1)) {
    if (c < '0' || c > '9' || v > 65535)
      return 0;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  return v > 65535 ? 0 : static_cast<std::uint16_t>(v);
}

request::~request() = default;
request::request(request&&) noexcept = default;
request& request::operator=(request&&) noexcept = default;

std::string_view request::query_string() const noexcept {
  std::string_view t{target_};
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::optional<std::string> request::query(std::string_view name) const {
  auto qs = query_string();
  while (!qs.empty()) {
    auto amp = qs.find('&');
    auto pair = qs.substr(0, amp);
    auto eq = pair.find('=');
    auto raw = pair.substr(0, eq);
    // A key without escapes is compared as it is, without a copy.
    if (needs_decoding(raw, true) ? percent_decode(raw, true) == name
                                  : raw == name)
      return eq == std::string_view::npos
               ? std::string{}
               : percent_decode(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos)
      break;
    qs.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string_view> request::header(std::string_view name) const {
  for (auto& [k, v] : headers_)
    if (net::iequals(k, name))
      return std::string_view{v};
  return std::nullopt;
}

std::vector<std::string> request::protocols() const {
  std::vector<std::string> out;
  for (auto& [k, v] : headers_) {
    if (!net::iequals(k, "sec-websocket-protocol"))
      continue;
    std::string_view list{v};
    while (!list.empty()) {
      auto comma = list.find(',');
      auto item = net::trim(list.substr(0, comma));
      if (!item.empty())
        out.emplace_back(item);
      if (comma == std::string_view::npos)
        break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool request::is_upgrade() const {
  auto up = header("upgrade");
  return up && net::has_token(*up, "websocket");
}

std::string request::header_values(std::string_view name) const {
  std::string out;
  for (auto& [k, v] : headers_) {
    if (!net::iequals(k, name))
      continue;
    if (!out.empty())
      out += ", ";
    out += v;
  }
  return out;
}

void request::accept_upgrade(std::unique_ptr<net::upgrade_payload> payload,
                             header_list extra_headers,
                             std::optional<net::deflate_params> deflate) {
  payload_ = std::move(payload);
  up_headers_ = std::move(extra_headers);
  deflate_ = deflate;
  up_fail_status_ = 0;
  up_fail_reason_.clear();
}

void request::reject_upgrade(int status, std::string reason) {
  up_fail_status_ = status;
  up_fail_reason_ = std::move(reason);
}

// -- deferral ----------------------------------------------------------------

deferral::state deferral::current() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return state_;
}

void deferral::settle(std::unique_lock<std::mutex>& guard) {
  state_ = state::completed;
  auto wake = std::move(wake_);
  wake_ = nullptr;
  guard.unlock();
  // Outside the lock: the wake-up posts to the request's loop.
  if (wake)
    wake();
}

bool deferral::respond(response r) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (state_ != state::pending)
    return false;
  res_ = std::move(r);
  settle(guard);
  return true;
}

bool deferral::upgrade(const std::function<bool(request&)>& attach) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (state_ != state::pending || !attach(req_))
    return false;
  settle(guard);
  return true;
}

bool deferral::arm(std::function<void()> wake) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (state_ == state::completed)
    return true;
  if (state_ == state::pending)
    wake_ = std::move(wake);
  return false;
}

bool deferral::finish(state why) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (state_ != state::pending)
      return false;
    state_ = why;
    wake.swap(wake_); // drops the session's reference outside the lock
  }
  return true;
}

} // namespace herald
