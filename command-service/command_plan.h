#ifndef BANK_COMMAND_SERVICE_COMMAND_PLAN_H_
#define BANK_COMMAND_SERVICE_COMMAND_PLAN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bank/v1/bank.pb.h"
#include "common/domain/bank_account.h"
#include "common/eventstore/event_store.h"

namespace bank::command {

// A validated command, ready to run: what it records for idempotency, the
// accounts it decides on (in the request's order) and the decision itself.
// Planning is pure: no database, no clock.
struct CommandPlan {
  using Decide =
      std::function<absl::Status(std::vector<domain::BankAccount>& accounts)>;

  std::string command_id;  // Empty: not deduplicated.
  std::string request_type;
  // The request as idempotency compares it: canonical ids, no unknown
  // fields, deterministically encoded.
  std::string request;
  std::string correlation_id;
  std::vector<std::string> account_ids;  // Canonical (lower-case) UUIDs.
  std::optional<int64_t> expected_version;
  Decide decide;

  // The record stored with the command's append.
  eventstore::CommandRecord Record() const {
    return {command_id, request_type, request};
  }
};

// Each validates its request (INVALID_ARGUMENT naming the field) and plans
// it. correlation_id is recorded in the events' metadata.
absl::StatusOr<CommandPlan> PlanOpenAccount(
    std::shared_ptr<const v1::OpenAccountRequest> req,
    const std::string& correlation_id);
absl::StatusOr<CommandPlan> PlanDeposit(
    std::shared_ptr<const v1::DepositRequest> req,
    const std::string& correlation_id);
absl::StatusOr<CommandPlan> PlanWithdraw(
    std::shared_ptr<const v1::WithdrawRequest> req,
    const std::string& correlation_id);
absl::StatusOr<CommandPlan> PlanCloseAccount(
    std::shared_ptr<const v1::CloseAccountRequest> req,
    const std::string& correlation_id);
absl::StatusOr<CommandPlan> PlanTransfer(
    std::shared_ptr<const v1::TransferRequest> req,
    const std::string& correlation_id);

// What running a plan did: the per-account results in the order of its
// account ids, or (replayed) the stored results of an earlier command with
// the same command_id.
struct CommandOutcome {
  std::vector<eventstore::StreamResult> results;
  bool replayed = false;
  // The append found command_id recorded by a concurrent request: the
  // stored outcome is still to be looked up.
  bool command_raced = false;
};

// The responses of bank.v1.CommandService from an outcome.
v1::CommandResult SingleResultOf(const CommandOutcome& out);
v1::TransferResult TransferResultOf(
    const CommandOutcome& out, const std::vector<std::string>& account_ids);

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_PLAN_H_
