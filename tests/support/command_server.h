#ifndef BANK_TESTS_SUPPORT_COMMAND_SERVER_H_
#define BANK_TESTS_SUPPORT_COMMAND_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "bank/v1/bank.grpc.pb.h"
#include "command-service/command_handler.h"
#include "command-service/command_service.h"
#include "command-service/raw_command_service.h"
#include "common/eventstore/commit_notifier.h"
#include "common/eventstore/group_commit.h"
#include "common/eventstore/pg_event_store.h"
#include "common/grpc/server.h"
#include "common/util/worker_pool.h"

namespace bank::testing {

// An in-process command service wired as in production (real handler, group
// commit over the real PostgreSQL event store, real gRPC on a free port) and
// a client stub for it.
struct CommandServer {
  explicit CommandServer(const std::string& uri,
                         command::CommandHandler::Options options = {},
                         int pool_size = 8)
      : store({.uri = uri, .pool_size = pool_size}),
        notifier(uri),
        batched(store, store,
                {.metrics = &registry,
                 .on_commit = [this] { notifier.Committed(); }}),
        pool(16, 256),
        handler(batched, WithOffload(std::move(options), pool)),
        impl(handler, registry),
        raw(impl) {
    server = *grpcutil::Server::Start({.listen = "127.0.0.1:0"}, {&raw});
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                  grpc::InsecureChannelCredentials());
    stub = v1::CommandService::NewStub(channel);
  }
  ~CommandServer() {
    server->Shutdown(absl::Seconds(5));
    server->Wait();
  }

  static command::CommandHandler::Options WithOffload(
      command::CommandHandler::Options options, util::WorkerPool& pool) {
    options.offload = [&pool](std::function<void()> work) {
      return pool.TrySubmit(std::move(work));
    };
    return options;
  }

  metrics::Registry registry;
  eventstore::PgEventStore store;
  eventstore::CommitNotifier notifier;
  eventstore::GroupCommitEventStore batched;
  util::WorkerPool pool;
  command::CommandHandler handler;
  command::CommandServiceImpl impl;
  command::RawCommandService raw;
  std::unique_ptr<grpcutil::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::CommandService::Stub> stub;
};

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_COMMAND_SERVER_H_
