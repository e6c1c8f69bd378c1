#ifndef BANK_PROJECTOR_READ_MODEL_WRITER_H_
#define BANK_PROJECTOR_READ_MODEL_WRITER_H_

#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/readmodel/progress_notice.h"
#include "projector/event_reader.h"
#include "projector/projection.h"

namespace bank::projector {

struct BatchResult {
  Checkpoint checkpoint;  // After the batch.
  int64_t applied = 0;
  int64_t duplicates = 0;
  int64_t poison = 0;
  // The accounts the batch moved, with their new versions and rows.
  std::vector<readmodel::MovedAccount> moved;
};

// Writes batches of events into the read model (schema: sql/read/) with the
// checkpoint, in one read-database transaction, so a crash at any point
// neither loses nor repeats an effect. `suffix` selects the table set ("" for
// the live tables, "_rebuild" for a rebuild's shadow tables). Not
// thread-safe; reconnects on the next call after a failure.
class ReadModelWriter {
 public:
  // With row_cache_size > 0 the writer keeps up to that many balance rows
  // as its own committed batches left them, and a batch reads from the
  // database only the accounts not kept. The rows are dropped after any
  // failure, including ABORTED (another writer moved the checkpoint: every
  // writer of these tables moves it in the same transaction, so a batch that
  // found the checkpoint where it left it may trust the rows it left), and
  // whenever the checkpoint is loaded or the connection dropped.
  ReadModelWriter(std::string uri, std::string projection, std::string suffix,
                  int row_cache_size = 0);
  ~ReadModelWriter();

  // The stored checkpoint (created at (0, 0) when missing).
  absl::StatusOr<Checkpoint> LoadCheckpoint();

  // Applies events read after `expected`, advancing the checkpoint to the
  // last event's place, in one round trip (sql/read/003_apply_batch.sql),
  // plus one to read the rows of accounts not kept. Live tables only
  // (suffix ""): INTERNAL otherwise. ABORTED when the stored checkpoint is no
  // longer `expected` (another projector or a rebuild moved it: reload and go
  // on); FAILED_PRECONDITION for a poison event unless skip_poison; UNAVAILABLE
  // when the database cannot be reached.
  absl::StatusOr<BatchResult> ApplyBatch(
      const Checkpoint& expected,
      const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);

  // Rebuild support (REQUIRES: suffix == "_rebuild"). The shadow tables are
  // filled without indexes, from the state of every account kept in memory
  // by the caller, with COPY; FinishShadow then writes the balances and
  // builds the live tables' indexes on them in one sort each.
  //
  // Recreates empty shadow tables (columns and constraints of the live ones,
  // no indexes) and their checkpoint at (0, 0).
  absl::Status ResetShadow();
  // Projects a batch into the shadow history, folding it into `state`. The
  // history goes into one binary COPY held open across calls on a
  // connection of its own, committed by FinishShadow, so PostgreSQL ingests
  // a batch while the next one is folded (a failure leaves nothing: the
  // rebuild starts over).
  absl::StatusOr<BatchResult> BulkLoad(
      const std::vector<eventstore::RecordedEvent>& events,
      absl::flat_hash_map<std::string, AccountFold>& state, bool skip_poison);
  // Writes the balances, builds the indexes and stores the checkpoint.
  absl::Status FinishShadow(
      const absl::flat_hash_map<std::string, AccountFold>& state,
      const Checkpoint& checkpoint);
  // Rebuild support: under the live checkpoint's row lock, catches the shadow
  // tables up to the head with `reader` and swaps them in for the live ones,
  // all in one transaction; the live checkpoint takes the shadow's.
  absl::StatusOr<Checkpoint> SwapIn(const std::string& live_projection,
                                    EventReader& reader, int batch_size);

  void Disconnect();

 private:
  absl::Status Connect();
  absl::StatusOr<BatchResult> ApplyBatchOnce(
      const Checkpoint& expected,
      const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);
  // Reads the rows of the batch's accounts not kept and projects the batch
  // on them; the rows read and written go to pending_rows_.
  absl::StatusOr<BatchChanges> Project(
      pqxx::transaction_base& tx,
      const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);
  static BatchResult ResultOf(
      const BatchChanges& changes,
      const std::vector<eventstore::RecordedEvent>& events);
  // The batch's writes inside tx, statement by statement; returns counts.
  absl::StatusOr<BatchResult> ApplyInTx(
      pqxx::work& tx, const std::vector<eventstore::RecordedEvent>& events,
      bool skip_poison);

  const std::string uri_;
  const std::string projection_;
  const std::string suffix_;
  std::unique_ptr<pqxx::connection> conn_;
  const size_t row_cache_size_;
  absl::flat_hash_map<std::string, BalanceRow> rows_;
  // The checkpoint's events_applied as this writer last read or left it;
  // forgotten with the rows.
  std::optional<int64_t> applied_total_;
  // Rows read or written by the batch in progress: kept once it commits.
  std::vector<BalanceRow> pending_rows_;
  void KeepPendingRows();
  // The open bulk load, between the first BulkLoad and FinishShadow.
  struct Bulk;
  std::unique_ptr<Bulk> bulk_;
  absl::Status EndBulk();
};

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_READ_MODEL_WRITER_H_
