#ifndef BANK_COMMAND_SERVICE_IDEMPOTENCY_H_
#define BANK_COMMAND_SERVICE_IDEMPOTENCY_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "command-service/command_plan.h"
#include "common/eventstore/event_store.h"
#include "common/metrics/metrics.h"

namespace bank::command {

// Answers a repeated command_id with the outcome of its first run.
// Idempotency costs no round trip on the common path: the append itself
// refuses a recorded command_id (the commands table's primary key), and only
// then, or when the aggregate refuses, is the stored result looked up: a
// repeated command is answered with its first outcome, never with a refusal
// computed on the state it already changed. Thread-safe.
class Idempotency {
 public:
  // Counts bank_idempotent_replays_total in `metrics`.
  Idempotency(eventstore::EventStore& store, metrics::Registry& metrics);

  // The codes of a refusal, which may be of a command that took effect
  // already.
  static bool IsRefusal(absl::StatusCode code);
  // Whether Resolve has to read the store for this answer of a run.
  static bool NeedsLookup(const absl::StatusOr<CommandOutcome>& out);

  // The command's answer from its run's: a refusal, or an append that found
  // the command_id recorded (command_raced), is answered with the stored
  // outcome when there is one. May read the store (blocks).
  absl::StatusOr<CommandOutcome> Resolve(const CommandPlan& plan,
                                         absl::StatusOr<CommandOutcome> out,
                                         absl::Time deadline);

 private:
  // The stored outcome of plan.command_id, if any; INVALID_ARGUMENT when the
  // id was used for a different request.
  absl::StatusOr<std::optional<CommandOutcome>> FindReplay(
      const CommandPlan& plan, absl::Time deadline);

  eventstore::EventStore& store_;
  metrics::Counter& replays_;
};

}  // namespace bank::command

#endif  // BANK_COMMAND_SERVICE_IDEMPOTENCY_H_
