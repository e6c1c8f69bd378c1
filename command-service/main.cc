// command-service: validates bank.v1 commands against the account aggregate
// and appends their events to the events database.
#include "CLI/CLI.hpp"
#include "command-service/app.h"
#include "common/serving/flags.h"
#include "common/util/runtime.h"
#include "common/util/signals.h"

int main(int argc, char** argv) {
  bank::util::ConfigureServingRuntime();
  bank::util::BlockTerminationSignals();
  bank::command::Config config;
  CLI::App app{"bank command-service: the write side of the bank"};
  bank::serving::AddServerFlags(app, config.server, "BANK_COMMAND_LISTEN");
  bank::serving::AddProcessFlags(app, config.process);
  app.add_option("--events-db", config.events_db,
                 "events database (libpq URI or key=value string)")
      ->envname("BANK_EVENTS_DB")
      ->capture_default_str();
  app.add_option("--events-migrate-db", config.events_migrate_db,
                 "connect as this to apply migrations (a role owning the "
                 "schema); default: --events-db")
      ->envname("BANK_EVENTS_MIGRATE_DB");
  app.add_flag("--migrate-only", config.migrate_only,
               "apply the events database's migrations and exit");
  app.add_option("--snapshot-every", config.snapshot_every,
                 "snapshot an account every N events (0: never)")
      ->envname("BANK_SNAPSHOT_EVERY")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--max-attempts", config.max_attempts,
                 "attempts per command when concurrent writers conflict")
      ->envname("BANK_MAX_ATTEMPTS")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--cache-size", config.cache_size,
                 "accounts kept in the aggregate cache (0: no cache)")
      ->envname("BANK_CACHE_SIZE")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  app.add_option("--max-in-flight", config.max_in_flight,
                 "commands in progress at most; more get RESOURCE_EXHAUSTED")
      ->envname("BANK_MAX_IN_FLIGHT")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--append-batch", config.append_batch,
                 "group commit: commands appended per transaction at most "
                 "(1: one transaction per command)")
      ->envname("BANK_APPEND_BATCH")
      ->check(CLI::Range(1, 32))
      ->capture_default_str();
  app.add_option("--append-committers", config.append_committers,
                 "group commit: batches committing at the same time at most")
      ->envname("BANK_APPEND_COMMITTERS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--append-join-backlog", config.append_join_backlog,
                 "group commit: while a batch commits, another starts only "
                 "when at least this many commands wait (1: at once)")
      ->envname("BANK_APPEND_JOIN_BACKLOG")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-threads", config.max_threads,
                 "threads for the commands that must wait for the database "
                 "(a command on cached accounts starts on gRPC's thread)")
      ->envname("BANK_MAX_THREADS")
      ->check(CLI::Range(2, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (int code = bank::serving::InitLogging("command-service", config.process);
      code != 0) {
    return code;
  }
  return bank::command::RunCommandService(config);
}
