// A PostgreSQL restart as users meet it: once the server is back and both
// services' health says SERVING again, no call fails. The connections the
// pools held broke while the server was away; the pools find that before a
// call uses them (and a read that still meets one runs again on a fresh
// connection).
#include <stdlib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::Ctx;
using testing::PgCluster;
using testing::System;
using Serving = grpc::health::v1::HealthCheckResponse;

constexpr int kClients = 16;
constexpr int kCallsPerClient = 8;  // 128 calls in all.

PgCluster* pg = nullptr;

// kClients threads, each sending kCallsPerClient calls to its own account:
// deposits of 1, GetBalance and GetHistory in turn. Returns the failures
// ("method: code: message") and adds the acknowledged deposits to `credited`.
std::vector<std::string> SendCalls(System& sys,
                                   const std::vector<std::string>& accounts,
                                   std::map<std::string, int64_t>& credited) {
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      const std::string& a = accounts[c];
      for (int i = 0; i < kCallsPerClient; ++i) {
        grpc::Status s;
        const char* method = "";
        if (i % 3 == 0) {
          method = "Deposit";
          v1::DepositRequest req;
          req.set_account_id(a);
          req.set_amount(1);
          v1::CommandResult r;
          s = sys.commands().Deposit(Ctx(5).get(), req, &r);
          if (s.ok()) {
            std::lock_guard<std::mutex> l(mu);
            credited[a] += 1;
          }
        } else if (i % 3 == 1) {
          method = "GetBalance";
          v1::GetBalanceRequest req;
          req.set_account_id(a);
          v1::AccountBalance r;
          s = sys.queries().GetBalance(Ctx(5).get(), req, &r);
        } else {
          method = "GetHistory";
          v1::GetHistoryRequest req;
          req.set_account_id(a);
          v1::GetHistoryResponse r;
          s = sys.queries().GetHistory(Ctx(5).get(), req, &r);
        }
        if (!s.ok()) {
          std::lock_guard<std::mutex> l(mu);
          failures.push_back(absl::StrCat(method, ": ", s.error_code(), ": ",
                                          s.error_message()));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  return failures;
}

class DatabaseRestartTest : public ::testing::TestWithParam<bool> {};

TEST_P(DatabaseRestartTest, NoCallFailsOnceTheDatabaseIsBackAndServing) {
  const bool immediate = GetParam();
  System sys(*pg, immediate ? "restart_immediate" : "restart_fast");
  sys.StartAll();
  std::vector<std::string> accounts;
  std::map<std::string, int64_t> credited;
  for (int c = 0; c < kClients; ++c) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 0));
    // Projected before it is read.
    v1::GetBalanceRequest req;
    req.set_account_id(accounts.back());
    req.set_min_version(1);
    v1::AccountBalance b;
    grpc::Status s = sys.queries().GetBalance(Ctx(20).get(), req, &b);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // Concurrent calls first, so that both pools hold several connections.
  std::vector<std::string> before = SendCalls(sys, accounts, credited);
  ASSERT_TRUE(before.empty()) << before.front();

  ASSERT_TRUE(pg->Stop(immediate).ok());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return System::Health(sys.command_port, "") == Serving::NOT_SERVING &&
               System::Health(sys.query_port, "") == Serving::NOT_SERVING;
      },
      absl::Seconds(20)));
  ASSERT_TRUE(pg->Restart().ok());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return System::Health(sys.command_port, "") == Serving::SERVING &&
               System::Health(sys.query_port, "") == Serving::SERVING;
      },
      absl::Seconds(30)))
      << sys.command->Log() << sys.query->Log();

  std::vector<std::string> after = SendCalls(sys, accounts, credited);
  EXPECT_EQ(after.size(), 0u)
      << after.size() << " of " << kClients * kCallsPerClient
      << " calls failed; the first: " << after.front();

  // Every acknowledged deposit is in the balance, once.
  for (const std::string& a : accounts) {
    v1::GetBalanceRequest req;
    req.set_account_id(a);
    req.set_min_version(1 + credited[a]);
    v1::AccountBalance b;
    grpc::Status s = sys.queries().GetBalance(Ctx(20).get(), req, &b);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(b.balance(), credited[a]) << a;
  }
}

// Calls sent while the database is down wait for it (--db-outage-wait, within
// their deadline) instead of failing, and succeed once it is back; health
// says NOT_SERVING meanwhile, so balancers route around.
TEST(DatabaseOutageTest, CallsSentWhileTheDatabaseIsDownSucceedOnceItIsBack) {
  System sys(*pg, "outage_wait");
  setenv("BANK_DB_OUTAGE_WAIT", "30", 1);
  sys.StartAll();
  unsetenv("BANK_DB_OUTAGE_WAIT");
  const std::string a = testing::OpenAccount(sys.commands(), 0);
  {
    v1::GetBalanceRequest req;
    req.set_account_id(a);
    req.set_min_version(1);
    v1::AccountBalance b;
    ASSERT_TRUE(sys.queries().GetBalance(Ctx(20).get(), req, &b).ok());
  }
  ASSERT_TRUE(pg->Stop(/*immediate=*/false).ok());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return System::Health(sys.command_port, "") == Serving::NOT_SERVING &&
               System::Health(sys.query_port, "") == Serving::NOT_SERVING;
      },
      absl::Seconds(20)));
  constexpr int kCalls = 8;
  std::atomic<int> sending{0};
  std::vector<grpc::Status> answers(kCalls);
  std::vector<absl::Time> answered(kCalls);
  std::vector<std::thread> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([&, i] {
      auto ctx = Ctx(60);
      ++sending;
      if (i % 2 == 0) {
        v1::DepositRequest req;
        req.set_account_id(a);
        req.set_amount(1);
        v1::CommandResult r;
        answers[i] = sys.commands().Deposit(ctx.get(), req, &r);
      } else {
        v1::GetHistoryRequest req;
        req.set_account_id(a);
        v1::GetHistoryResponse r;
        answers[i] = sys.queries().GetHistory(ctx.get(), req, &r);
      }
      answered[i] = absl::Now();
    });
  }
  ASSERT_TRUE(
      testing::WaitFor([&] { return sending == kCalls; }, absl::Seconds(10)));
  // Long enough for a call that does not wait to have failed already.
  absl::SleepFor(absl::Seconds(1));
  const absl::Time restarting = absl::Now();
  ASSERT_TRUE(pg->Restart().ok());
  for (auto& t : calls) t.join();
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(answers[i].ok()) << i << ": " << answers[i].error_code() << ": "
                                 << answers[i].error_message();
    EXPECT_GT(answered[i], restarting) << i << " was answered while down";
  }
  // Each deposit applied once.
  v1::GetBalanceRequest req;
  req.set_account_id(a);
  req.set_min_version(1 + kCalls / 2);
  v1::AccountBalance b;
  grpc::Status s = sys.queries().GetBalance(Ctx(20).get(), req, &b);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(b.balance(), kCalls / 2);
  EXPECT_EQ(b.version(), 1 + kCalls / 2);
}

INSTANTIATE_TEST_SUITE_P(FastAndImmediateShutdown, DatabaseRestartTest,
                         ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Immediate" : "Fast";
                         });

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
