#include "command-service/request_validation.h"

#include "absl/strings/str_cat.h"
#include "common/domain/bank_account.h"
#include "common/util/text.h"
#include "common/util/uuid.h"

namespace bank::command {
namespace {

constexpr size_t kMaxCommandIdBytes = 128;

std::optional<int64_t> Expected(const auto& req) {
  if (req.has_expected_version()) return req.expected_version();
  return std::nullopt;
}

}  // namespace

absl::Status ValidateAccountId(const std::string& id, const char* field) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (!util::IsUuid(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be a UUID like 123e4567-e89b-12d3-a456-426614174000"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCommandId(const std::string& id) {
  if (id.size() > kMaxCommandIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("command_id is ", id.size(), " bytes long; at most ",
                     kMaxCommandIdBytes, " are allowed"));
  }
  if (!util::Utf8Length(id).has_value() || util::HasControlCharacter(id)) {
    return absl::InvalidArgumentError(
        "command_id must be printable UTF-8 text (a UUID is a good choice)");
  }
  return absl::OkStatus();
}

absl::Status ValidateExpectedVersion(std::optional<int64_t> v) {
  if (v.has_value() && *v < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected_version must be at least 1 (the version after opening), got ",
        *v));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::OpenAccountRequest& req) {
  if (absl::Status s = ValidateCommandId(req.command_id()); !s.ok()) return s;
  if (!req.account_id().empty()) {
    if (absl::Status s = ValidateAccountId(req.account_id(), "account_id");
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = domain::ValidateOwner(req.owner()); !s.ok()) return s;
  if (absl::Status s = domain::ValidateCurrency(req.currency()); !s.ok()) {
    return s;
  }
  if (req.initial_deposit() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_deposit must not be negative, got ", req.initial_deposit()));
  }
  return absl::OkStatus();
}

namespace {

template <typename Req>
absl::Status ValidateMoneyRequest(const Req& req) {
  if (absl::Status s = ValidateCommandId(req.command_id()); !s.ok()) return s;
  if (absl::Status s = ValidateAccountId(req.account_id(), "account_id");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = domain::ValidateAmount(req.amount()); !s.ok()) return s;
  return ValidateExpectedVersion(Expected(req));
}

}  // namespace

absl::Status ValidateRequest(const v1::DepositRequest& req) {
  return ValidateMoneyRequest(req);
}

absl::Status ValidateRequest(const v1::WithdrawRequest& req) {
  return ValidateMoneyRequest(req);
}

absl::Status ValidateRequest(const v1::CloseAccountRequest& req) {
  if (absl::Status s = ValidateCommandId(req.command_id()); !s.ok()) return s;
  if (absl::Status s = ValidateAccountId(req.account_id(), "account_id");
      !s.ok()) {
    return s;
  }
  return ValidateExpectedVersion(Expected(req));
}

absl::Status ValidateRequest(const v1::TransferRequest& req) {
  if (absl::Status s = ValidateCommandId(req.command_id()); !s.ok()) return s;
  if (absl::Status s =
          ValidateAccountId(req.from_account_id(), "from_account_id");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateAccountId(req.to_account_id(), "to_account_id");
      !s.ok()) {
    return s;
  }
  if (util::CanonicalUuid(req.from_account_id()) ==
      util::CanonicalUuid(req.to_account_id())) {
    return absl::InvalidArgumentError(
        "from_account_id and to_account_id must be different accounts");
  }
  return domain::ValidateAmount(req.amount());
}

}  // namespace bank::command
