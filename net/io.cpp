#include "herald/net/io.hpp"

#include <algorithm>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "herald/actors/log.hpp"

namespace herald::net {

namespace {

namespace asio = boost::asio;

thread_local std::size_t this_loop = io_service::no_loop;

struct loop {
  // One thread per context: Asio skips its locking where it can.
  asio::io_context ctx{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard{
    asio::make_work_guard(ctx)};
  std::thread thread;
};

class asio_io_service final : public io_service {
public:
  asio_io_service(std::size_t n, std::function<void(std::size_t)> on_start) {
    loops_.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      loops_.push_back(std::make_unique<loop>());
    for (std::size_t i = 0; i < n; ++i)
      loops_[i]->thread = std::thread{[this, i, on_start] {
        this_loop = i;
        if (on_start)
          on_start(i);
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

std::unique_ptr<io_service>
make_io_service(std::size_t loops, std::function<void(std::size_t)> on_start) {
  return std::make_unique<asio_io_service>(std::max<std::size_t>(loops, 1),
                                           std::move(on_start));
}

} // namespace herald::net
