#include "command-service/account_cache.h"

namespace bank::command {

std::optional<domain::AccountState> AccountCache::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return *it->second;
}

void AccountCache::Put(const domain::AccountState& state) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(state.id);
  if (it != index_.end()) {
    if (it->second->version <= state.version) *it->second = state;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(state);
  index_[state.id] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().id);
    lru_.pop_back();
  }
}

void AccountCache::Erase(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

size_t AccountCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace bank::command
