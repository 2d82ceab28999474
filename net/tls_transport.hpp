// The transport over a TLS connection (internal to net/; needs Asio).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "herald/net/tcp_transport.hpp"
#include "herald/net/tls_engine.hpp"

namespace herald::net {

/// Makes a transport that owns `sock` and `engine` (a TLS connection whose
/// handshake is done) and starts reading at once; call it on the I/O
/// thread. `initial` holds plaintext read past the HTTP request; what the
/// engine holds unread is decrypted next. Writes encrypt a connection's
/// whole gathered batch into full records and send them with one system
/// call.
transport_ptr make_tls_transport(stream_socket sock, std::string remote,
                                 std::vector<std::byte> initial,
                                 std::unique_ptr<tls_engine> engine,
                                 tcp_transport_options opts = {});

} // namespace herald::net
