#include "query-service/progress_follower.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <pqxx/pqxx>
#include <tuple>
#include <vector>

#include "common/db/pg_status.h"
#include "common/log/log.h"
#include "common/readmodel/progress_notice.h"

namespace bank::query {
namespace {

// A streaming replica cannot LISTEN (and NOTIFY is not replicated): there,
// waiters are served by polling this often.
constexpr absl::Duration kReplicaPoll = absl::Milliseconds(10);

class Progress : public pqxx::notification_receiver {
 public:
  Progress(pqxx::connection_base& c, BalanceCache& cache,
           ProgressFollower::Listener* listener)
      : pqxx::notification_receiver(c, readmodel::kProgressChannel),
        cache_(cache),
        listener_(listener) {}
  void operator()(const std::string& payload, int) override {
    readmodel::ProgressNotice notice = readmodel::DecodeProgress(payload);
    cache_.Apply(notice);
    if (listener_ != nullptr) listener_->OnNotice(notice);
  }

 private:
  BalanceCache& cache_;
  ProgressFollower::Listener* const listener_;
};

}  // namespace

ProgressFollower::ProgressFollower(std::string uri, ReadModelReader& reader,
                                   BalanceCache& cache, size_t max_waiters,
                                   absl::Duration safety_poll,
                                   Listener* listener)
    : uri_(std::move(uri)),
      reader_(reader),
      cache_(cache),
      safety_poll_(safety_poll),
      listener_(listener),
      max_waiters_(max_waiters) {
  thread_ = std::thread([this] { Loop(); });
}

ProgressFollower::~ProgressFollower() {
  stopping_ = true;
  thread_.join();
  absl::flat_hash_map<uint64_t, Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiters_);
  }
  for (auto& [id, w] : left) w.done(Outcome::kShutdown, nullptr);
}

std::optional<uint64_t> ProgressFollower::Add(const std::string& account_id,
                                              int64_t min_version,
                                              absl::Time deadline, Done done) {
  absl::MutexLock lock(&mu_);
  if (waiters_.size() >= max_waiters_) return std::nullopt;
  uint64_t id = next_id_++;
  waiters_.emplace(id,
                   Waiter{account_id, min_version, deadline, std::move(done)});
  return id;
}

void ProgressFollower::Offer(uint64_t id, const v1::AccountBalance& balance) {
  Done done;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end() || balance.version() < it->second.min_version) {
      return;
    }
    done = std::move(it->second.done);
    waiters_.erase(it);
  }
  done(Outcome::kReached, &balance);
}

bool ProgressFollower::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  return waiters_.erase(id) > 0;
}

size_t ProgressFollower::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

void ProgressFollower::Check(bool notified) {
  std::vector<std::tuple<Done, Outcome, const v1::AccountBalance*>> finished;
  // The rows answered from the cache and the balances read; `finished`
  // points into them.
  std::deque<v1::AccountBalance> cached;
  absl::StatusOr<ReadModelReader::Balances> balances;
  std::vector<std::string> accounts;
  absl::Time now = absl::Now();
  // Woken by notices, the cache is exact as of the last one: a waiter whose
  // account it holds below the version waits for a later notice, without a
  // read. Otherwise (a safety poll, and at least once per safety_poll_ in
  // any case) every waiter's account is read.
  const bool trust_cache = notified && now - last_read_all_ < safety_poll_;
  if (!trust_cache) last_read_all_ = now;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Waiter& w = it->second;
      if (w.deadline <= now) {
        finished.emplace_back(std::move(w.done), Outcome::kDeadline, nullptr);
        waiters_.erase(it++);
        continue;
      }
      v1::AccountBalance row;
      const bool held = cache_.Get(w.account_id, 0, &row);
      if (held && row.version() >= w.min_version) {
        finished.emplace_back(std::move(w.done), Outcome::kReached,
                              &cached.emplace_back(std::move(row)));
        waiters_.erase(it++);
        continue;
      }
      if (!held || !trust_cache) accounts.push_back(w.account_id);
      ++it;
    }
  }
  if (!accounts.empty()) {
    std::sort(accounts.begin(), accounts.end());
    accounts.erase(std::unique(accounts.begin(), accounts.end()),
                   accounts.end());
    const uint64_t epoch = cache_.Epoch();
    balances = reader_.GetBalances(accounts, absl::Now() + absl::Seconds(2));
    if (balances.ok()) {
      absl::flat_hash_map<std::string, const v1::AccountBalance*> by_id;
      for (const v1::AccountBalance& b : balances->rows) {
        by_id[b.account_id()] = &b;
        cache_.Offer(epoch, balances->applied, b);
      }
      absl::MutexLock lock(&mu_);
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        auto b = by_id.find(it->second.account_id);
        if (b != by_id.end() &&
            b->second->version() >= it->second.min_version) {
          finished.emplace_back(std::move(it->second.done), Outcome::kReached,
                                b->second);
          waiters_.erase(it++);
        } else {
          ++it;
        }
      }
    } else {
      spdlog::warn("reading balances for waiters: {}",
                   balances.status().message());
    }
  }
  for (auto& [done, outcome, balance] : finished) done(outcome, balance);
}

void ProgressFollower::Loop() {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<Progress> progress;
  bool replica = false;
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stopping_.load()) {
    bool notified = false;
    absl::Duration wait = replica ? kReplicaPoll : safety_poll_;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, w] : waiters_) {
        wait = std::min(wait, w.deadline - absl::Now());
      }
    }
    wait = std::max(wait, absl::Milliseconds(1));
    try {
      if (conn == nullptr || !conn->is_open()) {
        progress.reset();
        conn = std::make_unique<pqxx::connection>(uri_);
        conn->set_variable("application_name", "'bank-query-listen'");
        const bool was_replica = replica;
        {
          pqxx::nontransaction tx(*conn);
          replica = tx.exec("SELECT pg_is_in_recovery()")[0][0].as<bool>();
        }
        if (replica != was_replica) {
          spdlog::info(replica ? "read database is a streaming replica: "
                                 "read-your-writes waits poll every 10 ms"
                               : "read database is a primary: read-your-writes "
                                 "waits follow the projector's notifications");
        }
        if (!replica) {
          // LISTEN is in place from here: every batch committed from now
          // on is noticed, so the cache can start.
          progress = std::make_unique<Progress>(*conn, cache_, listener_);
          cache_.Start();
        }
        conn->get_notifs();
        backoff = absl::Milliseconds(100);
      }
      int64_t us = absl::ToInt64Microseconds(wait);
      notified = conn->await_notification(us / 1000000, us % 1000000) > 0;
      notified = conn->get_notifs() > 0 || notified;  // A burst: one check.
    } catch (const std::exception& e) {
      cache_.Stop();  // Notices may be missed until the LISTEN is back.
      spdlog::warn("progress listener: {}",
                   db::StatusFromException(e, "listening").message());
      progress.reset();
      conn.reset();
      absl::SleepFor(std::min(backoff, safety_poll_));
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
    Check(notified);
    if (listener_ != nullptr) listener_->OnTick(replica);
  }
}

}  // namespace bank::query
