#include "projector/live_writer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace bank::projector {

LiveWriter::LiveWriter(std::string uri, std::string projection,
                       int row_cache_size)
    : projection_(std::move(projection)),
      session_({.uri = std::move(uri),
                .application_name = "bank-projector-writer",
                .on_connect = PrepareReadModelWrites}),
      row_cache_size_(static_cast<size_t>(std::max(0, row_cache_size))) {}

void LiveWriter::Forget() {
  rows_.clear();
  pending_rows_.clear();
  applied_total_.reset();
}

void LiveWriter::Disconnect() {
  session_.Disconnect();
  Forget();
}

void LiveWriter::KeepPendingRows() {
  if (row_cache_size_ == 0) return;
  // Bounded: when full, start over (rows are read again on demand).
  if (rows_.size() + pending_rows_.size() > row_cache_size_) rows_.clear();
  for (BalanceRow& b : pending_rows_) {
    std::string id = b.account_id;
    rows_.insert_or_assign(std::move(id), std::move(b));
  }
  pending_rows_.clear();
}

absl::StatusOr<Checkpoint> LiveWriter::LoadCheckpoint() {
  // Whoever moved the checkpoint since may have written the rows kept.
  Forget();
  absl::StatusOr<StoredCheckpoint> stored = session_.Run(
      "loading the checkpoint",
      [&](pqxx::connection& c) -> absl::StatusOr<StoredCheckpoint> {
        pqxx::work tx(c);
        StoredCheckpoint s = LockCheckpoint(tx, projection_);
        tx.commit();
        return s;
      });
  if (!stored.ok()) return stored.status();
  applied_total_ = stored->events_applied;
  return stored->at;
}

absl::StatusOr<BatchResult> LiveWriter::ApplyBatch(
    const Checkpoint& expected,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  if (events.empty()) return BatchResult{expected};
  absl::StatusOr<BatchResult> out =
      ApplyBatchOnce(expected, events, skip_poison);
  if (out.ok()) {
    KeepPendingRows();
  } else {
    Forget();
  }
  return out;
}

absl::StatusOr<BatchResult> LiveWriter::ApplyBatchOnce(
    const Checkpoint& expected,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  return session_.Run(
      "applying a batch to the read model",
      [&](pqxx::connection& c) -> absl::StatusOr<BatchResult> {
        // Each statement its own transaction: the rows not kept are read
        // first, then apply_batch checks under the checkpoint's row lock
        // that nobody moved it since `expected` (every writer moves it with
        // the rows, so rows read before an unmoved checkpoint are current)
        // and writes the whole batch.
        pqxx::nontransaction tx(c);
        if (!applied_total_.has_value()) {
          std::optional<StoredCheckpoint> s = ReadCheckpoint(tx, projection_);
          if (!s.has_value()) {
            return absl::AbortedError("checkpoint row is missing");
          }
          applied_total_ = s->events_applied;
        }
        pending_rows_.clear();
        std::vector<BalanceRow>* read =
            row_cache_size_ > 0 ? &pending_rows_ : nullptr;
        absl::flat_hash_map<std::string, BalanceRow> current =
            CurrentRows(tx, events, rows_, read);
        absl::StatusOr<BatchChanges> changes =
            ProjectBatch(current, events, skip_poison);
        const StoredCheckpoint from{expected, *applied_total_};
        if (!changes.ok()) {
          // Refused on rows kept from before another writer moved on? Then
          // the batch is not this writer's to judge: reload and go on.
          std::optional<StoredCheckpoint> now = ReadCheckpoint(tx, projection_);
          if (!now.has_value() || !(now->at == from.at) ||
              now->events_applied != from.events_applied) {
            return absl::AbortedError(absl::StrCat(
                "checkpoint of ", projection_, " moved (expected ",
                expected.transaction_id, "/", expected.position, ")"));
          }
          return changes.status();
        }
        if (read != nullptr) {
          // Written after the rows read above, so they win when both are
          // kept.
          read->insert(read->end(), changes->balances.begin(),
                       changes->balances.end());
        }
        BatchResult out = ResultOf(*changes, events);
        // Readers (the query service's cache) learn which accounts moved,
        // and their rows.
        const std::vector<std::string> notices = readmodel::EncodeProgress(
            from.events_applied + out.applied, out.moved);
        applied_total_ =
            WriteBatch(tx, projection_, from, out, *changes, notices);
        return out;
      });
}

}  // namespace bank::projector
