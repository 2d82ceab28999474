#include "herald/actors/loop_scheduler.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <caf/detail/simple_actor_clock.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include "herald/actors/connection.hpp"
#include "herald/actors/topics.hpp"

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

// Timeouts and delayed messages on the loops' own timers: an actor runs on
// its home loop only, so what it sets there (its timeouts, the delayed
// messages it sends, their cancellation when it ends) stays in that loop's
// schedule, with no lock and no other thread. Calls from threads that are
// no loop (detached actors, the main thread) go to CAF's thread-safe clock
// and its thread, which serves them alone.
class loop_clock final : public caf::actor_clock {
public:
  loop_clock(loop_scheduler& sched) : sched_(sched) {}

  void start(std::size_t loops) {
    for (std::size_t i = 0; i < loops; ++i)
      loops_.push_back(std::make_unique<per_loop>());
    fallback_thread_ = std::thread{[this] { fallback_.run_dispatch_loop(); }};
  }

  // After the loops stopped: drops what is scheduled (with its actor
  // references) and stops the fallback's thread.
  void stop() {
    for (auto& l : loops_)
      l->clock.cancel_all();
    fallback_.cancel_dispatch_loop();
    if (fallback_thread_.joinable())
      fallback_thread_.join();
  }

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                            caf::atom_value type, std::uint64_t id) override {
    if (auto i = here(); i != none) {
      loops_[i]->clock.set_ordinary_timeout(t, self, type, id);
      arm(i, t);
    } else {
      fallback_.set_ordinary_timeout(t, self, type, id);
    }
  }

  void set_multi_timeout(time_point t, caf::abstract_actor* self,
                         caf::atom_value type, std::uint64_t id) override {
    if (auto i = here(); i != none) {
      loops_[i]->clock.set_multi_timeout(t, self, type, id);
      arm(i, t);
    } else {
      fallback_.set_multi_timeout(t, self, type, id);
    }
  }

  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override {
    if (auto i = here(); i != none) {
      loops_[i]->clock.set_request_timeout(t, self, id);
      arm(i, t);
    } else {
      fallback_.set_request_timeout(t, self, id);
    }
  }

  void cancel_ordinary_timeout(caf::abstract_actor* self,
                               caf::atom_value type) override {
    if (auto i = here(); i != none)
      loops_[i]->clock.cancel_ordinary_timeout(self, type);
    else
      fallback_.cancel_ordinary_timeout(self, type);
  }

  void cancel_request_timeout(caf::abstract_actor* self,
                              caf::message_id id) override {
    if (auto i = here(); i != none)
      loops_[i]->clock.cancel_request_timeout(self, id);
    else
      fallback_.cancel_request_timeout(self, id);
  }

  void cancel_timeouts(caf::abstract_actor* self) override {
    if (auto i = here(); i != none)
      loops_[i]->clock.cancel_timeouts(self);
    else
      fallback_.cancel_timeouts(self);
  }

  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override {
    if (auto i = here(); i != none) {
      loops_[i]->clock.schedule_message(t, std::move(receiver),
                                        std::move(content));
      arm(i, t);
    } else {
      fallback_.schedule_message(t, std::move(receiver), std::move(content));
    }
  }

  void schedule_message(time_point t, caf::group target,
                        caf::strong_actor_ptr sender,
                        caf::message content) override {
    if (auto i = here(); i != none) {
      loops_[i]->clock.schedule_message(t, std::move(target), std::move(sender),
                                        std::move(content));
      arm(i, t);
    } else {
      fallback_.schedule_message(t, std::move(target), std::move(sender),
                                 std::move(content));
    }
  }

  void cancel_all() override {
    if (auto i = here(); i != none)
      loops_[i]->clock.cancel_all();
    fallback_.cancel_all();
  }

private:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);

  struct per_loop {
    caf::detail::simple_actor_clock clock;
    // When the loop's timer fires next (max: not armed).
    time_point armed = time_point::max();
  };

  // The loop of this scheduler running on the calling thread, or none.
  std::size_t here() const noexcept;

  // Makes the loop's timer fire by `t`. The timer is only moved earlier:
  // a cancelled timeout leaves it as it is (firing early does nothing).
  void arm(std::size_t i, time_point t);

  void fire(std::size_t i) {
    auto& l = *loops_[i];
    l.armed = time_point::max();
    l.clock.trigger_expired_timeouts();
    auto& due = l.clock.schedule();
    if (!due.empty())
      arm(i, due.begin()->first);
  }

  loop_scheduler& sched_;
  std::vector<std::unique_ptr<per_loop>> loops_;
  caf::detail::thread_safe_actor_clock fallback_;
  std::thread fallback_thread_;
};

class loop_scheduler final : public caf::scheduler::abstract_coordinator {
public:
  loop_scheduler(caf::actor_system& sys, net::io_service& io)
    : abstract_coordinator(sys), io_(io), clock_(*this) {}

  net::io_service& io() noexcept { return io_; }

  // The home loop of `job`: a connection's is the loop owning its socket
  // (recognised by its exact type: no dynamic_cast per message), a topic
  // shard's and its topics' the loop they were made for, any other actor's
  // follows from its id, which spreads actors over the loops and never
  // changes.
  std::size_t home(caf::resumable* job) const noexcept {
    auto n = workers_.size();
    if (job->subtype() == caf::resumable::function_object) {
      if (auto lj = dynamic_cast<loop_job*>(job))
        return lj->loop() % n;
    } else if (job->subtype() == caf::resumable::scheduled_actor) {
      auto self = static_cast<caf::scheduled_actor*>(job);
      if (typeid(*self) == typeid(connection_actor)) {
        auto loop = static_cast<connection_actor*>(self)->home_loop();
        if (loop != net::io_service::no_loop)
          return loop % n;
      } else if (auto loop = detail::topic_actor_loop(self);
                 loop != net::io_service::no_loop) {
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
    clock_.start(io_.size());
    abstract_coordinator::start();
  }

  void stop() override {
    stop_actors();
    // Every actor is done: the loops stop, and the handlers still queued
    // (which may hold actor handles) go while the actor system exists.
    io_.stop();
    for (auto& w : workers_)
      w->drain_stopped();
    clock_.stop();
  }

private:
  net::io_service& io_;
  std::vector<std::unique_ptr<loop_worker>> workers_;
  loop_clock clock_;
};

std::size_t loop_clock::here() const noexcept {
  auto w = this_worker;
  return w != nullptr && &w->parent() == &sched_ ? w->index() : none;
}

void loop_clock::arm(std::size_t i, time_point t) {
  auto& l = *loops_[i];
  if (t >= l.armed)
    return;
  l.armed = t;
  sched_.io().wake_at(i, net::io_service::timer::actor_clock, t,
                      [this, i] { fire(i); });
}

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
  connection_core::flush_loop_stats();
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

bool wake_this_loop_at(net::io_service::timer which,
                       std::chrono::steady_clock::time_point t,
                       std::function<void()> fn) {
  auto w = this_worker;
  if (w == nullptr)
    return false;
  w->parent().io().wake_at(w->index(), which, t, std::move(fn));
  return true;
}

std::size_t loop_count(caf::actor_system& sys) noexcept {
  auto sched = dynamic_cast<loop_scheduler*>(&sys.scheduler());
  return sched == nullptr ? 0 : sched->size();
}

std::size_t loop_of(caf::actor_system& sys, const caf::actor& who) noexcept {
  auto sched = dynamic_cast<loop_scheduler*>(&sys.scheduler());
  auto ptr = caf::actor_cast<caf::abstract_actor*>(who);
  if (sched == nullptr || ptr == nullptr || sched->size() == 0
      || typeid(*ptr) != typeid(connection_actor))
    return net::io_service::no_loop;
  auto loop = static_cast<connection_actor*>(ptr)->home_loop();
  return loop == net::io_service::no_loop ? loop : loop % sched->size();
}

void run_on_loop(caf::actor_system& sys, caf::intrusive_ptr<loop_job> job) {
  sys.scheduler().enqueue(job.release());
}

} // namespace herald
