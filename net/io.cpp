#include "herald/net/io.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "herald/net/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;

thread_local std::size_t this_loop = io_service::no_loop;

// An io_context whose pending handlers can be destroyed once its thread
// has stopped, while what they reference still exists.
class loop_context : public asio::io_context {
public:
  // One thread per context: Asio skips its locking where it can.
  loop_context() : asio::io_context(1) {}
  using asio::io_context::shutdown;
};

struct loop {
  loop_context ctx;
  // The loop's timers of its own (see wake_at), made on first use.
  std::array<std::optional<asio::steady_timer>, 2> timers;
  asio::executor_work_guard<asio::io_context::executor_type> guard{
    asio::make_work_guard(ctx)};
  std::thread thread;
};

class asio_io_service final : public io_service {
public:
  explicit asio_io_service(std::size_t n) {
    loops_.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      loops_.push_back(std::make_unique<loop>());
    for (std::size_t i = 0; i < n; ++i)
      loops_[i]->thread = std::thread{[this, i] {
        this_loop = i;
        auto& ctx = loops_[i]->ctx;
        for (;;) {
          try {
            ctx.run();
            return;
          } catch (const std::exception& e) {
            // A handler threw: log it and keep the loop alive for others.
            HERALD_LOG(error, "I/O handler threw: " << e.what());
          }
        }
      }};
  }

  ~asio_io_service() override { stop(); }

  std::size_t size() const noexcept override { return loops_.size(); }

  void post(std::size_t i, std::function<void()> fn) override {
    asio::post(loops_[i]->ctx, std::move(fn));
  }

  void wake_at(std::size_t i, timer which,
               std::chrono::steady_clock::time_point t,
               std::function<void()> fn) override {
    auto& l = *loops_[i];
    auto& tm = l.timers[static_cast<std::size_t>(which)];
    if (!tm)
      tm.emplace(l.ctx);
    // Replacing the time cancels the wait before: its handler sees
    // operation_aborted and does nothing.
    tm->expires_at(t);
    tm->async_wait([fn = std::move(fn)](boost::system::error_code ec) {
      if (!ec)
        fn();
    });
  }

  void stop() override {
    if (stopped_)
      return;
    stopped_ = true;
    for (auto& l : loops_) {
      l->guard.reset();
      l->ctx.stop();
    }
    for (auto& l : loops_)
      if (l->thread.joinable())
        l->thread.join();
    for (auto& l : loops_) {
      for (auto& tm : l->timers)
        tm.reset();
      l->ctx.shutdown();
    }
  }

  void* native(std::size_t i) noexcept override { return &loops_[i]->ctx; }

private:
  std::vector<std::unique_ptr<loop>> loops_;
  bool stopped_ = false;
};

} // namespace

std::size_t io_service::current() noexcept {
  return this_loop;
}

std::unique_ptr<io_service> make_io_service(std::size_t loops) {
  return std::make_unique<asio_io_service>(std::max<std::size_t>(loops, 1));
}

} // namespace herald::net
