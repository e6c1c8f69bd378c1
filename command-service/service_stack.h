#ifndef BANK_COMMAND_SERVICE_SERVICE_STACK_H_
#define BANK_COMMAND_SERVICE_SERVICE_STACK_H_

#include <grpcpp/grpcpp.h>

#include "command-service/app.h"
#include "command-service/command_grpc_service.h"
#include "command-service/command_handler.h"
#include "command-service/command_rpcs.h"
#include "common/eventstore/commit_notifier.h"
#include "common/eventstore/group_commit.h"
#include "common/eventstore/pg_event_store.h"
#include "common/metrics/metrics.h"
#include "common/util/worker_pool.h"

namespace bank::command {

// The objects of a command service, wired as the process runs them: group
// commit over the PostgreSQL event store, the commit notifier, the offload
// pool, the handler and the gRPC service to register. Built by the process
// (app.cc) and by the tests, so both run the same wiring. Migrations and
// serving are not part of it.
class CommandServiceStack {
 public:
  CommandServiceStack(const Config& config, metrics::Registry& registry);
  CommandServiceStack(const CommandServiceStack&) = delete;
  CommandServiceStack& operator=(const CommandServiceStack&) = delete;

  // What the gRPC server registers.
  grpc::Service& service() { return raw_; }

  eventstore::PgEventStore& store() { return store_; }
  eventstore::GroupCommitEventStore& batched() { return batched_; }
  eventstore::CommitNotifier& notifier() { return notifier_; }
  util::WorkerPool& pool() { return pool_; }
  CommandHandler& handler() { return handler_; }

 private:
  eventstore::PgEventStore store_;
  eventstore::CommitNotifier notifier_;
  eventstore::GroupCommitEventStore batched_;
  util::WorkerPool pool_;
  CommandHandler handler_;
  CommandRpcs impl_;
  CommandGrpcService raw_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_SERVICE_STACK_H_
