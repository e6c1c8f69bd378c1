#ifndef BANK_PROJECTOR_PROJECTOR_H_
#define BANK_PROJECTOR_PROJECTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "projector/event_reader.h"

namespace bank::projector {

class LiveWriter;
class LeaderLock;

struct ProjectorOptions {
  std::string events_db;
  std::string read_db;
  std::string projection = "accounts";
  int batch_size = 1000;
  // Events per transaction while behind (the last read filled a batch):
  // larger batches spread each transaction's fixed costs over more events
  // when working off a backlog. At least batch_size.
  int catch_up_batch_size = 5000;
  // Balance rows the live projector keeps from its own writes, so a batch
  // reads only the accounts it has not seen (0: read every batch's rows).
  int row_cache_size = 50000;
  // Catch-up from the checkpoint also runs this often without a notification.
  absl::Duration poll_interval = absl::Seconds(1);
  // How often a standby tries to become the active projector.
  absl::Duration standby_retry = absl::Seconds(1);
  bool skip_poison = false;
  absl::Duration max_backoff = absl::Seconds(5);
};

// Progress, readable from any thread (for logs, health and tests).
struct ProjectorStats {
  std::atomic<bool> active{false};  // Holds the single-projector lock.
  std::atomic<int64_t> events_applied{0};
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> checkpoint_position{0};
  std::atomic<int64_t> lag_events{0};
  std::atomic<int64_t> lag_micros{0};
  std::atomic<int64_t> reconnects{0};
  std::atomic<int64_t> poison_skipped{0};
  // The last round with the databases went well (active or standby).
  std::atomic<bool> healthy{false};
};

// Keeps the read model equal to the event store. Only one projector applies
// at a time (a session advisory lock on the read database); others wait as
// hot standbys. The active one LISTENs on the events channel and, on each
// wake-up, on its poll timer and after every (re)connect, reads every
// committed event after its checkpoint in batches and applies each batch with
// its checkpoint in one transaction. Notifications are only wake-ups:
// correctness never depends on one arriving.
class Projector {
 public:
  explicit Projector(ProjectorOptions options);
  ~Projector();

  // Runs until `stop` becomes true (returns OK) or a poison event stops the
  // projection (FAILED_PRECONDITION naming the event). Transient database
  // errors are retried with backoff.
  absl::Status Run(const std::atomic<bool>& stop);

  // Rebuilds the read model from the first event into shadow tables, then
  // swaps them in with the live checkpoint in one transaction: readers see
  // the old model until the swap, the new one after. Safe while a live
  // projector runs. Returns the number of events projected.
  absl::StatusOr<int64_t> Rebuild(const std::atomic<bool>& stop);

  const ProjectorStats& stats() const { return stats_; }

 private:
  // Reads and applies until caught up. FAILED_PRECONDITION on poison.
  absl::Status CatchUp(LiveWriter& writer, Checkpoint& checkpoint,
                       const std::atomic<bool>& stop);
  // Updates the lag gauges (stats_), at most once per kLagReportInterval.
  void ReportLag(const Checkpoint& checkpoint);
  static constexpr absl::Duration kLagReportInterval = absl::Milliseconds(100);

  const ProjectorOptions options_;
  ProjectorStats stats_;
  EventReader reader_;
  std::unique_ptr<LeaderLock> lock_;
  absl::Time last_lag_log_ = absl::InfinitePast();
  absl::Time last_lag_report_ = absl::InfinitePast();
};

}  // namespace bank::projector

#endif  // BANK_PROJECTOR_PROJECTOR_H_
