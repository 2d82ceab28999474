// The chat's actors besides the connections (docs/chat-protocol.md):
//
// - presence (one per server): who is in which room. Connections send it
//   `join` when they open and `leave` when they close; it monitors them, so
//   a connection that ends any other way leaves too. It publishes `join`
//   and `leave` events (the name and the new count, numbered per room)
//   into the room's topic, so every member sees membership change in one
//   order, and sends the member list only in pages: the first to a joiner,
//   others when asked. Events cost every member O(1) bytes; a room that
//   fills costs each member O(n), not O(n^2).
// - history (one per room, spawned by presence): an ordinary subscriber of
//   the room's topic that keeps the last N `message` events and sends them
//   to a connection that joined.
//
// Ordering: presence subscribes to each room it tracks. A joiner's history
// is requested only when presence receives its own `join` event back from
// the topic: by then every message published before the joiner subscribed
// has reached the history actor (the topic delivers in order), so the
// history and the joiner's live messages leave no gap (they may overlap;
// message ids tell the duplicates).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <herald/actors/topics.hpp>

namespace chat {

/// (join_atom, room, name, connection): a connection opened.
using join_atom = caf::atom_constant<caf::atom("c_join")>;
/// (leave_atom, connection): a connection closed.
using leave_atom = caf::atom_constant<caf::atom("c_leave")>;
/// (members_atom, room, connection, after, limit): send the connection a
/// page of the member list, up to `limit` names after `after` ("" for the
/// first page); (members_atom, room) -> std::vector<std::string>: the whole
/// list.
using members_atom = caf::atom_constant<caf::atom("c_members")>;
/// (history_atom, connection) to a history actor: send the history;
/// (history_atom) -> std::vector<std::string>: the kept events.
using history_atom = caf::atom_constant<caf::atom("c_history")>;
/// Presence's own timer: (expire_atom, room, generation); (expire_atom) to
/// a history actor ends it.
using expire_atom = caf::atom_constant<caf::atom("c_expire")>;

/// How presence keeps history.
struct presence_options {
  /// Messages kept per room; 0: no history (joiners get an empty one).
  std::size_t history = 50;
  /// How long a room's history outlives its last member.
  std::chrono::seconds history_ttl{3600};
};

/// Spawns the presence actor of a server whose topic registry is
/// `registry`; it stops with the registry (server shutdown).
caf::actor spawn_presence(caf::actor_system& sys,
                          herald::topic_registry registry,
                          presence_options opts);

/// Spawns a presence actor that waits for its registry: it keeps every
/// other message until `attach_registry` gives it one. For handlers that
/// must exist before the server (and its registry) does.
caf::actor spawn_presence(caf::actor_system& sys, presence_options opts);

/// Gives a presence actor from spawn_presence(sys, opts) its registry.
void attach_registry(const caf::actor& presence,
                     const herald::topic_registry& registry);

/// Spawns the history actor of `room` keeping `capacity` messages; it
/// subscribes to the room's topic and stops with the registry. Presence
/// spawns these; exposed for tests and other apps.
caf::actor spawn_history(caf::actor_system& sys,
                         herald::topic_registry registry, std::string room,
                         std::size_t capacity);

} // namespace chat
