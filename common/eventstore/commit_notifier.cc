#include "common/eventstore/commit_notifier.h"

#include <algorithm>
#include <memory>
#include <pqxx/pqxx>
#include <utility>

#include "common/db/pg_status.h"
#include "common/log/log.h"

namespace bank::eventstore {
namespace {

// The channel the projector listens on (sql/events/004_notify_after_commit).
constexpr char kNotifySql[] = "NOTIFY bank_events";

}  // namespace

CommitNotifier::CommitNotifier(std::string uri, absl::Duration min_interval)
    : uri_(std::move(uri)), min_interval_(min_interval) {
  thread_ = std::thread([this] { Loop(); });
}

CommitNotifier::~CommitNotifier() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void CommitNotifier::Committed() {
  absl::MutexLock lock(&mu_);
  pending_ = true;
}

void CommitNotifier::Loop() {
  std::unique_ptr<pqxx::connection> conn;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CommitNotifier* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->pending_ || self->stopping_;
          },
          this));
      if (stopping_) return;
      pending_ = false;
    }
    const absl::Time started = absl::Now();
    try {
      if (conn == nullptr || !conn->is_open()) {
        conn = std::make_unique<pqxx::connection>(uri_);
        conn->set_variable("application_name", "'bank-commit-notifier'");
        backoff = absl::Milliseconds(100);
      }
      pqxx::nontransaction tx(*conn);
      tx.exec(kNotifySql);
      sent_.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& e) {
      spdlog::warn("waking the projector: {}",
                   db::StatusFromException(e, "notifying").message());
      conn.reset();
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
    // Commits that land meanwhile share the next NOTIFY.
    absl::SleepFor(min_interval_ - (absl::Now() - started));
  }
}

}  // namespace bank::eventstore
