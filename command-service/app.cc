#include "command-service/app.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "command-service/command_handler.h"
#include "command-service/command_service.h"
#include "command-service/raw_command_service.h"
#include "common/db/migrations.h"
#include "common/db/uri.h"
#include "common/eventstore/commit_notifier.h"
#include "common/eventstore/group_commit.h"
#include "common/eventstore/pg_event_store.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/serving/serve.h"
#include "common/util/signals.h"
#include "common/util/worker_pool.h"

namespace bank::sql {
const std::vector<bank::db::Migration>& EventsMigrations();
}

namespace bank::command {

int RunCommandService(const Config& config) {
  spdlog::info("events database: {}", db::MaskPassword(config.events_db));
  if (absl::Status s = db::ApplyMigrations(
          config.events_migrate_db.empty() ? config.events_db
                                           : config.events_migrate_db,
          sql::EventsMigrations(), "bank_events_migrations");
      !s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  metrics::Registry registry;
  eventstore::PgEventStore store(
      {.uri = config.events_db, .pool_size = config.db_pool_size});
  registry.AddCallbackGauge("bank_db_pool_in_use",
                            "Database connections in use.",
                            [&] { return store.pool().in_use(); });
  registry.AddCallbackGauge("bank_db_pool_waiting",
                            "Callers waiting for a database connection.",
                            [&] { return store.pool().waiting(); });
  // Concurrent commands share transactions (group commit); a committer
  // holds one connection while its batch commits. Readers are woken after
  // commits, from outside the write path.
  eventstore::CommitNotifier notifier(config.events_db);
  eventstore::GroupCommitEventStore batched(
      store, store,
      {.max_batch = config.append_batch,
       .committers = std::min(config.append_committers, config.db_pool_size),
       .join_backlog = config.append_join_backlog,
       .metrics = &registry,
       .on_commit = [&notifier] { notifier.Committed(); }});
  // A command starts on gRPC's thread when its accounts are cached and free,
  // else on this pool, where it may wait for the database (a full queue
  // sheds load at once). After its append it is answered by the committer,
  // or finished on this pool when it needs the database again
  // (CommandHandler's *Async).
  util::WorkerPool pool(config.max_threads, config.max_in_flight);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  CommandHandler handler(
      batched,
      {.max_attempts = config.max_attempts,
       .snapshot_every = config.snapshot_every,
       .cache_capacity = static_cast<size_t>(config.cache_size),
       .instance_id = absl::StrCat("command-service@", host, ":", getpid()),
       .metrics = &registry,
       .offload = [&pool](std::function<void()> work) {
         return pool.TrySubmit(std::move(work));
       }});
  CommandServiceImpl service(handler, registry, config.max_in_flight);
  RawCommandService raw(service);  // What the server registers.
  auto server = grpcutil::Server::Start(
      {.listen = config.listen,
       .max_threads = config.max_threads,
       .tls_cert = config.tls_cert,
       .tls_key = config.tls_key,
       .tls_client_ca = config.tls_client_ca,
       .health_service_names = {v1::CommandService::service_full_name()}},
      {&raw});
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("command-service listening on {} (port {})", config.listen,
               (*server)->port());
  int code =
      serving::ServeUntilSignal(**server, registry,
                                {.db_uri = config.events_db,
                                 .db_label = "events database",
                                 .metrics_listen = config.metrics_listen,
                                 .shutdown_grace = config.shutdown_grace});
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::command
