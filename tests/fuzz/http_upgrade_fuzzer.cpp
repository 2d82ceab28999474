// The HTTP request and upgrade path as the server runs it: Beast's parser
// under the server's limits (net::read_request, the code a session runs),
// the bytes cut into reads at chosen points and also given whole (both must
// agree), then what server.upgrade does: is_upgrade_attempt, check_upgrade,
// permessage-deflate negotiation, and the 101 response.
//
// Input: options (bits 0-1 header limit, bits 2-3 body limit, bit 4
// dedicated compressor), cut points, then the bytes a client sends.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "herald/actors/hooks.hpp"
#include "herald/net/deflate.hpp"
#include "herald/net/handshake.hpp"
#include "herald/net/http.hpp"
#include "herald/net/http_server.hpp"

#include "input.hpp"

namespace {

using namespace herald;

// The same answer however the bytes arrive. Input that breaks two rules
// (a head over the limit that is also malformed) may be refused for either,
// depending on which one the parser meets first.
bool same(const net::read_outcome& x, const net::read_outcome& y) {
  if (x.status != 0 && y.status != 0)
    return true;
  if (x.status != y.status || x.req.has_value() != y.req.has_value())
    return false;
  if (!x.req)
    return true;
  auto& a = *x.req;
  auto& b = *y.req;
  return a.method() == b.method() && a.target() == b.target()
         && a.headers() == b.headers() && a.body() == b.body()
         && a.version() == b.version();
}

// What server.upgrade and the session do with a request.
void upgrade(request& req, std::uint8_t opts) {
  // What fetch handlers call.
  (void)req.path();
  (void)req.query("name");
  (void)req.protocols();
  (void)req.is_upgrade();
  if (!net::is_upgrade_attempt(req))
    return;
  auto verdict = net::check_upgrade(req);
  HERALD_FUZZ_CHECK(verdict.status == 0 || verdict.status == 400
                    || verdict.status == 426);
  HERALD_FUZZ_CHECK(verdict.status == 0 || !verdict.reason.empty());
  if (verdict.status != 0)
    return;
  HERALD_FUZZ_CHECK(req.method() == "GET");
  header_list extra;
  deflate_options d;
  d.enabled = true;
  d.dedicated_compressor = (opts & 16) != 0;
  if (auto agreed =
        net::negotiate_deflate(req.header_values("sec-websocket-extensions"),
                               d))
    extra.emplace_back("Sec-WebSocket-Extensions", agreed->second);
  req.accept_upgrade(nullptr, std::move(extra));
  auto response = net::switching_protocols(req);
  HERALD_FUZZ_CHECK(
    response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  HERALD_FUZZ_CHECK(response.ends_with("\r\n\r\n"));
  // One head: no line break a header could have smuggled in.
  HERALD_FUZZ_CHECK(response.find("\r\n\r\n") == response.size() - 4);
  HERALD_FUZZ_CHECK(response.find('\n') == response.find("\r\n") + 1);
  HERALD_FUZZ_CHECK(response.find("Sec-WebSocket-Accept: ")
                    != std::string::npos);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  herald::fuzz::input in{data, size};
  auto opts = in.byte();
  static constexpr std::size_t header_limits[] = {64, 512, 8192, 16384};
  static constexpr std::size_t body_limits[] = {0, 16, 4096, 1u << 20};
  net::http_limits limits;
  limits.max_header_size = header_limits[opts & 3];
  limits.max_body_size = body_limits[(opts >> 2) & 3];
  auto cuts = in.cuts(8);
  std::sort(cuts.begin(), cuts.end());
  auto rest = in.rest();
  std::span<const char> bytes{reinterpret_cast<const char*>(rest.data()),
                              rest.size()};
  auto whole = net::read_request(bytes, {}, limits);
  auto pieces = net::read_request(bytes, cuts, limits);
  if (!same(whole, pieces) || std::getenv("HERALD_FUZZ_VERBOSE")) {
    std::fprintf(stderr, "whole: %d, %zu bytes, %s; in pieces: %d, %zu, %s\n",
                 whole.status, whole.consumed, whole.req ? "request" : "none",
                 pieces.status, pieces.consumed,
                 pieces.req ? "request" : "none");
    HERALD_FUZZ_CHECK(same(whole, pieces));
  }
  if (whole.req && std::getenv("HERALD_FUZZ_VERBOSE"))
    for (auto& [k, v] : whole.req->headers())
      std::fprintf(stderr, "[%s]: [%s]\n", k.c_str(), v.c_str());
  HERALD_FUZZ_CHECK(whole.status == 0 || whole.status == 400
                    || whole.status == 413 || whole.status == 431);
  HERALD_FUZZ_CHECK(whole.consumed <= bytes.size());
  if (whole.req) {
    HERALD_FUZZ_CHECK(whole.req->body().size() <= limits.max_body_size);
    upgrade(*whole.req, opts);
  }
  return 0;
}
