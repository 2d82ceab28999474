// The I/O side of a runtime: one Asio event loop on its own thread. Only
// net/*.cpp see Asio; everything else holds this opaque handle.
#pragma once

#include <functional>
#include <memory>

namespace herald::net {

/// Owns an Asio io_context and the thread that runs it.
class io_service {
public:
  virtual ~io_service() = default;
  /// Runs `fn` on the I/O thread.
  virtual void post(std::function<void()> fn) = 0;
  /// Stops the loop and joins the thread (idempotent).
  virtual void stop() = 0;
  /// The underlying asio::io_context (for net/*.cpp only).
  virtual void* native() noexcept = 0;
};

/// Starts an I/O service with one thread.
std::unique_ptr<io_service> make_io_service();

} // namespace herald::net
