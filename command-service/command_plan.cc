#include "command-service/command_plan.h"

#include <type_traits>
#include <utility>

#include "command-service/request_validation.h"
#include "common/util/uuid.h"

namespace bank::command {
namespace {

bool IsLowerCase(const std::string& id) {
  for (char c : id) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

// The request as idempotency compares it: its account ids canonical (lower
// case) and unknown fields dropped, so a retry that spells an id in upper
// case, or comes from a client with a newer schema, is the same request.
// Serialized: no maps in these messages, so the bytes are deterministic.
template <typename Req>
std::string Canonical(const Req& req) {
  bool canonical_already = req.GetReflection()->GetUnknownFields(req).empty();
  if constexpr (std::is_same_v<Req, v1::TransferRequest>) {
    canonical_already = canonical_already &&
                        IsLowerCase(req.from_account_id()) &&
                        IsLowerCase(req.to_account_id());
  } else {
    canonical_already = canonical_already && IsLowerCase(req.account_id());
  }
  std::string out;
  if (canonical_already) {  // The common case: no copy.
    req.SerializeToString(&out);
    return out;
  }
  Req canonical = req;
  canonical.DiscardUnknownFields();
  if constexpr (std::is_same_v<Req, v1::TransferRequest>) {
    canonical.set_from_account_id(util::CanonicalUuid(req.from_account_id()));
    canonical.set_to_account_id(util::CanonicalUuid(req.to_account_id()));
  } else {
    if (!req.account_id().empty()) {
      canonical.set_account_id(util::CanonicalUuid(req.account_id()));
    }
  }
  canonical.SerializeToString(&out);
  return out;
}

v1::CommandResult ToResult(const eventstore::StreamResult& r, bool replayed) {
  v1::CommandResult out;
  out.set_account_id(r.stream_id);
  out.set_version(r.version);
  out.set_position(r.position);
  out.set_replayed(replayed);
  return out;
}

// Deposit, Withdraw, CloseAccount: one account, maybe expected_version.
template <typename Req>
absl::StatusOr<CommandPlan> PlanOnAccount(const std::shared_ptr<const Req>& req,
                                          const char* type,
                                          const std::string& correlation_id,
                                          CommandPlan::Decide decide) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  CommandPlan plan{req->command_id(),
                   type,
                   Canonical(*req),
                   correlation_id,
                   {util::CanonicalUuid(req->account_id())},
                   std::nullopt,
                   std::move(decide)};
  if (req->has_expected_version()) {
    plan.expected_version = req->expected_version();
  }
  return plan;
}

}  // namespace

absl::StatusOr<CommandPlan> PlanOpenAccount(
    std::shared_ptr<const v1::OpenAccountRequest> req,
    const std::string& correlation_id) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  const std::string id = req->account_id().empty()
                             ? util::NewUuid()
                             : util::CanonicalUuid(req->account_id());
  CommandPlan plan{
      req->command_id(), "OpenAccount", Canonical(*req), correlation_id, {id},
      std::nullopt,      nullptr};
  plan.decide = [req](std::vector<domain::BankAccount>& a) {
    return a[0].Open(req->owner(), req->currency(), req->initial_deposit());
  };
  return plan;
}

absl::StatusOr<CommandPlan> PlanDeposit(
    std::shared_ptr<const v1::DepositRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(req, "Deposit", correlation_id,
                       [req](std::vector<domain::BankAccount>& a) {
                         return a[0].Deposit(req->amount());
                       });
}

absl::StatusOr<CommandPlan> PlanWithdraw(
    std::shared_ptr<const v1::WithdrawRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(req, "Withdraw", correlation_id,
                       [req](std::vector<domain::BankAccount>& a) {
                         return a[0].Withdraw(req->amount());
                       });
}

absl::StatusOr<CommandPlan> PlanCloseAccount(
    std::shared_ptr<const v1::CloseAccountRequest> req,
    const std::string& correlation_id) {
  return PlanOnAccount(
      req, "CloseAccount", correlation_id,
      [](std::vector<domain::BankAccount>& a) { return a[0].Close(); });
}

absl::StatusOr<CommandPlan> PlanTransfer(
    std::shared_ptr<const v1::TransferRequest> req,
    const std::string& correlation_id) {
  if (absl::Status s = ValidateRequest(*req); !s.ok()) return s;
  CommandPlan plan{req->command_id(),
                   "Transfer",
                   Canonical(*req),
                   correlation_id,
                   {util::CanonicalUuid(req->from_account_id()),
                    util::CanonicalUuid(req->to_account_id())},
                   std::nullopt,
                   nullptr};
  plan.decide = [req, transfer_id = util::NewUuid()](
                    std::vector<domain::BankAccount>& a) {
    return domain::Transfer(a[0], a[1], transfer_id, req->amount());
  };
  return plan;
}

v1::CommandResult SingleResultOf(const CommandOutcome& out) {
  return ToResult(out.results.at(0), out.replayed);
}

v1::TransferResult TransferResultOf(
    const CommandOutcome& out, const std::vector<std::string>& account_ids) {
  v1::TransferResult result;
  for (const eventstore::StreamResult& r : out.results) {
    if (r.stream_id == account_ids[0]) {
      *result.mutable_from() = ToResult(r, out.replayed);
    }
    if (r.stream_id == account_ids[1]) {
      *result.mutable_to() = ToResult(r, out.replayed);
    }
  }
  return result;
}

}  // namespace bank::command
