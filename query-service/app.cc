#include "query-service/app.h"

#include <atomic>
#include <memory>
#include <pqxx/pqxx>

#include "common/db/pg_status.h"
#include "common/db/uri.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/serving/serve.h"
#include "common/util/signals.h"
#include "query-service/query_service.h"
#include "query-service/query_grpc_service.h"

namespace bank::query {

int RunQueryService(const Config& config) {
  spdlog::info("read database: {}", db::MaskPassword(config.read_db));
  try {
    pqxx::connection probe(config.read_db);
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}",
                  db::StatusFromException(e, "connecting to the read database")
                      .message());
    return 1;
  }
  ReadModelReader reader(config.read_db, config.db_pool_size);
  util::WorkerPool pool(config.workers, config.max_queue);
  BalanceCache cache(static_cast<size_t>(config.balance_cache_size));
  auto waiter = std::make_unique<ProgressFollower>(config.read_db, reader, cache);
  metrics::Registry registry;
  QueryServiceImpl service(reader, cache, *waiter, pool, registry,
                           {.max_wait = config.max_wait});
  QueryGrpcService raw(service);  // What the server registers.
  auto server = grpcutil::Server::Start(
      {.listen = config.listen,
       .tls_cert = config.tls_cert,
       .tls_key = config.tls_key,
       .tls_client_ca = config.tls_client_ca,
       .health_service_names = {v1::QueryService::service_full_name()}},
      {&raw});
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("query-service listening on {} (port {})", config.listen,
               (*server)->port());
  int code =
      serving::ServeUntilSignal(**server, registry,
                                {.db_uri = config.read_db,
                                 .db_label = "read database",
                                 .metrics_listen = config.metrics_listen,
                                 .shutdown_grace = config.shutdown_grace});
  waiter.reset();
  spdlog::info("stopped");
  return code;
}

}  // namespace bank::query
