#ifndef BANK_PROJECTOR_EVENT_READER_H_
#define BANK_PROJECTOR_EVENT_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/db/binary_copy.h"
#include "common/eventstore/event_store.h"

namespace bank::db {
class Session;
}  // namespace bank::db

namespace bank::projector {

// How far a projection has read the event store, in tailing order.
struct Checkpoint {
  int64_t transaction_id = 0;
  int64_t position = 0;
  friend bool operator==(const Checkpoint& a, const Checkpoint& b) {
    return a.transaction_id == b.transaction_id && a.position == b.position;
  }
};

struct HeadInfo {
  int64_t head_position = 0;                 // Highest position written.
  std::optional<absl::Time> oldest_pending;  // Oldest event not yet read.
};

// Reads committed events gap-free (see sql/events/001_events.sql): only
// events of transactions older than every running one, in (transaction_id,
// position) order. Reconnects on the next call after a failure. Not
// thread-safe.
class EventReader {
 public:
  explicit EventReader(std::string uri);
  ~EventReader();

  // Up to `limit` events after `after`, in tailing order, with what the
  // projection reads (event_id and metadata are left empty); UNAVAILABLE
  // when unreachable.
  absl::StatusOr<std::vector<eventstore::RecordedEvent>> ReadAfter(
      const Checkpoint& after, int limit);
  // ReadAfter for bulk reads (the rebuild): the same events, read with a
  // binary COPY on a connection of its own, which costs PostgreSQL about
  // half as much as printing them as text.
  absl::StatusOr<std::vector<eventstore::RecordedEvent>> CopyAfter(
      const Checkpoint& after, int limit);
  absl::StatusOr<HeadInfo> Head(const Checkpoint& after);
  void Disconnect();

  // How this reader's session runs ReadAfter: the plan for `after` (EXPLAIN's
  // text) and how many times so far the session used a generic plan and
  // planned afresh (a custom plan) for it.
  struct ReadPlan {
    std::string explain;
    int64_t generic_plans = 0;
    int64_t custom_plans = 0;
  };
  absl::StatusOr<ReadPlan> ExplainReadAfter(const Checkpoint& after, int limit);

 private:
  const std::string uri_;
  std::unique_ptr<db::Session> session_;
  std::unique_ptr<db::BinaryCopyOut> copy_;
};

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_EVENT_READER_H_
