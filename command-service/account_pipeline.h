#ifndef BANK_COMMAND_SERVICE_ACCOUNT_PIPELINE_H_
#define BANK_COMMAND_SERVICE_ACCOUNT_PIPELINE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/eventstore/event_store.h"

namespace bank::command {

// The order of one process's commands on each account. Commands on an
// account decide one at a time (its stripe, held from deciding until the
// append is queued, not until it commits), each on the state the previous
// one left, committed or still in flight: the appends of a busy account
// share batches. The pipeline also keeps, per account, the appends queued
// and not yet answered, and the last event queued (the tip) that the next
// command, deciding on that state before it commits, names as the event it
// follows. Thread-safe.
class AccountPipeline {
 public:
  // Holds the stripes of a command's accounts, in a fixed order (no
  // deadlock). With try_only it never waits: it takes them only if none is
  // held by another command, and held() tells.
  class Turn {
   public:
    Turn(AccountPipeline& pipeline, const std::vector<std::string>& account_ids,
         bool try_only);
    ~Turn();
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    bool held() const { return held_; }

   private:
    AccountPipeline& pipeline_;
    std::vector<size_t> stripes_;
    bool held_ = false;
  };

  struct Tip {
    int64_t version = 0;
    std::string event_id;
  };

  // An append of these accounts was queued: returns its sequence numbers
  // (for EndFlight) and records each account's new tip from `appends`.
  // REQUIRES: the accounts' Turn is held.
  std::vector<int64_t> StartFlight(
      const std::vector<std::string>& account_ids,
      const std::vector<eventstore::StreamAppend>& appends);
  // The append with these sequence numbers was answered.
  void EndFlight(const std::vector<std::string>& account_ids,
                 const std::vector<int64_t>& seqs);
  // The tip of each account's appends in flight (nullopt: none in flight).
  std::vector<std::optional<Tip>> Tips(
      const std::vector<std::string>& account_ids);
  bool InFlight(const std::vector<std::string>& account_ids);
  // Waits until no append is in flight on these accounts; false at deadline.
  bool AwaitLanded(const std::vector<std::string>& account_ids,
                   absl::Time deadline);

 private:
  static constexpr size_t kStripes = 1024;
  struct Flight {
    int64_t started = 0;
    int64_t settled = 0;
    std::optional<Tip> tip;
  };

  // An account id hashes to one stripe.
  std::array<absl::Mutex, kStripes> stripes_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Flight> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_ACCOUNT_PIPELINE_H_
