// Starts a server on a free port with the installed headers and library,
// checks it bound, and stops.
#include <cstdio>

#include <herald/actors/herald.hpp>

struct data {};

int main() {
  herald::runtime rt;
  auto srv = herald::serve<data>(
    rt, {
          .hostname = "127.0.0.1",
          .port = 0,
          .fetch = [](herald::request& req,
                      herald::server<data>& s) -> herald::fetch_result {
            if (s.upgrade(req))
              return herald::upgraded;
            return herald::response{200, "ok"};
          },
          .websocket = {},
        });
  if (srv.port() == 0) {
    std::puts("consumer: no port bound");
    return 1;
  }
  std::printf("consumer: listening on %s\n", srv.url().c_str());
  srv.stop();
  return 0;
}
