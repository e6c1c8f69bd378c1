#ifndef BANK_QUERY_SERVICE_GROUP_LOGIC_H_
#define BANK_QUERY_SERVICE_GROUP_LOGIC_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "query-service/resume_token.h"

namespace bank::query {

// The pure parts of consumer groups (QueryService.Consume, #27; the design:
// docs/architecture.md, "Consumer groups").

// The partition of an account: FNV-1a (64 bits) of its canonical id (lower
// case, with hyphens), modulo `partition_count`. Stable across processes,
// versions and machines: a group's partition count is fixed when it is
// created, so an account never changes partition. REQUIRES: count > 0.
int PartitionOf(absl::string_view account_id, int partition_count);

// A group name: 1 to 100 of letters, digits, '-', '_', '.'.
absl::Status ValidateGroupName(absl::string_view group);

// Which member owns which partitions: each live member gets partition_count
// / members partitions, or one more; a partition stays with its current
// owner (`current`: partition -> member) while that member is live and has
// room, so a join or a leave moves as few partitions as it can. Members are
// taken in name order; the result is the same for the same input.
std::map<std::string, std::vector<int>> Assign(
    const std::vector<std::string>& members, int partition_count,
    const std::map<int, std::string>& current);

// One partition's entries delivered to its owner and not yet acknowledged,
// in delivery order (the stream order), and how far the group's progress
// may move: past the longest acknowledged prefix, never past an entry not
// acknowledged.
class PartitionAcks {
 public:
  // An entry was sent; `at` is its place in the stream order.
  // REQUIRES: after every entry delivered before.
  void Delivered(int64_t position, EntryPosition at);
  // The owner acknowledged the entry at `position`; false when no entry in
  // flight has it (already acknowledged, or never delivered here).
  bool Ack(int64_t position);
  // The new progress when acknowledged entries at the front were dropped
  // (the place of the last of them); nullopt when the front is unacked.
  std::optional<EntryPosition> Advance();
  size_t in_flight() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t position;
    EntryPosition at;
    bool acked = false;
  };
  // Dropped as soon as the front is acknowledged (acknowledgements mostly
  // come in order, so the one acknowledged is then near the front).
  void DropAcknowledgedFront();
  std::deque<Entry> entries_;
  std::optional<EntryPosition> dropped_;  // Since the last Advance.
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_GROUP_LOGIC_H_
