#include "command-service/app.h"

#include <memory>

#include "command-service/service_stack.h"
#include "common/db/migrations.h"
#include "common/db/uri.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/serving/serve.h"
#include "common/util/signals.h"
#include "sql/migrations.h"

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
  if (config.migrate_only) {
    spdlog::info("events database migrated");
    return 0;
  }
  metrics::Registry registry;
  CommandServiceStack stack(config, registry);
  grpcutil::ServerOptions options = serving::ServerOptionsOf(config.server);
  options.max_threads = config.max_threads;
  options.health_service_names = {v1::CommandService::service_full_name()};
  auto server = grpcutil::Server::Start(options, {&stack.service()});
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("command-service listening on {} (port {})",
               config.server.listen, (*server)->port());
  int code = serving::ServeUntilSignal(
      **server, registry,
      {.db_uri = config.events_db,
       .db_label = "events database",
       .metrics_listen = config.process.metrics_listen,
       .shutdown_grace = config.server.shutdown_grace});
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::command
