#include "herald/actors/idle_clock.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "herald/messages/messages.hpp"

namespace herald {

namespace {

using time_point = caf::actor_clock::time_point;

struct idle_clock_state {
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
  static inline const char* name = "herald.idle_clock";

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
};

using clock_actor = msg::idle_clock_actor::stateful_pointer<idle_clock_state>;

// Makes sure a wake-up is pending for the earliest member, no sooner than
// `min_delay` from now.
void arm(clock_actor self, caf::timespan min_delay) {
  auto& st = self->state;
  auto first = st.earliest();
  if (first == time_point::max())
    return;
  auto now = self->clock().now();
  auto at = std::max(first, now + min_delay);
  if (st.armed <= at)
    return; // an earlier (or the same) wake-up is on its way
  // A wake-up for a later instant may still be pending; it finds nothing
  // due, or the members that fell due by then, and re-arms.
  st.armed = at;
  self->delayed_send(self, at - now, caf::tick_atom::value,
                     at.time_since_epoch());
}

// Wake-ups come at least `min_gap` apart.
msg::idle_clock_actor::behavior_type idle_clock(clock_actor self,
                                                caf::timespan min_gap) {
  return {
    [=](msg::idle_watch_atom, const caf::actor_addr& who,
        caf::timespan period) {
      if (!who || period.count() <= 0)
        return;
      auto& st = self->state;
      if (!st.members.emplace(who.id(), who).second)
        return;
      st.lane_of(period).push(self->clock().now() + period, who.id());
      arm(self, caf::timespan{0});
    },
    [=](msg::idle_forget_atom, caf::actor_id id) {
      self->state.members.erase(id);
    },
    [=](caf::tick_atom, caf::timespan at) {
      auto& st = self->state;
      if (st.armed.time_since_epoch() == at)
        st.armed = time_point::max();
      auto now = self->clock().now();
      for (auto& l : st.lanes) {
        while (!l.queue.empty() && l.queue.front().first <= now) {
          auto [due, id] = l.queue.front();
          l.queue.pop_front();
          auto m = st.members.find(id);
          if (m == st.members.end())
            continue; // left
          auto who = caf::actor_cast<msg::connection_actor>(m->second);
          if (!who) {
            // Gone without leaving (killed before it could say so).
            st.members.erase(m);
            continue;
          }
          self->send(who, caf::tick_atom::value);
          // The next tick keeps the member's phase: open + k * period.
          auto next = due + l.period;
          if (next <= now)
            next = now + l.period; // this clock was held up
          l.push(next, id);
        }
      }
      // Coalesce: the next wake-up comes no sooner than min_gap from now.
      arm(self, min_gap);
    },
  };
}

} // namespace

msg::idle_clock_actor spawn_idle_clock(caf::actor_system& sys,
                                       caf::timespan min_gap) {
  // min_gap goes in as an argument: CAF 0.17 trips UBSan when it spawns a
  // function-based actor without any (a null shared_ptr<tuple<>> is
  // dereferenced in init_fun_factory).
  return sys.spawn(idle_clock, min_gap);
}

} // namespace herald
