#include "common/eventstore/group_commit.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace bank::eventstore {

// The caller's handle on a queued append; waits for the answer if dropped
// unanswered (the committer reads the caller's appends until then).
class GroupCommitEventStore::Ticket final : public PendingAppend {
 public:
  Ticket(GroupCommitEventStore* store, std::shared_ptr<Pending> p)
      : store_(store), p_(std::move(p)) {}
  ~Ticket() override {
    if (p_ != nullptr) (void)Wait();
  }
  absl::StatusOr<std::vector<StreamResult>> Wait() override {
    if (p_ == nullptr) return absl::FailedPreconditionError("waited twice");
    absl::MutexLock lock(&store_->mu_);
    // The answer always comes: a committer answers every item it takes,
    // even when its deadline has passed (the outcome must be known).
    store_->mu_.Await(absl::Condition(&p_->done));
    absl::StatusOr<std::vector<StreamResult>> out = std::move(p_->result);
    p_.reset();
    return out;
  }
  void Then(Callback done) override {
    if (p_ == nullptr) {
      done(absl::FailedPreconditionError("waited twice"));
      return;
    }
    std::shared_ptr<Pending> p = std::move(p_);
    {
      absl::MutexLock lock(&store_->mu_);
      // Not answered yet: the committer that answers it calls `done`.
      if (!p->done) {
        p->then = std::move(done);
        return;
      }
    }
    done(std::move(p->result));
  }

 private:
  GroupCommitEventStore* store_;
  std::shared_ptr<Pending> p_;
};

GroupCommitEventStore::GroupCommitEventStore(EventStore& reads,
                                             BatchAppender& appender,
                                             Options options)
    : reads_(reads), appender_(appender), options_(std::move(options)) {
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
  for (int i = 0; i < n; ++i)
    committers_.emplace_back([this] { CommitLoop(); });
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
  return StartAppend(appends, command, deadline)->Wait();
}

std::unique_ptr<PendingAppend> GroupCommitEventStore::StartAppend(
    const std::vector<StreamAppend>& appends, const CommandRecord* command,
    absl::Time deadline) {
  auto p = std::make_shared<Pending>();
  p->item = BatchItem{&appends, command, absl::Now()};
  p->deadline = deadline;
  absl::MutexLock lock(&mu_);
  if (appends.empty()) {
    p->result = absl::InvalidArgumentError("nothing to append");
    p->done = true;
  } else if (stopping_) {
    p->result = absl::UnavailableError("the event store is stopping");
    p->done = true;
  } else {
    queue_.push_back(p);
  }
  return std::make_unique<Ticket>(this, std::move(p));
}

bool GroupCommitEventStore::CanTake() const {
  if (stopping_) return true;
  if (busy_ > 0 &&
      queue_.size() < static_cast<size_t>(std::max(1, options_.join_backlog))) {
    return false;
  }
  absl::flat_hash_set<std::string> blocked;
  for (const auto& p : queue_) {
    bool free = true;
    for (const StreamAppend& a : *p->item.appends) {
      if (in_flight_.contains(a.stream_id) || blocked.contains(a.stream_id)) {
        free = false;
      }
    }
    if (free) return true;
    for (const StreamAppend& a : *p->item.appends) blocked.insert(a.stream_id);
  }
  return false;
}

void GroupCommitEventStore::TakeBatch(
    std::vector<std::shared_ptr<Pending>>& batch) {
  const size_t max_batch = std::clamp(options_.max_batch, 1, 32);
  absl::flat_hash_set<std::string> blocked;
  for (auto it = queue_.begin();
       it != queue_.end() && batch.size() < max_batch;) {
    bool free = true;
    for (const StreamAppend& a : *(*it)->item.appends) {
      if (in_flight_.contains(a.stream_id) || blocked.contains(a.stream_id)) {
        free = false;
      }
    }
    if (!free) {
      for (const StreamAppend& a : *(*it)->item.appends) {
        blocked.insert(a.stream_id);
      }
      ++it;
      continue;
    }
    batch.push_back(*it);
    it = queue_.erase(it);
  }
  // Claim the streams only now: appends in this batch may follow each other
  // on one stream (one transaction applies them in order).
  for (const auto& p : batch) {
    for (const StreamAppend& a : *p->item.appends) ++in_flight_[a.stream_id];
  }
}

void GroupCommitEventStore::CommitLoop() {
  while (true) {
    std::vector<std::shared_ptr<Pending>> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitEventStore* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
               self->mu_) { return self->CanTake(); },
          this));
      if (stopping_ && queue_.empty()) return;  // Nothing left to answer.
      TakeBatch(batch);
      if (batch.empty()) continue;  // Stopping; another committer holds them.
      ++busy_;
    }
    // Items whose caller has given up are answered without being sent.
    // Appends chained after one of them on a stream then fail their gap
    // check (ABORTED) and are retried by their callers.
    const absl::Time now = absl::Now();
    std::vector<BatchItem> items;
    std::vector<Pending*> sent;
    absl::Time deadline = now;
    for (const auto& p : batch) {
      if (p->deadline <= now) {
        p->result = absl::DeadlineExceededError(
            "deadline passed while waiting to be appended");
        continue;
      }
      items.push_back(p->item);
      sent.push_back(p.get());
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
    std::vector<Pending*> callbacks;
    {
      absl::MutexLock lock(&mu_);
      --busy_;
      for (const auto& p : batch) {
        for (const StreamAppend& a : *p->item.appends) {
          auto f = in_flight_.find(a.stream_id);
          if (--f->second == 0) in_flight_.erase(f);
        }
        p->done = true;
        if (p->then) callbacks.push_back(p.get());
      }
    }
    // Outside the lock: a callback may start the next append.
    for (Pending* p : callbacks) {
      PendingAppend::Callback then = std::move(p->then);
      p->then = nullptr;
      then(std::move(p->result));
    }
  }
}

}  // namespace bank::eventstore
