#ifndef BANK_COMMAND_SERVICE_COMMAND_EXECUTOR_H_
#define BANK_COMMAND_SERVICE_COMMAND_EXECUTOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "command-service/account_loader.h"
#include "command-service/account_pipeline.h"
#include "command-service/command_plan.h"
#include "command-service/idempotency.h"
#include "common/eventstore/event_store.h"
#include "common/metrics/metrics.h"

namespace bank::command {

// Runs planned commands, the one way every command runs: load the accounts,
// let the aggregate decide, queue the append with optimistic concurrency,
// and answer when it has committed. A conflict (another instance wrote
// first) is decided again on the stored stream, a bounded number of times
// with jitter, unless the client gave an expected_version. A refusal
// decided on state still in flight, or on the cache, is confirmed on the
// stored stream before it is answered. A repeated command_id is answered
// with its first outcome (Idempotency).
//
// Nothing blocks the caller's thread: a command starts there only while it
// needs no wait (its accounts cached and free, and the aggregate agrees);
// otherwise it moves to `offload`, where it may wait for the database or for
// earlier commands on its accounts. After the append, it is answered on the
// thread that committed it when nothing is left to do, and moves to
// `offload` again when something is (a conflict to decide again, a stored
// outcome to look up, a snapshot to save). Thread-safe.
class CommandExecutor {
 public:
  // Runs work on a thread that may block; false when it cannot be queued.
  using Offload = std::function<bool(std::function<void()>)>;
  using Done = std::function<void(absl::StatusOr<CommandOutcome>)>;
  struct Options {
    int max_attempts = 50;  // Decisions per command, the first included.
    std::string instance_id = "command-service";  // In events' metadata.
  };

  // Counts conflicts and retries in `metrics`.
  CommandExecutor(eventstore::EventStore& store, AccountLoader& loader,
                  AccountPipeline& pipeline, Idempotency& idempotency,
                  Offload offload, metrics::Registry& metrics, Options options);

  // Runs `plan` and calls `done` exactly once with its outcome, maybe on
  // another thread. `done` must not block.
  void Execute(CommandPlan plan, absl::Time deadline, Done done);

 private:
  struct Call;

  // Decides and queues the append (call.pending), holding the accounts'
  // turn. An error is the command's answer, and nothing was queued. With
  // `would_block` it never waits (for a turn, the database or an append in
  // flight): where it would have to, it sets *would_block and returns an
  // error, having changed nothing.
  absl::Status Start(Call& call, bool* would_block);
  // Start where it may block (on offload), then AnswerOnCommit.
  void StartBlocking(const std::shared_ptr<Call>& call);
  void AnswerOnCommit(const std::shared_ptr<Call>& call);
  // On the thread that learned the append's outcome.
  void Settled(const std::shared_ptr<Call>& call,
               absl::StatusOr<std::vector<eventstore::StreamResult>> appended);
  // The append's outcome as the command's (command_raced when its id was
  // recorded already), or *retry for a conflict to decide again on.
  absl::StatusOr<CommandOutcome> Settle(
      Call& call,
      absl::StatusOr<std::vector<eventstore::StreamResult>> appended,
      bool* retry);
  // After a conflict, on offload: decides again, or gives up.
  void Retry(const std::shared_ptr<Call>& call);
  // Queues fn on offload, or answers `refusal` when that is full.
  void OffloadOr(const std::shared_ptr<Call>& call, std::function<void()> fn,
                 absl::Status refusal);
  std::string Metadata(const CommandPlan& plan) const;

  eventstore::EventStore& store_;
  AccountLoader& loader_;
  AccountPipeline& pipeline_;
  Idempotency& idempotency_;
  const Offload offload_;
  const Options options_;
  metrics::Counter& conflicts_;
  metrics::Counter& retries_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_COMMAND_EXECUTOR_H_
