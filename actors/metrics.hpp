// Server counters in the Prometheus text exposition format (version 0.0.4),
// for a `GET /metrics` endpoint:
//
//   .fetch = [](herald::request& req, herald::server<T>& srv)
//     -> herald::fetch_result {
//     if (req.path() == "/metrics")
//       return herald::response{200, herald::prometheus_text(srv),
//                               {{"Content-Type", herald::prometheus_type}}};
//     ...
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "herald/actors/stats.hpp"

namespace herald {

/// The Content-Type of prometheus_text's output.
inline constexpr std::string_view prometheus_type =
  "text/plain; version=0.0.4; charset=utf-8";

/// The counters of `stats` (and the number of topics with subscribers) as
/// Prometheus metrics named `<prefix>_...`: open connections, connections,
/// messages and bytes in and out, drops, closes by code, HTTP requests,
/// refused upgrades, topics, and the cross-node counters of a Redis bridge.
std::string prometheus_text(const server_stats& stats, std::size_t topics,
                            std::string_view prefix = "herald");

/// The same for a server (anything with `stats()` and `topic_count()`).
template <class Server>
std::string prometheus_text(const Server& srv,
                            std::string_view prefix = "herald") {
  return prometheus_text(srv.stats(), srv.topic_count(), prefix);
}

} // namespace herald
