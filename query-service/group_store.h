#ifndef BANK_QUERY_SERVICE_GROUP_STORE_H_
#define BANK_QUERY_SERVICE_GROUP_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/db/connection_pool.h"
#include "query-service/resume_token.h"

namespace bank::query {

// A consumer group's partition as stored (sql/read/005_consumer_groups.sql).
struct PartitionState {
  int partition = 0;
  std::string owner;  // "" while none.
  int64_t generation = 0;
  EntryPosition progress;   // Acknowledged up to here.
  EntryPosition delivered;  // Delivered up to here.
};

// A group as one rebalance left it.
struct GroupView {
  int partition_count = 0;
  std::vector<std::string> members;        // Live.
  std::vector<PartitionState> partitions;  // By partition.
};

// The consumer groups' tables in the read database: every write the query
// service makes. Thread-safe; each call is one transaction, repeated once on
// a fresh connection if its connection is lost (each is idempotent), and
// waits up to `outage_wait` for an unreachable database.
class GroupStore {
 public:
  GroupStore(const std::string& uri, int pool_size, absl::Duration outage_wait);

  // Creates `group` if it does not exist (with `partition_count`
  // partitions, starting at the first entry or, `from_now`, at the live
  // checkpoint), and gives `member` to `session` with a lease of `lease`.
  // ALREADY_EXISTS when another session holds the name and its lease runs.
  // Returns the group's partition count.
  absl::StatusOr<int> Join(const std::string& group, const std::string& member,
                           const std::string& session, bool from_now,
                           int partition_count, absl::Duration lease,
                           absl::Time deadline);
  // Renews the leases of `members` held by `sessions` (the same length),
  // drops the members whose lease ran out, gives the partitions to the live
  // members (group_logic.h, Assign: sticky and balanced; a partition whose
  // owner changes gets the next generation), and returns the group. One
  // transaction, the group's row locked: rebalances of a group run one at
  // a time across the replicas.
  absl::StatusOr<GroupView> Rebalance(const std::string& group,
                                      const std::vector<std::string>& members,
                                      const std::vector<std::string>& sessions,
                                      absl::Duration lease,
                                      absl::Time deadline);
  // Gives up `member`'s name if `session` holds it.
  absl::Status Leave(const std::string& group, const std::string& member,
                     const std::string& session, absl::Time deadline);

  struct Progress {
    int partition = 0;
    int64_t generation = 0;  // Under which the entries were delivered.
    EntryPosition progress;
    EntryPosition delivered;
  };
  // Moves each partition's progress forward to `progress` (never back), and
  // its delivered mark, where the partition's generation is still the one
  // given: a former owner's update moves nothing (fencing). Returns how many
  // partitions were fenced off.
  absl::StatusOr<int> SaveProgress(const std::string& group,
                                   const std::vector<Progress>& updates,
                                   absl::Time deadline);

 private:
  template <typename Fn>
  auto With(absl::Time deadline, const char* what, Fn fn)
      -> decltype(fn(std::declval<db::ConnectionPool::Lease&>()));
  db::ConnectionPool pool_;
  const absl::Duration outage_wait_;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_GROUP_STORE_H_
