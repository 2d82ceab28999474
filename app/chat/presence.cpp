#include "presence.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>

#include <herald/actors/topics.hpp>
#include <herald/messages/messages.hpp>
#include <herald/net/frame.hpp>

#include "protocol.hpp"

namespace chat {

namespace {

// -- history ------------------------------------------------------------------

struct history_state {
  std::string room;
  std::size_t capacity = 0;
  // The kept events, as the frames the topic delivered (shared, no copy).
  std::deque<herald::net::frame_ptr> kept;
  static inline const char* name = "chat.history";
};

using history_actor = caf::stateful_actor<history_state>;

caf::behavior history_behavior(history_actor* self,
                               herald::topic_registry registry,
                               std::string room, std::size_t capacity) {
  self->link_to(registry.actor());
  self->state.room = room;
  self->state.capacity = capacity;
  herald::subscribe(registry, std::move(room),
                    caf::actor_cast<caf::actor>(self));
  auto texts = [self] {
    std::vector<std::string_view> out;
    out.reserve(self->state.kept.size());
    for (auto& f : self->state.kept)
      out.push_back(f->payload_view());
    return out;
  };
  return {
    [=](const herald::msg::delivery& d) {
      auto& st = self->state;
      for (auto& m : d.messages) {
        if (m.binary() || !is_message_event(m.text()))
          continue;
        st.kept.push_back(m.frame);
        if (st.kept.size() > st.capacity)
          st.kept.pop_front();
      }
    },
    [=](history_atom, const caf::actor& who) {
      auto v = texts();
      herald::send_text(who, history_event(self->state.room, v), true);
    },
    [=](expire_atom) {
      // The room stayed empty too long: the registry sees us go and drops
      // the subscription.
      self->quit();
    },
    [=](history_atom) {
      std::vector<std::string> out;
      for (auto s : texts())
        out.emplace_back(s);
      return out;
    },
  };
}

// -- presence -----------------------------------------------------------------

struct room_state {
  // Names in the room and how many connections each has.
  std::map<std::string, std::size_t, std::less<>> names;
  std::size_t connections = 0;
  caf::actor history;
  // Bumped whenever the room empties, so an old expiry timer does nothing.
  std::uint64_t generation = 0;
  // Numbers the room's join and leave events; a members page carries the
  // number of the last event before it.
  std::uint64_t seq = 0;
  // Join events on their way through the topic, oldest first, and whom
  // each one admits.
  std::deque<std::pair<herald::net::frame_ptr, caf::actor>> pending;

  std::vector<std::string> members() const {
    std::vector<std::string> out;
    out.reserve(names.size());
    for (auto& [n, _] : names)
      out.push_back(n);
    return out;
  }

  // A `members` message: up to `limit` names after `after` (from the
  // first without it).
  std::string page(const std::string& room, const std::string* after,
                   std::size_t limit) const {
    auto i = after ? names.upper_bound(*after) : names.begin();
    std::vector<std::string_view> out;
    out.reserve(std::min(limit, names.size()));
    for (; i != names.end() && out.size() < limit; ++i)
      out.push_back(i->first);
    return members_event(room, out, names.size(), i != names.end(), seq, after);
  }
};

struct member_entry {
  std::string room;
  std::string name;
};

struct presence_state {
  herald::topic_registry registry;
  presence_options opts;
  std::unordered_map<std::string, room_state> rooms;
  std::unordered_map<caf::actor_addr, member_entry> members;
  static inline const char* name = "chat.presence";
};

using presence_actor = caf::stateful_actor<presence_state>;

// Presence is per node: its events go to this node's members only, never
// through a Redis bridge (remote_atom is the registry's local-only publish),
// or members would see each node's list in turn.
void publish(presence_actor* self, const std::string& room,
             herald::net::frame_ptr f) {
  self->send(self->state.registry.actor(), herald::msg::remote_atom::value,
             room, herald::msg::publication{std::move(f), {}, true});
}

void send_history(presence_actor* self, room_state& r, const caf::actor& who,
                  const std::string& room) {
  if (r.history)
    self->send(r.history, history_atom::value, who);
  else
    herald::send_text(who, history_event(room, {}), true);
}

// A member's connection went away (closed, or its actor ended).
void remove(presence_actor* self, const caf::actor_addr& who) {
  auto& st = self->state;
  auto i = st.members.find(who);
  if (i == st.members.end())
    return;
  auto [room, name] = std::move(i->second);
  st.members.erase(i);
  auto ri = st.rooms.find(room);
  if (ri == st.rooms.end())
    return;
  auto& r = ri->second;
  std::size_t left = 0; // connections of that name still in the room
  if (auto n = r.names.find(name); n != r.names.end()) {
    left = --n->second;
    if (left == 0)
      r.names.erase(n);
  }
  --r.connections;
  publish(self, room,
          herald::net::make_frame(herald::net::opcode::text,
                                  presence_event("leave", room, name, left,
                                                 r.names.size(), ++r.seq)));
  if (r.connections > 0)
    return;
  // Empty: stop listening; keep the history for a while.
  herald::unsubscribe(st.registry, room, caf::actor_cast<caf::actor>(self));
  r.pending.clear();
  ++r.generation;
  if (!r.history) {
    st.rooms.erase(ri);
    return;
  }
  self->delayed_send(self, st.opts.history_ttl, expire_atom::value, room,
                     r.generation);
}

} // namespace

caf::actor spawn_history(caf::actor_system& sys,
                         herald::topic_registry registry, std::string room,
                         std::size_t capacity) {
  return sys.spawn(history_behavior, std::move(registry), std::move(room),
                   capacity);
}

namespace {

caf::behavior presence_behavior(presence_actor* self,
                                herald::topic_registry registry,
                                presence_options opts) {
  self->link_to(registry.actor());
  self->state.registry = std::move(registry);
  self->state.opts = opts;
  self->set_default_handler(caf::print_and_drop);
  self->set_down_handler([=](caf::down_msg& dm) {
    // Mostly a connection that ended without saying so (one lookup);
    // rarely a history actor that failed (a scan of the rooms).
    if (self->state.members.count(dm.source) > 0) {
      remove(self, dm.source);
      return;
    }
    for (auto& [room, r] : self->state.rooms)
      if (r.history && r.history.address() == dm.source) {
        r.history = nullptr;
        return;
      }
  });
  return {
    [=](join_atom, const std::string& room, const std::string& name,
        const caf::actor& who) {
      auto& st = self->state;
      if (!who || st.members.count(who.address()) > 0)
        return;
      self->monitor(who);
      st.members.emplace(who.address(), member_entry{room, name});
      auto& r = st.rooms[room];
      if (r.connections == 0)
        herald::subscribe(st.registry, room, caf::actor_cast<caf::actor>(self));
      if (!r.history && st.opts.history > 0) {
        r.history =
          self->spawn(history_behavior, st.registry, room, st.opts.history);
        self->monitor(r.history);
      }
      // The joiner's first page of the member list, as before its join:
      // sent straight to it, it arrives ahead of every event published
      // from now on (its own join first), and the events it may still get
      // from before carry numbers up to the page's.
      herald::send_text(who, r.page(room, nullptr, max_members_page), true);
      ++r.connections;
      auto tabs = ++r.names[name];
      auto f = herald::net::make_frame(herald::net::opcode::text,
                                       presence_event("join", room, name, tabs,
                                                      r.names.size(), ++r.seq));
      r.pending.emplace_back(f, who);
      publish(self, room, std::move(f));
    },
    [=](leave_atom, const caf::actor& who) {
      if (!who)
        return;
      self->demonitor(who);
      remove(self, who.address());
    },
    [=](const herald::msg::delivery& d) {
      // Our own join events coming back: now the joiner gets its history.
      auto ri = self->state.rooms.find(*d.topic);
      if (ri == self->state.rooms.end())
        return;
      auto& r = ri->second;
      for (auto& m : d.messages) {
        if (r.pending.empty())
          return;
        if (m.frame != r.pending.front().first)
          continue;
        auto who = std::move(r.pending.front().second);
        r.pending.pop_front();
        send_history(self, r, who, ri->first);
      }
    },
    [=](members_atom, const std::string& room, const caf::actor& who,
        const std::string& after, std::size_t limit) {
      // An empty `after` is the first page (names are never empty).
      auto* from = after.empty() ? nullptr : &after;
      auto ri = self->state.rooms.find(room);
      auto text = ri == self->state.rooms.end()
                    ? room_state{}.page(room, from, limit)
                    : ri->second.page(room, from, limit);
      herald::send_text(who, text, true);
    },
    [=](members_atom, const std::string& room) {
      auto ri = self->state.rooms.find(room);
      return ri == self->state.rooms.end() ? std::vector<std::string>{}
                                           : ri->second.members();
    },
    [=](expire_atom, const std::string& room, std::uint64_t generation) {
      auto ri = self->state.rooms.find(room);
      if (ri == self->state.rooms.end() || ri->second.connections > 0
          || ri->second.generation != generation)
        return;
      if (auto& h = ri->second.history) {
        self->demonitor(h);
        self->send(h, expire_atom::value);
      }
      self->state.rooms.erase(ri);
    },
  };
}

// Waits for the registry, keeping everything else for later.
caf::behavior waiting_presence(presence_actor* self, presence_options opts) {
  self->set_default_handler(caf::skip);
  return {
    [=](const herald::topic_registry& registry) {
      self->become(presence_behavior(self, registry, opts));
    },
  };
}

} // namespace

caf::actor spawn_presence(caf::actor_system& sys,
                          herald::topic_registry registry,
                          presence_options opts) {
  return sys.spawn(presence_behavior, std::move(registry), opts);
}

caf::actor spawn_presence(caf::actor_system& sys, presence_options opts) {
  return sys.spawn(waiting_presence, opts);
}

void attach_registry(const caf::actor& presence,
                     const herald::topic_registry& registry) {
  caf::anon_send(presence, registry);
}

} // namespace chat
