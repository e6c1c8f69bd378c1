#include "projector/projection.h"

#include <map>
#include <random>

#include "absl/strings/str_format.h"
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

// The rebuild folds in place (FoldBatch); the live path projects each batch
// against the stored rows (ProjectBatch). Same events, same read model.
TEST(FoldBatchTest, GivesWhatProjectBatchGivesBatchAfterBatch) {
  std::mt19937 rng(3);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(absl::StrFormat("%08d-1111-4111-8111-111111111111", i));
  }
  // Interleaved streams, with a duplicate, a gap and an unknown type here
  // and there (skipped as poison), and one stream that is only poison.
  std::vector<eventstore::RecordedEvent> all;
  std::map<std::string, int64_t> version;
  int64_t position = 0;
  for (int n = 0; n < 600; ++n) {
    const std::string& id = ids[rng() % ids.size()];
    int64_t v = version[id] + 1;
    eventstore::RecordedEvent e =
        v == 1 ? Event(id, v, Opened(id, 10), ++position)
               : Event(id, v, Deposited(1 + rng() % 50), ++position);
    switch (rng() % 20) {
      case 0:
        e.stream_version = std::max<int64_t>(1, v - 1);  // duplicate
        break;
      case 1:
        e.stream_version = v + 1;  // gap
        break;
      case 2:
        e.type = "MoneyTeleported";
        break;
      default:
        version[id] = v;
    }
    all.push_back(e);
  }
  all.push_back(Event("99999999-1111-4111-8111-111111111111", 2, Deposited(1),
                      ++position));
  for (size_t batch : {1u, 7u, 50u, 600u}) {
    absl::flat_hash_map<std::string, BalanceRow> live;
    absl::flat_hash_map<std::string, AccountFold> folded;
    std::vector<HistoryRow> live_history, folded_history;
    size_t live_poison = 0, folded_poison = 0;
    for (size_t at = 0; at < all.size(); at += batch) {
      std::vector<eventstore::RecordedEvent> events(
          all.begin() + at, all.begin() + std::min(all.size(), at + batch));
      absl::StatusOr<BatchChanges> p = ProjectBatch(live, events, true);
      ASSERT_TRUE(p.ok()) << p.status();
      for (BalanceRow& b : p->balances) live[b.account_id] = b;
      live_history.insert(live_history.end(), p->history.begin(),
                          p->history.end());
      live_poison += p->poison.size();
      BatchChanges f;
      ASSERT_TRUE(FoldBatch(folded, events, true, &f).ok());
      EXPECT_TRUE(f.balances.empty());
      folded_history.insert(folded_history.end(), f.history.begin(),
                            f.history.end());
      folded_poison += f.poison.size();
    }
    EXPECT_GT(live_poison, 0u);
    EXPECT_EQ(folded_poison, live_poison);
    ASSERT_EQ(folded_history.size(), live_history.size());
    for (size_t i = 0; i < live_history.size(); ++i) {
      EXPECT_EQ(folded_history[i].account_id, live_history[i].account_id);
      EXPECT_EQ(folded_history[i].version, live_history[i].version);
      EXPECT_EQ(folded_history[i].balance_after, live_history[i].balance_after);
    }
    size_t opened = 0;
    for (const auto& [id, fold] : folded) {
      if (fold.row.version == 0) continue;  // poison only: no row
      ++opened;
      BalanceRow row = fold.FinalRow();
      ASSERT_TRUE(live.contains(id)) << id;
      const BalanceRow& want = live.at(id);
      EXPECT_EQ(row.balance, want.balance) << id;
      EXPECT_EQ(row.version, want.version) << id;
      EXPECT_EQ(row.owner, want.owner) << id;
      EXPECT_EQ(row.status, want.status) << id;
      EXPECT_EQ(row.opened_at, want.opened_at) << id;
      EXPECT_EQ(row.updated_at, want.updated_at) << id;
      EXPECT_EQ(row.last_position, want.last_position) << id;
    }
    EXPECT_EQ(opened, live.size());
  }
  // Without skip_poison the fold stops at the first poison, naming it.
  absl::flat_hash_map<std::string, AccountFold> folded;
  BatchChanges f;
  absl::Status s = FoldBatch(folded, all, false, &f);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("position"), absl::string_view::npos);
}

}  // namespace
}  // namespace bank::projector
