#ifndef BANK_TESTS_SUPPORT_COMMAND_SERVER_H_
#define BANK_TESTS_SUPPORT_COMMAND_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <future>
#include <memory>
#include <string>

#include "bank/v1/bank.grpc.pb.h"
#include "command-service/app.h"
#include "command-service/service_stack.h"
#include "common/grpc/server.h"

namespace bank::testing {

// An in-process command service wired by the process's own code
// (CommandServiceStack: group commit over the real PostgreSQL event store),
// served over real gRPC on a free port, and a client stub for it.
struct CommandServer {
  // The configuration of a test server on `uri`: the process's defaults,
  // with a smaller pool and fewer threads.
  static command::Config TestConfig(const std::string& uri) {
    command::Config config;
    config.events_db = uri;
    config.server.db_pool_size = 8;
    config.max_threads = 16;
    return config;
  }

  explicit CommandServer(const std::string& uri)
      : CommandServer(TestConfig(uri)) {}
  explicit CommandServer(const command::Config& config)
      : stack(config, registry),
        store(stack.store()),
        batched(stack.batched()),
        notifier(stack.notifier()),
        handler(stack.handler()) {
    server = *grpcutil::Server::Start({.listen = "127.0.0.1:0"},
                                      {&stack.service()});
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                  grpc::InsecureChannelCredentials());
    stub = v1::CommandService::NewStub(channel);
  }
  ~CommandServer() {
    server->Shutdown(absl::Seconds(5));
    server->Wait();
  }

  metrics::Registry registry;
  command::CommandServiceStack stack;
  eventstore::PgEventStore& store;
  eventstore::GroupCommitEventStore& batched;
  eventstore::CommitNotifier& notifier;
  command::CommandHandler& handler;
  std::unique_ptr<grpcutil::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::CommandService::Stub> stub;
};

// Starts one command through `start(done)` and waits for its single answer.
template <typename T, typename Start>
absl::StatusOr<T> AwaitAnswer(Start start) {
  auto answer = std::make_shared<std::promise<absl::StatusOr<T>>>();
  start([answer](absl::StatusOr<T> r) { answer->set_value(std::move(r)); });
  return answer->get_future().get();
}

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_COMMAND_SERVER_H_
