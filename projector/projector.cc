#include "projector/projector.h"

#include <algorithm>
#include <future>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/db/run.h"
#include "common/log/log.h"
#include "projector/live_writer.h"
#include "projector/rebuild_writer.h"

namespace bank::projector {
namespace {

constexpr char kTryLockSql[] =
    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))";
constexpr char kPingSql[] = "SELECT 1";
constexpr char kEventsChannel[] = "bank_events";

// Counts wake-ups; the projector drains them all before each catch-up, so a
// burst of notifications costs one more read, not one per notification.
class WakeUps : public pqxx::notification_receiver {
 public:
  WakeUps(pqxx::connection_base& c)
      : pqxx::notification_receiver(c, kEventsChannel) {}
  void operator()(const std::string&, int) override { ++count; }
  int64_t count = 0;
};

void SleepUnlessStopped(absl::Duration d, const std::atomic<bool>& stop) {
  absl::Time end = absl::Now() + d;
  while (!stop.load() && absl::Now() < end) {
    absl::SleepFor(std::min(absl::Milliseconds(50), end - absl::Now()));
  }
}

}  // namespace

// The single-projector lock: a session advisory lock on the read database,
// held for as long as its connection lives. Its session is never reopened
// behind the holder's back: once the connection breaks, the lock is gone.
class LeaderLock {
 public:
  LeaderLock(const std::string& uri, std::string projection)
      : key_(absl::StrCat("bank-projector:", projection)),
        session_({.uri = uri, .application_name = "bank-projector-lock"}) {}

  // True when this process now holds the lock; false when another does, or
  // the read database cannot be reached (reachable() says which).
  bool TryAcquire() {
    absl::StatusOr<bool> got = session_.Run(
        "locking", [&](pqxx::connection& c) -> absl::StatusOr<bool> {
          pqxx::nontransaction tx(c);
          return tx.exec_params1(kTryLockSql, key_)[0].as<bool>();
        });
    reachable_ = got.ok();
    if (!got.ok()) {
      session_.Disconnect();
      spdlog::warn("cannot reach the read database for the projector lock: {}",
                   got.status().message());
      return false;
    }
    return *got;
  }

  // False once the lock's connection has broken (the lock went with it).
  bool StillHeld() {
    if (!session_.connected()) return false;
    absl::Status s = session_.Run("checking the lock", [](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec(kPingSql);
      return absl::OkStatus();
    });
    if (!s.ok()) session_.Disconnect();
    return s.ok();
  }

  bool reachable() const { return reachable_; }

 private:
  const std::string key_;
  db::Session session_;
  bool reachable_ = false;
};

Projector::Projector(ProjectorOptions options)
    : options_(std::move(options)),
      reader_(options_.events_db),
      lock_(std::make_unique<LeaderLock>(options_.read_db,
                                         options_.projection)) {}

Projector::~Projector() = default;

void Projector::ReportLag(const Checkpoint& checkpoint) {
  // A round trip to the events table: under load the projector wakes up
  // hundreds of times a second, the gauges need not.
  const absl::Time now = absl::Now();
  if (now - last_lag_report_ < kLagReportInterval) return;
  last_lag_report_ = now;
  absl::StatusOr<HeadInfo> head = reader_.Head(checkpoint);
  if (!head.ok()) return;
  int64_t lag_events =
      std::max<int64_t>(0, head->head_position - checkpoint.position);
  int64_t lag_us =
      head->oldest_pending.has_value()
          ? std::max<int64_t>(0, absl::ToInt64Microseconds(
                                     absl::Now() - *head->oldest_pending))
          : 0;
  if (!head->oldest_pending.has_value()) lag_events = 0;
  stats_.lag_events = lag_events;
  stats_.lag_micros = lag_us;
  if (lag_events > 0 && absl::Now() - last_lag_log_ > absl::Seconds(10)) {
    last_lag_log_ = absl::Now();
    spdlog::info("lag: about {} events, {:.3f} s behind the head (position {})",
                 lag_events, lag_us / 1e6, head->head_position);
  }
}

absl::Status Projector::CatchUp(LiveWriter& writer, Checkpoint& checkpoint,
                                const std::atomic<bool>& stop) {
  // Behind (the last read filled a batch): read with a binary COPY, which
  // costs PostgreSQL about half as much per event; else the prepared query,
  // cheaper for the few events of a live wake-up.
  // Behind, batches of catch_up_batch_size spread each transaction's fixed
  // costs (checkpoint lock, statements, commit, NOTIFY) over more events.
  bool behind = false;
  while (!stop.load()) {
    const int limit =
        behind ? std::max(options_.batch_size, options_.catch_up_batch_size)
               : options_.batch_size;
    absl::StatusOr<std::vector<eventstore::RecordedEvent>> events =
        behind ? reader_.CopyAfter(checkpoint, limit)
               : reader_.ReadAfter(checkpoint, limit);
    if (!events.ok()) return events.status();
    if (events->empty()) break;
    absl::StatusOr<BatchResult> r =
        writer.ApplyBatch(checkpoint, *events, options_.skip_poison);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kAborted) {
        spdlog::warn("{}; reloading the checkpoint", r.status().message());
        absl::StatusOr<Checkpoint> c = writer.LoadCheckpoint();
        if (!c.ok()) return c.status();
        checkpoint = *c;
        continue;
      }
      return r.status();
    }
    checkpoint = r->checkpoint;
    stats_.events_applied += r->applied;
    stats_.batches += 1;
    stats_.checkpoint_position = checkpoint.position;
    stats_.poison_skipped += r->poison;
    if (r->poison > 0) {
      spdlog::error(
          "skipped {} poison event(s) up to position {}; see the "
          "poison_events table",
          r->poison, checkpoint.position);
    }
    spdlog::debug("applied {} events ({} duplicates) up to position {}",
                  r->applied, r->duplicates, checkpoint.position);
    if (static_cast<int>(events->size()) < limit) break;
    behind = true;
  }
  ReportLag(checkpoint);
  return absl::OkStatus();
}

absl::Status Projector::Run(const std::atomic<bool>& stop) {
  LiveWriter writer(options_.read_db, options_.projection,
                    options_.row_cache_size);
  absl::Duration backoff = absl::Milliseconds(100);
  bool said_standby = false;
  std::unique_ptr<pqxx::connection> listen_conn;
  std::unique_ptr<WakeUps> wakeups;
  absl::Time last_lock_check = absl::Now();
  std::optional<Checkpoint> checkpoint;  // Reloaded after any failure.
  while (!stop.load()) {
    if (!stats_.active.load()) {
      if (!lock_->TryAcquire()) {
        stats_.healthy = lock_->reachable();  // Someone else leads.
        if (!said_standby) {
          spdlog::info("another projector is active; waiting as a standby");
          said_standby = true;
        }
        SleepUnlessStopped(options_.standby_retry, stop);
        continue;
      }
      stats_.active = true;
      spdlog::info("active: this projector applies events");
    }
    absl::Status s;
    try {
      if (listen_conn == nullptr || !listen_conn->is_open()) {
        wakeups.reset();
        listen_conn = std::make_unique<pqxx::connection>(options_.events_db);
        listen_conn->set_variable("application_name",
                                  "'bank-projector-listen'");
        // LISTEN first, then catch up: nothing committed in between is missed.
        wakeups = std::make_unique<WakeUps>(*listen_conn);
        listen_conn->get_notifs();
        stats_.reconnects += 1;
      }
      if (!checkpoint.has_value()) {
        absl::StatusOr<Checkpoint> loaded = writer.LoadCheckpoint();
        s = loaded.status();
        if (s.ok()) checkpoint = *loaded;
      }
      if (s.ok()) s = CatchUp(writer, *checkpoint, stop);
      if (s.code() == absl::StatusCode::kFailedPrecondition) {
        stats_.healthy = false;
        spdlog::error("projection stopped: {}", s.message());
        return s;
      }
      if (s.ok()) {
        stats_.healthy = true;
        backoff = absl::Milliseconds(100);
        // Sleep until a notification or the safety poll; drain every pending
        // notification so a burst costs one catch-up.
        absl::Duration wait = options_.poll_interval;
        int64_t us = absl::ToInt64Microseconds(wait);
        listen_conn->await_notification(us / 1000000, us % 1000000);
        listen_conn->get_notifs();
      }
    } catch (const std::exception& e) {
      s = db::StatusFromException(e, "listening for events");
      listen_conn.reset();
      wakeups.reset();
    }
    if (!s.ok()) {
      stats_.healthy = false;
      checkpoint.reset();
      spdlog::warn("{}; retrying in {}", s.message(),
                   absl::FormatDuration(backoff));
      reader_.Disconnect();
      writer.Disconnect();
      SleepUnlessStopped(backoff, stop);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    // Leadership: if the lock's connection died, the lock is gone.
    if (absl::Now() - last_lock_check >= options_.poll_interval) {
      last_lock_check = absl::Now();
      if (!lock_->StillHeld()) {
        spdlog::warn("lost the projector lock's connection; standing by");
        stats_.active = false;
        said_standby = false;
        checkpoint.reset();
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Projector::Rebuild(const std::atomic<bool>& stop) {
  RebuildWriter writer(options_.read_db, options_.projection);
  if (absl::Status s = writer.Reset(); !s.ok()) return s;
  // Every account's state while loading: one row per account in memory.
  absl::flat_hash_map<std::string, AccountFold> state;
  Checkpoint c;
  int64_t projected = 0;
  absl::Time start = absl::Now();
  // The next batch is read while the current one is written.
  EventReader ahead(options_.events_db);
  absl::StatusOr<std::vector<eventstore::RecordedEvent>> batch =
      reader_.CopyAfter(c, options_.batch_size);
  bool use_ahead = true;
  while (!stop.load()) {
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    Checkpoint next{batch->back().transaction_id, batch->back().position};
    EventReader& r = use_ahead ? ahead : reader_;
    use_ahead = !use_ahead;
    auto pending = std::async(std::launch::async, [&r, next, this] {
      return r.CopyAfter(next, options_.batch_size);
    });
    absl::StatusOr<BatchResult> applied =
        writer.Load(*batch, state, options_.skip_poison);
    batch = pending.get();
    if (!applied.ok()) return applied.status();
    c = applied->checkpoint;
    projected += applied->applied;
  }
  if (stop.load()) return absl::CancelledError("rebuild interrupted");
  absl::Time loaded = absl::Now();
  if (absl::Status s = writer.Finish(state, c); !s.ok()) return s;
  absl::Time indexed = absl::Now();
  absl::StatusOr<Checkpoint> final_c =
      writer.SwapIn(reader_, options_.batch_size);
  if (!final_c.ok()) return final_c.status();
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  spdlog::info(
      "rebuild done: {} events in {:.2f} s ({:.0f} events/s; load "
      "{:.2f} s, index {:.2f} s, swap {:.2f} s), swapped in at position {}",
      projected, secs, secs > 0 ? projected / secs : 0.0,
      absl::ToDoubleSeconds(loaded - start),
      absl::ToDoubleSeconds(indexed - loaded),
      absl::ToDoubleSeconds(absl::Now() - indexed), final_c->position);
  return projected;
}

}  // namespace bank::projector
