#include "herald/net/io.hpp"

#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;

class asio_io_service final : public io_service {
public:
  asio_io_service() : ctx_(1), guard_(asio::make_work_guard(ctx_)) {
    thread_ = std::thread{[this] {
      for (;;) {
        try {
          ctx_.run();
          return;
        } catch (const std::exception& e) {
          // A handler threw: log it and keep the loop alive for the others.
          HERALD_LOG(error, "I/O handler threw: " << e.what());
        }
      }
    }};
  }

  ~asio_io_service() override { stop(); }

  void post(std::function<void()> fn) override {
    asio::post(ctx_, std::move(fn));
  }

  void stop() override {
    if (!thread_.joinable())
      return;
    guard_.reset();
    ctx_.stop();
    thread_.join();
  }

  void* native() noexcept override { return &ctx_; }

private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

} // namespace

std::unique_ptr<io_service> make_io_service() {
  return std::make_unique<asio_io_service>();
}

} // namespace herald::net
