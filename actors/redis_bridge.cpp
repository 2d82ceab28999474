#include "herald/actors/redis_bridge.hpp"

#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "herald/actors/stats.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/log.hpp"
#include "herald/net/redis.hpp"

namespace herald {

namespace redis_envelope {

namespace {

constexpr std::byte magic{'H'};
constexpr std::byte version{1};
constexpr unsigned binary_flag = 1;
constexpr unsigned compress_flag = 2;

} // namespace

std::string encode(std::uint64_t node, bool binary, bool compress,
                   std::span<const std::byte> payload) {
  std::string out;
  out.resize(header_size + payload.size());
  out[0] = static_cast<char>(magic);
  out[1] = static_cast<char>(version);
  out[2] = static_cast<char>((binary ? binary_flag : 0)
                             | (compress ? compress_flag : 0));
  for (int i = 0; i < 8; ++i)
    out[3 + i] = static_cast<char>((node >> (56 - 8 * i)) & 0xFF);
  if (!payload.empty())
    std::memcpy(out.data() + header_size, payload.data(), payload.size());
  return out;
}

std::optional<contents> decode(std::span<const std::byte> bytes) {
  if (bytes.size() < header_size || bytes[0] != magic || bytes[1] != version)
    return std::nullopt;
  contents c;
  auto flags = std::to_integer<unsigned>(bytes[2]);
  c.binary = (flags & binary_flag) != 0;
  c.compress = (flags & compress_flag) != 0;
  for (int i = 0; i < 8; ++i)
    c.node = (c.node << 8) | std::to_integer<std::uint64_t>(bytes[3 + i]);
  c.payload = bytes.subspan(header_size);
  return c;
}

} // namespace redis_envelope

namespace {

struct bridge_state {
  std::shared_ptr<net::redis_link> link;
  std::string prefix;
  std::uint64_t node = 0;
  // Publishes since the last flush: one hop to loop 0 (the link's) per burst.
  std::vector<net::redis_publication> batch;
  // Topics by the number of shards that have local subscribers of them:
  // the channel is subscribed while that is above zero.
  std::unordered_map<std::string, std::size_t> joined;
  static inline const char* name = "herald.redis_bridge";
};

msg::bridge_actor::behavior_type
bridge_behavior(msg::bridge_actor::stateful_pointer<bridge_state> self,
                std::shared_ptr<net::redis_link> link, std::string prefix,
                std::uint64_t node, msg::registry_actor registry) {
  auto& st = self->state;
  st.link = std::move(link);
  st.prefix = std::move(prefix);
  st.node = node;
  // Ends with the registry, i.e. with the server.
  self->link_to(registry);
  return {
    // Each shard alternates join and leave for a topic, so the count never
    // goes below zero whatever order the shards' messages come in.
    [=](caf::join_atom, const std::string& topic) {
      auto& st = self->state;
      if (++st.joined[topic] == 1)
        st.link->subscribe(st.prefix + topic);
    },
    [=](caf::leave_atom, const std::string& topic) {
      auto& st = self->state;
      auto i = st.joined.find(topic);
      if (i == st.joined.end() || --i->second > 0)
        return;
      st.joined.erase(i);
      st.link->unsubscribe(st.prefix + topic);
    },
    [=](caf::publish_atom, const std::string& topic,
        const msg::publication& pub) {
      auto& st = self->state;
      if (st.batch.empty())
        self->send(self, msg::flush_atom::value);
      st.batch.emplace_back(st.prefix + topic,
                            redis_envelope::encode(st.node,
                                                   pub.frame->opcode()
                                                     == net::opcode::binary,
                                                   pub.compress,
                                                   pub.frame->payload()));
    },
    [=](msg::flush_atom) {
      auto& st = self->state;
      if (st.batch.empty())
        return;
      st.link->publish(std::move(st.batch));
      st.batch.clear();
    },
  };
}

std::uint64_t random_node_id() {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0)
    id = (std::uint64_t{rd()} << 32) ^ rd();
  return id;
}

} // namespace

msg::bridge_actor spawn_redis_bridge(caf::actor_system& sys,
                                     std::shared_ptr<net::redis_link> link,
                                     std::string prefix, std::uint64_t node,
                                     const msg::registry_actor& registry) {
  return sys.spawn(bridge_behavior, std::move(link), std::move(prefix), node,
                   registry);
}

redis_bridge start_redis_bridge(caf::actor_system& sys, net::io_service& io,
                                const redis_options& opts,
                                const topic_registry& registry,
                                std::shared_ptr<server_stats> stats) {
  std::string why;
  auto ep = net::parse_redis_url(opts.url, &why);
  if (!ep)
    throw std::invalid_argument{
      "redis: bad URL " + net::redact_redis_url(opts.url) + " (" + why + ")"};
  redis_bridge b;
  b.node_id = random_node_id();
  net::redis_link_options lo;
  lo.endpoint = *ep;
  lo.reconnect_min = opts.reconnect_min;
  lo.reconnect_max = std::max(opts.reconnect_max, opts.reconnect_min);
  // Runs on loop 0 for every message of a subscribed channel. The
  // registry is held weakly: the link may outlive it.
  auto on_message = [reg = caf::actor_cast<caf::actor_addr>(registry.actor()),
                     prefix = opts.channel_prefix, node = b.node_id,
                     stats](std::string_view channel,
                            std::span<const std::byte> data) {
    if (channel.substr(0, prefix.size()) != prefix)
      return;
    auto env = redis_envelope::decode(data);
    if (!env) {
      HERALD_LOG(debug, "redis: ignoring a message that is no Herald "
                        "envelope on "
                          << channel);
      return;
    }
    // Our own publish coming back: delivered locally already.
    if (env->node == node)
      return;
    auto hdl = caf::actor_cast<msg::registry_actor>(reg);
    if (!hdl)
      return;
    auto f =
      net::make_frame(env->binary ? net::opcode::binary : net::opcode::text,
                      env->payload);
    stats->cross_node_received.fetch_add(1, std::memory_order_relaxed);
    caf::anon_send(hdl, msg::remote_atom::value,
                   std::string{channel.substr(prefix.size())},
                   msg::publication{std::move(f), caf::actor_addr{},
                                    env->compress});
  };
  b.link =
    net::start_redis_link(io, std::move(lo), stats, std::move(on_message));
  b.actor = spawn_redis_bridge(sys, b.link, opts.channel_prefix, b.node_id,
                               registry.actor());
  // Straight to the shards: a connection's first subscribe or publish goes
  // to its shard, not through the registry's actor.
  if (registry.shards().empty())
    caf::anon_send(registry.actor(), msg::bridge_atom::value, b.actor);
  for (auto& shard : registry.shards())
    caf::anon_send(shard, msg::bridge_atom::value, b.actor);
  HERALD_LOG(info, "redis: node " << std::hex << b.node_id << std::dec
                                  << " shares topics through " << ep->redacted()
                                  << " (channels " << ep->channel_scope()
                                  << opts.channel_prefix << "<topic>)");
  return b;
}

} // namespace herald
