#include "herald/actors/loop_scheduler.hpp"

#include <atomic>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include "herald/actors/connection.hpp"

namespace herald {

namespace {

class loop_scheduler;

// One loop seen as a CAF worker. Jobs enqueued on the loop's own thread go
// to `local_` (no lock); jobs from other threads to `remote_` (a lock, and
// a wake-up only when it was empty: one per batch).
class loop_worker final : public caf::execution_unit {
public:
  loop_worker(loop_scheduler& parent, std::size_t index);

  // CAF calls this on the thread running this unit, for actors it
  // launches or wakes: they go to their own home.
  void exec_later(caf::resumable* job) override;

  void push_local(caf::resumable* job) {
    local_.push_back(job);
    if (!local_posted_) {
      local_posted_ = true;
      post([this] { run_local(); });
    }
  }

  void push_remote(caf::resumable* job) { push_remote(&job, 1); }

  // Queues `n` jobs from another thread: one lock, and one wake-up if the
  // loop had nothing from other threads waiting.
  void push_remote(caf::resumable* const* jobs, std::size_t n) {
    bool was_empty = false;
    bool stopped = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopped = stopped_;
      if (!stopped) {
        was_empty = remote_.empty();
        remote_.insert(remote_.end(), jobs, jobs + n);
      }
    }
    if (stopped) { // the loops have stopped
      for (std::size_t i = 0; i < n; ++i)
        caf::scheduler::abstract_coordinator::cleanup_and_release(jobs[i]);
    } else if (was_empty) {
      post([this] { run_remote(); });
    }
  }

  // Called on this worker's thread for a job whose home is `target`
  // (another loop): while a batch runs, jobs for other loops are held and
  // handed over when it ends, one lock and at most one wake-up per loop.
  void push_to(loop_worker& target, caf::resumable* job) {
    if (!in_batch_)
      return target.push_remote(job);
    if (outbox_.empty())
      outbox_.resize(parent_size());
    outbox_[target.index_].push_back(job);
  }

  // After the loop's thread stopped: releases what is still queued, and
  // from now on whatever else comes.
  void drain_stopped() {
    std::vector<caf::resumable*> left;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopped_ = true;
      left.swap(remote_);
    }
    left.insert(left.end(), local_.begin(), local_.end());
    local_.clear();
    for (auto job : left)
      caf::scheduler::abstract_coordinator::cleanup_and_release(job);
  }

  std::size_t index() const noexcept { return index_; }
  loop_scheduler& parent() noexcept { return parent_; }

private:
  void post(std::function<void()> fn);
  std::size_t parent_size() const noexcept;
  void flush_outbox();

  void run_local() {
    local_posted_ = false;
    batch_.swap(local_);
    run_batch();
  }

  void run_remote() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      batch_.swap(remote_);
    }
    run_batch();
  }

  // Resumes the jobs taken; what they wake goes to the queues, for the
  // next turn of the loop (sockets get their turn in between).
  void run_batch();

  loop_scheduler& parent_;
  std::size_t index_;
  std::vector<caf::resumable*> local_;
  std::vector<caf::resumable*> batch_;
  bool local_posted_ = false;
  bool in_batch_ = false;
  // Jobs for other loops held until the batch ends, by loop.
  std::vector<std::vector<caf::resumable*>> outbox_;
  std::mutex mtx_;
  std::vector<caf::resumable*> remote_;
  bool stopped_ = false;
};

// The worker whose loop runs on this thread.
thread_local loop_worker* this_worker = nullptr;

class loop_scheduler final : public caf::scheduler::abstract_coordinator {
public:
  loop_scheduler(caf::actor_system& sys, net::io_service& io)
    : abstract_coordinator(sys), io_(io) {}

  net::io_service& io() noexcept { return io_; }

  // The home loop of `job`: a connection's is the loop owning its socket
  // (recognised by its exact type: no dynamic_cast per message), any
  // other actor's follows from its id, which spreads topics and the
  // registry over the loops and never changes.
  std::size_t home(caf::resumable* job) const noexcept {
    auto n = workers_.size();
    if (job->subtype() == caf::resumable::scheduled_actor) {
      auto self = static_cast<caf::scheduled_actor*>(job);
      if (typeid(*self) == typeid(connection_actor)) {
        auto loop = static_cast<connection_actor*>(self)->home_loop();
        if (loop != net::io_service::no_loop)
          return loop % n;
      }
      return self->id() % n;
    }
    if (this_worker != nullptr && &this_worker->parent() == this)
      return this_worker->index();
    return 0;
  }

  void route(caf::resumable* job) {
    auto& target = *workers_[home(job)];
    auto self = this_worker;
    if (self == &target)
      target.push_local(job);
    else if (self != nullptr && &self->parent() == this)
      self->push_to(target, job);
    else
      target.push_remote(job);
  }

  std::size_t size() const noexcept { return workers_.size(); }

  loop_worker& worker(std::size_t i) noexcept { return *workers_[i]; }

  void enqueue(caf::resumable* job) override { route(job); }

  caf::actor_clock& clock() noexcept override { return clock_; }

  void start() override {
    for (std::size_t i = 0; i < io_.size(); ++i)
      workers_.push_back(std::make_unique<loop_worker>(*this, i));
    for (std::size_t i = 0; i < io_.size(); ++i)
      io_.post(i, [w = workers_[i].get()] { this_worker = w; });
    // Timeouts and delayed messages: CAF's clock on a thread of its own.
    clock_thread_ = std::thread{[this] { clock_.run_dispatch_loop(); }};
    abstract_coordinator::start();
  }

  void stop() override {
    stop_actors();
    // Every actor is done: the loops stop, and the handlers still queued
    // (which may hold actor handles) go while the actor system exists.
    io_.stop();
    for (auto& w : workers_)
      w->drain_stopped();
    clock_.cancel_dispatch_loop();
    clock_thread_.join();
  }

private:
  net::io_service& io_;
  std::vector<std::unique_ptr<loop_worker>> workers_;
  caf::detail::thread_safe_actor_clock clock_;
  std::thread clock_thread_;
};

loop_worker::loop_worker(loop_scheduler& parent, std::size_t index)
  : caf::execution_unit(&parent.system()), parent_(parent), index_(index) {
  local_.reserve(64);
  batch_.reserve(64);
}

void loop_worker::exec_later(caf::resumable* job) {
  parent_.route(job);
}

void loop_worker::post(std::function<void()> fn) {
  parent_.io().post(index_, std::move(fn));
}

std::size_t loop_worker::parent_size() const noexcept {
  return parent_.size();
}

void loop_worker::flush_outbox() {
  for (std::size_t i = 0; i < outbox_.size(); ++i) {
    auto& jobs = outbox_[i];
    if (jobs.empty())
      continue;
    parent_.worker(i).push_remote(jobs.data(), jobs.size());
    jobs.clear();
  }
}

void loop_worker::run_batch() {
  auto max = parent_.max_throughput();
  in_batch_ = true;
  for (auto job : batch_) {
    switch (job->resume(this, max)) {
      case caf::resumable::resume_later:
        // Keeps its reference: it stays scheduled, behind what is queued.
        parent_.route(job);
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        // Enqueueing it again later adds a new reference.
        intrusive_ptr_release(job);
        break;
      case caf::resumable::shutdown_execution_unit:
        // Only CAF's own coordinators use it (to stop their workers).
        break;
    }
  }
  in_batch_ = false;
  batch_.clear();
  flush_outbox();
}

} // namespace

caf::actor_system::module* make_loop_scheduler(caf::actor_system& sys,
                                               net::io_service& io) {
  return new loop_scheduler(sys, io);
}

std::size_t spawning_loop() noexcept {
  return this_worker != nullptr ? this_worker->index()
                                : net::io_service::no_loop;
}

} // namespace herald
