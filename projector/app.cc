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
#include "common/util/signals.h"

namespace bank::sql {
const std::vector<bank::db::Migration>& ReadMigrations();
}

namespace bank::projector {

int RunProjector(const ProjectorOptions& options, bool rebuild) {
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
