#include "query-service/balance_cache.h"

#include <google/protobuf/util/time_util.h>

namespace bank::query {

BalanceCache::BalanceCache(size_t capacity) : capacity_(capacity) {}

uint64_t BalanceCache::Epoch() const {
  absl::ReaderMutexLock lock(&mu_);
  return epoch_;
}

bool BalanceCache::Get(const std::string& account_id, int64_t min_version,
                       v1::AccountBalance* out) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = rows_.find(account_id);
  if (it == rows_.end() || it->second.version() < min_version) return false;
  *out = it->second;
  return true;
}

void BalanceCache::Offer(uint64_t epoch, int64_t applied,
                         const v1::AccountBalance& row) {
  absl::MutexLock lock(&mu_);
  auto it = rows_.find(row.account_id());
  if (!enabled_ || epoch != epoch_ || applied < applied_) {
    // Not admitted; but a cached row older than this one is stale for sure.
    if (it != rows_.end() && it->second.version() < row.version()) {
      rows_.erase(it);
    }
    return;
  }
  if (it != rows_.end()) {
    if (it->second.version() < row.version()) it->second = row;
    return;
  }
  if (rows_.size() >= capacity_) {
    if (capacity_ == 0) return;
    rows_.erase(rows_.begin());
  }
  rows_.emplace(row.account_id(), row);
}

void BalanceCache::Apply(const readmodel::ProgressNotice& notice) {
  absl::MutexLock lock(&mu_);
  if (notice.reset) {
    ClearLocked();
    applied_ = 0;
    return;
  }
  applied_ = std::max(applied_, notice.applied);
  for (const readmodel::MovedAccount& moved : notice.accounts) {
    auto it = rows_.find(moved.account_id);
    if (it == rows_.end()) {
      // The whole row, exact as of this batch (later ones are noticed):
      // admitted like a read.
      if (!enabled_ || !moved.has_row || moved.owner.empty()) continue;
      if (rows_.size() >= capacity_) rows_.erase(rows_.begin());
      it = rows_.emplace(moved.account_id, v1::AccountBalance()).first;
      it->second.set_account_id(moved.account_id);
      it->second.set_owner(moved.owner);
      it->second.set_currency(moved.currency);
    } else if (it->second.version() >= moved.version) {
      continue;
    } else if (!moved.has_row) {
      rows_.erase(it);
      continue;
    }
    // The batch's row, as committed: owner and currency never change.
    v1::AccountBalance& row = it->second;
    row.set_version(moved.version);
    row.set_balance(moved.balance);
    row.set_status(static_cast<v1::AccountStatus>(moved.status));
    *row.mutable_updated_at() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
            moved.updated_us);
  }
}

void BalanceCache::Start() {
  absl::MutexLock lock(&mu_);
  ClearLocked();
  applied_ = 0;
  enabled_ = capacity_ > 0;
}

void BalanceCache::Stop() {
  absl::MutexLock lock(&mu_);
  ClearLocked();
  enabled_ = false;
}

size_t BalanceCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return rows_.size();
}

void BalanceCache::ClearLocked() {
  rows_.clear();
  ++epoch_;
}

}  // namespace bank::query
