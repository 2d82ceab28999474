#include "herald/actors/metrics.hpp"

#include <atomic>
#include <cstdint>

namespace herald {

namespace {

class writer {
public:
  explicit writer(std::string_view prefix) : prefix_(prefix) {}

  void header(std::string_view name, std::string_view type,
              std::string_view help) {
    out_ += "# HELP ";
    name_(name);
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    name_(name);
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(std::string_view name, std::uint64_t value,
              std::string_view labels = {}) {
    name_(name);
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
  }

  void counter(std::string_view name, std::string_view help,
               const std::atomic<std::uint64_t>& value) {
    header(name, "counter", help);
    sample(name, value.load(std::memory_order_relaxed));
  }

  void gauge(std::string_view name, std::string_view help,
             std::uint64_t value) {
    header(name, "gauge", help);
    sample(name, value);
  }

  std::string take() { return std::move(out_); }

private:
  void name_(std::string_view name) {
    out_ += prefix_;
    out_ += '_';
    out_ += name;
  }

  std::string_view prefix_;
  std::string out_;
};

} // namespace

std::string prometheus_text(const server_stats& stats, std::size_t topics,
                            std::string_view prefix) {
  writer w{prefix};
  auto open = stats.open_connections.load(std::memory_order_relaxed);
  w.gauge("open_connections", "WebSocket connections open now.",
          open < 0 ? 0 : static_cast<std::uint64_t>(open));
  w.gauge("topics", "Topics with at least one subscriber.", topics);
  w.counter("connections_total", "WebSocket connections accepted.",
            stats.connections_total);
  w.counter("messages_received_total", "Messages received from clients.",
            stats.messages_in);
  w.counter("messages_sent_total",
            "Messages written to clients (sends and topic deliveries).",
            stats.messages_out);
  w.counter("received_bytes_total", "Payload bytes received from clients.",
            stats.bytes_in);
  w.counter("sent_bytes_total", "Frame bytes handed to sockets.",
            stats.bytes_out);
  w.counter("dropped_messages_total",
            "Messages dropped (backpressure limit or closing connection).",
            stats.dropped);
  w.counter("rate_limited_messages_total",
            "Messages over a connection's rate limit (dropped or closed).",
            stats.rate_limited);
  w.counter("refused_subscriptions_total",
            "Subscriptions refused at a connection's max_subscriptions.",
            stats.subscriptions_refused);
  w.counter("dropped_over_limit_messages_total",
            "Of dropped_messages_total, those dropped for a connection over "
            "its backpressure limit.",
            stats.dropped_over_limit);
  w.header("closes_total", "counter",
           "Closed WebSocket connections by close code.");
  for (std::size_t i = 0; i < 16; ++i) {
    auto n = stats.closes[i].load(std::memory_order_relaxed);
    if (n == 0 && i != 0)
      continue; // codes never seen stay out; 1000 is always there
    w.sample("closes_total", n, "code=\"" + std::to_string(1000 + i) + "\"");
  }
  w.sample("closes_total", stats.closes[16].load(std::memory_order_relaxed),
           "code=\"other\"");
  w.counter("http_requests_total", "HTTP requests answered without an upgrade.",
            stats.http_requests);
  w.counter("refused_upgrades_total",
            "Upgrade requests refused (bad handshakes, limits).",
            stats.upgrades_refused);
  w.counter("compressed_messages_total",
            "Messages compressed with permessage-deflate (a publication "
            "shared by many subscribers counts once).",
            stats.deflated);
  w.counter("cross_node_sent_total",
            "Messages published to Redis for other nodes (with redis).",
            stats.cross_node_sent);
  w.counter("cross_node_received_total",
            "Messages from other nodes delivered here (with redis).",
            stats.cross_node_received);
  w.counter("cross_node_dropped_total",
            "Messages that could not cross nodes (Redis unreachable).",
            stats.cross_node_dropped);
  auto up = stats.redis_connected.load(std::memory_order_relaxed);
  w.gauge("redis_connected", "1 while both Redis connections are up.",
          up > 0 ? 1 : 0);
  w.counter("redis_outages_total", "Times this node lost Redis.",
            stats.redis_outages);
  auto tls_open = stats.tls.open.load(std::memory_order_relaxed);
  w.gauge("tls_connections",
          "TCP connections over TLS open now (HTTP and WebSocket).",
          tls_open < 0 ? 0 : static_cast<std::uint64_t>(tls_open));
  w.counter("tls_handshakes_total", "TLS handshakes completed.",
            stats.tls.handshakes);
  w.counter("tls_handshake_failures_total",
            "TLS handshakes failed (bad ClientHello, plain HTTP, ...).",
            stats.tls.handshake_failures);
  w.counter("tls_reloads_total", "Certificate reloads that took effect.",
            stats.tls.reloads);
  w.counter("tls_reload_failures_total",
            "Certificate reloads refused (old certificates kept).",
            stats.tls.reload_failures);
  return w.take();
}

} // namespace herald
