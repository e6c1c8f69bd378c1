#ifndef BANK_COMMON_EVENTSTORE_COMMIT_NOTIFIER_H_
#define BANK_COMMON_EVENTSTORE_COMMIT_NOTIFIER_H_

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bank::eventstore {

// Wakes the readers of the events table (LISTEN bank_events) after appends
// commit, from outside the write path: a NOTIFY inside the writing
// transaction takes a global lock at commit that serializes every committing
// writer. Committed() only raises a flag; one thread sends a single NOTIFY on
// its own connection for all the commits since the last one, at most once
// per `min_interval`. A lost notification costs readers latency, never
// events: they read from their checkpoint and poll as well. Thread-safe.
class CommitNotifier {
 public:
  explicit CommitNotifier(std::string uri,
                          absl::Duration min_interval = absl::Milliseconds(1));
  ~CommitNotifier();

  // Something committed: readers should look.
  void Committed();
  // NOTIFY statements sent so far.
  int64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  void Loop();

  const std::string uri_;
  const absl::Duration min_interval_;
  absl::Mutex mu_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> sent_{0};
  std::thread thread_;
};

}  // namespace bank::eventstore

#endif  // BANK_COMMON_EVENTSTORE_COMMIT_NOTIFIER_H_
