#ifndef BANK_PROJECTOR_READ_MODEL_WRITES_H_
#define BANK_PROJECTOR_READ_MODEL_WRITES_H_

#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/eventstore/event_store.h"
#include "common/readmodel/progress_notice.h"
#include "projector/event_reader.h"
#include "projector/projection.h"

// The read model's writes (schema: sql/read/), defined once for both of its
// writers: the live writer (live_writer.h) and the rebuild's swap
// (rebuild_writer.h), which catches the rebuilt tables up with the same
// batches once they are live. A batch is written by apply_batch
// (sql/read/004_stream_order.sql); the statements here read the rows it
// starts from and keep the checkpoints. Each function runs inside the
// caller's transaction and throws libpqxx's exceptions: the callers map
// them (common/db/run.h).
namespace bank::projector {

struct BatchResult {
  Checkpoint checkpoint;  // After the batch.
  int64_t applied = 0;
  int64_t duplicates = 0;
  int64_t poison = 0;
  // The accounts the batch moved, with their new versions and rows.
  std::vector<readmodel::MovedAccount> moved;
};

// A projection's stored checkpoint and how many events it has applied.
struct StoredCheckpoint {
  Checkpoint at;
  int64_t events_applied = 0;
};

// Prepares the statements below on a new connection.
void PrepareReadModelWrites(pqxx::connection& conn);

// Creates the projection's checkpoint at (0, 0) when missing and locks its
// row until the transaction ends.
StoredCheckpoint LockCheckpoint(pqxx::transaction_base& tx,
                                const std::string& projection);
// The stored checkpoint, without a lock; nullopt when there is none.
std::optional<StoredCheckpoint> ReadCheckpoint(pqxx::transaction_base& tx,
                                               const std::string& projection);
// Sets the checkpoint to `at`, keeping its events_applied; returns that.
int64_t MoveCheckpoint(pqxx::transaction_base& tx,
                       const std::string& projection, const Checkpoint& at);
void DeleteCheckpoint(pqxx::transaction_base& tx,
                      const std::string& projection);

// The rows of the accounts that `events` touch: those in `kept` as they
// are, the others read from account_balances (and appended to `read`).
absl::flat_hash_map<std::string, BalanceRow> CurrentRows(
    pqxx::transaction_base& tx,
    const std::vector<eventstore::RecordedEvent>& events,
    const absl::flat_hash_map<std::string, BalanceRow>& kept,
    std::vector<BalanceRow>* read);

// What a projected batch did, for the caller and for the notices.
BatchResult ResultOf(const BatchChanges& changes,
                     const std::vector<eventstore::RecordedEvent>& events);

// Writes a projected batch (balances, history, poison) and moves the
// checkpoint from `expected` to `result.checkpoint`, sending `notices` on
// the progress channel, in one statement. Returns events_applied after it.
// Throws a serialization failure (ABORTED once mapped) when the stored
// checkpoint is no longer `expected`, having written nothing.
int64_t WriteBatch(pqxx::transaction_base& tx, const std::string& projection,
                   const StoredCheckpoint& expected, const BatchResult& result,
                   const BatchChanges& changes,
                   const std::vector<std::string>& notices);

// Tells readers to drop what they cached (after a swap).
void NotifyReset(pqxx::transaction_base& tx);

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_READ_MODEL_WRITES_H_
