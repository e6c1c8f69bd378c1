// projector: tails the events database and keeps the read database equal to
// what the events say.
#include <csignal>

#include "CLI/CLI.hpp"
#include "common/serving/flags.h"
#include "common/util/runtime.h"
#include "common/util/signals.h"
#include "projector/app.h"

int main(int argc, char** argv) {
  bank::util::ConfigureServingRuntime();
  bank::util::BlockTerminationSignals();
  bank::projector::ProjectorOptions options;
  options.events_db = "postgresql:///bank_events";
  options.read_db = "postgresql:///bank_read";
  double poll_seconds = 1.0;
  bool rebuild = false;
  bank::serving::ProcessFlags process{.metrics_listen = "0.0.0.0:9102"};
  CLI::App app{"bank projector: keeps the read model up to date"};
  bank::serving::AddProcessFlags(app, process);
  app.add_option("--events-db", options.events_db, "events database")
      ->envname("BANK_EVENTS_DB")
      ->capture_default_str();
  app.add_option("--read-db", options.read_db, "read database")
      ->envname("BANK_READ_DB")
      ->capture_default_str();
  app.add_option("--batch-size", options.batch_size, "events per transaction")
      ->envname("BANK_BATCH_SIZE")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--catch-up-batch-size", options.catch_up_batch_size,
                 "events per transaction while working off a backlog (at "
                 "least --batch-size)")
      ->envname("BANK_CATCH_UP_BATCH_SIZE")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--row-cache-size", options.row_cache_size,
                 "balance rows kept in memory between batches (0: none)")
      ->envname("BANK_ROW_CACHE_SIZE")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--poll-interval", poll_seconds,
                 "seconds between safety polls when no notification arrives")
      ->envname("BANK_POLL_INTERVAL")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_flag("--skip-poison", options.skip_poison,
               "record events that cannot be projected in poison_events and "
               "go on, instead of stopping")
      ->envname("BANK_SKIP_POISON");
  app.add_flag("--rebuild", rebuild,
               "rebuild the read model from the first event into fresh "
               "tables, swap them in, and exit");
  CLI11_PARSE(app, argc, argv);
  options.poll_interval = absl::Seconds(poll_seconds);
  options.standby_retry = std::min(absl::Seconds(1), options.poll_interval * 2);
  if (int code = bank::serving::InitLogging("projector", process); code != 0) {
    return code;
  }
  return bank::projector::RunProjector(options, rebuild,
                                       process.metrics_listen);
}
