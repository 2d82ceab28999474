#include "herald/actors/idle_clock.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "herald/actors/loop_scheduler.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/io.hpp"

namespace herald {

namespace {

using time_point = caf::actor_clock::time_point;

// The members of one idle clock and when each is ticked next, shared by
// the clock actor and the loops' clocks.
struct idle_schedule {
  // Members by id, with a weak handle (8 bytes: a map node of 24).
  std::unordered_map<caf::actor_id, caf::actor_addr> members;
  // The members with one period, in order of their next tick. Members of a
  // server share their period: a tick goes to the back (or next to it),
  // so a lane costs 16 bytes per member and no node of its own.
  struct lane {
    caf::timespan period;
    std::deque<std::pair<time_point, caf::actor_id>> queue;
    // Queues `id` for `due`, in order (rarely more than a step from the
    // back: ticks only fall out of order by how late a wake-up was).
    void push(time_point due, caf::actor_id id) {
      auto i = queue.end();
      while (i != queue.begin() && std::prev(i)->first > due)
        --i;
      queue.emplace(i, due, id);
    }
  };
  // A member that leaves is only dropped from `members`; its entry in a
  // lane is skipped when it falls due.
  std::vector<lane> lanes;
  // When the pending wake-up (if any) falls due.
  time_point armed = time_point::max();

  lane& lane_of(caf::timespan period) {
    for (auto& l : lanes)
      if (l.period == period)
        return l;
    return lanes.emplace_back(lane{period, {}});
  }
  // The earliest next tick, or max() when none is queued.
  time_point earliest() const {
    auto t = time_point::max();
    for (auto& l : lanes)
      if (!l.queue.empty())
        t = std::min(t, l.queue.front().first);
    return t;
  }
  // Adds `who`, ticked every `period` from `now`; false when it is no
  // new member.
  bool watch(const caf::actor_addr& who, caf::timespan period, time_point now) {
    if (!who || period.count() <= 0)
      return false;
    if (!members.emplace(who.id(), who).second)
      return false;
    lane_of(period).push(now + period, who.id());
    return true;
  }
  // When a wake-up is due for the earliest member, no sooner than
  // `min_delay` from `now`; max() when none is needed (none due, or an
  // earlier or the same wake-up is on its way).
  time_point arm(time_point now, caf::timespan min_delay) {
    auto first = earliest();
    if (first == time_point::max())
      return first;
    auto at = std::max(first, now + min_delay);
    if (armed <= at)
      return time_point::max();
    // A wake-up for a later instant may still be pending; it finds nothing
    // due, or the members that fell due by then, and re-arms.
    armed = at;
    return at;
  }
  // Sends `send(member)` to every member due by `now`.
  template <class Send>
  void tick(time_point now, Send send) {
    for (auto& l : lanes) {
      while (!l.queue.empty() && l.queue.front().first <= now) {
        auto [due, id] = l.queue.front();
        l.queue.pop_front();
        auto m = members.find(id);
        if (m == members.end())
          continue; // left
        auto who = caf::actor_cast<msg::connection_actor>(m->second);
        if (!who) {
          // Gone without leaving (killed before it could say so).
          members.erase(m);
          continue;
        }
        send(who);
        // The next tick keeps the member's phase: open + k * period.
        auto next = due + l.period;
        if (next <= now)
          next = now + l.period; // this clock was held up
        l.push(next, id);
      }
    }
  }
};

struct idle_clock_state {
  idle_schedule sched;
  static inline const char* name = "herald.idle_clock";
};

using clock_actor = msg::idle_clock_actor::stateful_pointer<idle_clock_state>;

// Makes sure a wake-up is pending for the earliest member, no sooner than
// `min_delay` from now.
void arm(clock_actor self, caf::timespan min_delay) {
  auto now = self->clock().now();
  auto at = self->state.sched.arm(now, min_delay);
  if (at != time_point::max())
    self->delayed_send(self, at - now, caf::tick_atom::value,
                       at.time_since_epoch());
}

// Wake-ups come at least `min_gap` apart.
msg::idle_clock_actor::behavior_type idle_clock(clock_actor self,
                                                caf::timespan min_gap) {
  return {
    [=](msg::idle_watch_atom, const caf::actor_addr& who,
        caf::timespan period) {
      if (self->state.sched.watch(who, period, self->clock().now()))
        arm(self, caf::timespan{0});
    },
    [=](msg::idle_forget_atom, caf::actor_id id) {
      self->state.sched.members.erase(id);
    },
    [=](caf::tick_atom, caf::timespan at) {
      auto& st = self->state.sched;
      if (st.armed.time_since_epoch() == at)
        st.armed = time_point::max();
      st.tick(self->clock().now(), [self](const msg::connection_actor& who) {
        self->send(who, caf::tick_atom::value);
      });
      // Coalesce: the next wake-up comes no sooner than min_gap from now.
      arm(self, min_gap);
    },
  };
}

// The idle clock of the loop running on this thread: only that thread
// touches it (its members' actors run there, its wake-ups come there).
struct loop_idle_clock {
  idle_schedule sched;
  // The loop's wake-ups come at least this far apart.
  static constexpr caf::timespan min_gap = std::chrono::milliseconds{10};
};

thread_local loop_idle_clock loop_idle;

time_point steady_now() {
  return std::chrono::steady_clock::now();
}

void loop_arm(caf::timespan min_delay);

void loop_fire() {
  auto& st = loop_idle.sched;
  st.armed = time_point::max();
  st.tick(steady_now(), [](const msg::connection_actor& who) {
    caf::anon_send(who, caf::tick_atom::value);
  });
  loop_arm(loop_idle_clock::min_gap);
}

void loop_arm(caf::timespan min_delay) {
  auto at = loop_idle.sched.arm(steady_now(), min_delay);
  // The timer is the loop's own for idle ticks: setting it replaces the
  // wake-up set before, which arm() only moves earlier.
  if (at != time_point::max())
    wake_this_loop_at(net::io_service::timer::idle_clock, at, loop_fire);
}

} // namespace

bool loop_idle_watch(const caf::actor_addr& who, caf::timespan period) {
  if (spawning_loop() == net::io_service::no_loop)
    return false;
  if (loop_idle.sched.watch(who, period, steady_now()))
    loop_arm(caf::timespan{0});
  return true;
}

void loop_idle_forget(caf::actor_id id) {
  loop_idle.sched.members.erase(id);
}

msg::idle_clock_actor spawn_idle_clock(caf::actor_system& sys,
                                       caf::timespan min_gap) {
  // min_gap goes in as an argument: CAF 0.17 trips UBSan when it spawns a
  // function-based actor without any (a null shared_ptr<tuple<>> is
  // dereferenced in init_fun_factory).
  return sys.spawn(idle_clock, min_gap);
}

} // namespace herald
