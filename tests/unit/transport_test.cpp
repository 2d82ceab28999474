// The TCP transport on real loopback sockets: the send buffer option, a
// backlog larger than the kernel takes at once, written in full and in
// order from the I/O thread, input left unread while reading is paused, and
// a close from a thread that is not the loop.
#define CAF_SUITE transport

#include <caf/test/dsl.hpp>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <herald/net/frame.hpp>
#include <herald/net/tcp_transport.hpp>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// A connected pair on 127.0.0.1: the server end for the transport, the
// client end read by the test.
struct pair_fixture {
  asio::io_context ctx;
  tcp::socket client{ctx};
  herald::net::stream_socket server{ctx.get_executor()};

  pair_fixture() {
    tcp::acceptor acceptor{ctx, {asio::ip::make_address("127.0.0.1"), 0}};
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }

  static int send_buffer(int fd) {
    int size = 0;
    socklen_t len = sizeof size;
    ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len);
    return size;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(transport_tests, pair_fixture)

CAF_TEST(the send buffer option bounds the kernel buffer of the socket) {
  int fd = server.native_handle();
  herald::net::tcp_transport_options opts;
  opts.send_buffer = 65536;
  auto t = herald::net::make_tcp_transport(std::move(server), "test", {}, opts);
  // Linux doubles the value for its bookkeeping.
  CAF_CHECK_EQUAL(send_buffer(fd), 2 * 65536);
  t->close(false);
  ctx.run();
}

CAF_TEST(a backlog over the bound leaves in full and in order) {
  herald::net::tcp_transport_options opts;
  opts.send_buffer = 16384;
  auto t = herald::net::make_tcp_transport(std::move(server), "test", {}, opts);
  // 4 MiB the peer does not read yet: the kernel takes its buffers' worth,
  // the transport keeps the rest.
  std::vector<std::byte> data(4u << 20);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::byte>((i * 2654435761u) >> 13);
  auto raw = herald::net::make_raw(data);
  herald::net::slice pieces[] = {herald::net::whole(*raw)};
  auto left = t->write(pieces);
  CAF_CHECK_GREATER(left, std::size_t{2u << 20});
  CAF_CHECK_EQUAL(t->buffered_amount(), left);
  auto work = asio::make_work_guard(ctx);
  std::thread io{[&] { ctx.run(); }};
  std::vector<std::byte> got(data.size());
  boost::system::error_code ec;
  asio::read(client, asio::buffer(got), ec);
  CAF_CHECK(!ec);
  CAF_CHECK(got == data);
  t->close(false);
  work.reset();
  io.join();
  CAF_CHECK_EQUAL(t->buffered_amount(), 0u);
}

CAF_TEST(unread input is what the peer sent while reading is paused) {
  auto t = herald::net::make_tcp_transport(std::move(server), "test", {});
  t->pause_reading();
  // The read already waiting takes the first bytes, then reading stops.
  asio::write(client, asio::buffer("hello", 5));
  for (int i = 0; i < 5000 && ctx.poll_one() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  CAF_CHECK_EQUAL(t->unread_input(), 0u);
  asio::write(client, asio::buffer("ping!!", 6));
  std::size_t unread = 0;
  for (int i = 0; i < 5000 && (unread = t->unread_input()) < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  CAF_CHECK_EQUAL(unread, 6u);
  // Once closing, the descriptor may go at any time: nothing is asked
  // (closed on the loop, as the transport's owner does).
  asio::post(ctx, [&] {
    t->close(false);
    CAF_CHECK_EQUAL(t->unread_input(), 0u);
  });
  ctx.run();
}

CAF_TEST(a close from another thread than the loop closes on the loop) {
  auto t = herald::net::make_tcp_transport(std::move(server), "test", {});
  auto work = asio::make_work_guard(ctx);
  std::thread io{[&] { ctx.run(); }};
  // The loop reads meanwhile: the close goes over to it.
  asio::write(client, asio::buffer("hello", 5));
  t->close(false);
  std::array<char, 16> buf;
  boost::system::error_code ec;
  while (!ec)
    client.read_some(asio::buffer(buf), ec);
  CAF_CHECK(ec == asio::error::eof || ec == asio::error::connection_reset);
  work.reset();
  io.join();
  CAF_CHECK_EQUAL(t->buffered_amount(), 0u);
}

CAF_TEST_FIXTURE_SCOPE_END()
