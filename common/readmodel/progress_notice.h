#ifndef BANK_COMMON_READMODEL_PROGRESS_NOTICE_H_
#define BANK_COMMON_READMODEL_PROGRESS_NOTICE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace bank::readmodel {

// The channel on which the projector announces each batch it committed to
// the read model (NOTIFY inside the batch's transaction, so a notice is
// delivered only if the batch committed, after it is visible).
inline constexpr char kProgressChannel[] = "bank_projection";

// The live projection whose checkpoint row counts the events applied.
inline constexpr char kLiveProjection[] = "accounts";

// An account a batch moved: its new version and, in notices that carry
// them, the row's fields a command can change, and when they fit, its owner
// and currency too (set when the account opens, never changed).
struct MovedAccount {
  std::string account_id;
  int64_t version = 0;
  bool has_row = false;  // balance, status and updated_us are set.
  int64_t balance = 0;
  int32_t status = 0;      // bank.v1.AccountStatus
  int64_t updated_us = 0;  // updated_at, microseconds since the epoch
  std::string currency;    // Empty when the notice leaves them out.
  std::string owner;
  bool operator==(const MovedAccount&) const = default;
};

// What one notice says. Either the read model changed wholesale (`reset`:
// a rebuild swapped tables, a batch touched too many accounts to list, or
// a payload this version does not understand), or a batch committed that
// brought the checkpoint's `events_applied` to `applied` and moved each of
// `accounts` to the version given. A batch may be announced in several
// notices, each with the same `applied` and part of the accounts.
struct ProgressNotice {
  bool reset = false;
  int64_t applied = 0;
  std::vector<MovedAccount> accounts;
};

// The payloads announcing one batch, each account with its row: notices of
// at most `max_payload` bytes (PostgreSQL's limit is 8000), at most
// `max_notices` of them. With owners and currencies when they all fit, else
// without them (16 notices hold about 1,700 accounts then, more than a live
// batch of 1,000 events moves); when the accounts do not fit even so, one
// reset notice instead. REQUIRES: each account has_row.
std::vector<std::string> EncodeProgress(
    int64_t applied, const std::vector<MovedAccount>& accounts,
    size_t max_payload = 7900, size_t max_notices = 16);

// The payload of a reset notice.
std::string EncodeReset();

// Parses a payload; anything malformed or unknown reads as a reset, the
// safe meaning for a reader that caches what the read model said.
ProgressNotice DecodeProgress(absl::string_view payload);

}  // namespace bank::readmodel

#endif  // BANK_COMMON_READMODEL_PROGRESS_NOTICE_H_
