#include "herald/actors/topics.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "herald/actors/connection.hpp"
#include "herald/actors/loop_scheduler.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/io.hpp"

namespace herald {

std::size_t topic_counts::get(std::string_view topic) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = counts_.find(topic);
  return i == counts_.end() ? 0 : i->second.visible();
}

bool topic_counts::may_have_subscribers(std::string_view topic) const {
  // In-flight first: the registry sets the count before it settles the
  // subscription, so seeing none in flight means the count is visible.
  if (in_flight_.load(std::memory_order_seq_cst) > 0)
    return true;
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = counts_.find(topic);
  // Applied members too: a pending unsubscribe that outran a removal must
  // not hide a subscriber from publish.
  return i != counts_.end()
         && (i->second.applied > 0 || i->second.visible() > 0);
}

std::size_t topic_counts::topics() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return topics_;
}

template <class F>
void topic_counts::change(std::string_view topic, F f) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = counts_.find(topic);
  entry e = i == counts_.end() ? entry{} : i->second;
  bool was = e.visible() > 0;
  f(e);
  bool is = e.visible() > 0;
  if (was != is) {
    if (is)
      ++topics_;
    else
      --topics_;
  }
  if (e.applied == 0 && e.pending == 0) {
    if (i != counts_.end())
      counts_.erase(i);
  } else if (i != counts_.end()) {
    i->second = e;
  } else {
    counts_.emplace(std::string{topic}, e);
  }
}

void topic_counts::set(std::string_view topic, std::size_t n, int settled) {
  change(topic, [&](entry& e) {
    e.applied = n;
    e.pending -= settled;
  });
}

void topic_counts::subscribing(std::string_view topic) {
  in_flight_.fetch_add(1, std::memory_order_seq_cst);
  change(topic, [](entry& e) { ++e.pending; });
}

void topic_counts::unsubscribing(std::string_view topic) {
  change(topic, [](entry& e) { --e.pending; });
}

namespace {

// -- topic actor --------------------------------------------------------------

// Frames up to this size are joined into runs, runs up to run_limit bytes.
// Each joined frame is copied once per burst (not per subscriber); larger
// frames cost the kernel more than a piece of their own anyway.
constexpr std::size_t joinable_frame = 64u << 10;
constexpr std::size_t run_limit = 64u << 10;

// Joins consecutive small frames of `d` into runs (see msg::delivery::runs):
// a subscriber then writes a burst of N messages as one piece instead of N.
void join_runs(msg::delivery& d) {
  auto& msgs = d.messages;
  if (msgs.size() < 2)
    return;
  // Scratch, emptied before returning: per thread rather than per topic,
  // so that idle topics hold no buffer.
  thread_local std::vector<const net::frame*> group;
  auto close_group = [&](std::size_t end) {
    // Closes the group of messages [end - group.size(), end).
    if (group.size() >= 2) {
      if (d.placements.empty())
        d.placements.resize(msgs.size());
      auto index = static_cast<std::uint32_t>(d.runs.size());
      auto first = end - group.size();
      msg::delivery::run_info info{static_cast<std::uint32_t>(group.size()), 0,
                                   false};
      std::uint32_t offset = 0;
      for (auto i = first; i < end; ++i) {
        d.placements[i] = {index, offset};
        offset += static_cast<std::uint32_t>(msgs[i].frame->size());
        if (msgs[i].exclude || msgs[i].compress)
          info.mixed = true;
      }
      info.bytes = offset;
      d.runs.push_back(net::make_run(group));
      d.run_infos.push_back(info);
    }
    group.clear();
  };
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    auto size = msgs[i].frame->size();
    if (size > joinable_frame) {
      close_group(i);
      bytes = 0;
      continue;
    }
    if (bytes + size > run_limit) {
      close_group(i);
      bytes = 0;
    }
    group.push_back(msgs[i].frame.get());
    bytes += size;
  }
  close_group(msgs.size());
}

// The subscribers of a topic that are connections on one loop, kept on
// that loop: only jobs running there (see topic_job) touch it, in the
// order the topic handed them over, so a delivery reaches exactly the
// members the topic had when it fanned out, and the topic's loop puts
// nothing into these connections' mailboxes itself.
struct loop_members {
  std::vector<caf::actor> members;
};

// A topic's step on a subscriber's loop: a member joins or leaves, or a
// delivery reaches every member, on the member's own thread (the message,
// its mailbox elements and their reference counts stay there): an idle
// member handles it at once, others find it in their mailbox, behind what
// they have queued.
class topic_job final : public loop_job {
public:
  enum kind_t { add, remove, deliver };

  topic_job(std::size_t loop, std::shared_ptr<loop_members> group, kind_t kind)
    : loop_job(loop), group_(std::move(group)), kind_(kind) {}

  caf::actor who;
  caf::actor_addr gone;
  caf::message delivery;

protected:
  void run(caf::execution_unit*) override {
    auto& subs = group_->members;
    switch (kind_) {
      case add:
        subs.push_back(std::move(who));
        break;
      case remove:
        for (auto i = subs.begin(); i != subs.end(); ++i) {
          if (i->address() == gone) {
            *i = std::move(subs.back());
            subs.pop_back();
            break;
          }
        }
        break;
      case deliver:
        for (auto& sub : subs) {
          // Members are connections of this loop (see loop_of).
          auto c = static_cast<connection_actor*>(
            caf::actor_cast<caf::abstract_actor*>(sub));
          if (!c->deliver_now(delivery))
            caf::anon_send(sub, delivery);
        }
        break;
    }
    // Released here, on this loop, not on the thread freeing the job.
    delivery = caf::message{};
    group_.reset();
  }

private:
  std::shared_ptr<loop_members> group_;
  kind_t kind_;
};

struct topic_state {
  std::shared_ptr<const std::string> topic;
  topic_options opts;
  // Subscribers that are no connection on one of the loops (any actor, and
  // every subscriber in tests): the topic sends to them itself.
  std::vector<caf::actor> subscribers;
  // Connections on the loops, as the topic knows them (their loop's
  // loop_members holds the handles).
  struct on_loop {
    caf::actor_addr addr;
    std::size_t loop;
  };
  std::vector<on_loop> on_loops;
  // By loop (made on the first member there).
  std::vector<std::shared_ptr<loop_members>> groups;
  // Members of groups[i].
  std::vector<std::size_t> group_sizes;
  // Messages published since the last fan-out (see the flush handler).
  std::vector<msg::topic_message> batch;
  // Subscribers that came while a batch waited, and how many of its
  // messages came before them: they join at the fan-out, getting the rest.
  struct late_member {
    caf::actor who;
    std::size_t from;
  };
  std::vector<late_member> late;
  std::size_t size() const noexcept {
    return subscribers.size() + on_loops.size() + late.size();
  }
  static inline const char* name = "herald.topic";
};

msg::topic_actor::behavior_type
topic_behavior(msg::topic_actor::stateful_pointer<topic_state> self,
               std::shared_ptr<const std::string> name, topic_options opts) {
  self->state.topic = std::move(name);
  self->state.opts = opts;
  // Makes `who` a subscriber from now on.
  auto add = [self](caf::actor who) {
    auto& st = self->state;
    auto loop = loop_of(self->home_system(), who);
    if (loop == net::io_service::no_loop) {
      st.subscribers.push_back(std::move(who));
      return;
    }
    if (loop >= st.groups.size()) {
      st.groups.resize(loop + 1);
      st.group_sizes.resize(loop + 1);
    }
    if (!st.groups[loop])
      st.groups[loop] = std::make_shared<loop_members>();
    ++st.group_sizes[loop];
    st.on_loops.push_back({who.address(), loop});
    auto job =
      caf::make_counted<topic_job>(loop, st.groups[loop], topic_job::add);
    job->who = std::move(who);
    run_on_loop(self->home_system(), std::move(job));
  };
  // Gives a late subscriber the messages of a batch published after it
  // came (`batch`, from its `from`), then adds it.
  auto add_late = [self, add](const std::shared_ptr<const std::string>& topic,
                              const std::vector<msg::topic_message>& batch,
                              topic_state::late_member& m) {
    if (m.from < batch.size()) {
      msg::delivery rest{topic,
                         {batch.begin() + static_cast<long>(m.from),
                          batch.end()},
                         {},
                         {},
                         {}};
      auto loop = loop_of(self->home_system(), m.who);
      if (loop == net::io_service::no_loop) {
        caf::anon_send(m.who, std::move(rest));
      } else {
        // Through its loop as every delivery, ahead of the next ones.
        auto one = std::make_shared<loop_members>();
        one->members.push_back(m.who);
        auto job = caf::make_counted<topic_job>(loop, std::move(one),
                                                topic_job::deliver);
        job->delivery = caf::make_message(std::move(rest));
        run_on_loop(self->home_system(), std::move(job));
      }
    }
    add(std::move(m.who));
  };
  // Sends the batch to the subscribers of now.
  auto fan_out = [self, add_late] {
    auto& st = self->state;
    if (st.batch.empty())
      return;
    auto late = std::move(st.late);
    st.late.clear();
    std::vector<msg::topic_message> batch;
    if (!late.empty())
      batch = st.batch;
    // One message shared by every subscriber (one per loop for the
    // connections): frames are never copied per subscriber.
    msg::delivery d{st.topic, std::move(st.batch), {}, {}, {}};
    st.batch.clear();
    if (st.size() > 1)
      join_runs(d);
    for (std::size_t i = 0; i < st.groups.size(); ++i) {
      if (st.group_sizes[i] == 0)
        continue;
      auto job =
        caf::make_counted<topic_job>(i, st.groups[i], topic_job::deliver);
      job->delivery = caf::make_message(d);
      run_on_loop(self->home_system(), std::move(job));
    }
    if (!st.subscribers.empty()) {
      auto m = caf::make_message(std::move(d));
      // Anonymous: a typed actor sends only to typed handles, and
      // subscribers are any actor (they never answer a delivery).
      for (auto& sub : st.subscribers)
        caf::anon_send(sub, m);
    }
    // After the members of before, so the batch reaches none of them twice.
    for (auto& m : late)
      add_late(st.topic, batch, m);
  };
  // A subscriber gets exactly what reaches the topic between its subscribe
  // and its unsubscribe. A batch waiting for its flush goes out to the
  // members it reached first; one that comes while it waits gets the
  // batch's rest when it goes out (a room that fills does not send each
  // join on its own).
  return {
    [=](caf::subscribe_atom, caf::actor& who) {
      auto& st = self->state;
      if (!st.batch.empty()) {
        st.late.push_back({std::move(who), st.batch.size()});
        return;
      }
      add(std::move(who));
    },
    [=](caf::unsubscribe_atom, const caf::actor_addr& who) {
      fan_out();
      auto& st = self->state;
      // Order among subscribers does not matter: swap and pop.
      for (auto i = st.on_loops.begin(); i != st.on_loops.end(); ++i) {
        if (i->addr == who) {
          auto loop = i->loop;
          *i = std::move(st.on_loops.back());
          st.on_loops.pop_back();
          --st.group_sizes[loop];
          auto job = caf::make_counted<topic_job>(loop, st.groups[loop],
                                                  topic_job::remove);
          job->gone = who;
          run_on_loop(self->home_system(), std::move(job));
          return;
        }
      }
      auto& subs = st.subscribers;
      for (auto i = subs.begin(); i != subs.end(); ++i) {
        if (i->address() == who) {
          *i = std::move(subs.back());
          subs.pop_back();
          break;
        }
      }
    },
    [=](caf::publish_atom, msg::publication& pub) {
      // Collect what arrives while we are busy; the flush we send ourselves
      // comes after everything already queued, so each subscriber gets one
      // message per burst instead of one per publish.
      auto& st = self->state;
      auto& batch = st.batch;
      if (batch.empty()) {
        // A big topic waits a little for more (topic_options).
        if (st.opts.linger.count() > 0
            && st.size() >= st.opts.linger_min_subscribers)
          self->delayed_send(self, st.opts.linger, msg::flush_atom::value);
        else
          self->send(self, msg::flush_atom::value);
      }
      batch.push_back(msg::topic_message{std::move(pub.frame),
                                         std::move(pub.exclude), pub.compress});
    },
    [=](msg::flush_atom) { fan_out(); },
    [=](msg::count_atom) { return self->state.size(); },
  };
}

// -- registry -----------------------------------------------------------------

struct topic_entry {
  msg::topic_actor actor;
  std::size_t count = 0;
};

// The topics one subscriber is in: pointers to the names held as keys of
// registry_state::topics (map nodes do not move, and a topic outlives its
// last member). Most subscribers are in one topic: that one is inline.
class membership {
public:
  bool contains(const std::string* t) const noexcept {
    return first_ == t
           || (more_
               && std::find(more_->begin(), more_->end(), t) != more_->end());
  }
  void add(const std::string* t) {
    if (!first_) {
      first_ = t;
      return;
    }
    if (!more_)
      more_ = std::make_unique<std::vector<const std::string*>>();
    more_->push_back(t);
  }
  // Returns false when `t` was not there.
  bool remove(const std::string* t) {
    if (first_ == t) {
      if (!more_ || more_->empty()) {
        first_ = nullptr;
      } else {
        first_ = more_->back();
        more_->pop_back();
      }
      return true;
    }
    if (!more_)
      return false;
    auto i = std::find(more_->begin(), more_->end(), t);
    if (i == more_->end())
      return false;
    *i = more_->back();
    more_->pop_back();
    return true;
  }
  bool empty() const noexcept { return first_ == nullptr; }
  // Calls `f` with each topic name (the registry's keys).
  template <class F>
  void for_each(F f) const {
    if (first_)
      f(*first_);
    if (more_)
      for (auto t : *more_)
        f(*t);
  }

private:
  const std::string* first_ = nullptr;
  // Topics after the first, made for members of more than one (16 bytes
  // per member instead of 32 in the registry's map, which has one entry
  // per subscriber).
  std::unique_ptr<std::vector<const std::string*>> more_;
};

struct registry_state {
  std::shared_ptr<topic_counts> counts;
  topic_options opts;
  std::unordered_map<std::string, topic_entry> topics;
  std::unordered_map<caf::actor_addr, membership> members;
  // The Redis bridge, if any: hears of first/last subscribers and of every
  // local publish (also to topics without local subscribers: other nodes
  // may have some).
  msg::bridge_actor bridge;
  static inline const char* name = "herald.topic_registry";
};

using registry_actor = msg::registry_actor::stateful_pointer<registry_state>;

// Subscribes `who` to `topic`, making the topic actor on first use.
// `settled` is what the message's sender counted on its way (+1 or 0): it
// leaves the pending changes in the same step that applies the change.
// `watch`: monitor a new member (false: it announces its exit itself).
void join(registry_actor self, std::string& topic, caf::actor& who, int settled,
          bool watch = true) {
  auto [m, fresh] = self->state.members.try_emplace(who.address());
  if (fresh && watch)
    self->monitor(who);
  auto t = self->state.topics.try_emplace(topic).first;
  auto& e = t->second;
  if (m->second.contains(&t->first)) {
    // Already subscribed: nothing changes but what was counted.
    self->state.counts->set(topic, e.count, settled);
    return;
  }
  m->second.add(&t->first);
  if (!e.actor) {
    auto name = std::make_shared<const std::string>(topic);
    // Linked: when the registry stops (server shutdown), so do its
    // topics; a topic that ends normally does not take it along.
    e.actor = self->spawn<caf::linked>(topic_behavior, std::move(name),
                                       self->state.opts);
    if (self->state.bridge)
      self->send(self->state.bridge, caf::join_atom::value, topic);
  }
  ++e.count;
  self->state.counts->set(topic, e.count, settled);
  self->send(e.actor, caf::subscribe_atom::value, std::move(who));
}

// Removes `who`, a member of `topic`, from it; `settled` as in join (-1 or
// 0).
void leave(registry_actor self, const std::string& topic,
           const caf::actor_addr& who, int settled) {
  auto i = self->state.topics.find(topic);
  if (i == self->state.topics.end()) {
    self->state.counts->set(topic, 0, settled);
    return;
  }
  auto& e = i->second;
  if (--e.count == 0) {
    // The topic actor handles everything sent before this exit message.
    self->send_exit(e.actor, caf::exit_reason::normal);
    self->state.counts->set(topic, 0, settled);
    if (self->state.bridge)
      self->send(self->state.bridge, caf::leave_atom::value, topic);
    // Last: `topic` may be this entry's key.
    self->state.topics.erase(i);
  } else {
    self->send(e.actor, caf::unsubscribe_atom::value, who);
    self->state.counts->set(topic, e.count, settled);
  }
}

// Unsubscribes `who` from `topic` if it is a member; `settled` as in join.
void quit_topic(registry_actor self, const std::string& topic,
                const caf::actor& who, int settled) {
  auto m = self->state.members.find(who.address());
  auto t = self->state.topics.find(topic);
  if (m == self->state.members.end() || t == self->state.topics.end()
      || !m->second.remove(&t->first)) {
    // Not a member: nothing changes but what was counted.
    auto n = t == self->state.topics.end() ? 0 : t->second.count;
    self->state.counts->set(topic, n, settled);
    return;
  }
  if (m->second.empty()) {
    self->demonitor(who);
    self->state.members.erase(m);
  }
  leave(self, topic, who.address(), settled);
}

// A subscriber went away: it leaves every topic it was in.
void gone(registry_actor self, const caf::actor_addr& who) {
  auto i = self->state.members.find(who);
  if (i == self->state.members.end())
    return;
  auto topics = std::move(i->second);
  self->state.members.erase(i);
  // By the registry's own keys: each leave erases at most its own topic.
  topics.for_each([&](const std::string& t) { leave(self, t, who, 0); });
}

} // namespace

void subscribe(const topic_registry& registry, std::string topic,
               const caf::actor& who) {
  // Counted while on its way, as a connection's subscribe: a server publish
  // made after this call (by whoever learns of the subscription) is not
  // skipped for want of subscribers before the registry has it.
  if (auto& counts = registry.counts()) {
    counts->subscribing(topic);
    caf::anon_send(registry.actor(), caf::subscribe_atom::value,
                   std::move(topic), who, msg::counted_atom::value);
    return;
  }
  caf::anon_send(registry.actor(), caf::subscribe_atom::value, std::move(topic),
                 who);
}

void unsubscribe(const caf::actor& registry, std::string topic,
                 const caf::actor& who) {
  caf::anon_send(registry, caf::unsubscribe_atom::value, std::move(topic), who);
}

void publish_text(const caf::actor& registry, std::string topic,
                  std::string_view text, caf::actor_addr exclude) {
  caf::anon_send(registry, caf::publish_atom::value, std::move(topic),
                 msg::publication{net::make_frame(net::opcode::text, text),
                                  std::move(exclude)});
}

void publish_binary(const caf::actor& registry, std::string topic,
                    std::span<const std::byte> data, caf::actor_addr exclude) {
  caf::anon_send(registry, caf::publish_atom::value, std::move(topic),
                 msg::publication{net::make_frame(net::opcode::binary, data),
                                  std::move(exclude)});
}

namespace {

void send_direct(const caf::actor& connection, net::opcode op,
                 std::span<const std::byte> data, bool compress) {
  // A delivery of one message, under no topic: connections write
  // deliveries whatever topic they name.
  static const auto no_topic = std::make_shared<const std::string>();
  std::vector<msg::topic_message> one;
  one.push_back(msg::topic_message{net::make_frame(op, data), {}, compress});
  caf::anon_send(caf::actor_cast<msg::connection_actor>(connection),
                 msg::delivery{no_topic, std::move(one), {}, {}, {}});
}

} // namespace

void send_text(const caf::actor& connection, std::string_view text,
               bool compress) {
  send_direct(connection, net::opcode::text,
              {reinterpret_cast<const std::byte*>(text.data()), text.size()},
              compress);
}

void send_binary(const caf::actor& connection, std::span<const std::byte> data,
                 bool compress) {
  send_direct(connection, net::opcode::binary, data, compress);
}

namespace {

// A free function with arguments: CAF 0.17 mishandles (UBSan) a spawned
// lambda that takes none besides `self`.
msg::registry_actor::behavior_type
registry_behavior(registry_actor self, std::shared_ptr<topic_counts> counts,
                  topic_options opts) {
  {
    self->state.counts = std::move(counts);
    self->state.opts = opts;
    self->set_down_handler([=](caf::down_msg& dm) { gone(self, dm.source); });
    return {
      [=](caf::subscribe_atom, std::string& topic, caf::actor& who) {
        join(self, topic, who, 0);
      },
      [=](caf::subscribe_atom, std::string& topic, caf::actor& who,
          msg::counted_atom) {
        join(self, topic, who, 1);
        self->state.counts->subscribed();
      },
      [=](caf::subscribe_atom, std::string& topic, caf::actor& who,
          msg::announces_exit_atom) { join(self, topic, who, 0, false); },
      [=](caf::subscribe_atom, std::string& topic, caf::actor& who,
          msg::counted_atom, msg::announces_exit_atom) {
        join(self, topic, who, 1, false);
        self->state.counts->subscribed();
      },
      [=](msg::exited_atom, const caf::actor_addr& who) { gone(self, who); },
      [=](caf::unsubscribe_atom, std::string& topic, caf::actor& who) {
        quit_topic(self, topic, who, 0);
      },
      [=](caf::unsubscribe_atom, std::string& topic, caf::actor& who,
          msg::counted_atom) { quit_topic(self, topic, who, -1); },
      [=](caf::publish_atom, const std::string& topic, msg::publication& pub) {
        // The bridge gets its own copy of the handle, not of the frame.
        if (self->state.bridge)
          self->send(self->state.bridge, caf::publish_atom::value, topic, pub);
        auto i = self->state.topics.find(topic);
        if (i != self->state.topics.end())
          self->send(i->second.actor, caf::publish_atom::value, std::move(pub));
      },
      [=](msg::remote_atom, const std::string& topic, msg::publication& pub) {
        // From another node: local subscribers only, never back to Redis.
        auto i = self->state.topics.find(topic);
        if (i != self->state.topics.end())
          self->send(i->second.actor, caf::publish_atom::value, std::move(pub));
      },
      [=](msg::bridge_atom, msg::bridge_actor& bridge) {
        self->state.bridge = std::move(bridge);
        for (auto& [topic, e] : self->state.topics)
          self->send(self->state.bridge, caf::join_atom::value, topic);
      },
      [=](msg::count_atom, const std::string& topic) -> std::size_t {
        auto i = self->state.topics.find(topic);
        return i == self->state.topics.end() ? 0 : i->second.count;
      },
    };
  }
}

} // namespace

topic_registry spawn_topic_registry(caf::actor_system& sys,
                                    std::shared_ptr<topic_counts> counts,
                                    topic_options opts) {
  auto registry = sys.spawn(registry_behavior, counts, opts);
  return {std::move(registry), std::move(counts)};
}

} // namespace herald
