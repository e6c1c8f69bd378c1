// query-service: answers balance and history queries from the read database.
#include "CLI/CLI.hpp"
#include "common/serving/flags.h"
#include "common/util/runtime.h"
#include "common/util/signals.h"
#include "query-service/app.h"

int main(int argc, char** argv) {
  bank::util::ConfigureServingRuntime();
  bank::util::BlockTerminationSignals();
  bank::query::Config config;
  double max_wait = 5;
  CLI::App app{"bank query-service: the read side of the bank"};
  bank::serving::AddServerFlags(app, config.server, "BANK_QUERY_LISTEN");
  bank::serving::AddProcessFlags(app, config.process);
  app.add_option("--read-db", config.read_db, "read database")
      ->envname("BANK_READ_DB")
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
  app.add_option("--max-waiters", config.max_waiters,
                 "GetBalance min_version waits at once; more get "
                 "RESOURCE_EXHAUSTED")
      ->envname("BANK_MAX_WAITERS")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--max-streams", config.max_streams,
                 "WatchAccount, StreamEntries and Consume streams open at "
                 "once; more "
                 "get RESOURCE_EXHAUSTED")
      ->envname("BANK_MAX_STREAMS")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--groups-db", config.groups_db,
                 "where consumer groups are kept (writable: the read "
                 "database's primary; default: --read-db)")
      ->envname("BANK_GROUPS_DB");
  app.add_option("--group-partitions", config.group_partitions,
                 "partitions of each consumer group created here")
      ->envname("BANK_GROUP_PARTITIONS")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--max-wait", max_wait,
                 "seconds a GetBalance min_version wait may last at most")
      ->envname("BANK_MAX_WAIT")
      ->check(CLI::Range(0.0, 300.0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  config.max_wait = absl::Seconds(max_wait);
  if (int code = bank::serving::InitLogging("query-service", config.process);
      code != 0) {
    return code;
  }
  return bank::query::RunQueryService(config);
}
