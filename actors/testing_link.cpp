#include "herald/actors/testing_link.hpp"

#include "herald/actors/connection.hpp"
#include "herald/actors/idle_clock.hpp"
#include "herald/net/fake_transport.hpp"

namespace herald::testing::detail {

namespace {

connection_core& core_of(const caf::actor& a) {
  return caf::actor_cast<connection_actor*>(a)->core();
}

} // namespace

link::link(caf::actor_system& sys, const shared_parts& parts,
           std::unique_ptr<connection_hooks> hooks, std::string protocol,
           std::string remote_address,
           std::optional<net::deflate_params> deflate)
  : t_(std::make_shared<net::fake_transport>()) {
  t_->set_remote_address(std::move(remote_address));
  connection_args args;
  args.transport = t_;
  args.hooks = std::move(hooks);
  args.env = std::make_shared<const connection_env>(
    connection_env{parts.registry, parts.stats, parts.idle_clock, nullptr});
  args.protocol = std::move(protocol);
  args.deflate = deflate;
  actor_ = spawn_connection(sys, std::move(args));
}

link::~link() = default;

void link::feed(std::vector<std::byte> bytes) {
  t_->feed(std::move(bytes));
}

void link::vanish() {
  t_->vanish();
}

void link::stall() {
  t_->stall();
}

void link::drain() {
  t_->drain();
}

bool link::closed() const noexcept {
  return t_->closed();
}

const std::vector<net::frame_ptr>& link::raw_frames() const noexcept {
  return t_->raw_frames();
}

std::string link::remote_address() const {
  return t_->remote_address();
}

herald::ready_state link::ready_state() const {
  return core_of(actor_).ready_state();
}

std::vector<std::string> link::subscriptions() const {
  return core_of(actor_).subscriptions();
}

bool link::is_subscribed(std::string_view topic) const {
  return core_of(actor_).is_subscribed(topic);
}

basic_socket& link::socket() const {
  return core_of(actor_).hooks().socket();
}

msg::idle_clock_actor spawn_idle_clock(caf::actor_system& sys) {
  return herald::spawn_idle_clock(sys);
}

} // namespace herald::testing::detail
