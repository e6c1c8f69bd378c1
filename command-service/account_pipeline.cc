#include "command-service/account_pipeline.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace bank::command {

AccountPipeline::Turn::Turn(AccountPipeline& pipeline,
                            const std::vector<std::string>& account_ids,
                            bool try_only)
    : pipeline_(pipeline) {
  for (const std::string& id : account_ids) {
    stripes_.push_back(absl::Hash<std::string>()(id) % kStripes);
  }
  std::sort(stripes_.begin(), stripes_.end());
  stripes_.erase(std::unique(stripes_.begin(), stripes_.end()), stripes_.end());
  for (size_t i = 0; i < stripes_.size(); ++i) {
    absl::Mutex& m = pipeline_.stripes_[stripes_[i]];
    if (!try_only) {
      m.Lock();
    } else if (!m.TryLock()) {
      while (i > 0) pipeline_.stripes_[stripes_[--i]].Unlock();
      return;
    }
  }
  held_ = true;
}

AccountPipeline::Turn::~Turn() {
  if (!held_) return;
  for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) {
    pipeline_.stripes_[*it].Unlock();
  }
}

std::vector<int64_t> AccountPipeline::StartFlight(
    const std::vector<std::string>& account_ids,
    const std::vector<eventstore::StreamAppend>& appends) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> seqs;
  for (const std::string& id : account_ids) {
    Flight& f = flights_[id];
    seqs.push_back(++f.started);
    for (const eventstore::StreamAppend& a : appends) {
      if (a.stream_id != id || a.events.empty()) continue;
      f.tip = Tip{a.expected_version + static_cast<int64_t>(a.events.size()),
                  a.events.back().event_id};
    }
  }
  return seqs;
}

void AccountPipeline::EndFlight(const std::vector<std::string>& account_ids,
                                const std::vector<int64_t>& seqs) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < account_ids.size() && i < seqs.size(); ++i) {
    auto it = flights_.find(account_ids[i]);
    if (it == flights_.end()) continue;
    it->second.settled = std::max(it->second.settled, seqs[i]);
    if (it->second.settled >= it->second.started) flights_.erase(it);
  }
}

std::vector<std::optional<AccountPipeline::Tip>> AccountPipeline::Tips(
    const std::vector<std::string>& account_ids) {
  absl::MutexLock lock(&mu_);
  std::vector<std::optional<Tip>> tips;
  for (const std::string& id : account_ids) {
    auto it = flights_.find(id);
    tips.push_back(it == flights_.end() ? std::nullopt : it->second.tip);
  }
  return tips;
}

bool AccountPipeline::InFlight(const std::vector<std::string>& account_ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : account_ids) {
    if (flights_.contains(id)) return true;
  }
  return false;
}

bool AccountPipeline::AwaitLanded(const std::vector<std::string>& account_ids,
                                  absl::Time deadline) {
  struct Args {
    AccountPipeline* self;
    const std::vector<std::string>* ids;
  } args{this, &account_ids};
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->self->mu_) {
            for (const std::string& id : *a->ids) {
              if (a->self->flights_.contains(id)) return false;
            }
            return true;
          },
          &args),
      deadline);
}

}  // namespace bank::command
