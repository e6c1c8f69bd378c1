// QueryService.Consume under load, with the group's oracle: three members
// share 20,000 commands over 100 accounts while one member is killed,
// another joins half-way and the query service is killed (-9) and
// restarted once. At the end every entry was delivered to some member, the
// stored progress covers every entry, each member saw each account's
// versions in order (no gap, no repeat) while it owned its partition, and
// an entry was delivered twice only in a partition that changed hands.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <map>
#include <pqxx/pqxx>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "query-service/group_logic.h"
#include "tests/e2e/group_support.h"
#include "tests/e2e/streams_support.h"
#include "tests/faults/settle.h"
#include "tests/faults/workload.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::GroupWorker;
using testing::PgCluster;
using testing::Received;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;
constexpr int kPartitions = 32;

TEST(ConsumeLoadTest, ThreeMembersAKillAJoinAndARestartLoseNothing) {
  System sys(*pg, "consumeload");
  sys.StartAll();
  faults::Workload w(sys.command_port, {.clients = 8,
                                        .accounts = 100,
                                        .pause = absl::ZeroDuration(),
                                        .query_port = sys.query_port});
  w.OpenAccounts();
  auto member = [&](const std::string& name) {
    return std::make_unique<GroupWorker>(GroupWorker::Options{
        .port = sys.query_port, .group = "oracle", .member = name});
  };
  std::map<std::string, std::unique_ptr<GroupWorker>> members;
  for (const char* name : {"m1", "m2", "m3"}) members[name] = member(name);
  w.Start();
  auto until = [&](int64_t acked) {
    return WaitFor([&] { return w.acked() >= acked; }, absl::Seconds(180));
  };
  ASSERT_TRUE(until(6000));
  members["m2"]->Stop();  // Killed: whatever it had not acknowledged moves.
  ASSERT_TRUE(until(10000));
  members["m4"] = member("m4");
  ASSERT_TRUE(until(14000));
  sys.query->Signal(SIGKILL);
  sys.query->Wait(absl::Seconds(10));
  sys.query = sys.StartQueryService(
      {"--metrics-listen", absl::StrCat("127.0.0.1:", sys.query_metrics)});
  ASSERT_TRUE(System::WaitServing(sys.query_port, "", absl::Seconds(30)));
  ASSERT_TRUE(until(20000));
  faults::Settled settled = faults::Settle(w, sys.events_uri, sys.read_uri);
  EXPECT_TRUE(settled.diffs.empty()) << settled.diffs[0];

  // The stored progress covers every entry once the members acknowledged
  // them all.
  auto uncovered = [&] {
    auto stored = testing::StoredPartitions(sys.read_uri, "oracle");
    pqxx::connection c(sys.read_uri);
    pqxx::nontransaction tx(c);
    int n = 0;
    for (const auto& row : tx.exec(
             "SELECT account_id::text, transaction_id, position FROM "
             "account_history")) {
      const auto& s =
          stored[query::PartitionOf(row[0].as<std::string>(), kPartitions)];
      n += std::make_pair(row[1].as<int64_t>(), row[2].as<int64_t>()) >
           std::make_pair(s.transaction_id, s.position);
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return uncovered() == 0; }, absl::Seconds(60)))
      << uncovered();
  for (auto& [name, m] : members) m->Stop();

  // Every entry of the history was delivered to some member.
  std::map<std::pair<std::string, int64_t>, int> delivered;
  for (auto& [name, m] : members) {
    for (const GroupWorker::Got& g : m->received()) {
      ++delivered[{g.account_id, g.version}];
    }
  }
  const std::vector<Received> history =
      testing::HistoryInStreamOrder(sys.read_uri);
  ASSERT_GE(history.size(), 20000u);
  int missing = 0;
  for (const Received& h : history) {
    missing += !delivered.contains({h.account_id, h.version});
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(delivered.size(), history.size());

  // While a member held a partition (one connection, one assignment), each
  // account's versions came one after another, none skipped or repeated.
  // And who held each partition, connection by connection.
  std::map<int, std::set<std::pair<std::string, int>>> holders;
  int out_of_order = 0;
  for (auto& [name, m] : members) {
    for (const GroupWorker::Assigned& a : m->history()) {
      for (int p : a.partitions) holders[p].insert({name, a.join});
    }
    std::map<std::tuple<int, int, std::string>, int64_t> last;
    for (const GroupWorker::Got& g : m->received()) {
      auto [it, fresh] =
          last.try_emplace({g.join, g.assignment, g.account_id}, g.version);
      if (!fresh) {
        if (g.version != it->second + 1) {
          ++out_of_order;
          ADD_FAILURE() << name << " " << g.account_id << " v" << it->second
                        << " then v" << g.version;
        }
        it->second = g.version;
      }
    }
  }
  EXPECT_EQ(out_of_order, 0);

  // Entries delivered twice were of partitions that changed hands.
  int repeated = 0;
  for (const auto& [entry, n] : delivered) {
    if (n < 2) continue;
    ++repeated;
    const int p = query::PartitionOf(entry.first, kPartitions);
    EXPECT_GT(holders[p].size(), 1u) << entry.first << " v" << entry.second;
  }
  // The kill, the join and the restart moved partitions, each with entries
  // in flight; the count says how many came twice.
  std::cout << "entries " << history.size() << ", delivered twice " << repeated
            << "\n";
  EXPECT_GE(members["m1"]->joins(), 2);  // The restart.
  for (auto& [name, m] : members) {
    EXPECT_TRUE(m->failures().empty()) << name << ": " << m->failures()[0];
  }
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
