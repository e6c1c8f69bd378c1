// The connection pool and the pooled-call helper against PostgreSQL: a
// connection that broke while idle is never handed to a call, and a
// repeatable call that loses its connection runs once more on a fresh one,
// while a call whose outcome a lost connection leaves unknown does not.
#include <atomic>
#include <memory>
#include <pqxx/pqxx>
#include <thread>

#include "common/db/connection_pool.h"
#include "common/db/run.h"
#include "gtest/gtest.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_environment.h"
#include "tests/support/process.h"

namespace bank::db {
namespace {

testing::PgCluster* cluster = nullptr;
std::string uri;

// The database the tests use.
void Prepare(testing::PgCluster& c) {
  ASSERT_TRUE(c.CreateDatabase("pool").ok());
  uri = c.Uri("pool");
}

PooledCall Call(bool repeatable) {
  return {.what = "a test call",
          .deadline = absl::Now() + absl::Seconds(10),
          .repeatable = repeatable};
}

absl::StatusOr<int> BackendPid(ConnectionPool& pool, const PooledCall& call) {
  return RunPooled(pool, call,
                   [](ConnectionPool::Lease& c) -> absl::StatusOr<int> {
                     pqxx::nontransaction tx(*c);
                     return tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
                   });
}

bool BackendGone(int pid) {
  pqxx::connection admin(uri);
  pqxx::nontransaction tx(admin);
  return tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                        pid)[0][0]
             .as<int>() == 0;
}

TEST(ConnectionPoolTest, AConnectionThatBrokeWhileIdleIsNotHandedOut) {
  ConnectionPool pool({.uri = uri, .size = 1});
  absl::StatusOr<int> first = BackendPid(pool, Call(/*repeatable=*/false));
  ASSERT_TRUE(first.ok()) << first.status();
  {
    pqxx::connection admin(uri);
    pqxx::nontransaction tx(admin);
    ASSERT_TRUE(tx.exec_params("SELECT pg_terminate_backend($1)", *first)[0][0]
                    .as<bool>());
  }
  ASSERT_TRUE(testing::WaitFor([&] { return BackendGone(*first); },
                               absl::Seconds(10)));
  // Not repeatable, so only a check before use can make this call succeed.
  absl::StatusOr<int> second = BackendPid(pool, Call(/*repeatable=*/false));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*second, *first);
  EXPECT_EQ(pool.in_use(), 0);
}

// The call's first run loses its connection (its backend ends itself).
struct LosesItsConnection {
  int runs = 0;
  int times_to_lose = 1;
  absl::StatusOr<int> operator()(ConnectionPool::Lease& c) {
    pqxx::nontransaction tx(*c);
    if (++runs <= times_to_lose) {
      tx.exec("SELECT pg_terminate_backend(pg_backend_pid())");
    }
    return tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
  }
};

TEST(ConnectionPoolTest, ARepeatableCallRunsAgainOnAFreshConnection) {
  ConnectionPool pool({.uri = uri, .size = 2});
  LosesItsConnection fn;
  absl::StatusOr<int> r =
      RunPooled(pool, Call(/*repeatable=*/true),
                [&](ConnectionPool::Lease& c) { return fn(c); });
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fn.runs, 2);
  EXPECT_EQ(pool.in_use(), 0);
}

TEST(ConnectionPoolTest, ARepeatableCallRunsAgainOnlyOnce) {
  ConnectionPool pool({.uri = uri, .size = 2});
  LosesItsConnection fn{.times_to_lose = 2};
  absl::StatusOr<int> r =
      RunPooled(pool, Call(/*repeatable=*/true),
                [&](ConnectionPool::Lease& c) { return fn(c); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(fn.runs, 2);
}

TEST(ConnectionPoolTest, ACallWhoseOutcomeWouldBeUnknownIsNotRepeated) {
  ConnectionPool pool({.uri = uri, .size = 2});
  LosesItsConnection fn;
  absl::StatusOr<int> r =
      RunPooled(pool, Call(/*repeatable=*/false),
                [&](ConnectionPool::Lease& c) { return fn(c); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(fn.runs, 1);
  // The lost connection was dropped: the next call gets a working one.
  EXPECT_TRUE(BackendPid(pool, Call(/*repeatable=*/false)).ok());
}

// Nothing listens on port 1: every connection attempt is refused at once.
constexpr char kUnreachable[] = "postgresql://127.0.0.1:1/nowhere";

TEST(ConnectionPoolTest, AnUnreachableDatabaseIsUnavailableAtOnceWithoutAWait) {
  ConnectionPool pool({.uri = kUnreachable, .size = 2});
  int runs = 0;
  PooledCall call = Call(/*repeatable=*/true);
  absl::StatusOr<int> r = RunPooled(
      pool, call,
      [&](ConnectionPool::Lease&) -> absl::StatusOr<int> { return ++runs; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(runs, 0);
}

TEST(ConnectionPoolTest, ACallWaitsForTheDatabaseUpToItsOutageWaitOnly) {
  ConnectionPool pool({.uri = kUnreachable, .size = 2});
  PooledCall call = Call(/*repeatable=*/false);
  call.deadline = absl::Now() + absl::Seconds(60);
  call.outage_wait = absl::Seconds(1);
  const absl::Time start = absl::Now();
  absl::StatusOr<int> r = RunPooled(
      pool, call,
      [&](ConnectionPool::Lease&) -> absl::StatusOr<int> { return 1; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // It tried for the whole wait, and no longer: not to the call's deadline.
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(pool.in_use(), 0);
}

TEST(ConnectionPoolTest, ACallWaitingForTheDatabaseRunsOnceItIsBack) {
  ConnectionPool pool({.uri = uri, .size = 2});
  ASSERT_TRUE(cluster->Stop(/*immediate=*/false).ok());
  PooledCall call = Call(/*repeatable=*/false);
  call.deadline = absl::Now() + absl::Seconds(60);
  call.outage_wait = absl::Seconds(30);
  std::atomic<bool> answered{false};
  absl::StatusOr<int> r;
  std::thread caller([&] {
    r = BackendPid(pool, call);
    answered = true;
  });
  // Long enough for a call that does not wait to have failed already.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(answered.load());
  ASSERT_TRUE(cluster->Restart().ok());
  caller.join();
  EXPECT_TRUE(r.ok()) << r.status();
}

}  // namespace
}  // namespace bank::db

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::db::cluster, bank::db::Prepare));
}
