#ifndef BANK_QUERY_SERVICE_APP_H_
#define BANK_QUERY_SERVICE_APP_H_

#include <string>

#include "absl/time/time.h"
#include "common/serving/flags.h"

namespace bank::query {

struct Config {
  serving::ServerFlags server{.listen = "0.0.0.0:50052"};
  serving::ProcessFlags process{.metrics_listen = "0.0.0.0:9103"};
  std::string read_db = "postgresql:///bank_read";
  int workers = 16;
  int max_queue = 4096;
  // Balances kept in memory (BalanceCache); 0 turns the cache off.
  int balance_cache_size = 100000;
  absl::Duration max_wait = absl::Seconds(5);
  // GetBalance min_version waits at once; more get RESOURCE_EXHAUSTED.
  int max_waiters = 10000;
  // WatchAccount and StreamEntries streams open at once; more get
  // RESOURCE_EXHAUSTED.
  int max_streams = 5000;
  // Where the consumer groups are kept (sql/read/005): the read database's
  // primary. Empty: the read database.
  std::string groups_db;
  // Partitions of each consumer group created here.
  int group_partitions = 32;
};

// Checks the read database, serves bank.v1.QueryService until SIGINT or
// SIGTERM, then shuts down gracefully. Returns the exit code (1 with a
// one-line reason when startup fails).
// REQUIRES: util::BlockTerminationSignals() was called.
int RunQueryService(const Config& config);

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_APP_H_
