#include "projector/projection.h"

#include "bank/v1/bank.pb.h"
#include "common/domain/event_codec.h"
#include "gtest/gtest.h"

namespace bank::projector {
namespace {

constexpr char kA[] = "11111111-1111-4111-8111-111111111111";
constexpr char kB[] = "22222222-2222-4222-8222-222222222222";

eventstore::RecordedEvent Event(const std::string& stream, int64_t version,
                                const domain::AccountEvent& e,
                                int64_t position) {
  domain::EncodedEvent enc = domain::EncodeEvent(e);
  eventstore::RecordedEvent r;
  r.stream_id = stream;
  r.stream_version = version;
  r.type = enc.type;
  r.schema_version = enc.schema_version;
  r.data = enc.json;
  r.position = position;
  r.transaction_id = 10;
  r.recorded_at = absl::FromUnixSeconds(1000 + position);
  return r;
}

domain::AccountEvent Opened(const std::string& id, int64_t initial) {
  events::v1::AccountOpened o;
  o.set_account_id(id);
  o.set_owner("Alice");
  o.set_currency("EUR");
  o.set_initial_deposit(initial);
  return o;
}

domain::AccountEvent Deposited(int64_t amount) {
  events::v1::MoneyDeposited d;
  d.set_amount(amount);
  return d;
}

TEST(ProjectBatchTest, FoldsEventsIntoBalancesAndHistory) {
  events::v1::TransferSent sent;
  sent.set_to_account_id(kB);
  sent.set_amount(30);
  events::v1::TransferReceived received;
  received.set_from_account_id(kA);
  received.set_amount(30);
  auto out = ProjectBatch(
      {},
      {Event(kA, 1, Opened(kA, 100), 1), Event(kB, 1, Opened(kB, 0), 2),
       Event(kA, 2, Deposited(5), 3), Event(kA, 3, sent, 4),
       Event(kB, 2, received, 4)},
      false);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->applied, 5);
  ASSERT_EQ(out->history.size(), 5u);
  EXPECT_EQ(out->history[2].kind, v1::ENTRY_KIND_DEPOSITED);
  EXPECT_EQ(out->history[2].balance_after, 105);
  EXPECT_EQ(out->history[3].kind, v1::ENTRY_KIND_TRANSFER_OUT);
  EXPECT_EQ(out->history[3].counterparty_account_id, kB);
  EXPECT_EQ(out->history[3].balance_after, 75);
  EXPECT_EQ(out->history[4].kind, v1::ENTRY_KIND_TRANSFER_IN);
  ASSERT_EQ(out->balances.size(), 2u);
  for (const BalanceRow& b : out->balances) {
    EXPECT_EQ(b.balance, b.account_id == kA ? 75 : 30);
    EXPECT_EQ(b.version, b.account_id == kA ? 3 : 2);
    EXPECT_EQ(b.owner, "Alice");
    EXPECT_EQ(b.status, v1::ACCOUNT_STATUS_OPEN);
    EXPECT_EQ(b.opened_at,
              absl::FromUnixSeconds(b.account_id == kA ? 1001 : 1002));
  }
}

TEST(ProjectBatchTest, AlreadyProjectedVersionsAreNoOps) {
  BalanceRow a;
  a.account_id = kA;
  a.balance = 100;
  a.version = 2;
  a.status = v1::ACCOUNT_STATUS_OPEN;
  auto out = ProjectBatch(
      {{kA, a}},
      {Event(kA, 1, Opened(kA, 100), 1), Event(kA, 2, Deposited(5), 2),
       Event(kA, 3, Deposited(7), 3)},
      false);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->duplicates, 2);
  EXPECT_EQ(out->applied, 1);
  ASSERT_EQ(out->balances.size(), 1u);
  EXPECT_EQ(out->balances[0].balance, 107);
}

TEST(ProjectBatchTest, PoisonStopsOrIsRecorded) {
  eventstore::RecordedEvent bad = Event(kA, 1, Opened(kA, 1), 7);
  bad.type = "MoneyTeleported";
  auto stopped = ProjectBatch({}, {bad}, false);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stopped.status().message().find("position 7"),
            absl::string_view::npos);
  // A gap in a stream is poison too.
  auto gap = ProjectBatch({}, {Event(kB, 2, Deposited(1), 8)}, false);
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  auto skipped = ProjectBatch({}, {bad, Event(kB, 1, Opened(kB, 3), 9)}, true);
  ASSERT_TRUE(skipped.ok());
  ASSERT_EQ(skipped->poison.size(), 1u);
  EXPECT_EQ(skipped->poison[0].position, 7);
  EXPECT_EQ(skipped->applied, 1);
}

TEST(ProjectBatchTest, ClosingSetsTheStatus) {
  auto out = ProjectBatch({},
                          {Event(kA, 1, Opened(kA, 0), 1),
                           Event(kA, 2, events::v1::AccountClosed(), 2)},
                          false);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->balances.size(), 1u);
  EXPECT_EQ(out->balances[0].status, v1::ACCOUNT_STATUS_CLOSED);
  EXPECT_EQ(out->history[1].kind, v1::ENTRY_KIND_CLOSED);
}

}  // namespace
}  // namespace bank::projector
