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

std::size_t topic_counts::applied(std::string_view topic) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = counts_.find(topic);
  return i == counts_.end() ? 0 : i->second.applied;
}

void topic_counts::apply(std::string_view topic, int delta, int settled) {
  change(topic, [&](entry& e) {
    e.applied =
      static_cast<std::size_t>(static_cast<std::ptrdiff_t>(e.applied) + delta);
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

// `a` when its mailbox is blocked (empty, and `a` not running): a caller on
// its thread may then run its handler itself, which is what handling the
// message next would be; what `a` sends meanwhile goes out through `ctx`
// (the caller's execution unit). Null otherwise.
template <class Actor>
Actor* if_idle(Actor* a, caf::execution_unit* ctx) noexcept {
  if (!a->mailbox().blocked())
    return nullptr;
  a->context(ctx);
  return a;
}

struct topic_state {
  std::shared_ptr<const std::string> topic;
  topic_options opts;
  // Connections of the topic's own loop: a delivery is handed to each on
  // this thread (connection_actor::deliver_now), else put in its mailbox.
  std::vector<caf::actor> members;
  // Any other subscriber (every subscriber in tests): sent a message.
  std::vector<caf::actor> subscribers;
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
    return members.size() + subscribers.size() + late.size();
  }
};

// A topic's broker on one loop: it holds the topic's subscribers whose
// shard is that loop's and runs there, next to the connections among them.
class topic_impl final : public msg::topic_actor::base {
public:
  topic_impl(caf::actor_config& cfg, std::size_t loop,
             std::shared_ptr<const std::string> topic, topic_options opts)
    : msg::topic_actor::base(cfg), loop_(loop) {
    state.topic = std::move(topic);
    state.opts = opts;
  }

  const char* name() const override { return "herald.topic"; }

  // Drops the handles at the end, as a stateful actor drops its state: a
  // member holds its shard, which holds us, which held the member.
  void on_exit() override { state = topic_state{}; }

  std::size_t loop() const noexcept { return loop_; }

  behavior_type make_behavior() override;

  // The topic behind `hdl` when its shard (on its thread) may hand it a
  // message directly (see if_idle); null otherwise.
  static topic_impl* idle(const msg::topic_actor& hdl,
                          caf::execution_unit* ctx) noexcept {
    return if_idle(static_cast<topic_impl*>(
                     caf::actor_cast<caf::abstract_actor*>(hdl)),
                   ctx);
  }

  // The handlers (a subscriber gets exactly what reaches the topic between
  // its subscribe and its unsubscribe).
  void subscribe(caf::actor who);
  void unsubscribe(const caf::actor_addr& who);
  void publish(msg::publication& pub);
  void publish(msg::publication_batch& pubs);
  void fan_out();

  topic_state state;

private:
  // Makes `who` a subscriber from now on.
  void add(caf::actor who);
  // Whether a publish now waits for a flush (false: it goes out at once).
  bool will_fan_out();

  std::size_t loop_;
};

// Gives `m` (a delivery) to `who`: a member takes it at once when idle.
void hand_over(const caf::actor& who, bool member, const caf::message& m) {
  if (member) {
    auto c = static_cast<connection_actor*>(
      caf::actor_cast<caf::abstract_actor*>(who));
    if (c->deliver_now(m))
      return;
  }
  // Anonymous: a typed actor sends only to typed handles, and subscribers
  // are any actor (they never answer a delivery).
  caf::anon_send(who, m);
}

void topic_impl::add(caf::actor who) {
  // Connections of this loop only: deliver_now runs on the member's
  // thread (the shard of a loop has no other connections).
  if (loop_of(home_system(), who) == loop_)
    state.members.push_back(std::move(who));
  else
    state.subscribers.push_back(std::move(who));
}

void topic_impl::fan_out() {
  auto& st = state;
  if (st.batch.empty())
    return;
  auto late = std::move(st.late);
  st.late.clear();
  std::vector<msg::topic_message> batch;
  if (!late.empty())
    batch = st.batch;
  // One message shared by every subscriber: frames are never copied per
  // subscriber.
  msg::delivery d{st.topic, std::move(st.batch), {}, {}, {}};
  st.batch.clear();
  if (st.size() > 1)
    join_runs(d);
  auto m = caf::make_message(std::move(d));
  for (auto& who : st.members)
    hand_over(who, true, m);
  for (auto& who : st.subscribers)
    hand_over(who, false, m);
  // After the members of before, so the batch reaches none of them twice:
  // a late one gets what was published after it came, then joins.
  for (auto& l : late) {
    if (l.from < batch.size()) {
      msg::delivery rest{st.topic,
                         {batch.begin() + static_cast<long>(l.from),
                          batch.end()},
                         {},
                         {},
                         {}};
      hand_over(l.who, loop_of(home_system(), l.who) == loop_,
                caf::make_message(std::move(rest)));
    }
    add(std::move(l.who));
  }
}

void topic_impl::subscribe(caf::actor who) {
  // A batch waiting for its flush goes out to the members it reached
  // first; one that comes while it waits gets the batch's rest when it
  // goes out (a room that fills does not send each join on its own).
  if (!state.batch.empty()) {
    state.late.push_back({std::move(who), state.batch.size()});
    return;
  }
  add(std::move(who));
}

void topic_impl::unsubscribe(const caf::actor_addr& who) {
  fan_out();
  // By control block (an address per member compared would take and drop
  // a reference each); order among subscribers does not matter: swap and
  // pop.
  auto gone = caf::actor_cast<caf::actor_control_block*>(who);
  auto drop = [&](std::vector<caf::actor>& xs) {
    for (auto i = xs.begin(); i != xs.end(); ++i) {
      if (caf::actor_cast<caf::actor_control_block*>(*i) == gone) {
        *i = std::move(xs.back());
        xs.pop_back();
        return true;
      }
    }
    return false;
  };
  if (!drop(state.members))
    drop(state.subscribers);
}

void topic_impl::publish(msg::publication& pub) {
  bool later = will_fan_out();
  state.batch.push_back(msg::topic_message{std::move(pub.frame),
                                           std::move(pub.exclude),
                                           pub.compress});
  if (!later)
    fan_out();
}

void topic_impl::publish(msg::publication_batch& pubs) {
  bool later = will_fan_out();
  for (auto& pub : pubs.items)
    state.batch.push_back(msg::topic_message{std::move(pub.frame),
                                             std::move(pub.exclude),
                                             pub.compress});
  if (!later)
    fan_out();
}

bool topic_impl::will_fan_out() {
  // Collect what arrives while we are busy; the flush we send ourselves
  // comes after everything already queued, so each subscriber gets one
  // message per burst instead of one per publish. With nothing queued
  // there is nothing to wait for: out at once (false: the caller adds
  // its messages to the batch and fans out).
  auto& st = state;
  if (!st.batch.empty())
    return true;
  // A big topic waits a little for more (topic_options).
  if (st.opts.linger.count() > 0
      && st.size() >= st.opts.linger_min_subscribers) {
    delayed_send(this, st.opts.linger, msg::flush_atom::value);
    return true;
  }
  if (!mailbox().empty()) {
    send(this, msg::flush_atom::value);
    return true;
  }
  return false;
}

msg::topic_actor::behavior_type topic_impl::make_behavior() {
  auto self = this;
  return {
    [=](caf::subscribe_atom, caf::actor& who) {
      self->subscribe(std::move(who));
    },
    [=](caf::unsubscribe_atom, const caf::actor_addr& who) {
      self->unsubscribe(who);
    },
    [=](caf::publish_atom, msg::publication& pub) { self->publish(pub); },
    [=](caf::publish_atom, msg::publication_batch& pubs) {
      self->publish(pubs);
    },
    [=](msg::flush_atom) { self->fan_out(); },
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
  // The Redis bridge, if any: hears of this shard's first/last subscribers
  // and of every local publish that names this shard as its origin (also
  // to topics without local subscribers: other nodes may have some).
  msg::bridge_actor bridge;
};

// The registry's shard of one loop: the members whose home is that loop,
// and a topic actor there for each of their topics.
class shard_impl final : public msg::registry_actor::base {
public:
  shard_impl(caf::actor_config& cfg, std::size_t loop,
             std::shared_ptr<topic_counts> counts, topic_options opts)
    : msg::registry_actor::base(cfg), loop_(loop) {
    state.counts = std::move(counts);
    state.opts = opts;
  }

  const char* name() const override { return "herald.topic_shard"; }

  // Drops the handles at the end (topics, bridge), as a stateful actor
  // drops its state.
  void on_exit() override { state = registry_state{}; }

  std::size_t loop() const noexcept { return loop_; }

  behavior_type make_behavior() override;

  registry_state state;

private:
  std::size_t loop_;
};

using registry_actor = shard_impl*;

// Subscribes `who` to `topic`, making the topic actor on first use.
// `settled` is what the message's sender counted on its way (+1 or 0): it
// leaves the pending changes in the same step that applies the change.
// `watch`: monitor a new member (false: it announces its exit itself).
void join(registry_actor self, const std::string& topic, caf::actor& who,
          int settled, bool watch = true) {
  auto [m, fresh] = self->state.members.try_emplace(who.address());
  if (fresh && watch)
    self->monitor(who);
  auto t = self->state.topics.try_emplace(topic).first;
  auto& e = t->second;
  if (m->second.contains(&t->first)) {
    // Already subscribed: nothing changes but what was counted.
    self->state.counts->apply(topic, 0, settled);
    return;
  }
  m->second.add(&t->first);
  if (!e.actor) {
    auto name = std::make_shared<const std::string>(topic);
    // Linked: when the registry stops (server shutdown), so do its
    // topics; a topic that ends normally does not take it along.
    e.actor =
      self->spawn<topic_impl, caf::linked>(self->loop(), std::move(name),
                                           self->state.opts);
    if (self->state.bridge)
      self->send(self->state.bridge, caf::join_atom::value, topic);
  }
  ++e.count;
  self->state.counts->apply(topic, 1, settled);
  if (auto t = topic_impl::idle(e.actor, self->context()))
    t->subscribe(std::move(who));
  else
    self->send(e.actor, caf::subscribe_atom::value, std::move(who));
}

// Removes `who`, a member of `topic`, from it; `settled` as in join (-1 or
// 0).
void leave(registry_actor self, const std::string& topic,
           const caf::actor_addr& who, int settled) {
  auto i = self->state.topics.find(topic);
  if (i == self->state.topics.end()) {
    self->state.counts->apply(topic, 0, settled);
    return;
  }
  auto& e = i->second;
  if (--e.count == 0) {
    // The topic actor handles everything sent before this exit message.
    self->send_exit(e.actor, caf::exit_reason::normal);
    self->state.counts->apply(topic, -1, settled);
    if (self->state.bridge)
      self->send(self->state.bridge, caf::leave_atom::value, topic);
    // Last: `topic` may be this entry's key.
    self->state.topics.erase(i);
  } else {
    if (auto t = topic_impl::idle(e.actor, self->context()))
      t->unsubscribe(who);
    else
      self->send(e.actor, caf::unsubscribe_atom::value, who);
    self->state.counts->apply(topic, -1, settled);
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
    self->state.counts->apply(topic, 0, settled);
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

namespace {

// The shard that keeps `who`: the one of its loop (a connection's is the
// loop of its socket, any other actor's follows from its id, as its home
// loop does).
const msg::registry_actor& shard_for(const topic_registry& registry,
                                     const caf::actor& who) {
  if (registry.shards().empty() || !who)
    return registry.actor();
  auto loop =
    loop_of(caf::actor_cast<caf::abstract_actor*>(who)->home_system(), who);
  return registry.shard(loop != net::io_service::no_loop ? loop : who.id());
}

} // namespace

void subscribe(const topic_registry& registry, std::string topic,
               const caf::actor& who) {
  auto& dest = shard_for(registry, who);
  // Counted while on its way, as a connection's subscribe: a server publish
  // made after this call (by whoever learns of the subscription) is not
  // skipped for want of subscribers before the shard has it.
  if (auto& counts = registry.counts()) {
    counts->subscribing(topic);
    caf::anon_send(dest, caf::subscribe_atom::value, std::move(topic), who,
                   msg::counted_atom::value);
    return;
  }
  caf::anon_send(dest, caf::subscribe_atom::value, std::move(topic), who);
}

void unsubscribe(const topic_registry& registry, std::string topic,
                 const caf::actor& who) {
  caf::anon_send(shard_for(registry, who), caf::unsubscribe_atom::value,
                 std::move(topic), who);
}

void unsubscribe(const caf::actor& registry, std::string topic,
                 const caf::actor& who) {
  caf::anon_send(registry, caf::unsubscribe_atom::value, std::move(topic), who);
}

namespace {

template <class Pub>
void publish_to_shards(const topic_registry& registry, std::string_view topic,
                       Pub pub, std::size_t origin) {
  // Whatever this thread's connection has queued goes first (one thread's
  // publishes stay in the order made).
  flush_pending_publishes();
  auto shards = registry.shards();
  if (shards.empty()) {
    caf::anon_send(registry.actor(), caf::publish_atom::value,
                   std::string{topic}, std::move(pub));
    return;
  }
  if (origin == net::io_service::no_loop)
    origin = 0;
  origin %= shards.size();
  // The other shards deliver to their members only; the origin also passes
  // it on to the Redis bridge (once per publish, in the publisher's order).
  for (std::size_t i = 0; i < shards.size(); ++i)
    if (i != origin)
      caf::anon_send(shards[i], msg::remote_atom::value, std::string{topic},
                     pub);
  caf::anon_send(shards[origin], caf::publish_atom::value, std::string{topic},
                 std::move(pub));
}

} // namespace

void publish(const topic_registry& registry, std::string_view topic,
             msg::publication pub, std::size_t origin) {
  publish_to_shards(registry, topic, std::move(pub), origin);
}

void publish(const topic_registry& registry, std::string_view topic,
             msg::publication_batch pubs, std::size_t origin) {
  publish_to_shards(registry, topic, std::move(pubs), origin);
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

void publish_text(const topic_registry& registry, std::string topic,
                  std::string_view text, caf::actor_addr exclude) {
  publish(registry, topic,
          msg::publication{net::make_frame(net::opcode::text, text),
                           std::move(exclude)});
}

void publish_binary(const topic_registry& registry, std::string topic,
                    std::span<const std::byte> data, caf::actor_addr exclude) {
  publish(registry, topic,
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

msg::registry_actor::behavior_type shard_impl::make_behavior() {
  auto self = this;
  set_down_handler([=](caf::down_msg& dm) { gone(self, dm.source); });
  auto to_topic = [=](const std::string& topic, auto& pub) {
    auto i = self->state.topics.find(topic);
    if (i == self->state.topics.end())
      return;
    // Directly only when nothing waits behind it here either: a burst
    // queued at the shard reaches the topic's mailbox and goes out as one.
    auto t = self->mailbox().empty()
               ? topic_impl::idle(i->second.actor, self->context())
               : nullptr;
    if (t)
      t->publish(pub);
    else
      self->send(i->second.actor, caf::publish_atom::value, std::move(pub));
  };
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
      to_topic(topic, pub);
    },
    [=](caf::publish_atom, const std::string& topic,
        msg::publication_batch& pubs) {
      if (self->state.bridge)
        for (auto& pub : pubs.items)
          self->send(self->state.bridge, caf::publish_atom::value, topic, pub);
      to_topic(topic, pubs);
    },
    [=](msg::remote_atom, const std::string& topic, msg::publication& pub) {
      // From another node or another shard: local members only.
      to_topic(topic, pub);
    },
    [=](msg::remote_atom, const std::string& topic,
        msg::publication_batch& pubs) { to_topic(topic, pubs); },
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

// -- the registry in front of the shards --------------------------------------

struct front_state {
  topic_registry registry; // its shards and counts (not its own actor)
  static inline const char* name = "herald.topic_registry";
};

// Takes the registry's messages from anyone that does not know the shards
// and passes each to the shard it concerns.
msg::registry_actor::behavior_type
front_behavior(msg::registry_actor::stateful_pointer<front_state> self,
               topic_registry shards) {
  self->state.registry = std::move(shards);
  // Linked: the server's stop (an exit sent to the registry) stops the
  // shards, and they their topics.
  for (auto& s : self->state.registry.shards())
    self->link_to(s);
  auto shard = [self](const caf::actor& who) -> const msg::registry_actor& {
    return shard_for(self->state.registry, who);
  };
  auto each = [self](auto&&... xs) {
    for (auto& s : self->state.registry.shards())
      self->send(s, xs...);
  };
  return {
    [=](caf::subscribe_atom a, std::string& topic, caf::actor& who) {
      self->send(shard(who), a, std::move(topic), who);
    },
    [=](caf::subscribe_atom a, std::string& topic, caf::actor& who,
        msg::counted_atom c) {
      self->send(shard(who), a, std::move(topic), who, c);
    },
    [=](caf::subscribe_atom a, std::string& topic, caf::actor& who,
        msg::announces_exit_atom x) {
      self->send(shard(who), a, std::move(topic), who, x);
    },
    [=](caf::subscribe_atom a, std::string& topic, caf::actor& who,
        msg::counted_atom c, msg::announces_exit_atom x) {
      self->send(shard(who), a, std::move(topic), who, c, x);
    },
    // The address alone does not say which shard: each checks.
    [=](msg::exited_atom a, const caf::actor_addr& who) { each(a, who); },
    [=](caf::unsubscribe_atom a, std::string& topic, caf::actor& who) {
      self->send(shard(who), a, std::move(topic), who);
    },
    [=](caf::unsubscribe_atom a, std::string& topic, caf::actor& who,
        msg::counted_atom c) {
      self->send(shard(who), a, std::move(topic), who, c);
    },
    [=](caf::publish_atom, const std::string& topic, msg::publication& pub) {
      publish(self->state.registry, topic, std::move(pub), 0);
    },
    [=](caf::publish_atom, const std::string& topic,
        msg::publication_batch& pubs) {
      publish(self->state.registry, topic, std::move(pubs), 0);
    },
    [=](msg::remote_atom a, const std::string& topic,
        const msg::publication& pub) { each(a, topic, pub); },
    [=](msg::remote_atom a, const std::string& topic,
        const msg::publication_batch& pubs) { each(a, topic, pubs); },
    [=](msg::bridge_atom a, const msg::bridge_actor& bridge) {
      each(a, bridge);
    },
    [=](msg::count_atom, const std::string& topic) -> std::size_t {
      return self->state.registry.counts()->applied(topic);
    },
  };
}

} // namespace

topic_registry spawn_topic_registry(caf::actor_system& sys,
                                    std::shared_ptr<topic_counts> counts,
                                    topic_options opts, std::size_t shards) {
  auto n = shards > 0 ? shards : std::max<std::size_t>(loop_count(sys), 1);
  auto all = std::make_shared<std::vector<msg::registry_actor>>();
  all->reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    all->push_back(sys.spawn<shard_impl>(i, counts, opts));
  topic_registry parts{{}, all, counts};
  auto front = sys.spawn(front_behavior, parts);
  return {std::move(front), std::move(all), std::move(counts)};
}

namespace detail {

std::size_t topic_actor_loop(const caf::abstract_actor* self) noexcept {
  auto& type = typeid(*self);
  if (type == typeid(topic_impl))
    return static_cast<const topic_impl*>(self)->loop();
  if (type == typeid(shard_impl))
    return static_cast<const shard_impl*>(self)->loop();
  return net::io_service::no_loop;
}

namespace {

// The shard behind `hdl` if this thread is its loop's and it is idle (see
// if_idle).
shard_impl* idle_shard(const msg::registry_actor& hdl,
                       caf::execution_unit* ctx) noexcept {
  auto* a = caf::actor_cast<caf::abstract_actor*>(hdl);
  if (a == nullptr || typeid(*a) != typeid(shard_impl))
    return nullptr;
  auto* s = static_cast<shard_impl*>(a);
  if (s->loop() != net::io_service::current())
    return nullptr;
  return if_idle(s, ctx);
}

} // namespace

bool join_now(const msg::registry_actor& shard, const std::string& topic,
              const caf::actor& who, caf::execution_unit* ctx) {
  auto s = idle_shard(shard, ctx);
  if (!s)
    return false;
  auto member = who; // join takes it over
  join(s, topic, member, 0, false);
  return true;
}

bool exit_now(const msg::registry_actor& shard, const caf::actor_addr& who,
              caf::execution_unit* ctx) {
  auto s = idle_shard(shard, ctx);
  if (!s)
    return false;
  gone(s, who);
  return true;
}

} // namespace detail

} // namespace herald
