// The bridge between a connection actor (not a template) and the user's
// typed handlers and data (templates): a small virtual interface.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "herald/actors/socket.hpp"
#include "herald/net/http.hpp"

namespace herald {

class server_base;

/// Type-erased handlers and data of one connection: what server<T>::upgrade
/// attaches to a request as its upgrade payload.
class connection_hooks : public net::upgrade_payload {
public:
  /// The handle handlers receive.
  virtual basic_socket& socket() noexcept = 0;
  /// Options of the connection.
  virtual const websocket_options& options() const noexcept = 0;
  /// Calls `open`.
  virtual void on_open() = 0;
  /// Calls `message`.
  virtual void on_message(herald::message m) = 0;
  /// Calls `close`.
  virtual void on_close(int code, std::string_view reason) = 0;
  /// Calls `drain`.
  virtual void on_drain() = 0;
  /// Calls `ping`.
  virtual void on_ping(std::span<const std::byte> data) = 0;
  /// Calls `pong`.
  virtual void on_pong(std::span<const std::byte> data) = 0;
  /// Calls `error`; false when there is no error handler.
  virtual bool on_error(std::string_view what) = 0;
  /// Calls `limited` (a message over the rate limit was dropped).
  virtual void on_limited(herald::message) {
    // Nop: hooks without the handler drop silently.
  }
};

/// Takes the hooks that server<T>::upgrade attached to `req` (null when
/// none, or when someone else attached a payload of another kind).
inline std::unique_ptr<connection_hooks> take_hooks(request& req) {
  auto& p = req.upgrade_payload();
  auto* hooks = dynamic_cast<connection_hooks*>(p.get());
  if (hooks == nullptr)
    return nullptr;
  p.release();
  return std::unique_ptr<connection_hooks>{hooks};
}

/// Handlers and the options they run with, shared by the connections of a
/// server (each connection keeps a reference, not a copy of the options).
template <class T>
struct handler_set {
  std::shared_ptr<const websocket_handlers<T>> handlers;
  websocket_options options;
  /// The server the connections belong to (`ws.server()`); weak, as the
  /// server holds its handlers.
  std::weak_ptr<server_base> server = {};
};

/// The handler set of `handlers`, with their own options, for connections
/// of `srv`.
template <class T>
std::shared_ptr<const handler_set<T>>
make_handler_set(std::shared_ptr<const websocket_handlers<T>> handlers,
                 std::weak_ptr<server_base> srv = {}) {
  auto opts = handlers->options();
  return std::make_shared<const handler_set<T>>(
    handler_set<T>{std::move(handlers), opts, std::move(srv)});
}

/// The hooks for data type `T`.
template <class T>
class typed_hooks final : public connection_hooks {
public:
  /// Binds a server's handlers to one connection's data.
  typed_hooks(std::shared_ptr<const handler_set<T>> set, T data)
    : set_(std::move(set)), socket_(std::move(data)) {
    socket_.bind_set(&set_);
  }

  /// Binds handlers with options of their own to one connection's data.
  typed_hooks(std::shared_ptr<const websocket_handlers<T>> handlers,
              websocket_options opts, T data)
    : typed_hooks(std::make_shared<const handler_set<T>>(
                    handler_set<T>{std::move(handlers), opts}),
                  std::move(data)) {}

  basic_socket& socket() noexcept override { return socket_; }
  const websocket_options& options() const noexcept override {
    return set_->options;
  }
  void on_open() override {
    if (handlers().open)
      handlers().open(socket_);
  }
  void on_message(herald::message m) override {
    if (handlers().message)
      handlers().message(socket_, m);
  }
  void on_close(int code, std::string_view reason) override {
    if (handlers().close)
      handlers().close(socket_, code, reason);
  }
  void on_drain() override {
    if (handlers().drain)
      handlers().drain(socket_);
  }
  void on_ping(std::span<const std::byte> data) override {
    if (handlers().ping)
      handlers().ping(socket_, data);
  }
  void on_pong(std::span<const std::byte> data) override {
    if (handlers().pong)
      handlers().pong(socket_, data);
  }
  bool on_error(std::string_view what) override {
    if (!handlers().error)
      return false;
    handlers().error(socket_, what);
    return true;
  }
  void on_limited(herald::message m) override {
    if (handlers().limited)
      handlers().limited(socket_, m);
  }

private:
  const websocket_handlers<T>& handlers() const noexcept {
    return *set_->handlers;
  }

  std::shared_ptr<const handler_set<T>> set_;
  herald::socket<T> socket_;
};

} // namespace herald
