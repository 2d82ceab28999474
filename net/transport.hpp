// What a connection actor needs from its socket. The TCP transport
// (net/tcp_transport.cpp) is the real one; tests use a fake that records
// frames, so the actor runs deterministically with no sockets or threads.
//
// The transport only moves bytes. It reports to its owner with the messages
// declared here: `inbound` for bytes read, `(written_atom, buffered)` when a
// backlog has been written and `(transport_down_atom, why)` when the socket
// is gone.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "herald/net/frame.hpp"

namespace herald::net {

/// To the owner: the transport wrote its whole backlog (payload: bytes
/// still buffered).
using written_atom = caf::atom_constant<caf::atom("h_written")>;
/// To the owner: the socket closed or failed (payload: a description).
using transport_down_atom = caf::atom_constant<caf::atom("h_tdown")>;

/// To the owner: bytes read from the socket.
struct inbound {
  /// The bytes, exactly as read.
  std::vector<std::byte> bytes;
};

/// One connection's socket, seen from its actor. The socket's loop runs
/// the transport, and its members are called there (the owner runs on
/// that loop), or while the loop does not run; only `close` may be called
/// from any thread.
class transport {
public:
  virtual ~transport() = default;

  /// Starts reading; everything read is sent to `owner`.
  virtual void start(caf::actor owner) = 0;
  /// Writes `pieces` in order with as few system calls as possible (the
  /// caller keeps their owners alive until this returns; what is left
  /// over is kept with a reference to its owner). Returns the bytes still
  /// buffered afterwards (0: written through). When a backlog remains, the
  /// owner later gets `written_atom`.
  virtual std::size_t write(std::span<const slice> pieces) = 0;
  /// Bytes accepted but not yet written to the socket.
  virtual std::size_t buffered_amount() const = 0;
  /// The owner processed `n` bytes of input: reading may go on.
  virtual void consumed(std::size_t n) = 0;
  /// Stops reading until `resume_reading` (flow control).
  virtual void pause_reading() = 0;
  /// Resumes reading after `pause_reading`.
  virtual void resume_reading() = 0;
  /// Bytes the peer sent that wait unread in the socket (0 once closing).
  virtual std::size_t unread_input() const = 0;
  /// Closes the connection. `graceful`: after writing what is buffered,
  /// shut down sending and wait briefly for the peer to close; otherwise
  /// drop the socket at once (terminate). Idempotent.
  virtual void close(bool graceful) = 0;
  /// The peer's address as "ip:port".
  virtual std::string remote_address() const = 0;
};

/// Shared handle to a transport.
using transport_ptr = std::shared_ptr<transport>;

} // namespace herald::net

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(herald::net::inbound)
