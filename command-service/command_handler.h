#ifndef BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_
#define BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "command-service/account_loader.h"
#include "command-service/account_pipeline.h"
#include "command-service/command_executor.h"
#include "command-service/idempotency.h"
#include "common/eventstore/event_store.h"
#include "common/metrics/metrics.h"

namespace bank::command {

// The commands of bank.v1.CommandService: each request is planned
// (command_plan.h: validation included) and run by the CommandExecutor,
// which loads the accounts (AccountLoader: cache, snapshot, replay), keeps
// the order of each account's commands (AccountPipeline), appends with
// optimistic concurrency and answers repeated command ids (Idempotency).
// Thread-safe.
class CommandHandler {
 public:
  struct Options {
    int max_attempts = 50;
    int snapshot_every = 100;  // 0 disables snapshots.
    size_t cache_capacity = 100000;
    std::string instance_id = "command-service";
    // Where conflicts, retries and replays are counted (a private registry
    // when null).
    metrics::Registry* metrics = nullptr;
  };
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  // `offload` runs the work of commands that may block (see CommandExecutor).
  CommandHandler(eventstore::EventStore& store,
                 CommandExecutor::Offload offload, Options options);

  // Each answers through `done`, exactly once, maybe on another thread, with
  // the contract's status codes (proto/bank/v1/bank.proto and the README).
  // The calling thread never blocks. correlation_id is recorded in the
  // events' metadata.
  void OpenAccount(std::shared_ptr<const v1::OpenAccountRequest> req,
                   const std::string& correlation_id, absl::Time deadline,
                   Done<v1::CommandResult> done);
  void Deposit(std::shared_ptr<const v1::DepositRequest> req,
               const std::string& correlation_id, absl::Time deadline,
               Done<v1::CommandResult> done);
  void Withdraw(std::shared_ptr<const v1::WithdrawRequest> req,
                const std::string& correlation_id, absl::Time deadline,
                Done<v1::CommandResult> done);
  void CloseAccount(std::shared_ptr<const v1::CloseAccountRequest> req,
                    const std::string& correlation_id, absl::Time deadline,
                    Done<v1::CommandResult> done);
  void Transfer(std::shared_ptr<const v1::TransferRequest> req,
                const std::string& correlation_id, absl::Time deadline,
                Done<v1::TransferResult> done);

  AccountCache& cache() { return loader_.cache(); }

 private:
  void RunSingle(absl::StatusOr<CommandPlan> plan, absl::Time deadline,
                 Done<v1::CommandResult> done);

  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Registry& metrics_;
  AccountLoader loader_;
  AccountPipeline pipeline_;
  Idempotency idempotency_;
  CommandExecutor executor_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_HANDLER_H_
