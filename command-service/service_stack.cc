#include "command-service/service_stack.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bank::command {
namespace {

std::string InstanceId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat("command-service@", host, ":", getpid());
}

}  // namespace

CommandServiceStack::CommandServiceStack(const Config& config,
                                         metrics::Registry& registry)
    : store_({.uri = config.events_db,
              .pool_size = config.server.db_pool_size,
              .outage_wait = config.server.db_outage_wait}),
      // Readers are woken after commits, from outside the write path.
      notifier_(config.events_db),
      // Concurrent commands share transactions (group commit); a committer
      // holds one connection while its batch commits.
      batched_(store_, store_,
               {.max_batch = config.append_batch,
                .committers = std::min(config.append_committers,
                                       config.server.db_pool_size),
                .join_backlog = config.append_join_backlog,
                .metrics = &registry,
                .on_commit = [this] { notifier_.Committed(); }}),
      // A command starts on gRPC's thread when its accounts are cached and
      // free, else on this pool, where it may wait for the database (a full
      // queue sheds load at once). After its append it is answered by the
      // committer, or finished on this pool when it needs the database again.
      pool_(config.max_threads, config.max_in_flight),
      handler_(batched_,
               [this](std::function<void()> work) {
                 return pool_.TrySubmit(std::move(work));
               },
               {.max_attempts = config.max_attempts,
                .snapshot_every = config.snapshot_every,
                .cache_capacity = static_cast<size_t>(config.cache_size),
                .instance_id = InstanceId(),
                .metrics = &registry}),
      impl_(handler_, registry, config.max_in_flight),
      raw_(impl_) {
  registry.AddCallbackGauge("bank_db_pool_in_use",
                            "Database connections in use.",
                            [this] { return store_.pool().in_use(); });
  registry.AddCallbackGauge("bank_db_pool_waiting",
                            "Callers waiting for a database connection.",
                            [this] { return store_.pool().waiting(); });
}

}  // namespace bank::command
