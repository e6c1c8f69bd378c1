#include "common/eventstore/group_commit.h"

#include <algorithm>
#include <utility>

namespace bank::eventstore {

GroupCommitEventStore::GroupCommitEventStore(EventStore& reads,
                                             BatchAppender& appender,
                                             Options options)
    : reads_(reads), appender_(appender), options_(options) {
  metrics::Registry* m = options_.metrics;
  if (m == nullptr) {
    own_metrics_ = std::make_unique<metrics::Registry>();
    m = own_metrics_.get();
  }
  batches_ = &m->GetCounter("bank_append_batches_total",
                            "Transactions that appended a batch of commands.");
  batched_ = &m->GetCounter(
      "bank_append_batched_commands_total",
      "Commands appended through batches (divide by batches: batch size).");
  m->AddCallbackGauge("bank_append_queue_length",
                      "Appends waiting for a group-commit batch.",
                      [this] { return static_cast<double>(queued()); });
  const int n = std::max(1, options_.committers);
  for (int i = 0; i < n; ++i) committers_.emplace_back([this] { CommitLoop(); });
}

GroupCommitEventStore::~GroupCommitEventStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : committers_) t.join();
}

absl::StatusOr<std::vector<StreamResult>> GroupCommitEventStore::Append(
    const std::vector<StreamAppend>& appends, const CommandRecord* command,
    absl::Time deadline) {
  if (appends.empty()) return absl::InvalidArgumentError("nothing to append");
  Pending p;
  p.item = BatchItem{&appends, command};
  p.deadline = deadline;
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the event store is stopping");
  queue_.push_back(&p);
  // The answer always comes: a committer answers every item it takes, even
  // when its deadline has passed (the outcome must be known, not guessed).
  mu_.Await(absl::Condition(&p.done));
  return std::move(p.result);
}

void GroupCommitEventStore::CommitLoop() {
  const size_t max_batch = std::clamp(options_.max_batch, 1, 32);
  while (true) {
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitEventStore* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
               self->mu_) { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // Stopping, and nothing left to answer.
      while (!queue_.empty() && batch.size() < max_batch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    // Items whose caller has given up are answered without being sent.
    const absl::Time now = absl::Now();
    std::vector<BatchItem> items;
    std::vector<Pending*> sent;
    absl::Time deadline = now;
    for (Pending* p : batch) {
      if (p->deadline <= now) {
        p->result = absl::DeadlineExceededError(
            "deadline passed while waiting to be appended");
        continue;
      }
      items.push_back(p->item);
      sent.push_back(p);
      deadline = std::max(deadline, p->deadline);
    }
    if (!items.empty()) {
      std::vector<absl::StatusOr<std::vector<StreamResult>>> results =
          appender_.AppendBatch(items, deadline);
      for (size_t i = 0; i < sent.size(); ++i) {
        sent[i]->result =
            i < results.size()
                ? std::move(results[i])
                : absl::InternalError("the batch append lost an answer");
      }
      if (options_.on_commit &&
          std::any_of(sent.begin(), sent.end(),
                      [](const Pending* p) { return p->result.ok(); })) {
        options_.on_commit();
      }
      batches_->Inc();
      batched_->Inc(static_cast<double>(items.size()));
    }
    absl::MutexLock lock(&mu_);
    for (Pending* p : batch) p->done = true;
  }
}

}  // namespace bank::eventstore
