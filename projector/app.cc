#include "projector/app.h"

#include <atomic>

#include "common/db/migrations.h"
#include "common/db/run.h"
#include "common/db/uri.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/serving/serve.h"
#include "sql/migrations.h"

namespace bank::projector {

namespace {

void RegisterMetrics(metrics::Registry& r, const ProjectorStats& s) {
  r.AddCallbackCounter("bank_projector_events_applied_total",
                       "Events applied to the read model.",
                       [&s] { return s.events_applied.load(); });
  r.AddCallbackCounter("bank_projector_batches_total", "Batches applied.",
                       [&s] { return s.batches.load(); });
  r.AddCallbackCounter("bank_projector_reconnects_total",
                       "(Re)connections of the listening connection.",
                       [&s] { return s.reconnects.load(); });
  r.AddCallbackCounter("bank_projector_poison_skipped_total",
                       "Events recorded in poison_events and skipped.",
                       [&s] { return s.poison_skipped.load(); });
  r.AddCallbackGauge("bank_projector_lag_events",
                     "About how many events the read model is behind.",
                     [&s] { return s.lag_events.load(); });
  r.AddCallbackGauge("bank_projector_lag_seconds",
                     "Age of the oldest event not yet applied.",
                     [&s] { return s.lag_micros.load() / 1e6; });
  r.AddCallbackGauge("bank_projector_checkpoint_position",
                     "Position of the last event applied.",
                     [&s] { return s.checkpoint_position.load(); });
  r.AddCallbackGauge("bank_projector_active",
                     "1 when this projector holds the lock and applies events.",
                     [&s] { return s.active.load() ? 1 : 0; });
}

}  // namespace

int RunProjector(const ProjectorOptions& options, bool rebuild,
                 const std::string& metrics_listen) {
  spdlog::info("events database: {}", db::MaskPassword(options.events_db));
  spdlog::info("read database: {}", db::MaskPassword(options.read_db));
  if (absl::Status s = db::ApplyMigrations(
          options.read_db, sql::ReadMigrations(), "bank_read_migrations");
      !s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  if (absl::Status s = db::CheckReachable(options.events_db, "events database");
      !s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  Projector projector(options);
  metrics::Registry registry;
  RegisterMetrics(registry, projector.stats());
  // A rebuild is a one-off job beside the live projector: no endpoint.
  const int code = serving::RunUntilSignal(
      registry, rebuild ? "" : metrics_listen,
      [&projector] { return projector.stats().healthy.load(); },
      [&](const std::atomic<bool>& stop) {
        if (rebuild) {
          absl::StatusOr<int64_t> n = projector.Rebuild(stop);
          if (n.ok()) return 0;
          spdlog::error("rebuild failed: {}", n.status().message());
          return n.status().code() == absl::StatusCode::kFailedPrecondition ? 3
                                                                            : 1;
        }
        return projector.Run(stop).ok() ? 0 : 3;
      });
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::projector
