// What a command's failure tells the client: whether it may have been
// applied.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "command-service/command_rpcs.h"
#include "command-service/idempotency.h"
#include "common/metrics/metrics.h"
#include "common/util/outcome.h"

namespace bank::command {
namespace {

TEST(CommandAnswersTest, EveryUnavailableSaysWhetherTheCommandWasApplied) {
  const absl::Status not_applied =
      CommandRpcs::OnTheWire(absl::UnavailableError("database unreachable"));
  EXPECT_EQ(not_applied.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(not_applied.message(), "not applied: database unreachable");

  const absl::Status unknown =
      CommandRpcs::OnTheWire(util::OutcomeUnknownError("connection lost"));
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(unknown.message(),
            "outcome unknown: connection lost; retrying with the same "
            "command_id is safe");

  // Other codes go as they are.
  EXPECT_EQ(CommandRpcs::OnTheWire(absl::AbortedError("conflict")),
            absl::AbortedError("conflict"));
  EXPECT_TRUE(CommandRpcs::OnTheWire(absl::OkStatus()).ok());
}

// A store whose every read fails as an unreachable database does.
class UnreachableStore final : public eventstore::EventStore {
 public:
  absl::StatusOr<std::vector<eventstore::StreamResult>> Append(
      const std::vector<eventstore::StreamAppend>&,
      const eventstore::CommandRecord*, absl::Time) override {
    return absl::UnavailableError("unreachable");
  }
  absl::StatusOr<std::vector<eventstore::RecordedEvent>> ReadStream(
      const std::string&, int64_t, int, absl::Time) override {
    return absl::UnavailableError("unreachable");
  }
  absl::StatusOr<std::optional<eventstore::StoredCommand>> FindCommand(
      const std::string&, absl::Time) override {
    return absl::UnavailableError("unreachable");
  }
  absl::StatusOr<std::optional<eventstore::Snapshot>> LoadSnapshot(
      const std::string&, absl::Time) override {
    return absl::UnavailableError("unreachable");
  }
  absl::Status SaveSnapshot(const eventstore::Snapshot&, absl::Time) override {
    return absl::UnavailableError("unreachable");
  }
};

// A refusal, or a command_id found recorded, is looked up because an earlier
// request of the same command_id may have applied it: when the lookup fails,
// that is unknown, never "not applied".
TEST(CommandAnswersTest, AFailedLookupOfAnEarlierRequestIsOutcomeUnknown) {
  UnreachableStore store;
  metrics::Registry metrics;
  Idempotency idempotency(store, metrics);
  CommandPlan plan;
  plan.command_id = "c1";
  plan.request_type = "Withdraw";
  const absl::Time deadline = absl::Now() + absl::Seconds(1);

  absl::StatusOr<CommandOutcome> refused = idempotency.Resolve(
      plan, absl::FailedPreconditionError("insufficient funds"), deadline);
  EXPECT_TRUE(util::IsOutcomeUnknown(refused.status())) << refused.status();

  CommandOutcome raced;
  raced.command_raced = true;
  absl::StatusOr<CommandOutcome> recorded =
      idempotency.Resolve(plan, raced, deadline);
  EXPECT_TRUE(util::IsOutcomeUnknown(recorded.status())) << recorded.status();

  // Without a command_id nothing is looked up: the refusal stands.
  plan.command_id.clear();
  absl::StatusOr<CommandOutcome> plain = idempotency.Resolve(
      plan, absl::FailedPreconditionError("insufficient funds"), deadline);
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace bank::command
