#ifndef BANK_PROJECTOR_REBUILD_WRITER_H_
#define BANK_PROJECTOR_REBUILD_WRITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/db/run.h"
#include "projector/event_reader.h"
#include "projector/projection.h"
#include "projector/read_model_writes.h"

namespace bank::projector {

// Writes a rebuild of the read model into shadow tables
// (account_balances_rebuild, account_history_rebuild) while the live model
// keeps serving, then swaps them in. The shadow tables are filled without
// indexes, from the state of every account kept in memory by the caller,
// with COPY; Finish writes the balances and builds the live tables' indexes
// on them in one sort each. Not thread-safe. A failure at any step leaves
// the live model as it was; the next rebuild starts over.
class RebuildWriter {
 public:
  // `live_projection` names the live checkpoint; the shadow's is
  // `live_projection` + "_rebuild".
  RebuildWriter(std::string uri, std::string live_projection);
  ~RebuildWriter();

  // Recreates empty shadow tables (columns and constraints of the live ones,
  // no indexes) and their checkpoint at (0, 0).
  absl::Status Reset();
  // Projects a batch into the shadow history, folding it into `state`. The
  // history goes into one binary COPY held open across calls on a
  // connection of its own, committed by Finish, so PostgreSQL ingests a
  // batch while the next one is folded.
  absl::StatusOr<BatchResult> Load(
      const std::vector<eventstore::RecordedEvent>& events,
      absl::flat_hash_map<std::string, AccountFold>& state, bool skip_poison);
  // Writes the balances, builds the indexes, records the poison events met
  // and moves the shadow checkpoint to `checkpoint`.
  absl::Status Finish(
      const absl::flat_hash_map<std::string, AccountFold>& state,
      const Checkpoint& checkpoint);
  // In one transaction, under the live checkpoint's row lock: swaps the
  // shadow tables in for the live ones, moves the live checkpoint to the
  // shadow's, and catches the new live tables up to the head with `reader`
  // through the live writer's own batch write. Returns the checkpoint.
  absl::StatusOr<Checkpoint> SwapIn(EventReader& reader, int batch_size);

 private:
  absl::Status BuildIndexes(const std::vector<std::string>& ddl);

  const std::string live_projection_;
  const std::string shadow_projection_;
  db::Session session_;
  // The open bulk load, between the first Load and Finish.
  struct Bulk;
  std::unique_ptr<Bulk> bulk_;
};

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_REBUILD_WRITER_H_
