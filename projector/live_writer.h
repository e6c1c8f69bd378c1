#ifndef BANK_PROJECTOR_LIVE_WRITER_H_
#define BANK_PROJECTOR_LIVE_WRITER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/db/run.h"
#include "projector/read_model_writes.h"

namespace bank::projector {

// Writes the live projector's batches into the read model with the
// checkpoint, one batch per read-database transaction, so a crash at any
// point neither loses nor repeats an effect. Not thread-safe; reconnects on
// the next call after a failure.
class LiveWriter {
 public:
  // With row_cache_size > 0 the writer keeps up to that many balance rows
  // as its own committed batches left them, and a batch reads from the
  // database only the accounts not kept. The rows are dropped after any
  // failure, including ABORTED (another writer moved the checkpoint: every
  // writer of these tables moves it in the same transaction, so a batch that
  // found the checkpoint where it left it may trust the rows it left), and
  // whenever the checkpoint is loaded or the connection dropped.
  LiveWriter(std::string uri, std::string projection, int row_cache_size = 0);

  // The stored checkpoint (created at (0, 0) when missing).
  absl::StatusOr<Checkpoint> LoadCheckpoint();

  // Applies events read after `expected`, advancing the checkpoint to the
  // last event's place, in one round trip (sql/read/004_stream_order.sql),
  // plus one to read the rows of accounts not kept. ABORTED when the stored
  // checkpoint is no longer `expected` (another projector or a rebuild moved
  // it: reload and go on); FAILED_PRECONDITION for a poison event unless
  // skip_poison; UNAVAILABLE when the database cannot be reached.
  absl::StatusOr<BatchResult> ApplyBatch(
      const Checkpoint& expected,
      const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);

  void Disconnect();

 private:
  absl::StatusOr<BatchResult> ApplyBatchOnce(
      const Checkpoint& expected,
      const std::vector<eventstore::RecordedEvent>& events, bool skip_poison);
  void Forget();
  void KeepPendingRows();

  const std::string projection_;
  db::Session session_;
  const size_t row_cache_size_;
  absl::flat_hash_map<std::string, BalanceRow> rows_;
  // The checkpoint's events_applied as this writer last read or left it;
  // forgotten with the rows.
  std::optional<int64_t> applied_total_;
  // Rows read or written by the batch in progress: kept once it commits.
  std::vector<BalanceRow> pending_rows_;
};

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_LIVE_WRITER_H_
