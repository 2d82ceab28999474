#include "herald/actors/idle_clock.hpp"

#include <chrono>
#include <map>
#include <unordered_map>

#include <caf/all.hpp>

#include "herald/messages/messages.hpp"

namespace herald {

namespace {

using time_point = caf::actor_clock::time_point;

struct idle_clock_state {
  struct member {
    caf::actor_addr who;
    caf::timespan period;
    std::multimap<time_point, caf::actor_id>::iterator due;
  };
  std::unordered_map<caf::actor_id, member> members;
  // Next tick of every member, earliest first.
  std::multimap<time_point, caf::actor_id> queue;
  // When the pending wake-up (if any) falls due.
  time_point armed = time_point::max();
  static inline const char* name = "herald.idle_clock";
};

using clock_actor = caf::stateful_actor<idle_clock_state>;

// Makes sure a wake-up is pending for the earliest member, no sooner than
// `min_delay` from now.
void arm(clock_actor* self, caf::timespan min_delay) {
  auto& st = self->state;
  if (st.queue.empty())
    return;
  auto now = self->clock().now();
  auto at = std::max(st.queue.begin()->first, now + min_delay);
  if (st.armed <= at)
    return; // an earlier (or the same) wake-up is on its way
  // A wake-up for a later instant may still be pending; it finds nothing
  // due, or the members that fell due by then, and re-arms.
  st.armed = at;
  self->delayed_send(self, at - now, caf::tick_atom::value,
                     at.time_since_epoch());
}

// Wake-ups come at least `min_gap` apart.
caf::behavior idle_clock(clock_actor* self, caf::timespan min_gap) {
  return {
    [=](msg::idle_watch_atom, const caf::actor_addr& who,
        caf::timespan period) {
      if (!who || period.count() <= 0)
        return;
      auto& st = self->state;
      auto id = who.id();
      if (st.members.count(id) != 0)
        return;
      auto due = st.queue.emplace(self->clock().now() + period, id);
      st.members.emplace(id, idle_clock_state::member{who, period, due});
      arm(self, caf::timespan{0});
    },
    [=](msg::idle_forget_atom, caf::actor_id id) {
      auto& st = self->state;
      auto i = st.members.find(id);
      if (i == st.members.end())
        return;
      st.queue.erase(i->second.due);
      st.members.erase(i);
    },
    [=](caf::tick_atom, caf::timespan at) {
      auto& st = self->state;
      if (st.armed.time_since_epoch() == at)
        st.armed = time_point::max();
      auto now = self->clock().now();
      while (!st.queue.empty() && st.queue.begin()->first <= now) {
        auto first = st.queue.begin();
        auto due = first->first;
        auto id = first->second;
        st.queue.erase(first);
        auto m = st.members.find(id);
        if (m == st.members.end())
          continue;
        auto who = caf::actor_cast<caf::actor>(m->second.who);
        if (!who) {
          // Gone without leaving (killed before it could say so).
          st.members.erase(m);
          continue;
        }
        self->send(who, caf::tick_atom::value);
        // The next tick keeps the member's phase: open + k * period.
        auto next = due + m->second.period;
        if (next <= now)
          next = now + m->second.period; // this clock was held up
        m->second.due = st.queue.emplace(next, id);
      }
      // Coalesce: the next wake-up comes no sooner than min_gap from now.
      arm(self, min_gap);
    },
  };
}

} // namespace

caf::actor spawn_idle_clock(caf::actor_system& sys, caf::timespan min_gap) {
  // min_gap goes in as an argument: CAF 0.17 trips UBSan when it spawns a
  // function-based actor without any (a null shared_ptr<tuple<>> is
  // dereferenced in init_fun_factory).
  return sys.spawn(idle_clock, min_gap);
}

} // namespace herald
