#include "command-service/idempotency.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/util/outcome.h"

namespace bank::command {

Idempotency::Idempotency(eventstore::EventStore& store,
                         metrics::Registry& metrics)
    : store_(store),
      replays_(metrics.GetCounter(
          "bank_idempotent_replays_total",
          "Commands answered from the stored result of the same "
          "command_id.")) {}

bool Idempotency::IsRefusal(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

bool Idempotency::NeedsLookup(const absl::StatusOr<CommandOutcome>& out) {
  return out.ok() ? out->command_raced : IsRefusal(out.status().code());
}

absl::StatusOr<std::optional<CommandOutcome>> Idempotency::FindReplay(
    const CommandPlan& plan, absl::Time deadline) {
  if (plan.command_id.empty()) return std::optional<CommandOutcome>();
  absl::StatusOr<std::optional<eventstore::StoredCommand>> stored =
      store_.FindCommand(plan.command_id, deadline);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::optional<CommandOutcome>();
  if ((*stored)->request_type != plan.request_type ||
      (*stored)->request != plan.request) {
    return absl::InvalidArgumentError(
        absl::StrCat("command_id ", plan.command_id,
                     " was already used for a different request (",
                     (*stored)->request_type, "); use a new command_id"));
  }
  replays_.Inc();
  return std::optional<CommandOutcome>(
      CommandOutcome{(*stored)->results, /*replayed=*/true});
}

absl::StatusOr<CommandOutcome> Idempotency::Resolve(
    const CommandPlan& plan, absl::StatusOr<CommandOutcome> out,
    absl::Time deadline) {
  if (!NeedsLookup(out)) return out;
  absl::StatusOr<std::optional<CommandOutcome>> replay =
      FindReplay(plan, deadline);
  if (!replay.ok()) {
    if (replay.status().code() != absl::StatusCode::kUnavailable) {
      return replay.status();
    }
    // The command_id may be recorded by an earlier request (the reason to
    // look): whether the command took effect is unknown here.
    return util::OutcomeUnknownError(
        absl::StrCat("could not look up the earlier request of command_id ",
                     plan.command_id, ": ", replay.status().message()));
  }
  if (replay->has_value()) return **replay;
  if (!out.ok()) return out;  // A refusal of a command not run before.
  // The command_id is recorded, by an earlier request or a concurrent one.
  return absl::InternalError("command recorded but not found");
}

}  // namespace bank::command
