#ifndef BANK_QUERY_SERVICE_BALANCE_CACHE_H_
#define BANK_QUERY_SERVICE_BALANCE_CACHE_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "bank/v1/bank.pb.h"
#include "common/readmodel/progress_notice.h"

namespace bank::query {

// Balances as the read model last said them, kept in memory so that a plain
// GetBalance of a known account answers without a database round trip.
//
// Kept exact by the projector's progress notices (common/readmodel), which
// name every account a committed batch moved, its new version and the
// row's new fields; a cached row older than a noticed version is brought to
// the noticed row (or dropped, for a notice that names the version only),
// so a write does not cost the next read a miss, and an account not cached
// is added when the notice carries its owner and currency. A row read from the
// database is admitted only when its snapshot already contains every batch
// noticed so far (its `applied` count is at least the last noticed one):
// batches after it will be noticed and drop it when they move the account.
// Without a working notice stream (not yet connected, connection lost, a
// streaming replica that cannot LISTEN) the cache is disabled: it holds
// nothing and admits nothing. Each (re)start of the stream, and each reset
// notice, starts a new epoch; reads begun in an earlier epoch are not
// admitted. Holds at most `capacity` rows (0: always disabled); when full,
// an arbitrary row makes room. Thread-safe.
class BalanceCache {
 public:
  explicit BalanceCache(size_t capacity);

  // Taken before reading rows that may be offered.
  uint64_t Epoch() const;
  // True, with `*out` set, when the account is cached at min_version or
  // later.
  bool Get(const std::string& account_id, int64_t min_version,
           v1::AccountBalance* out) const;
  // A row read in a snapshot of the read model whose checkpoint had
  // `applied` events applied, by a read begun in `epoch`.
  void Offer(uint64_t epoch, int64_t applied, const v1::AccountBalance& row);
  // A notice from the projector.
  void Apply(const readmodel::ProgressNotice& notice);
  // The notice stream (re)started: empty, new epoch, enabled.
  void Start();
  // The notice stream stopped: empty, new epoch, disabled until Start.
  void Stop();
  size_t size() const;

 private:
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, v1::AccountBalance> rows_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_BALANCE_CACHE_H_
