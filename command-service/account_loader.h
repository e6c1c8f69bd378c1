#ifndef BANK_COMMAND_SERVICE_ACCOUNT_LOADER_H_
#define BANK_COMMAND_SERVICE_ACCOUNT_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "command-service/account_cache.h"
#include "common/domain/bank_account.h"
#include "common/eventstore/event_store.h"

namespace bank::command {

// Loads an account's current state: from the cache, else from its latest
// snapshot and the events after it, else from its whole stream; and saves
// the snapshots that are due. Thread-safe.
class AccountLoader {
 public:
  // snapshot_every: a snapshot each time an account's version crosses a
  // multiple of it (0: never).
  AccountLoader(eventstore::EventStore& store, size_t cache_capacity,
                int snapshot_every);

  // The account's state. With trust_cache, a cached state is returned as it
  // is (*from_cache is set); otherwise the events after the cached state, if
  // any, are read too. A state read from the store is cached. INTERNAL for
  // a stream with a gap or an event that cannot be decoded.
  absl::StatusOr<domain::BankAccount> Load(const std::string& id,
                                           bool trust_cache, bool* from_cache,
                                           absl::Time deadline);

  // Whether a decision on these accounts crosses a snapshot version.
  bool SnapshotDue(const std::vector<domain::BankAccount>& accounts) const;
  // Saves the snapshots that are due (a failure is logged, not returned).
  void SaveSnapshots(const std::vector<domain::BankAccount>& accounts,
                     absl::Time deadline);

  AccountCache& cache() { return cache_; }

 private:
  eventstore::EventStore& store_;
  const int snapshot_every_;
  AccountCache cache_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_ACCOUNT_LOADER_H_
