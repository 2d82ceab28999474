// herald-bench-server: the chat room of Bun's WebSocket benchmark
// (bench/websocket-server in Bun's repository), built on Herald's public API.
//
//   - a client connects to /?name=NAME and is subscribed to the topic "room";
//   - when the expected number of clients (--clients) is connected and
//     subscribed, the server publishes "ready" to the room;
//   - every message m from NAME is published to the room as "NAME: m", to
//     every member including the sender (publish_to_self, as in Bun's server).
//   - with --redis URL, instances share the room through Redis: start two,
//     give each --clients = its own share, and split the clients across
//     them (herald-bench-client --port2). "ready" then goes to a topic of
//     this process only, so that it does not cross to the other node.
//
// bench/bun/server.mjs and bench/node/server.mjs behave the same way.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <unistd.h>

#include <caf/all.hpp>

#include <herald/actors/herald.hpp>
#include <herald/app/cli/server.hpp>

namespace {

struct member {
  std::string name;
};

// Shared between the handlers (which run on actor threads) and the thread
// that publishes "ready". The handlers count with an atomic and wake that
// thread only when the room becomes full or stops being full (as Bun's
// server only counts): waking it on every open and close would add two
// thread switches to every handshake of the handshake benchmark.
struct room_state {
  std::mutex mtx;
  std::condition_variable cv;
  std::atomic<long> connected{0};
  long clients = 0;
  bool stopping = false;

  void changed() {
    std::lock_guard<std::mutex> guard{mtx}; // no wake-up lost to the waiter
    cv.notify_all();
  }
};

room_state room;

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 4001;
  long clients = 32;
  std::size_t threads = 0;
  std::size_t send_buffer = 0;
  std::chrono::milliseconds release_check{1000};
  herald::cli::server_options server_opts;
  auto& redis = server_opts.redis;
  auto& tls = server_opts.tls;
  bool defer = false;
  herald::cli::options opts{"herald-bench-server",
                            "The chat room of Bun's WebSocket benchmark "
                            "(bench/README.md)."};
  opts.add("host", "ADDR", host, "address to listen on");
  opts.add("port", "N", port, "port, 0 picks a free one").range(0, 65535);
  opts
    .add("clients", "N", clients,
         "publish \"ready\" once N clients are in the room")
    .min(1);
  opts.add("threads", "N", threads, "event loops, 0: one per usable core");
  server_opts.add_redis(opts);
  opts.flag("defer", defer,
            "fetch hands every upgrade to an actor, which completes it at "
            "once (deferred fetch, for the handshake bench)");
  opts.add("send-buffer", "N", send_buffer,
           "SO_SNDBUF of WebSocket sockets, 0: the kernel's autotuning "
           "(http.websocket_send_buffer)");
  opts.add("release-check", "MS", release_check,
           "runtime_options::release_check: hand free heap back once quiet, "
           "checked every MS ms, 0: never");
  server_opts.add_tls(opts);
  opts.parse_or_exit(argc, argv);
  server_opts.check("herald-bench-server");

  room.clients = clients;
  // Without Redis "ready" goes to the room, as before.
  const std::string ready_topic =
    redis.url.empty() ? "room" : "ready:" + std::to_string(::getpid());
  herald::runtime rt{herald::runtime_options{
    .worker_threads = threads,
    .release_check = release_check,
    .stop_deadline = {}}}; // run.sh stops it with clients still open
  // With --defer: upgrades wait for this actor, as for an auth service
  // that answers at once.
  caf::actor upgrader;
  if (defer)
    // (The default name is a spawn argument: CAF 0.17 dereferences a null
    // argument tuple for actors spawned without any.)
    upgrader = rt.system().spawn(
      [](const std::string& anonymous) {
        return caf::behavior{[=](const herald::deferred_request<member>& d) {
          d.upgrade(member{d.req().query("name").value_or(anonymous)});
        }};
      },
      std::string{"anonymous"});
  try {
    auto server = herald::serve<member>(
      rt, {
            .hostname = host,
            .port = static_cast<std::uint16_t>(port),
            .fetch =
              [upgrader](herald::request& req,
                         herald::server<member>& srv) -> herald::fetch_result {
              if (upgrader && req.is_upgrade())
                return srv.defer_to(req, upgrader);
              auto name = req.query("name").value_or("anonymous");
              if (srv.upgrade(req, member{std::move(name)}))
                return herald::upgraded;
              return herald::response{400, "WebSocket upgrade expected\n"};
            },
            .websocket = {
              .open =
                [&ready_topic](herald::socket<member>& ws) {
                  ws.subscribe("room");
                  if (ready_topic != "room")
                    ws.subscribe(ready_topic);
                  if (room.connected.fetch_add(1) + 1 == room.clients)
                    room.changed();
                },
              .message =
                [](herald::socket<member>& ws, herald::message msg) {
                  const auto& name = ws.data().name;
                  auto text = msg.text();
                  std::string out;
                  out.reserve(name.size() + 2 + text.size());
                  out.append(name).append(": ").append(text);
                  ws.publish("room", out);
                },
              .close =
                [](herald::socket<member>&, int, std::string_view) {
                  if (room.connected.fetch_sub(1) == room.clients)
                    room.changed();
                },
              .publish_to_self = true,
            },
            .http = {.websocket_send_buffer = send_buffer},
            .redis = redis,
            .tls = tls,
          });

    // "ready" goes out once `clients` members are connected and the registry
    // has seen all their subscriptions (subscribe is asynchronous), and again
    // each time the room fills up after clients left.
    std::thread readier{[&server, clients, &ready_topic] {
      std::unique_lock<std::mutex> lock{room.mtx};
      for (;;) {
        room.cv.wait(lock, [&] {
          return room.stopping || room.connected >= clients;
        });
        if (room.stopping)
          return;
        lock.unlock();
        auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds{10};
        while ((server.subscriber_count(ready_topic)
                  < static_cast<std::size_t>(clients)
                || (server.bridged() && server.stats().redis_connected == 0))
               && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds{5});
        // Bun's server waits 100 ms before its "ready"; so do we.
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
        server.publish(ready_topic, "ready");
        lock.lock();
        room.cv.wait(lock,
                     [&] { return room.stopping || room.connected < clients; });
        if (room.stopping)
          return;
      }
    }};

    std::printf("herald-bench-server listening on %s (ready at %ld clients)\n",
                server.url().c_str(), clients);
    std::fflush(stdout);
    rt.run();
    {
      std::lock_guard<std::mutex> guard{room.mtx};
      room.stopping = true;
      room.cv.notify_all();
    }
    readier.join();
    if (upgrader)
      caf::anon_send_exit(upgrader, caf::exit_reason::user_shutdown);
  } catch (const std::exception& e) {
    if (upgrader)
      caf::anon_send_exit(upgrader, caf::exit_reason::user_shutdown);
    std::fprintf(stderr, "herald-bench-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
