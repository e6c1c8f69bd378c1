#include "query-service/app.h"

#include <atomic>
#include <memory>

#include "common/db/run.h"
#include "common/db/uri.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/serving/serve.h"
#include "common/util/signals.h"
#include "query-service/group_coordinator.h"
#include "query-service/query_grpc_service.h"
#include "query-service/query_service.h"

namespace bank::query {

int RunQueryService(const Config& config) {
  spdlog::info("read database: {}", db::MaskPassword(config.read_db));
  if (absl::Status s = db::CheckReachable(config.read_db, "read database");
      !s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  ReadModelReader reader(config.read_db, config.server.db_pool_size,
                         config.server.db_outage_wait);
  util::WorkerPool pool(config.workers, config.max_queue);
  BalanceCache cache(static_cast<size_t>(config.balance_cache_size));
  metrics::Registry registry;
  StreamHub streams(reader, registry,
                    {.max_streams = config.max_streams,
                     .outage_wait = config.server.db_outage_wait});
  auto waiter = std::make_unique<ProgressFollower>(
      config.read_db, reader, cache, static_cast<size_t>(config.max_waiters),
      absl::Milliseconds(100), &streams);
  QueryServiceImpl service(reader, cache, *waiter, pool, registry,
                           {.max_wait = config.max_wait});
  GroupStore group_store(
      config.groups_db.empty() ? config.read_db : config.groups_db,
      /*pool_size=*/4, config.server.db_outage_wait);
  GroupCoordinator groups(group_store, reader, streams, registry,
                          {.partition_count = config.group_partitions});
  QueryGrpcService raw(service, streams, groups);  // What the server registers.
  grpcutil::ServerOptions options = serving::ServerOptionsOf(config.server);
  options.health_service_names = {v1::QueryService::service_full_name()};
  auto server = grpcutil::Server::Start(options, {&raw});
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("query-service listening on {} (port {})", config.server.listen,
               (*server)->port());
  int code = serving::ServeUntilSignal(
      **server, registry,
      {.db_uri = config.read_db,
       .db_label = "read database",
       .metrics_listen = config.process.metrics_listen,
       .shutdown_grace = config.server.shutdown_grace,
       .before_shutdown = [&streams] { streams.Stop(); }});
  waiter.reset();
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::query
