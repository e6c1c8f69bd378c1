#ifndef BANK_COMMON_EVENTSTORE_PG_APPEND_OUTCOME_H_
#define BANK_COMMON_EVENTSTORE_PG_APPEND_OUTCOME_H_

#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/db/run.h"
#include "common/eventstore/event_store.h"

// Part of PgEventStore: what it does when a batch's outcome is unknown.
namespace bank::eventstore::pg {

// The server process a batch's statement was sent to.
struct SentOn {
  int pid = 0;  // 0: nothing was sent
  // Unique to the connection (PgEventStore names each one), so that a
  // process of the same pid after a restart is never taken for it.
  std::string application_name;
};

// Watches a connection for PostgreSQL's warning that a commit stopped
// waiting for the synchronous standby (a cancel, a statement timeout, a
// termination): the transaction committed here but may be on no standby, so
// a failover could still lose it.
class SyncReplicationWatch final : public pqxx::errorhandler {
 public:
  explicit SyncReplicationWatch(pqxx::connection_base& conn)
      : pqxx::errorhandler(conn) {}
  bool operator()(const char msg[]) noexcept override;
  bool cancelled() const { return cancelled_; }

 private:
  bool cancelled_ = false;
};

// For each item of `items` (a batch whose connection was lost after its
// statement was sent on `sent`, or whose commit stopped waiting for the
// standby): its results if it committed, nullopt if it did not. First ends
// the old server process, so that its transaction is over and cannot commit
// afterwards; then looks the items' events up by their ids, which tells
// which committed (a command's events are all there or none, commands with
// no command_id too); when some did, commits a transaction of its own,
// which returns only once the synchronous standby has everything up to it.
// Keeps trying within `call`'s deadline, less a margin for the answer to
// travel (waiting for the database as it goes); UNAVAILABLE when it could
// not learn the outcome by then.
absl::StatusOr<std::vector<std::optional<std::vector<StreamResult>>>>
FindOutcome(db::ConnectionPool& pool, db::PooledCall call, const SentOn& sent,
            const std::vector<BatchItem>& items);

}  // namespace bank::eventstore::pg

#endif  // BANK_COMMON_EVENTSTORE_PG_APPEND_OUTCOME_H_
