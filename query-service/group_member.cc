#include "query-service/group_member.h"

#include <algorithm>
#include <set>

namespace bank::query {

bool GroupMember::Apply(const GroupView& view) {
  partition_count_ = view.partition_count;
  const std::vector<int> before = partitions();
  std::map<int, const PartitionState*> mine;
  for (const PartitionState& p : view.partitions) {
    if (p.owner == member_) mine[p.partition] = &p;
  }
  for (auto it = owned_.begin(); it != owned_.end();) {
    auto m = mine.find(it->first);
    if (m != mine.end() && m->second->generation == it->second.generation) {
      ++it;
      continue;
    }
    Drop(it->first, it->second);
    it = owned_.erase(it);
  }
  for (const auto& [partition, state] : mine) {
    if (owned_.contains(partition)) continue;
    Owned& o = owned_[partition];
    o.generation = state->generation;
    o.read = o.handled = o.stored = state->progress;
    o.stored_read = std::max(state->progress, state->delivered);
    o.delivered = state->delivered;
  }
  return partitions() != before;
}

void GroupMember::Drop(int partition, Owned& owned) {
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second == partition) {
      in_flight_.erase(it++);
    } else {
      ++it;
    }
  }
  unacked_ -= static_cast<int>(owned.acks.in_flight());
}

std::vector<int> GroupMember::partitions() const {
  std::vector<int> out;
  for (const auto& [p, o] : owned_) out.push_back(p);
  return out;
}

bool GroupMember::WantsEntries() const {
  return !owned_.empty() && unacked_ < max_unacked_;
}

EntryPosition GroupMember::ReadFrom() const {
  EntryPosition from;
  bool first = true;
  for (const auto& [p, o] : owned_) {
    if (first || o.read < from) from = o.read;
    first = false;
  }
  return from;
}

std::vector<GroupMember::Delivery> GroupMember::Take(
    EntryPosition from, absl::Span<const v1::AccountEntry> entries,
    absl::Span<const EntryPosition> at, bool* full) {
  *full = false;
  std::vector<Delivery> out;
  std::optional<EntryPosition> examined;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (unacked_ >= max_unacked_) {
      *full = true;
      break;
    }
    const int p = PartitionOf(entries[i].account_id(), partition_count_);
    auto it = owned_.find(p);
    // A partition that starts before `from` did not have this read's
    // first entries: it waits for the next read.
    if (it != owned_.end() && !(it->second.read < from) &&
        it->second.read < at[i]) {
      Owned& o = it->second;
      out.push_back({p, i, !(o.delivered < at[i])});
      o.acks.Delivered(entries[i].entry().position(), at[i]);
      o.read = at[i];
      in_flight_[entries[i].entry().position()] = p;
      ++unacked_;
    }
    examined = at[i];
  }
  if (examined.has_value()) {
    for (auto& [p, o] : owned_) {
      if (!(o.read < from) && o.read < *examined) o.read = *examined;
    }
  }
  return out;
}

int GroupMember::Ack(const std::vector<int64_t>& positions) {
  int acked = 0;
  for (int64_t position : positions) {
    auto it = in_flight_.find(position);
    if (it == in_flight_.end()) continue;
    auto o = owned_.find(it->second);
    if (o != owned_.end() && o->second.acks.Ack(position)) {
      --unacked_;
      ++acked;
    }
    in_flight_.erase(it);
  }
  return acked;
}

std::vector<GroupStore::Progress> GroupMember::ProgressToSave() {
  std::vector<GroupStore::Progress> out;
  for (auto& [p, o] : owned_) {
    if (std::optional<EntryPosition> moved = o.acks.Advance()) {
      o.handled = *moved;
    }
    // With nothing in flight, every entry of it read so far was handled.
    if (o.acks.in_flight() == 0 && o.handled < o.read) o.handled = o.read;
    if (o.stored < o.handled || o.stored_read < o.read) {
      out.push_back({.partition = p,
                     .generation = o.generation,
                     .progress = o.handled,
                     .delivered = o.read});
    }
  }
  return out;
}

void GroupMember::Saved(const std::vector<GroupStore::Progress>& saved) {
  for (const GroupStore::Progress& s : saved) {
    auto it = owned_.find(s.partition);
    if (it == owned_.end() || it->second.generation != s.generation) continue;
    Owned& o = it->second;
    if (o.stored < s.progress) o.stored = s.progress;
    if (o.stored_read < s.delivered) o.stored_read = s.delivered;
  }
}

}  // namespace bank::query
