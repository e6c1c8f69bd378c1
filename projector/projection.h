#ifndef BANK_PROJECTOR_PROJECTION_H_
#define BANK_PROJECTOR_PROJECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/domain/bank_account.h"
#include "common/eventstore/event_store.h"

namespace bank::projector {

// One row of account_balances.
struct BalanceRow {
  std::string account_id;
  std::string owner;
  std::string currency;
  int64_t balance = 0;
  int64_t version = 0;
  int status = 0;  // bank.v1.AccountStatus
  absl::Time opened_at;
  absl::Time updated_at;
  int64_t last_position = 0;
};

// One row of account_history.
struct HistoryRow {
  std::string account_id;
  int64_t version = 0;
  int kind = 0;  // bank.v1.EntryKind
  int64_t amount = 0;
  int64_t balance_after = 0;
  absl::Time occurred_at;
  std::string counterparty_account_id;  // "" for none
  int64_t position = 0;
  int64_t transaction_id = 0;  // The event's, in the event store.
};

// An event that cannot be projected, and why.
struct PoisonEvent {
  int64_t position = 0;
  std::string stream_id;
  std::string event_type;
  std::string error;
};

// What one batch changes in the read model.
struct BatchChanges {
  std::vector<BalanceRow> balances;  // Final state of each touched account.
  std::vector<HistoryRow> history;
  std::vector<PoisonEvent> poison;
  int64_t applied = 0;
  int64_t duplicates = 0;  // Already projected (version guard): no-ops.
};

// One account while a batch (or a whole rebuild) is folded: its row and the
// aggregate its events are applied to.
struct AccountFold {
  BalanceRow row;
  domain::BankAccount account;
  explicit AccountFold(BalanceRow r);
  // The row with the aggregate's owner, currency and status.
  BalanceRow FinalRow() const;
};

// Folds a batch of events (in tailing order) into the read model rows,
// starting from the current rows of the accounts they touch. Pure. An event
// whose version the account has already reached is a duplicate and changes
// nothing. An event that cannot be decoded, or that does not continue its
// stream (a gap), is poison: FAILED_PRECONDITION naming its position, or,
// with skip_poison, recorded in `poison` and skipped.
absl::StatusOr<BatchChanges> ProjectBatch(
    const absl::flat_hash_map<std::string, BalanceRow>& current,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);

// ProjectBatch for a rebuild, which holds every account in memory: folds the
// batch into `accounts` in place (no copy per touched account) and adds the
// history rows and poison to `out` (out->balances stays empty: the rows are
// in `accounts`). On FAILED_PRECONDITION `accounts` may hold part of the
// batch: the rebuild is abandoned then.
absl::Status FoldBatch(absl::flat_hash_map<std::string, AccountFold>& accounts,
                       const std::vector<eventstore::RecordedEvent>& events,
                       bool skip_poison, BatchChanges* out);

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_PROJECTION_H_
