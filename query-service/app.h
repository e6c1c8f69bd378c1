#ifndef BANK_QUERY_SERVICE_APP_H_
#define BANK_QUERY_SERVICE_APP_H_

#include <string>

#include "absl/time/time.h"

namespace bank::query {

struct Config {
  std::string listen = "0.0.0.0:50052";
  std::string read_db = "postgresql:///bank_read";
  int db_pool_size = 16;
  int workers = 16;
  int max_queue = 4096;
  // Balances kept in memory (BalanceCache); 0 turns the cache off.
  int balance_cache_size = 100000;
  // TLS (see grpcutil::ServerOptions); empty: plain text.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Prometheus /metrics and /healthz; empty disables.
  std::string metrics_listen = "0.0.0.0:9103";
  absl::Duration max_wait = absl::Seconds(5);
  absl::Duration shutdown_grace = absl::Seconds(10);
};

// Checks the read database, serves bank.v1.QueryService until SIGINT or
// SIGTERM, then shuts down gracefully. Returns the exit code (1 with a
// one-line reason when startup fails).
// REQUIRES: util::BlockTerminationSignals() was called.
int RunQueryService(const Config& config);

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_APP_H_
