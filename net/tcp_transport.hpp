// The transport over a TCP socket (internal to net/; needs Asio).
#pragma once

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <boost/asio/ip/tcp.hpp>

#include "herald/net/transport.hpp"

namespace herald::net {

/// Tunables of TCP transports.
struct tcp_transport_options {
  /// Bytes read but not yet processed by the actor before reading pauses.
  std::size_t read_credit = 256u << 10;
  /// How long a graceful close waits for the peer to close its side.
  std::chrono::milliseconds linger{2000};
  /// SO_SNDBUF of the socket; 0 leaves it to the kernel's autotuning (up
  /// to net.ipv4.tcp_wmem's maximum, 4 MiB by default). Linux doubles the
  /// value for its bookkeeping.
  std::size_t send_buffer = 0;
  /// Sets TCP_NODELAY; false when the socket has it already (inherited
  /// from a listener that has it).
  bool set_no_delay = true;
};

/// A TCP socket bound to the io_context's own executor rather than the
/// type-erased any_io_executor of tcp::socket: smaller sockets and pending
/// waits (every idle connection has a read wait in flight), no type-erased
/// dispatch per completion. The listener accepts into this type, so an
/// upgraded socket moves into its transport without being registered with
/// the reactor again.
using stream_socket =
  boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                   boost::asio::io_context::executor_type>;

/// Makes a transport that owns `sock` (a peer at `remote`, "ip:port") and
/// starts reading at once; call it on the socket's loop. `initial` holds
/// bytes read past the HTTP request (frames a client sent right after its
/// handshake); they and whatever arrives before start() go to the owner
/// first thing.
transport_ptr make_tcp_transport(stream_socket sock, std::string remote,
                                 std::vector<std::byte> initial,
                                 tcp_transport_options opts = {});

} // namespace herald::net
