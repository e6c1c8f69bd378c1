#include "query-service/group_logic.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace bank::query {

int PartitionOf(absl::string_view account_id, int partition_count) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a offset basis.
  for (char c : account_id) {
    h ^= static_cast<unsigned char>(absl::ascii_tolower(c));
    h *= 1099511628211ull;  // FNV prime.
  }
  return static_cast<int>(h % static_cast<uint64_t>(partition_count));
}

absl::Status ValidateGroupName(absl::string_view group) {
  const bool ok =
      !group.empty() && group.size() <= 100 &&
      std::all_of(group.begin(), group.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
      });
  if (!ok) {
    return absl::InvalidArgumentError(
        "group must be 1 to 100 of letters, digits, '-', '_' and '.'");
  }
  return absl::OkStatus();
}

std::map<std::string, std::vector<int>> Assign(
    const std::vector<std::string>& members, int partition_count,
    const std::map<int, std::string>& current) {
  std::map<std::string, std::vector<int>> out;
  const std::set<std::string> live(members.begin(), members.end());
  if (live.empty()) return out;
  // Quotas: the first `extra` members in name order get one more.
  const int base = partition_count / static_cast<int>(live.size());
  int extra = partition_count % static_cast<int>(live.size());
  std::map<std::string, int> quota;
  for (const std::string& m : live) {
    quota[m] = base + (extra > 0 ? 1 : 0);
    if (extra > 0) --extra;
    out[m];  // Every live member appears, even with nothing.
  }
  // Current owners keep what fits in their quota.
  std::vector<int> free;
  for (int p = 0; p < partition_count; ++p) {
    auto it = current.find(p);
    if (it != current.end() && live.contains(it->second) &&
        static_cast<int>(out[it->second].size()) < quota[it->second]) {
      out[it->second].push_back(p);
    } else {
      free.push_back(p);
    }
  }
  // The rest go to members with room, in name order.
  auto f = free.begin();
  for (const std::string& m : live) {
    while (f != free.end() && static_cast<int>(out[m].size()) < quota[m]) {
      out[m].push_back(*f++);
    }
    std::sort(out[m].begin(), out[m].end());
  }
  return out;
}

void PartitionAcks::Delivered(int64_t position, EntryPosition at) {
  entries_.push_back({position, at});
}

bool PartitionAcks::Ack(int64_t position) {
  for (Entry& e : entries_) {
    if (e.position == position) {
      if (e.acked) return false;
      e.acked = true;
      DropAcknowledgedFront();
      return true;
    }
  }
  return false;
}

void PartitionAcks::DropAcknowledgedFront() {
  while (!entries_.empty() && entries_.front().acked) {
    dropped_ = entries_.front().at;
    entries_.pop_front();
  }
}

std::optional<EntryPosition> PartitionAcks::Advance() {
  return std::exchange(dropped_, std::nullopt);
}

}  // namespace bank::query
