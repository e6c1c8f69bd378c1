// Past one process (docs/scaling.md): two command-service replicas behind
// gRPC client-side round_robin under one concurrent load, and a query-service
// serving read-your-writes from a streaming replica of the read database.
// Real executables, real PostgreSQL, real replication.
#include <atomic>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "common/util/uuid.h"
#include "gtest/gtest.h"
#include "tests/support/oracle.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::BinDir;
using testing::Ctx;
using testing::HttpGet;
using testing::MetricValue;
using testing::PgCluster;
using testing::PickFreePort;
using testing::Process;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;

int64_t Scalar(const std::string& uri, const std::string& sql) {
  pqxx::connection c(uri);
  pqxx::nontransaction tx(c);
  return tx.exec(sql)[0][0].as<int64_t>();
}

TEST(ScalingTest, TwoCommandReplicasBehindRoundRobinKeepEveryInvariant) {
  System sys(*pg, "replicas");
  sys.StartAll();
  const int port2 = PickFreePort(), metrics2 = PickFreePort();
  Process second(BinDir() + "/command-service",
                 {"--listen", "127.0.0.1:" + std::to_string(port2),
                  "--events-db", sys.events_uri, "--metrics-listen",
                  "127.0.0.1:" + std::to_string(metrics2)});
  ASSERT_TRUE(System::WaitServing(port2, "bank.v1.CommandService",
                                  absl::Seconds(30)))
      << second.Log();

  // One channel over both replicas, balanced by the client (what a DNS name
  // with two A records and round_robin does).
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  auto stub = v1::CommandService::NewStub(grpc::CreateCustomChannel(
      "ipv4:127.0.0.1:" + std::to_string(sys.command_port) + ",127.0.0.1:" +
          std::to_string(port2),
      grpc::InsecureChannelCredentials(), args));

  constexpr int kAccounts = 12, kThreads = 16, kOps = 50;
  constexpr int64_t kInitial = 10000;
  std::vector<std::string> ids;
  for (int i = 0; i < kAccounts; ++i) {
    ids.push_back(testing::OpenAccount(*stub, kInitial));
  }
  std::mutex mu;
  std::map<std::string, int> expected_events;  // command_id -> events
  int64_t net_in = 0;                           // deposits - withdrawals
  std::atomic<int> aborted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kOps; ++i) {
        const std::string cmd = util::NewUuid();
        const std::string a = ids[rng() % kAccounts];
        std::string b = ids[rng() % kAccounts];
        const int64_t amount = 1 + rng() % 500;
        const int kind = rng() % 3;
        grpc::Status s;
        for (int attempt = 0; attempt < 20; ++attempt) {
          auto ctx = Ctx(20);
          if (kind == 0) {
            v1::DepositRequest req;
            req.set_command_id(cmd);
            req.set_account_id(a);
            req.set_amount(amount);
            v1::CommandResult r;
            s = stub->Deposit(ctx.get(), req, &r);
          } else if (kind == 1) {
            v1::WithdrawRequest req;
            req.set_command_id(cmd);
            req.set_account_id(a);
            req.set_amount(amount);
            v1::CommandResult r;
            s = stub->Withdraw(ctx.get(), req, &r);
          } else {
            if (b == a) b = ids[(std::find(ids.begin(), ids.end(), a) -
                                 ids.begin() + 1) % kAccounts];
            v1::TransferRequest req;
            req.set_command_id(cmd);
            req.set_from_account_id(a);
            req.set_to_account_id(b);
            req.set_amount(amount);
            v1::TransferResult r;
            s = stub->Transfer(ctx.get(), req, &r);
          }
          // Only an unknown outcome is retried, with the same command_id.
          if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
              s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
            break;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (s.ok()) {
          expected_events[cmd] = kind == 2 ? 2 : 1;
          net_in += kind == 0 ? amount : kind == 1 ? -amount : 0;
        } else if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
          ++refused;  // Insufficient funds: a refusal, nothing written.
          expected_events[cmd] = 0;
        } else {
          if (s.error_code() == grpc::StatusCode::ABORTED) ++aborted;
          ADD_FAILURE() << s.error_code() << " " << s.error_message();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // No expected_version was sent: conflicts between the replicas are
  // retried inside them, never shown to the client.
  EXPECT_EQ(aborted.load(), 0);

  // Both replicas appended (group-commit batches counted by each).
  for (int port : {sys.command_metrics, metrics2}) {
    double batches =
        MetricValue(HttpGet(port, "/metrics").body, "bank_append_batches_total");
    EXPECT_GT(batches, 0) << "replica with metrics on " << port;
  }
  // Every acknowledged command exactly once, every refused one not at all.
  {
    pqxx::connection c(sys.events_uri);
    pqxx::nontransaction tx(c);
    std::map<std::string, int> seen;
    for (const auto& row : tx.exec(
             "SELECT metadata->>'command_id', count(*) FROM events "
             "WHERE metadata ? 'command_id' GROUP BY 1")) {
      seen[row[0].as<std::string>()] = row[1].as<int>();
    }
    int checked = 0;
    for (const auto& [cmd, n] : expected_events) {
      auto it = seen.find(cmd);
      EXPECT_EQ(it == seen.end() ? 0 : it->second, n) << cmd;
      ++checked;
    }
    EXPECT_EQ(checked, kThreads * kOps);
  }
  // Every stream's versions are 1..n without a gap or a duplicate.
  EXPECT_EQ(Scalar(sys.events_uri,
                   "SELECT count(*) FROM (SELECT stream_id, "
                   "max(stream_version) m, count(*) c, "
                   "count(DISTINCT stream_version) d FROM events "
                   "GROUP BY 1) t WHERE m <> c OR d <> c"),
            0);
  // The read model catches up to exactly the fold of the events, and money
  // is conserved: the total is what came in minus what went out.
  std::vector<std::string> diffs;
  ASSERT_TRUE(WaitFor(
      [&] {
        diffs = testing::CompareReadModel(sys.events_uri, sys.read_uri);
        return diffs.empty();
      },
      absl::Seconds(30)))
      << (diffs.empty() ? "" : diffs[0]) << "\n"
      << sys.projector->Log();
  EXPECT_EQ(Scalar(sys.read_uri, "SELECT sum(balance) FROM account_balances"),
            kAccounts * kInitial + net_in);
  EXPECT_EQ(Scalar(sys.read_uri,
                   "SELECT count(*) FROM account_balances WHERE balance < 0"),
            0);
}

TEST(ScalingTest, QueryServiceOnAStreamingReplicaServesReadYourWrites) {
  System sys(*pg, "standby");
  sys.StartAll();
  auto standby = PgCluster::StartStandbyOf(*pg);
  ASSERT_TRUE(standby.ok()) << standby.status();
  const int port = PickFreePort();
  Process query(BinDir() + "/query-service",
                {"--listen", "127.0.0.1:" + std::to_string(port), "--read-db",
                 (*standby)->Uri("standby_read"), "--metrics-listen", ""});
  ASSERT_TRUE(
      System::WaitServing(port, "bank.v1.QueryService", absl::Seconds(30)))
      << query.Log();
  auto replica = v1::QueryService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                          grpc::InsecureChannelCredentials()));
  // The replica really is one: it refuses writes.
  {
    pqxx::connection c((*standby)->Uri("standby_read"));
    pqxx::nontransaction tx(c);
    EXPECT_TRUE(tx.exec("SELECT pg_is_in_recovery()")[0][0].as<bool>());
  }
  const std::string id = testing::OpenAccount(sys.commands(), 0);
  std::vector<double> waits_ms;
  for (int i = 1; i <= 40; ++i) {
    v1::DepositRequest req;
    req.set_account_id(id);
    req.set_amount(i);
    v1::CommandResult r;
    auto ctx = Ctx();
    ASSERT_TRUE(sys.commands().Deposit(ctx.get(), req, &r).ok());
    // Read your write from the replica: min_version waits for it to arrive
    // through the projector and then through replication.
    v1::GetBalanceRequest get;
    get.set_account_id(id);
    get.set_min_version(r.version());
    v1::AccountBalance b;
    auto gctx = Ctx(10);
    const absl::Time start = absl::Now();
    grpc::Status s = replica->GetBalance(gctx.get(), get, &b);
    waits_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message() << "\n"
                        << query.Log();
    EXPECT_GE(b.version(), r.version());
    EXPECT_EQ(b.balance(), int64_t{i} * (i + 1) / 2);
  }
  std::sort(waits_ms.begin(), waits_ms.end());
  std::printf("read-your-writes through the replica: p50 %.1f ms, max %.1f ms\n",
              waits_ms[waits_ms.size() / 2], waits_ms.back());
  EXPECT_NE(query.Log().find("streaming replica"), std::string::npos);
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
