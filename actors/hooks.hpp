// The bridge between a connection actor (not a template) and the user's
// typed handlers and data (templates): a small virtual interface.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "herald/actors/socket.hpp"

namespace herald {

/// Type-erased handlers and data of one connection.
class connection_hooks {
public:
  virtual ~connection_hooks() = default;
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
};

/// The hooks for data type `T`.
template <class T>
class typed_hooks final : public connection_hooks {
public:
  /// Binds shared handlers to one connection's data.
  typed_hooks(std::shared_ptr<const websocket_handlers<T>> handlers,
              websocket_options opts, T data)
    : handlers_(std::move(handlers)),
      opts_(opts),
      socket_(std::move(data)) {}

  basic_socket& socket() noexcept override { return socket_; }
  const websocket_options& options() const noexcept override { return opts_; }
  void on_open() override {
    if (handlers_->open)
      handlers_->open(socket_);
  }
  void on_message(herald::message m) override {
    if (handlers_->message)
      handlers_->message(socket_, m);
  }
  void on_close(int code, std::string_view reason) override {
    if (handlers_->close)
      handlers_->close(socket_, code, reason);
  }
  void on_drain() override {
    if (handlers_->drain)
      handlers_->drain(socket_);
  }
  void on_ping(std::span<const std::byte> data) override {
    if (handlers_->ping)
      handlers_->ping(socket_, data);
  }
  void on_pong(std::span<const std::byte> data) override {
    if (handlers_->pong)
      handlers_->pong(socket_, data);
  }
  bool on_error(std::string_view what) override {
    if (!handlers_->error)
      return false;
    handlers_->error(socket_, what);
    return true;
  }

private:
  std::shared_ptr<const websocket_handlers<T>> handlers_;
  websocket_options opts_;
  herald::socket<T> socket_;
};

} // namespace herald
