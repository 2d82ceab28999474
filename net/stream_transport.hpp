// What the TCP and TLS transports share (internal to net/; needs Asio):
// the socket, the hand-over of early input, read credit and pausing, the
// write wait, graceful close with linger, and abort. A subclass moves the
// bytes: how a write is sent and what a read turns into.
//
// One thread: the socket's loop runs the Asio handlers, and the owner (a
// connection actor, whose home is that loop) calls every member there
// too, so the state below takes no lock. Only close() may come from
// another thread (a connection destroyed elsewhere): it then goes to the
// loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "herald/net/tcp_transport.hpp"

namespace herald::net {

class stream_transport : public transport,
                         public std::enable_shared_from_this<stream_transport> {
public:
  ~stream_transport() override;

  void start(caf::actor owner) override;
  std::size_t buffered_amount() const override;
  void consumed(std::size_t n) override;
  void pause_reading() override;
  void resume_reading() override;
  std::size_t unread_input() const override;
  void close(bool graceful) override;
  std::string remote_address() const override;

  /// Called once by the factory, on the socket's loop: accounts for the
  /// early input and starts reading (after `on_begin`).
  void begin();

protected:
  stream_transport(stream_socket sock, std::string remote,
                   std::vector<std::byte> initial, tcp_transport_options opts);

  /// A piece of the backlog: its bytes and a reference that keeps them.
  struct queued : slice {
    frame_ptr keep;
  };

  // -- hooks ------------------------------------------------------------------

  /// Before the first read: false when the connection already ended.
  virtual bool on_begin() { return true; }
  /// `bytes` were read (valid only during the call); false when the
  /// connection ended and reading must stop.
  virtual bool on_received(std::span<const std::byte> bytes) = 0;
  /// True when nothing waits to be sent.
  virtual bool flushed() const = 0;
  /// With the socket writable: sends the backlog. True when all of it went
  /// out; false when it armed the write wait again or failed.
  virtual bool flush_backlog() = 0;
  /// Before FIN on a graceful close.
  virtual void before_shutdown() {}
  /// When the transport fails or aborts: drops the subclass's backlog
  /// state (the base clears out_ and buffered_).
  virtual void clear_backlog() {}

  // -- for subclasses ---------------------------------------------------------

  /// Hands read bytes to the owner (the socket's loop).
  void deliver(std::vector<std::byte> bytes);
  /// Marks the transport failed and tells the owner why.
  void fail(std::string why);
  /// The socket's loop: ends the connection after a read error or EOF.
  void down(std::string why);
  /// Waits for the socket to become writable, then calls flush_backlog.
  void arm_write();

  stream_socket sock_;
  std::string remote_;
  std::size_t read_credit_;
  std::chrono::milliseconds linger_;

  caf::actor owner_;
  std::vector<queued> out_;
  std::size_t buffered_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool failed_ = false;
  // Beside the flags: fills their padding.
  int fd_ = -1;

  std::size_t unconsumed_ = 0;

private:
  void do_read();
  void on_readable(boost::system::error_code ec);
  void on_writable(boost::system::error_code ec);
  void do_shutdown();
  void start_linger_timer();
  void do_linger_read();
  void do_abort();

  // What happened before start(), made only when something did (most
  // connections have nothing here by the time the actor starts them).
  struct early_events {
    // Bytes the client sent with or right after its handshake request.
    std::vector<std::byte> bytes;
    // Why the socket failed, if it did.
    std::string down;
  };
  std::unique_ptr<early_events> early_;
  early_events& before_start();

  bool reading_ = false;
  bool lingering_ = false;
  bool credit_paused_ = false;
  bool user_paused_ = false;
  // Made only when closing: idle connections do not carry a timer.
  std::unique_ptr<boost::asio::steady_timer> linger_timer_;
};

} // namespace herald::net
