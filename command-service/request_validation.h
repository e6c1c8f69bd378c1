#ifndef BANK_COMMAND_SERVICE_REQUEST_VALIDATION_H_
#define BANK_COMMAND_SERVICE_REQUEST_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "bank/v1/bank.pb.h"

namespace bank::command {

// Everything about a request that can be checked without the database: OK,
// or INVALID_ARGUMENT with a message a person can act on. Pure.
absl::Status ValidateRequest(const v1::OpenAccountRequest& req);
absl::Status ValidateRequest(const v1::DepositRequest& req);
absl::Status ValidateRequest(const v1::WithdrawRequest& req);
absl::Status ValidateRequest(const v1::CloseAccountRequest& req);
absl::Status ValidateRequest(const v1::TransferRequest& req);

// The field rules the above are made of.
absl::Status ValidateAccountId(const std::string& id, const char* field);
// Empty (no deduplication) or at most 128 bytes of printable UTF-8.
absl::Status ValidateCommandId(const std::string& id);
absl::Status ValidateExpectedVersion(std::optional<int64_t> v);

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_REQUEST_VALIDATION_H_
