#ifndef BANK_QUERY_SERVICE_PROGRESS_FOLLOWER_H_
#define BANK_QUERY_SERVICE_PROGRESS_FOLLOWER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/readmodel/progress_notice.h"
#include "query-service/balance_cache.h"
#include "query-service/read_model_reader.h"

namespace bank::query {

// Waits for accounts to reach versions in the read model, for read-your-writes
// (GetBalance.min_version). One thread LISTENs on the projector's progress
// channel for all waiters. On each notification it applies it to `cache`
// and completes the waiters whose account the cache now holds at their
// version, with that row; the accounts the cache does not hold are read, in
// one query, and their waiters completed with the balance read. On a short
// safety poll while anyone waits (and at least that often under a stream of
// notifications), every waited-for account is read. Waiters cost no
// thread. On a streaming replica of the read database (which can
// neither LISTEN nor receive notifications) it polls every 10 ms instead.
// The same notifications keep `cache` exact (see BalanceCache): each is
// applied to it as it arrives, the rows read are offered to it, and it is
// started when the LISTEN is in place and stopped when the connection is
// lost (or on a replica, never started). Thread-safe.
class ProgressFollower {
 public:
  enum class Outcome { kReached, kDeadline, kShutdown };
  // Told, on the follower's thread, of each notice as it arrives, and of
  // each turn of its loop (at least every safety_poll; `replica`: the read
  // database is a streaming replica, which sends no notices, and turns come
  // every 10 ms). Must not block.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnNotice(const readmodel::ProgressNotice& notice) = 0;
    virtual void OnTick(bool replica) = 0;
  };
  // `balance` is the account as read when the outcome is kReached, else
  // null; valid during the call only.
  using Done = std::function<void(Outcome, const v1::AccountBalance* balance)>;

  // At most `max_waiters` waiters at once (Add refuses more).
  ProgressFollower(std::string uri, ReadModelReader& reader,
                   BalanceCache& cache, size_t max_waiters = 10000,
                   absl::Duration safety_poll = absl::Milliseconds(100),
                   Listener* listener = nullptr);
  // Completes every remaining waiter with kShutdown.
  ~ProgressFollower();

  // Registers a waiter; `done` is called exactly once, from the waiter's
  // thread or from Offer. Returns its id, or nullopt (and never calls
  // `done`) when max_waiters wait already.
  std::optional<uint64_t> Add(const std::string& account_id,
                              int64_t min_version, absl::Time deadline,
                              Done done);
  // Completes waiter `id` with `balance` if its version satisfies it (the
  // caller read the account after Add: answers at once when the read model
  // is there already, and closes the race with a notification sent before).
  void Offer(uint64_t id, const v1::AccountBalance& balance);
  // Removes waiter `id` without calling it; false when it has completed
  // already (its `done` has run or is running).
  bool Cancel(uint64_t id);
  size_t waiting() const;

 private:
  struct Waiter {
    std::string account_id;
    int64_t min_version;
    absl::Time deadline;
    Done done;
  };
  void Loop();
  // Completes the waiters that got there, from the cache or a read of their
  // accounts; `notified`: woken by notices (applied to the cache already).
  void Check(bool notified);

  const std::string uri_;
  ReadModelReader& reader_;
  BalanceCache& cache_;
  const absl::Duration safety_poll_;
  Listener* const listener_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  const size_t max_waiters_;
  absl::Time last_read_all_ = absl::InfinitePast();  // Loop's thread only.
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_PROGRESS_FOLLOWER_H_
