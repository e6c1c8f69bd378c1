#ifndef BANK_COMMON_EVENTSTORE_MEMORY_EVENT_STORE_H_
#define BANK_COMMON_EVENTSTORE_MEMORY_EVENT_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/eventstore/event_store.h"

namespace bank::eventstore {

// The EventStore in memory, with the guarantees of PgEventStore (the
// contract suite in tests/ runs against both): an append is all or nothing;
// a stream not at its expected_version, an event that does not follow the
// one it names (after_event_id), or an event id stored already is ABORTED;
// a recorded command_id is ALREADY_EXISTS; each call of Append or
// AppendBatch is one transaction (one transaction_id), in which every
// command stands alone. For unit tests of the code above the store: nothing
// is kept past the object. Thread-safe.
class MemoryEventStore final : public EventStore, public BatchAppender {
 public:
  // Runs before every Append and AppendBatch, outside the store's lock (a
  // test may block in it to hold appends in flight). A status other than OK
  // fails the whole transaction with it, writing nothing.
  using BeforeAppend = std::function<absl::Status()>;
  void SetBeforeAppend(BeforeAppend hook) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<std::vector<StreamResult>> Append(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) override;
  std::vector<absl::StatusOr<std::vector<StreamResult>>> AppendBatch(
      const std::vector<BatchItem>& items, absl::Time deadline) override;
  absl::StatusOr<std::vector<RecordedEvent>> ReadStream(
      const std::string& stream_id, int64_t after_version, int max_count,
      absl::Time deadline) override;
  absl::StatusOr<std::optional<StoredCommand>> FindCommand(
      const std::string& command_id, absl::Time deadline) override;
  absl::StatusOr<std::optional<Snapshot>> LoadSnapshot(
      const std::string& stream_id, absl::Time deadline) override;
  absl::Status SaveSnapshot(const Snapshot& snapshot,
                            absl::Time deadline) override;

  // Every event, in position order.
  std::vector<RecordedEvent> AllEvents() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One command inside transaction `txid`: all of it or none.
  absl::StatusOr<std::vector<StreamResult>> ApplyLocked(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      int64_t txid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RunBeforeAppend() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  BeforeAppend before_append_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedEvent> events_ ABSL_GUARDED_BY(mu_);  // By position.
  // Per stream, the index in events_ of each version (version v at v - 1).
  absl::flat_hash_map<std::string, std::vector<size_t>> streams_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> event_ids_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, StoredCommand> commands_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Snapshot> snapshots_ ABSL_GUARDED_BY(mu_);
  int64_t last_txid_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bank::eventstore

#endif  // BANK_COMMON_EVENTSTORE_MEMORY_EVENT_STORE_H_
