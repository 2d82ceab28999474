// The transport over a TCP socket (internal to net/; needs Asio).
#pragma once

#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "herald/net/transport.hpp"

namespace herald::net {

/// Tunables of TCP transports.
struct tcp_transport_options {
  /// Bytes read but not yet processed by the actor before reading pauses.
  std::size_t read_credit = 256u << 10;
  /// How long a graceful close waits for the peer to close its side.
  std::chrono::milliseconds linger{2000};
};

/// Makes a transport that owns `sock`. `initial` holds bytes read past the
/// HTTP request (frames a client sent right after its handshake).
transport_ptr make_tcp_transport(boost::asio::ip::tcp::socket sock,
                                 std::vector<std::byte> initial,
                                 tcp_transport_options opts = {});

} // namespace herald::net
