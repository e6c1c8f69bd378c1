#ifndef BANK_COMMAND_SERVICE_ACCOUNT_CACHE_H_
#define BANK_COMMAND_SERVICE_ACCOUNT_CACHE_H_

#include <cstddef>
#include <list>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/domain/bank_account.h"

namespace bank::command {

// A bounded LRU cache of account states: the state after this process's
// latest append to the account, committed or still in flight (the command
// handler erases an entry when its append fails or its outcome is unknown).
// An entry may be behind when another instance wrote since (the store's
// unique constraint catches that on append), or ahead of the stored stream
// by appends in flight (appends built on it fail if those fail: the store's
// gap check). Thread-safe.
class AccountCache {
 public:
  explicit AccountCache(size_t capacity) : capacity_(capacity) {}

  std::optional<domain::AccountState> Get(const std::string& id);
  // Keeps the newer of the cached and the given state.
  void Put(const domain::AccountState& state);
  void Erase(const std::string& id);
  size_t size() const;

 private:
  using Lru = std::list<domain::AccountState>;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // Most recently used first.
  absl::flat_hash_map<std::string, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_ACCOUNT_CACHE_H_
