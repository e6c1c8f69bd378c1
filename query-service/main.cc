// query-service: answers balance and history queries from the read database.
#include "CLI/CLI.hpp"
#include "common/log/log.h"
#include "common/util/runtime.h"
#include "common/util/signals.h"
#include "query-service/app.h"

int main(int argc, char** argv) {
  bank::util::ConfigureServingRuntime();
  bank::util::BlockTerminationSignals();
  bank::query::Config config;
  std::string log_level = "info";
  double max_wait = 5, grace = 10;
  CLI::App app{"bank query-service: the read side of the bank"};
  app.add_option("--listen", config.listen, "gRPC listen address")
      ->envname("BANK_QUERY_LISTEN")
      ->capture_default_str();
  app.add_option("--read-db", config.read_db, "read database")
      ->envname("BANK_READ_DB")
      ->capture_default_str();
  app.add_option("--db-pool-size", config.db_pool_size,
                 "database connections at most")
      ->envname("BANK_DB_POOL_SIZE")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--workers", config.workers, "threads doing database work")
      ->envname("BANK_WORKERS")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--max-queue", config.max_queue,
                 "queued requests at most before RESOURCE_EXHAUSTED")
      ->envname("BANK_MAX_QUEUE")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--balance-cache-size", config.balance_cache_size,
                 "balances kept in memory, exact by the projector's "
                 "notices (0: off)")
      ->envname("BANK_BALANCE_CACHE_SIZE")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  app.add_option("--max-wait", max_wait,
                 "seconds a GetBalance min_version wait may last at most")
      ->envname("BANK_MAX_WAIT")
      ->check(CLI::Range(0.0, 300.0))
      ->capture_default_str();
  app.add_option("--tls-cert", config.tls_cert,
                 "PEM certificate chain: serve gRPC over TLS")
      ->envname("BANK_TLS_CERT");
  app.add_option("--tls-key", config.tls_key, "PEM private key of --tls-cert")
      ->envname("BANK_TLS_KEY");
  app.add_option("--tls-client-ca", config.tls_client_ca,
                 "PEM CA: require client certificates signed by it (mTLS)")
      ->envname("BANK_TLS_CLIENT_CA");
  app.add_option("--metrics-listen", config.metrics_listen,
                 "Prometheus /metrics and /healthz address (empty: off)")
      ->envname("BANK_METRICS_LISTEN")
      ->capture_default_str();
  app.add_option("--shutdown-grace", grace,
                 "seconds in-flight calls get to finish on SIGTERM")
      ->envname("BANK_SHUTDOWN_GRACE")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error or off")
      ->envname("BANK_LOG_LEVEL")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  config.max_wait = absl::Seconds(max_wait);
  config.shutdown_grace = absl::Seconds(grace);
  if (absl::Status s = bank::log::Init("query-service", log_level); !s.ok()) {
    fprintf(stderr, "query-service: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  return bank::query::RunQueryService(config);
}
