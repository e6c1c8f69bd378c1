#ifndef BANK_COMMAND_SERVICE_APP_H_
#define BANK_COMMAND_SERVICE_APP_H_

#include <string>

#include "absl/time/time.h"
#include "common/serving/flags.h"

namespace bank::command {

struct Config {
  serving::ServerFlags server{.listen = "0.0.0.0:50051"};
  serving::ProcessFlags process{.metrics_listen = "0.0.0.0:9101"};
  std::string events_db = "postgresql:///bank_events";
  // Where migrations are applied from (a role that owns the schema); empty:
  // events_db.
  std::string events_migrate_db;
  // Apply the migrations and exit (a deployment's one-shot step, so that no
  // long-running process holds the owner's credentials).
  bool migrate_only = false;
  int snapshot_every = 100;
  int max_attempts = 50;
  int cache_size = 100000;
  int max_threads = 64;  // Threads running commands.
  int max_in_flight = 256;
  // Group commit: commands appended per transaction at most (1: one
  // transaction per command), and how many batches may commit at once.
  int append_batch = 32;
  int append_committers = 2;
  int append_join_backlog = 8;
};

// Migrates the events database (and, with migrate_only, exits 0 then),
// serves bank.v1.CommandService until SIGINT or SIGTERM, then shuts down
// gracefully. Returns the process exit code; on a
// startup failure prints one line saying why.
// REQUIRES: util::BlockTerminationSignals() was called.
int RunCommandService(const Config& config);

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_APP_H_
