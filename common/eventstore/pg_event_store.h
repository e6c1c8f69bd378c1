#ifndef BANK_COMMON_EVENTSTORE_PG_EVENT_STORE_H_
#define BANK_COMMON_EVENTSTORE_PG_EVENT_STORE_H_

#include <atomic>
#include <memory>
#include <string>

#include "common/db/connection_pool.h"
#include "common/eventstore/event_store.h"
#include "common/eventstore/pg_append_outcome.h"

namespace bank::eventstore {

// The EventStore on PostgreSQL (schema: sql/events/). An append, or a batch
// of them (BatchAppender), is a single prepared statement (one round trip,
// one implicit transaction): append_commands() of every event from arrays,
// plus the command records. When the connection is lost after that
// statement was sent, the batch looks up what committed before it answers
// (pg_append_outcome.h), runs again what did not, and says "outcome
// unknown" only when it cannot learn it within the deadline. Thread-safe.
class PgEventStore final : public EventStore, public BatchAppender {
 public:
  struct Options {
    std::string uri;
    int pool_size = 8;
    // The longest any statement may run, whatever the caller's deadline.
    absl::Duration max_statement_time = absl::Seconds(10);
    // The longest a caller waits for a free connection before UNAVAILABLE:
    // under overload, fail fast instead of piling up.
    absl::Duration max_pool_wait = absl::Seconds(2);
    // How long a call waits for an unreachable database (db::PooledCall).
    absl::Duration outage_wait = absl::ZeroDuration();
  };

  explicit PgEventStore(Options options);

  absl::StatusOr<std::vector<StreamResult>> Append(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) override;
  // One statement (append_commands, sql/events/005): every command in its
  // own subtransaction, all of them in one transaction and one commit.
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

  db::ConnectionPool& pool() { return pool_; }
  // Batches whose outcome was unknown at first (their connection lost after
  // the statement was sent), and were looked up.
  int64_t unknown_outcomes() const { return unknown_outcomes_.load(); }

 private:
  using Results = std::vector<absl::StatusOr<std::vector<StreamResult>>>;
  db::PooledCall Call(absl::Time deadline, const char* what,
                      bool repeatable = false) const;
  // The batch's statement, once: each item's answer, or why the whole
  // transaction failed. Sets `sent` when the statement went out, and
  // `unconfirmed` when it committed but its wait for the synchronous
  // standby was cancelled.
  absl::StatusOr<Results> AppendOnce(const std::vector<BatchItem>& items,
                                     absl::Time deadline, pg::SentOn* sent,
                                     bool* unconfirmed);
  // Runs fn(lease) with a connection whose statement_timeout honours the
  // deadline; converts exceptions into a status. `repeatable` (db::PooledCall):
  // run again on a fresh connection if the first was found lost.
  template <typename Fn>
  auto WithConnection(absl::Time deadline, const char* what, bool repeatable,
                      Fn fn)
      -> decltype(fn(std::declval<db::ConnectionPool::Lease&>()));

  const Options options_;
  db::ConnectionPool pool_;
  std::atomic<int64_t> unknown_outcomes_{0};
};

}  // namespace bank::eventstore

#endif  // BANK_COMMON_EVENTSTORE_PG_EVENT_STORE_H_
