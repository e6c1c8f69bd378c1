#include "projector/app.h"

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <pqxx/pqxx>
#include <thread>

#include "common/db/migrations.h"
#include "common/db/pg_status.h"
#include "common/db/uri.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/signals.h"
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
  try {
    pqxx::connection probe(options.events_db);
  } catch (const std::exception& e) {
    spdlog::error(
        "cannot start: {}",
        db::StatusFromException(e, "connecting to the events database")
            .message());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread signals([&] {
    while (!done.load()) {
      int sig = util::WaitForTerminationSignal();
      if (sig == 0 || done.load()) break;
      spdlog::info("signal {}: stopping after the current batch", sig);
      stop = true;
      break;
    }
  });
  Projector projector(options);
  metrics::Registry registry;
  RegisterMetrics(registry, projector.stats());
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (!metrics_listen.empty() && !rebuild) {
    auto e = metrics::HttpExporter::Start(
        metrics_listen, registry,
        [&projector] { return projector.stats().healthy.load(); });
    if (!e.ok()) {
      spdlog::error("cannot start: {}", e.status().message());
      stop = true;
      done = true;
      pthread_kill(signals.native_handle(), SIGTERM);
      signals.join();
      return 1;
    }
    exporter = *std::move(e);
    spdlog::info("metrics on {} (port {})", metrics_listen, exporter->port());
  }
  int code = 0;
  if (rebuild) {
    absl::StatusOr<int64_t> n = projector.Rebuild(stop);
    if (!n.ok()) {
      spdlog::error("rebuild failed: {}", n.status().message());
      code = n.status().code() == absl::StatusCode::kFailedPrecondition ? 3 : 1;
    }
  } else {
    absl::Status s = projector.Run(stop);
    if (!s.ok()) code = 3;
  }
  done = true;
  if (!stop.load()) {
    // Wake the signal thread so it can finish.
    pthread_kill(signals.native_handle(), SIGTERM);
  }
  signals.join();
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::projector
