#ifndef BANK_COMMON_EVENTSTORE_GROUP_COMMIT_H_
#define BANK_COMMON_EVENTSTORE_GROUP_COMMIT_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/eventstore/event_store.h"
#include "common/metrics/metrics.h"

namespace bank::eventstore {

// An EventStore whose appends are group-committed: concurrent appends queue
// up and a few committer threads each take whatever is queued (up to
// max_batch commands) and append it through BatchAppender in one
// transaction. Nobody waits for a batch to fill: under light load a batch
// holds one command and costs what a plain append costs; under load many
// commands share one commit. Each caller is answered only after its batch
// has committed, with its own outcome. Appends to the same stream are taken
// in the order they were started, and never by two batches in flight at
// once, so an append may build on an earlier one that has not committed yet
// (StartAppend). Reads go straight to `reads`.
class GroupCommitEventStore final : public EventStore {
 public:
  struct Options {
    // At most 32: each command of a batch may become a subtransaction, and
    // a backend caches only 64 of them before every snapshot overflows.
    int max_batch = 32;
    int committers = 2;
    // While a batch is in flight, another committer starts one only when
    // at least this many appends wait (1: at once). Under light load the
    // appends that arrive during a commit then share the next one instead
    // of each taking a commit of its own; a backlog still gets every
    // committer.
    int join_backlog = 1;
    // Where batches are counted (a private registry when null).
    metrics::Registry* metrics = nullptr;
    // Called after each batch in which at least one command committed
    // (e.g. CommitNotifier::Committed).
    std::function<void()> on_commit;
  };

  GroupCommitEventStore(EventStore& reads, BatchAppender& appender,
                        Options options);
  // Answers what is queued, then stops the committers.
  ~GroupCommitEventStore() override;

  // Appends waiting for a committer.
  size_t queued() {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

  absl::StatusOr<std::vector<StreamResult>> Append(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) override;
  std::unique_ptr<PendingAppend> StartAppend(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) override;
  absl::StatusOr<std::vector<RecordedEvent>> ReadStream(
      const std::string& stream_id, int64_t after_version, int max_count,
      absl::Time deadline) override {
    return reads_.ReadStream(stream_id, after_version, max_count, deadline);
  }
  absl::StatusOr<std::optional<StoredCommand>> FindCommand(
      const std::string& command_id, absl::Time deadline) override {
    return reads_.FindCommand(command_id, deadline);
  }
  absl::StatusOr<std::optional<Snapshot>> LoadSnapshot(
      const std::string& stream_id, absl::Time deadline) override {
    return reads_.LoadSnapshot(stream_id, deadline);
  }
  absl::Status SaveSnapshot(const Snapshot& snapshot,
                            absl::Time deadline) override {
    return reads_.SaveSnapshot(snapshot, deadline);
  }

 private:
  struct Pending {
    BatchItem item;
    absl::Time deadline;
    bool done = false;
    absl::StatusOr<std::vector<StreamResult>> result =
        absl::UnknownError("not appended yet");
    // Set by PendingAppend::Then before the answer: called with it.
    PendingAppend::Callback then;
  };
  class Ticket;

  void CommitLoop();
  // Moves the appends a committer may take now into `batch`: queue order,
  // skipping (with everything after them on the same streams) those whose
  // streams are in another committer's batch.
  void TakeBatch(std::vector<std::shared_ptr<Pending>>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CanTake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventStore& reads_;
  BatchAppender& appender_;
  const Options options_;
  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Counter* batches_ = nullptr;
  metrics::Counter* batched_ = nullptr;

  absl::Mutex mu_;
  std::deque<std::shared_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  // Streams of the batches being appended, with how many of their appends.
  absl::flat_hash_map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;  // Committers with a batch in flight.
  std::vector<std::thread> committers_;
};

}  // namespace bank::eventstore

#endif  // BANK_COMMON_EVENTSTORE_GROUP_COMMIT_H_
