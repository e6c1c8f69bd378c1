#include "query-service/balance_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace bank::query {

BalanceBatcher::BalanceBatcher(ReadModelReader& reader, BalanceCache& cache,
                               int threads, size_t max_queue, size_t max_batch)
    : reader_(reader),
      cache_(cache),
      max_queue_(max_queue),
      max_batch_(max_batch) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

BalanceBatcher::~BalanceBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

bool BalanceBatcher::Submit(std::string account_id, absl::Time deadline,
                            Done done) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= max_queue_) return false;
  queue_.push_back(Pending{std::move(account_id), deadline, std::move(done)});
  return true;
}

void BalanceBatcher::Loop() {
  while (true) {
    std::vector<Pending> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BalanceBatcher* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (stopping_) {
        while (!queue_.empty()) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      } else {
        while (!queue_.empty() && batch.size() < max_batch_) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    if (batch.empty()) return;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    if (stopping) {
      for (Pending& p : batch) {
        p.done(absl::UnavailableError("query service shutting down"));
      }
      continue;
    }
    const absl::Time now = absl::Now();
    std::vector<std::string> ids;
    absl::Time deadline = now;
    for (const Pending& p : batch) {
      if (p.deadline > now) {
        ids.push_back(p.account_id);
        deadline = std::max(deadline, p.deadline);
      }
    }
    const uint64_t epoch = cache_.Epoch();
    absl::StatusOr<ReadModelReader::Balances> rows =
        ids.empty() ? absl::StatusOr<ReadModelReader::Balances>(
                          ReadModelReader::Balances())
                    : reader_.GetBalances(ids, deadline);
    absl::flat_hash_map<std::string, const v1::AccountBalance*> by_id;
    if (rows.ok()) {
      for (const v1::AccountBalance& b : rows->rows) {
        by_id[b.account_id()] = &b;
        cache_.Offer(epoch, rows->applied, b);
      }
    }
    for (Pending& p : batch) {
      if (p.deadline <= now) {
        p.done(absl::DeadlineExceededError("deadline passed while queued"));
      } else if (!rows.ok()) {
        p.done(rows.status());
      } else {
        auto it = by_id.find(p.account_id);
        p.done(it == by_id.end()
                   ? Result(std::optional<v1::AccountBalance>())
                   : Result(std::optional<v1::AccountBalance>(*it->second)));
      }
    }
  }
}

}  // namespace bank::query
