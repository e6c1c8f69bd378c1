#include "command-service/command_handler.h"

#include <utility>
#include <vector>

namespace bank::command {
namespace {

metrics::Registry& RegistryOf(const CommandHandler::Options& options,
                              std::unique_ptr<metrics::Registry>& own) {
  if (options.metrics != nullptr) return *options.metrics;
  own = std::make_unique<metrics::Registry>();
  return *own;
}

}  // namespace

CommandHandler::CommandHandler(eventstore::EventStore& store,
                               CommandExecutor::Offload offload,
                               Options options)
    : metrics_(RegistryOf(options, own_metrics_)),
      loader_(store, options.cache_capacity, options.snapshot_every),
      idempotency_(store, metrics_),
      executor_(store, loader_, pipeline_, idempotency_, std::move(offload),
                metrics_,
                {.max_attempts = options.max_attempts,
                 .instance_id = options.instance_id}) {
  metrics_.AddCallbackGauge(
      "bank_aggregate_cache_entries", "Accounts held in the aggregate cache.",
      [this] { return static_cast<double>(loader_.cache().size()); });
}

void CommandHandler::RunSingle(absl::StatusOr<CommandPlan> plan,
                               absl::Time deadline,
                               Done<v1::CommandResult> done) {
  if (!plan.ok()) {
    done(plan.status());
    return;
  }
  executor_.Execute(
      *std::move(plan), deadline,
      [done = std::move(done)](absl::StatusOr<CommandOutcome> out) {
        if (!out.ok()) {
          done(out.status());
        } else {
          done(SingleResultOf(*out));
        }
      });
}

void CommandHandler::OpenAccount(
    std::shared_ptr<const v1::OpenAccountRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::CommandResult> done) {
  RunSingle(PlanOpenAccount(std::move(req), correlation_id), deadline,
            std::move(done));
}

void CommandHandler::Deposit(std::shared_ptr<const v1::DepositRequest> req,
                             const std::string& correlation_id,
                             absl::Time deadline,
                             Done<v1::CommandResult> done) {
  RunSingle(PlanDeposit(std::move(req), correlation_id), deadline,
            std::move(done));
}

void CommandHandler::Withdraw(std::shared_ptr<const v1::WithdrawRequest> req,
                              const std::string& correlation_id,
                              absl::Time deadline,
                              Done<v1::CommandResult> done) {
  RunSingle(PlanWithdraw(std::move(req), correlation_id), deadline,
            std::move(done));
}

void CommandHandler::CloseAccount(
    std::shared_ptr<const v1::CloseAccountRequest> req,
    const std::string& correlation_id, absl::Time deadline,
    Done<v1::CommandResult> done) {
  RunSingle(PlanCloseAccount(std::move(req), correlation_id), deadline,
            std::move(done));
}

void CommandHandler::Transfer(std::shared_ptr<const v1::TransferRequest> req,
                              const std::string& correlation_id,
                              absl::Time deadline,
                              Done<v1::TransferResult> done) {
  absl::StatusOr<CommandPlan> plan =
      PlanTransfer(std::move(req), correlation_id);
  if (!plan.ok()) {
    done(plan.status());
    return;
  }
  std::vector<std::string> ids = plan->account_ids;
  executor_.Execute(*std::move(plan), deadline,
                    [done = std::move(done),
                     ids = std::move(ids)](absl::StatusOr<CommandOutcome> out) {
                      if (!out.ok()) {
                        done(out.status());
                      } else {
                        done(TransferResultOf(*out, ids));
                      }
                    });
}

}  // namespace bank::command
