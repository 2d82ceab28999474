// The connection actor's resume, in a file of its own: it instantiates
// CAF's mailbox queue templates in Herald's code, whose sentinel node is
// downcast in task_queue.hpp before it is a full object. UBSan's vptr check
// stops on that (CAF's compiled library, which runs the same code for
// every other actor, is not instrumented), so this file is built without
// that one check (CMakeLists.txt).
#include "herald/actors/connection.hpp"

#include <caf/all.hpp>

namespace herald {

caf::resumable::resume_result
connection_actor::resume(caf::execution_unit* ctx, std::size_t max_throughput) {
  // CAF's scheduled_actor::resume without what a connection never uses:
  // receive timeouts (its behavior has none), streams and the logger's
  // actor id. It runs once per delivery to every subscriber.
  if (!activate(ctx))
    return done;
  std::size_t handled = 0;
  mailbox_visitor f{this, handled, max_throughput};
  while (handled < max_throughput) {
    if (!mailbox().new_round(3, f).consumed_items && mailbox().try_block())
      return awaiting_message;
    if (finalize())
      return done;
  }
  if (mailbox().try_block())
    return awaiting_message;
  return resume_later;
}

} // namespace herald
