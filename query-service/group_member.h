#ifndef BANK_QUERY_SERVICE_GROUP_MEMBER_H_
#define BANK_QUERY_SERVICE_GROUP_MEMBER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "bank/v1/bank.pb.h"
#include "query-service/group_logic.h"
#include "query-service/group_store.h"
#include "query-service/resume_token.h"

namespace bank::query {

// What one member of a consumer group has (docs/architecture.md, "Consumer
// groups"): its partitions, how far each was read and delivered, and the
// entries delivered and not yet acknowledged. Pure: the Consume stream
// (consume_session.cc) feeds it the rebalances, the pages of the entry
// stream and the acknowledgements, and sends and saves what it says. Not
// thread-safe.
class GroupMember {
 public:
  GroupMember(std::string member, int max_unacked)
      : member_(std::move(member)), max_unacked_(max_unacked) {}

  // Takes the member's partitions from a rebalance. A partition that is new
  // (or came back under a new generation) starts at the group's stored
  // progress; one that went drops its entries in flight (their
  // acknowledgements will move nothing). True when the member's set of
  // partitions changed: the client is told.
  bool Apply(const GroupView& view);
  int partition_count() const { return partition_count_; }
  std::vector<int> partitions() const;

  // Whether to read: it has partitions and room for more entries in flight.
  bool WantsEntries() const;
  // Where the next read starts: the earliest place any partition was read to.
  EntryPosition ReadFrom() const;

  struct Delivery {
    int partition;
    size_t index;      // In the page given to Take.
    bool redelivered;  // At or before the partition's delivered mark.
  };
  // Takes a page of the entry stream read after `from` (ReadFrom() when the
  // read began) and returns the entries to send: those of its partitions
  // that each partition has not had, in order, until `max_unacked` are in
  // flight. A partition that arrived during the read (it starts before
  // `from`) waits for the next read. `*full` when it stopped for room.
  std::vector<Delivery> Take(EntryPosition from,
                             absl::Span<const v1::AccountEntry> entries,
                             absl::Span<const EntryPosition> at, bool* full);

  // The client handled the entries at these positions; returns how many of
  // them were in flight here (the others moved nothing: already
  // acknowledged, or of a partition it no longer has).
  int Ack(const std::vector<int64_t>& positions);
  int unacked() const { return unacked_; }

  // What to store: per partition, the progress past its acknowledged
  // prefix (or as far as it was read, with nothing in flight), and the
  // delivered mark (as far as it was read), where either moved since last
  // stored. Saved() records that they were.
  std::vector<GroupStore::Progress> ProgressToSave();
  void Saved(const std::vector<GroupStore::Progress>& saved);

 private:
  struct Owned {
    int64_t generation = 0;
    EntryPosition read;       // Every entry of it up to here was examined.
    EntryPosition handled;    // Acknowledged up to here.
    EntryPosition stored;     // The row's progress, as last saved.
    EntryPosition delivered;  // The row's delivered mark when it came.
    EntryPosition stored_read;  // The delivered mark last saved.
    PartitionAcks acks;
  };
  void Drop(int partition, Owned& owned);

  const std::string member_;
  const int max_unacked_;
  int partition_count_ = 0;
  std::map<int, Owned> owned_;
  absl::flat_hash_map<int64_t, int> in_flight_;  // position -> partition
  int unacked_ = 0;
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_GROUP_MEMBER_H_
