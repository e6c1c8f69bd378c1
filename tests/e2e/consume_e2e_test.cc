// QueryService.Consume against the real executables and a real PostgreSQL:
// one member gets every partition and every entry, then live; bad requests;
// max_unacked; partitions moving on a join and a leave, with late
// acknowledgements fenced off; two query-service replicas serving one
// group; a member name already connected.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "query-service/group_logic.h"
#include "query-service/group_store.h"
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

// Entries of the history past their partition's stored delivered mark.
int Undelivered(const System& sys, const std::string& group) {
  auto stored = StoredPartitions(sys.read_uri, group);
  pqxx::connection c(sys.read_uri);
  pqxx::nontransaction tx(c);
  int n = 0;
  for (const auto& row :
       tx.exec("SELECT account_id::text, transaction_id, position FROM "
               "account_history")) {
    const auto& s =
        stored[query::PartitionOf(row[0].as<std::string>(), kPartitions)];
    if (std::make_pair(row[1].as<int64_t>(), row[2].as<int64_t>()) >
        std::make_pair(s.delivered_transaction_id, s.delivered_position)) {
      ++n;
    }
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

// Whether `a` and `b` split the partitions between them.
bool Split(const GroupWorker& a, const GroupWorker& b, size_t a_size) {
  std::vector<int> pa = a.partitions(), pb = b.partitions();
  std::set<int> all(pa.begin(), pa.end());
  all.insert(pb.begin(), pb.end());
  return pa.size() == a_size && pa.size() + pb.size() == kPartitions &&
         all.size() == kPartitions;
}

// History rows of the given partitions that the stored progress covers.
int CoveredIn(const System& sys, const std::string& group,
              const std::vector<int>& partitions) {
  auto stored = StoredPartitions(sys.read_uri, group);
  pqxx::connection c(sys.read_uri);
  pqxx::nontransaction tx(c);
  int n = 0;
  for (const auto& row :
       tx.exec("SELECT account_id::text, transaction_id, position FROM "
               "account_history")) {
    const int p = query::PartitionOf(row[0].as<std::string>(), kPartitions);
    if (std::find(partitions.begin(), partitions.end(), p) ==
        partitions.end()) {
      continue;
    }
    const auto& s = stored[p];
    if (std::make_pair(row[1].as<int64_t>(), row[2].as<int64_t>()) <=
        std::make_pair(s.transaction_id, s.position)) {
      ++n;
    }
  }
  return n;
}

TEST(ConsumeTest, PartitionsMoveOnJoinAndLeaveAndLateAcksMoveNothing) {
  System sys(*pg, "consume_move");
  sys.StartAll();
  for (int i = 0; i < 40; ++i) testing::OpenAccount(sys.commands(), 100);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  GroupWorker a(
      {.port = sys.query_port, .group = "g", .member = "a", .ack = false});
  ASSERT_TRUE(WaitFor([&] { return a.count() == 40; }, absl::Seconds(20)));
  // The service stores how far each partition was delivered (a new owner
  // counts what it sends up to there as redelivered).
  ASSERT_TRUE(
      WaitFor([&] { return Undelivered(sys, "g") == 0; }, absl::Seconds(20)));
  // B joins: half the partitions move to it, with their entries, which A
  // never acknowledged: delivered again.
  GroupWorker b(
      {.port = sys.query_port, .group = "g", .member = "b", .ack = false});
  ASSERT_TRUE(WaitFor([&] { return Split(a, b, 16); }, absl::Seconds(20)));
  const std::vector<int> moved = b.partitions();
  size_t in_moved = 0;
  for (const GroupWorker::Got& g : a.received()) {
    in_moved += std::count(moved.begin(), moved.end(), g.partition);
  }
  ASSERT_GT(in_moved, 0u);
  ASSERT_TRUE(
      WaitFor([&] { return b.count() == in_moved; }, absl::Seconds(20)));
  for (const GroupWorker::Got& g : b.received()) {
    EXPECT_NE(std::count(moved.begin(), moved.end(), g.partition), 0);
  }
  EXPECT_EQ(QueryMetric(sys, "bank_group_redeliveries_total{group=\"g\"}"),
            static_cast<double>(in_moved));
  // A acknowledges everything it had, late for the moved partitions: only
  // its own partitions' progress moves.
  EXPECT_EQ(a.AckAll(), 40);
  ASSERT_TRUE(WaitFor(
      [&] { return CoveredIn(sys, "g", a.partitions()) == 40 - in_moved; },
      absl::Seconds(20)));
  EXPECT_EQ(CoveredIn(sys, "g", moved), 0);
  // B leaves without acknowledging: A gets every partition back, and the
  // moved partitions' entries a third time.
  b.Stop();
  ASSERT_TRUE(WaitFor([&] { return a.partitions().size() == kPartitions; },
                      absl::Seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return a.count() == 40 + in_moved; }, absl::Seconds(20)));
  EXPECT_EQ(a.AckAll(), static_cast<int>(in_moved));
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "g") == 0; }, absl::Seconds(20)));
  auto stored = StoredPartitions(sys.read_uri, "g");
  for (int p : moved) {
    EXPECT_EQ(stored[p].owner, "a");
    EXPECT_EQ(stored[p].generation, 3) << "a, then b, then a";
  }
  EXPECT_TRUE(a.failures().empty());
  EXPECT_TRUE(b.failures().empty());
}

TEST(ConsumeTest, TwoReplicasServeOneGroupAndTakeOverADeadOnesMembers) {
  System sys(*pg, "consume_replicas");
  sys.StartAll();
  const int port2 = testing::PickFreePort();
  auto second = std::make_unique<Process>(
      testing::BinDir() + "/query-service",
      std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(port2),
                               "--read-db", sys.read_uri, "--metrics-listen",
                               "127.0.0.1:0"});
  ASSERT_TRUE(
      System::WaitServing(port2, "bank.v1.QueryService", absl::Seconds(30)))
      << second->Log();
  GroupWorker a({.port = sys.query_port, .group = "shared", .member = "a"});
  GroupWorker b({.port = port2, .group = "shared", .member = "b"});
  ASSERT_TRUE(WaitFor([&] { return Split(a, b, 16); }, absl::Seconds(20)));
  std::vector<std::string> accounts;
  for (int i = 0; i < 30; ++i) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 100));
    Deposit(sys, accounts.back(), 1);
  }
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return a.count() + b.count() == 60; }, absl::Seconds(20)));
  // Each entry once, to the member that owns its partition.
  std::vector<GroupWorker::Got> both = a.received();
  const std::vector<int> of_a = a.partitions(), of_b = b.partitions();
  for (const GroupWorker::Got& g : both) {
    EXPECT_NE(std::count(of_a.begin(), of_a.end(), g.partition), 0);
  }
  for (const GroupWorker::Got& g : b.received()) {
    EXPECT_NE(std::count(of_b.begin(), of_b.end(), g.partition), 0);
    both.push_back(g);
  }
  std::sort(both.begin(), both.end(), [](const auto& x, const auto& y) {
    return std::tie(x.account_id, x.version) <
           std::tie(y.account_id, y.version);
  });
  ExpectEachEntryOnce(both, sys);
  // The second replica dies with B's stream, and B cannot reach another
  // one: B's name is held until its lease runs out, then the first replica
  // gives A everything. B comes back through the first replica and gets
  // its half again.
  b.SetPort(testing::PickFreePort());
  second->Signal(SIGKILL);
  second->Wait(absl::Seconds(10));
  ASSERT_TRUE(WaitFor([&] { return a.partitions().size() == kPartitions; },
                      absl::Seconds(30)));
  b.SetPort(sys.query_port);
  ASSERT_TRUE(WaitFor([&] { return Split(a, b, 16); }, absl::Seconds(30)));
  for (const std::string& acc : accounts) Deposit(sys, acc, 1);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "shared") == 0; }, absl::Seconds(30)))
      << Uncovered(sys, "shared");
  EXPECT_GE(b.joins(), 2);
  EXPECT_TRUE(a.failures().empty()) << a.failures()[0];
  EXPECT_TRUE(b.failures().empty()) << b.failures()[0];
}

// The store's rules, called directly on the read database: names held by
// one session at a time, leases, rebalances that bump the generation of
// what moves, and progress that moves forward under its generation only.
TEST(ConsumeTest, GroupStoreFencesLateProgressAndExpiresLeases) {
  System sys(*pg, "consume_store");
  sys.StartAll();
  query::GroupStore store(sys.read_uri, 2, absl::ZeroDuration());
  const absl::Duration hour = absl::Hours(1);
  auto deadline = [] { return absl::Now() + absl::Seconds(10); };
  ASSERT_EQ(*store.Join("f", "a", "s1", false, 4, hour, deadline()), 4);
  EXPECT_TRUE(absl::IsAlreadyExists(
      store.Join("f", "a", "s2", false, 4, hour, deadline()).status()));
  // The same session joining again (a repeated call) is not refused, and a
  // group's partition count is the one it was created with.
  EXPECT_EQ(*store.Join("f", "a", "s1", false, 8, hour, deadline()), 4);
  auto view = store.Rebalance("f", {"a"}, {"s1"}, hour, deadline());
  ASSERT_TRUE(view.ok()) << view.status();
  for (const query::PartitionState& p : view->partitions) {
    EXPECT_EQ(p.owner, "a");
    EXPECT_EQ(p.generation, 1);
  }
  ASSERT_TRUE(store.Join("f", "b", "s3", false, 4, hour, deadline()).ok());
  view = store.Rebalance("f", {"a", "b"}, {"s1", "s3"}, hour, deadline());
  ASSERT_TRUE(view.ok());
  int to_b = -1, kept = -1;
  for (const query::PartitionState& p : view->partitions) {
    if (p.owner == "b") to_b = p.partition;
    if (p.owner == "a") kept = p.partition;
  }
  ASSERT_GE(to_b, 0);
  ASSERT_GE(kept, 0);
  EXPECT_EQ(view->partitions[to_b].generation, 2);
  EXPECT_EQ(view->partitions[kept].generation, 1);
  // A's late progress for the partition that moved is fenced off.
  auto fenced = store.SaveProgress(
      "f", {{to_b, 1, {5, 5}, {5, 5}}, {kept, 1, {5, 5}, {5, 5}}}, deadline());
  ASSERT_TRUE(fenced.ok());
  EXPECT_EQ(*fenced, 1);
  auto stored = StoredPartitions(sys.read_uri, "f");
  EXPECT_EQ(stored[to_b].position, 0);
  EXPECT_EQ(stored[kept].position, 5);
  // Never backwards.
  ASSERT_TRUE(store.SaveProgress("f", {{kept, 1, {4, 9}, {4, 9}}}, deadline())
                  .ok());
  EXPECT_EQ(StoredPartitions(sys.read_uri, "f")[kept].transaction_id, 5);
  // A member whose lease is not renewed goes, and its partitions with it.
  ASSERT_TRUE(store
                  .Join("f", "c", "s4", false, 4, absl::Milliseconds(50),
                        deadline())
                  .ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        view = store.Rebalance("f", {"a", "b"}, {"s1", "s3"}, hour,
                               deadline());
        return view.ok() && view->members.size() == 2;
      },
      absl::Seconds(10)));
  for (const query::PartitionState& p : view->partitions) {
    EXPECT_NE(p.owner, "c");
    EXPECT_FALSE(p.owner.empty());
  }
  // Leaving takes the session that holds the name.
  ASSERT_TRUE(store.Leave("f", "b", "s-other", deadline()).ok());
  view = store.Rebalance("f", {"a"}, {"s1"}, hour, deadline());
  EXPECT_EQ(view->members.size(), 2u);
  ASSERT_TRUE(store.Leave("f", "b", "s3", deadline()).ok());
  view = store.Rebalance("f", {"a"}, {"s1"}, hour, deadline());
  ASSERT_EQ(view->members, std::vector<std::string>{"a"});
  for (const query::PartitionState& p : view->partitions) {
    EXPECT_EQ(p.owner, "a");
  }
  EXPECT_TRUE(absl::IsNotFound(
      store.Rebalance("nope", {}, {}, hour, deadline()).status()));
}

// bankctl consume prints its member's entries in decimals and acknowledges
// them: a second run of the same member starts after them.
TEST(ConsumeTest, BankctlConsumePrintsAndAcknowledges) {
  System sys(*pg, "consume_cli");
  sys.StartAll();
  auto bankctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {"--command-host", absl::StrCat("127.0.0.1:", sys.command_port),
                 "--query-host", absl::StrCat("127.0.0.1:", sys.query_port)});
    return std::make_unique<Process>(testing::BinDir() + "/bankctl", args);
  };
  std::string a = testing::OpenAccount(sys.commands(), 1000);
  Deposit(sys, a, 250);
  auto first = bankctl({"consume", "cli", "--member", "x"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return first->Log().find(a + "  ") != std::string::npos &&
               first->Log().find("DEPOSITED  2.50  -> 12.50 EUR") !=
                   std::string::npos;
      },
      absl::Seconds(20)))
      << first->Log();
  EXPECT_NE(first->Log().find("has partitions [0,1,2"), std::string::npos)
      << first->Log();
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "cli") == 0; }, absl::Seconds(20)));
  first->Signal(SIGINT);
  EXPECT_EQ(first->Wait(absl::Seconds(10)), 0) << first->Log();
  Deposit(sys, a, 1);
  auto second = bankctl({"--json", "consume", "cli", "--member", "x"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return second->Log().find("\"version\":\"3\"") != std::string::npos;
      },
      absl::Seconds(20)))
      << second->Log();
  EXPECT_EQ(second->Log().find("\"version\":\"2\""), std::string::npos)
      << second->Log();
  second->Signal(SIGTERM);
  EXPECT_EQ(second->Wait(absl::Seconds(10)), 0);
  auto bad = bankctl({"consume", "bad name", "--member", "x"});
  EXPECT_EQ(bad->Wait(absl::Seconds(10)), 1);
  EXPECT_NE(bad->Log().find("INVALID_ARGUMENT"), std::string::npos)
      << bad->Log();
}

// Three Python workers (clients/python/group_worker.py) share a group; one
// is killed (-9) and the other two take its partitions over: every entry is
// printed by some worker, and the group's progress covers them all.
TEST(ConsumeTest, ThreePythonWorkersShareAGroupAndSurviveAKill) {
  System sys(*pg, "consume_py");
  sys.StartAll();
  auto worker = [&](const std::string& name) {
    return std::make_unique<Process>(
        "/usr/bin/python3",
        std::vector<std::string>{
            std::string(BANK_SOURCE_DIR) + "/clients/python/group_worker.py",
            "--query-host", absl::StrCat("127.0.0.1:", sys.query_port),
            "--group", "py", "--member", name},
        std::map<std::string, std::string>{
            {"PYTHONPATH", std::string(BANK_BUILD_DIR) + "/python"}});
  };
  std::map<std::string, std::unique_ptr<Process>> workers;
  for (const char* name : {"w1", "w2", "w3"}) workers[name] = worker(name);
  auto printed = [&] {
    std::set<std::pair<std::string, int64_t>> seen;
    for (auto& [name, w] : workers) {
      const std::string log = w->Log();
      size_t at = 0;
      while ((at = log.find("\"account_id\": \"", at)) != std::string::npos) {
        const std::string account = log.substr(at + 15, 36);
        const size_t v = log.find("\"version\": ", at) + 11;
        seen.insert({account, std::stoll(log.substr(v))});
        ++at;
      }
    }
    return seen;
  };
  // Each has its share once all three joined.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto& [name, w] : workers) {
          if (w->Log().find("partitions [") == std::string::npos) return false;
        }
        return QueryMetric(sys, "bank_group_members{group=\"py\"}") == 3;
      },
      absl::Seconds(30)));
  std::vector<std::string> accounts;
  for (int i = 0; i < 30; ++i) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 100));
  }
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return printed().size() == 30; }, absl::Seconds(30)));
  workers["w2"]->Signal(SIGKILL);
  workers["w2"]->Wait(absl::Seconds(10));
  // Its name goes when its stream is seen gone; its partitions with it.
  ASSERT_TRUE(WaitFor(
      [&] { return QueryMetric(sys, "bank_group_members{group=\"py\"}") == 2; },
      absl::Seconds(30)));
  for (const std::string& a : accounts) Deposit(sys, a, 1);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return printed().size() == 60; }, absl::Seconds(30)));
  ASSERT_TRUE(
      WaitFor([&] { return Uncovered(sys, "py") == 0; }, absl::Seconds(20)));
  // The deposits after the kill went to the two that are left.
  const std::string w2 = workers["w2"]->Log();
  for (const std::string& a : accounts) {
    EXPECT_EQ(w2.find("\"account_id\": \"" + a + "\", \"version\": 2"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
