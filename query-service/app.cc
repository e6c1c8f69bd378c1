#include "query-service/app.h"

#include <atomic>
#include <memory>
#include <pqxx/pqxx>

#include "common/db/health_probe.h"
#include "common/db/pg_status.h"
#include "common/db/uri.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/signals.h"
#include "query-service/query_service.h"

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
  WorkerPool pool(config.workers, config.max_queue);
  auto waiter = std::make_unique<VersionWaiter>(config.read_db, reader);
  metrics::Registry registry;
  QueryServiceImpl service(reader, *waiter, pool, registry,
                           {.max_wait = config.max_wait});
  auto server = grpcutil::Server::Start(
      {.listen = config.listen,
       .tls_cert = config.tls_cert,
       .tls_key = config.tls_key,
       .tls_client_ca = config.tls_client_ca,
       .health_service_names = {v1::QueryService::service_full_name()}},
      {&service});
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("query-service listening on {} (port {})", config.listen,
               (*server)->port());
  std::atomic<bool> db_ok{false};
  // Health follows the database: NOT_SERVING while it cannot be reached.
  auto probe = std::make_unique<db::HealthProbe>(
      config.read_db, absl::Seconds(1), [&](bool ok) {
        db_ok = ok;
        (*server)->SetServing(ok);
        if (ok) {
          spdlog::info("read database reachable: serving");
        } else {
          spdlog::warn("read database unreachable: health NOT_SERVING");
        }
      });
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (!config.metrics_listen.empty()) {
    auto e = metrics::HttpExporter::Start(config.metrics_listen, registry,
                                          [&] { return db_ok.load(); });
    if (!e.ok()) {
      spdlog::error("cannot start: {}", e.status().message());
      return 1;
    }
    exporter = *std::move(e);
    spdlog::info("metrics on {} (port {})", config.metrics_listen,
                 exporter->port());
  }
  int sig = util::WaitForTerminationSignal();
  spdlog::info("signal {}: shutting down", sig);
  probe.reset();  // Health stays NOT_SERVING from here on.
  (*server)->Shutdown(config.shutdown_grace);
  (*server)->Wait();
  waiter.reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace bank::query
