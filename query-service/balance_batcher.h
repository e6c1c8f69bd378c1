#ifndef BANK_QUERY_SERVICE_BALANCE_BATCHER_H_
#define BANK_QUERY_SERVICE_BALANCE_BATCHER_H_

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "query-service/balance_cache.h"
#include "query-service/read_model_reader.h"

namespace bank::query {

// Plain balance reads, coalesced: callers queue an account id and a callback
// and return at once; a few reader threads each take whatever is queued (up
// to max_batch) and read all of it in one query, then answer each caller.
// Under load many GetBalance calls share one round trip and no thread waits
// per call; alone, a read costs one query as before. The rows read are
// offered to `cache`. Thread-safe.
class BalanceBatcher {
 public:
  using Result = absl::StatusOr<std::optional<v1::AccountBalance>>;
  using Done = std::function<void(Result)>;

  BalanceBatcher(ReadModelReader& reader, BalanceCache& cache, int threads,
                 size_t max_queue, size_t max_batch = 256);
  // Answers what is queued (UNAVAILABLE), then stops the readers.
  ~BalanceBatcher();

  // False (and `done` is not called) when the queue is full.
  bool Submit(std::string account_id, absl::Time deadline, Done done);

 private:
  struct Pending {
    std::string account_id;
    absl::Time deadline;
    Done done;
  };
  void Loop();

  ReadModelReader& reader_;
  BalanceCache& cache_;
  const size_t max_queue_;
  const size_t max_batch_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_BALANCE_BATCHER_H_
