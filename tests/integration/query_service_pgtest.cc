// QueryService, bankctl and the Python example against the real executables
// and a real PostgreSQL.
#include <atomic>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using grpc::StatusCode;
using testing::Ctx;
using testing::PgCluster;
using testing::Process;
using testing::System;

PgCluster* pg = nullptr;
System* sys = nullptr;

// The whole system, shared by the tests.
void StartSystem(PgCluster& c) {
  sys = new System(c, "query");
  sys->StartAll();
}

v1::CommandResult Deposit(const std::string& id, int64_t amount) {
  v1::DepositRequest req;
  req.set_account_id(id);
  req.set_amount(amount);
  v1::CommandResult r;
  auto ctx = Ctx();
  grpc::Status s = sys->commands().Deposit(ctx.get(), req, &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return r;
}

grpc::Status Balance(const std::string& id, int64_t min_version,
                     v1::AccountBalance* out, double deadline = 10,
                     const google::protobuf::Timestamp* as_of = nullptr) {
  v1::GetBalanceRequest req;
  req.set_account_id(id);
  req.set_min_version(min_version);
  if (as_of) *req.mutable_as_of() = *as_of;
  auto ctx = Ctx(deadline);
  return sys->queries().GetBalance(ctx.get(), req, out);
}

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  ts.set_nanos(static_cast<int>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(ts.seconds()))));
  return ts;
}

TEST(QueryServiceTest, StatusCodesForBadAndUnknownInput) {
  v1::AccountBalance b;
  EXPECT_EQ(Balance("nope", 0, &b).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Balance("", 0, &b).error_code(), StatusCode::INVALID_ARGUMENT);
  grpc::Status nf = Balance("123e4567-e89b-12d3-a456-426614174000", 0, &b);
  EXPECT_EQ(nf.error_code(), StatusCode::NOT_FOUND);
  EXPECT_FALSE(nf.error_message().empty());
  std::string a = testing::OpenAccount(sys->commands(), 1);
  EXPECT_EQ(Balance(a, -1, &b).error_code(), StatusCode::INVALID_ARGUMENT);
  google::protobuf::Timestamp bad;
  bad.set_nanos(-5);
  EXPECT_EQ(Balance(a, 0, &b, 10, &bad).error_code(),
            StatusCode::INVALID_ARGUMENT);
  for (const std::string& token : std::vector<std::string>{
           "garbage", "cDF8YWNjb3VudHN8eHh4fDEyMw", std::string(600, 'A')}) {
    v1::ListAccountsRequest req;
    req.set_page_token(token);
    v1::ListAccountsResponse resp;
    auto ctx = Ctx();
    EXPECT_EQ(sys->queries().ListAccounts(ctx.get(), req, &resp).error_code(),
              StatusCode::INVALID_ARGUMENT)
        << token;
  }
  {
    v1::ListAccountsRequest req;
    req.set_page_size(-1);
    v1::ListAccountsResponse resp;
    auto ctx = Ctx();
    EXPECT_EQ(sys->queries().ListAccounts(ctx.get(), req, &resp).error_code(),
              StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::GetHistoryRequest req;
    req.set_account_id("123e4567-e89b-12d3-a456-426614174000");
    v1::GetHistoryResponse resp;
    auto ctx = Ctx();
    EXPECT_EQ(sys->queries().GetHistory(ctx.get(), req, &resp).error_code(),
              StatusCode::NOT_FOUND);
    req.set_account_id("zzz");
    auto ctx2 = Ctx();
    EXPECT_EQ(sys->queries().GetHistory(ctx2.get(), req, &resp).error_code(),
              StatusCode::INVALID_ARGUMENT);
  }
}

TEST(QueryServiceTest, ReadYourWritesAfterEachOfAThousandCommands) {
  std::string a = testing::OpenAccount(sys->commands(), 0);
  std::string b = testing::OpenAccount(sys->commands(), 0);
  int64_t expected_a = 0, expected_b = 0;
  for (int i = 0; i < 1000; ++i) {
    v1::CommandResult r;
    int64_t want;
    if (i % 3 == 2 && expected_a >= 5) {
      v1::TransferRequest t;
      t.set_from_account_id(a);
      t.set_to_account_id(b);
      t.set_amount(5);
      v1::TransferResult tr;
      auto ctx = Ctx();
      ASSERT_TRUE(sys->commands().Transfer(ctx.get(), t, &tr).ok());
      expected_a -= 5;
      expected_b += 5;
      r = tr.from();
      want = expected_a;
    } else {
      r = Deposit(a, i + 1);
      expected_a += i + 1;
      want = expected_a;
    }
    v1::AccountBalance bal;
    grpc::Status s = Balance(a, r.version(), &bal);
    ASSERT_TRUE(s.ok()) << i << ": " << s.error_message();
    ASSERT_EQ(bal.version(), r.version()) << i;
    ASSERT_EQ(bal.balance(), want) << i;
  }
  v1::AccountBalance bb;
  ASSERT_TRUE(Balance(b, 1, &bb).ok());
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Balance(b, 0, &bb).ok() && bb.balance() == expected_b; },
      absl::Seconds(10)));
}

// Plain reads are coalesced into shared queries: each caller still gets its
// own account's balance (or NOT_FOUND), whatever shares its batch.
TEST(QueryServiceTest, ConcurrentPlainReadsEachGetTheirOwnAccount) {
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(testing::OpenAccount(sys->commands(), 1000 + i));
  }
  for (const std::string& id : ids) {  // All projected.
    v1::GetBalanceRequest req;
    req.set_account_id(id);
    req.set_min_version(1);
    v1::AccountBalance b;
    auto ctx = testing::Ctx();
    ASSERT_TRUE(sys->queries().GetBalance(ctx.get(), req, &b).ok());
  }
  std::atomic<int> checked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const int k = (t * 7 + i) % (static_cast<int>(ids.size()) + 1);
        v1::GetBalanceRequest req;
        // One in 41 asks for an account that does not exist.
        req.set_account_id(k < static_cast<int>(ids.size())
                               ? ids[k]
                               : "00000000-0000-4000-8000-00000000dead");
        v1::AccountBalance b;
        auto ctx = testing::Ctx();
        grpc::Status s = sys->queries().GetBalance(ctx.get(), req, &b);
        if (k < static_cast<int>(ids.size())) {
          EXPECT_TRUE(s.ok()) << s.error_message();
          EXPECT_EQ(b.account_id(), ids[k]);
          EXPECT_EQ(b.balance(), 1000 + k);
        } else {
          EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
        }
        ++checked;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(checked.load(), 1600);
}

double CacheHits() {
  return testing::MetricValue(
      testing::HttpGet(sys->query_metrics, "/metrics").body,
      "bank_balance_cache_total{result=\"hit\"}");
}

// Plain reads of a known account are answered from the query service's
// cache; every committed batch's notice keeps it exact: a plain read never
// answers older than a min_version read answered before it, and follows each
// command.
TEST(QueryServiceTest, CachedBalancesFollowEveryCommittedBatch) {
  std::string a = testing::OpenAccount(sys->commands(), 0);
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(a, 1, &b).ok());
  const double hits_before = CacheHits();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Balance(a, 0, &b).ok());
  EXPECT_GE(CacheHits(), hits_before + 2);  // Cached by the first read.
  int64_t expected = 0;
  for (int i = 1; i <= 200; ++i) {
    v1::CommandResult r = Deposit(a, i);
    expected += i;
    // Read what was just written, then plain reads: never older.
    ASSERT_TRUE(Balance(a, r.version(), &b).ok()) << i;
    ASSERT_EQ(b.balance(), expected) << i;
    for (int k = 0; k < 2; ++k) {
      ASSERT_TRUE(Balance(a, 0, &b).ok()) << i;
      ASSERT_GE(b.version(), r.version()) << i;
      ASSERT_EQ(b.balance(), expected) << i;
    }
  }
  // A command nobody reads back with min_version: plain reads catch up.
  v1::CommandResult last = Deposit(a, 7);
  expected += 7;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Balance(a, 0, &b).ok() && b.version() == last.version() &&
               b.balance() == expected;
      },
      absl::Seconds(10)))
      << b.version() << " " << b.balance();
}

double CacheMisses() {
  return testing::MetricValue(
      testing::HttpGet(sys->query_metrics, "/metrics").body,
      "bank_balance_cache_total{result=\"miss\"}");
}

// Cuts the query service's LISTEN connection once it is up (it reconnects
// within a second after the last cut) and waits until its backend has
// exited, so that the next look at pg_stat_activity cannot see it; false if
// no listener showed up within 10 s.
bool CutQueryListener(pqxx::connection& c) {
  return testing::WaitFor(
      [&] {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE application_name = 'bank-query-listen'");
        return r.size() == 1 && r[0][0].as<bool>();
      },
      absl::Seconds(10));
}

// Each notice carries the rows its batch wrote: a cached account follows its
// writes in place, and reading it after a write is not a miss.
TEST(QueryServiceTest, AWriteDoesNotCostTheNextReadAMiss) {
  std::string a = testing::OpenAccount(sys->commands(), 100);
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(a, 1, &b).ok());
  ASSERT_TRUE(Balance(a, 0, &b).ok());  // Cached by now.
  const double misses = CacheMisses();
  const double hits = CacheHits();
  int64_t expected = 100;
  for (int i = 1; i <= 20; ++i) {
    v1::CommandResult r = Deposit(a, i);
    expected += i;
    ASSERT_TRUE(testing::WaitFor(
        [&] { return Balance(a, 0, &b).ok() && b.version() == r.version(); },
        absl::Seconds(10)))
        << i << ": plain read stuck at version " << b.version();
    EXPECT_EQ(b.balance(), expected) << i;
    EXPECT_EQ(b.owner(), "Owner") << i;
  }
  EXPECT_EQ(CacheMisses(), misses);
  EXPECT_GE(CacheHits(), hits + 20);
  // A new account enters the cache with the notice of its opening.
  auto cache_rows = [] {
    return testing::MetricValue(
        testing::HttpGet(sys->query_metrics, "/metrics").body,
        "bank_balance_cache_rows");
  };
  const double rows = cache_rows();
  std::string fresh = testing::OpenAccount(sys->commands(), 5);
  ASSERT_TRUE(
      testing::WaitFor([&] { return cache_rows() > rows; }, absl::Seconds(10)));
  const double misses_before_fresh = CacheMisses();
  ASSERT_TRUE(Balance(fresh, 0, &b).ok());
  EXPECT_EQ(b.balance(), 5);
  EXPECT_EQ(b.owner(), "Owner");
  EXPECT_EQ(b.version(), 1);
  EXPECT_EQ(CacheMisses(), misses_before_fresh);
}

// Notices sent while the query service's LISTEN connection is down are
// lost: the cache must not keep what they would have dropped.
TEST(QueryServiceTest, CacheDropsWhatItHeldWhenTheListenConnectionIsLost) {
  std::string a = testing::OpenAccount(sys->commands(), 0);
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(a, 1, &b).ok());
  ASSERT_TRUE(Balance(a, 0, &b).ok());
  const double hits_before = CacheHits();
  ASSERT_TRUE(Balance(a, 0, &b).ok());
  ASSERT_GT(CacheHits(), hits_before);  // Cached at version 1.
  pqxx::connection c(sys->read_uri);
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(CutQueryListener(c)) << round;
    // Projected at once, its notice sent while the listener reconnects.
    v1::CommandResult r = Deposit(a, 10);
    EXPECT_TRUE(testing::WaitFor(
        [&] { return Balance(a, 0, &b).ok() && b.version() == r.version(); },
        absl::Seconds(10)))
        << round << ": plain read stuck at version " << b.version()
        << ", written " << r.version();
    // The listener is back (it reconnects within a second): cached again.
    ASSERT_TRUE(testing::WaitFor(
        [&] {
          pqxx::nontransaction tx(c);
          return tx.exec(
                       "SELECT 1 FROM pg_stat_activity WHERE "
                       "application_name = 'bank-query-listen'")
                     .size() == 1;
        },
        absl::Seconds(10)));
  }
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const double h = CacheHits();
        return Balance(a, 0, &b).ok() && CacheHits() > h;
      },
      absl::Seconds(10)));
  EXPECT_EQ(b.balance(), 50);
}

// An operator repairs a damaged read model with `projector --rebuild`: the
// rebuild's swap empties the cache, so plain reads serve the repaired rows
// rather than the damaged ones they had cached.
TEST(QueryServiceTest, RebuildEmptiesTheCache) {
  std::string a = testing::OpenAccount(sys->commands(), 700);
  pqxx::connection c(sys->read_uri);
  // Damaged once projected. The cache, which follows the notices, holds
  // the row as projected; cutting its LISTEN connection empties it, and a
  // read once the listener is back caches the damaged row.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        pqxx::work tx(c);
        pqxx::result r = tx.exec_params(
            "UPDATE account_balances SET balance = 13 WHERE account_id = $1",
            a);
        tx.commit();
        return r.affected_rows() == 1;
      },
      absl::Seconds(10)));
  ASSERT_TRUE(CutQueryListener(c));
  v1::AccountBalance b;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const double hits = CacheHits();
        return Balance(a, 0, &b).ok() && b.balance() == 13 &&
               CacheHits() > hits;
      },
      absl::Seconds(10)))
      << "the damaged row was not cached: " << b.balance();
  Process rebuild(testing::BinDir() + "/projector",
                  {"--events-db", sys->events_uri, "--read-db", sys->read_uri,
                   "--rebuild", "--metrics-listen", ""});
  ASSERT_EQ(rebuild.Wait(absl::Seconds(60)), 0) << rebuild.Log();
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Balance(a, 0, &b).ok() && b.balance() == 700; },
      absl::Seconds(10)))
      << "plain read still " << b.balance() << " after the rebuild";
}

TEST(QueryServiceTest, UnreachedMinVersionIsDeadlineExceeded) {
  std::string a = testing::OpenAccount(sys->commands(), 0);
  v1::AccountBalance b;
  absl::Time start = absl::Now();
  grpc::Status s = Balance(a, 99, &b, 0.4);
  EXPECT_EQ(s.error_code(), StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(QueryServiceTest, ServerCapsTheWait) {
  int port = testing::PickFreePort();
  Process capped(testing::BinDir() + "/query-service",
                 {"--listen", "127.0.0.1:" + std::to_string(port), "--read-db",
                  sys->read_uri, "--max-wait", "0.3"});
  ASSERT_TRUE(System::WaitServing(port, "", absl::Seconds(20))) << capped.Log();
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::string a = testing::OpenAccount(sys->commands(), 0);
  v1::GetBalanceRequest req;
  req.set_account_id(a);
  req.set_min_version(50);
  v1::AccountBalance b;
  absl::Time start = absl::Now();
  auto ctx = Ctx(20);
  grpc::Status s = stub->GetBalance(ctx.get(), req, &b);
  EXPECT_EQ(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(QueryServiceTest, ManyWaitersDoNotTakeAThreadEach) {
  // Two worker threads, 200 waiting calls: they all complete once the write
  // they wait for lands.
  int port = testing::PickFreePort();
  Process small(testing::BinDir() + "/query-service",
                {"--listen", "127.0.0.1:" + std::to_string(port), "--read-db",
                 sys->read_uri, "--workers", "2"});
  ASSERT_TRUE(System::WaitServing(port, "", absl::Seconds(20))) << small.Log();
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::string a = testing::OpenAccount(sys->commands(), 0);
  std::atomic<int> ok{0}, started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([&] {
      v1::GetBalanceRequest req;
      req.set_account_id(a);
      req.set_min_version(2);
      v1::AccountBalance b;
      auto ctx = Ctx(15);
      ++started;
      grpc::Status s = stub->GetBalance(ctx.get(), req, &b);
      if (s.ok() && b.balance() == 77) ++ok;
    });
  }
  testing::WaitFor([&] { return started.load() == 200; }, absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(500));
  // With 200 calls waiting, the two workers are still free for other work:
  // a plain read answers at once.
  {
    v1::GetBalanceRequest req;
    req.set_account_id(a);
    v1::AccountBalance b;
    auto ctx = Ctx(1);
    grpc::Status s = stub->GetBalance(ctx.get(), req, &b);
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(ok.load(), 0);
  }
  Deposit(a, 77);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

// Past --max-waiters waiting min_version calls, another is refused at once
// with RESOURCE_EXHAUSTED; the ones waiting are still answered.
TEST(QueryServiceTest, MinVersionWaitsBeyondTheCapAreResourceExhausted) {
  int port = testing::PickFreePort();
  int metrics = testing::PickFreePort();
  Process small(testing::BinDir() + "/query-service",
                {"--listen", "127.0.0.1:" + std::to_string(port), "--read-db",
                 sys->read_uri, "--max-waiters", "2", "--metrics-listen",
                 "127.0.0.1:" + std::to_string(metrics)});
  ASSERT_TRUE(System::WaitServing(port, "", absl::Seconds(20))) << small.Log();
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::string a = testing::OpenAccount(sys->commands(), 0);
  auto wait_for_version = [&](int64_t version, double seconds) {
    v1::GetBalanceRequest req;
    req.set_account_id(a);
    req.set_min_version(version);
    v1::AccountBalance b;
    auto ctx = Ctx(seconds);
    return stub->GetBalance(ctx.get(), req, &b);
  };
  std::atomic<int> ok{0};
  std::vector<std::thread> waiting;
  for (int i = 0; i < 2; ++i) {
    waiting.emplace_back([&] {
      if (wait_for_version(2, 20).ok()) ++ok;
    });
  }
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return testing::MetricValue(testing::HttpGet(metrics, "/metrics").body,
                                    "bank_min_version_waiting") == 2;
      },
      absl::Seconds(10)));
  grpc::Status third = wait_for_version(2, 20);
  EXPECT_EQ(third.error_code(), StatusCode::RESOURCE_EXHAUSTED)
      << third.error_message();
  Deposit(a, 5);
  for (auto& t : waiting) t.join();
  EXPECT_EQ(ok.load(), 2);
}

// With the one worker busy and the queue (--max-queue 1) full, further
// calls that need the pool are refused at once with RESOURCE_EXHAUSTED;
// the busy and the queued calls are answered once the worker frees up.
TEST(QueryServiceTest, AFullQueueIsResourceExhausted) {
  int port = testing::PickFreePort();
  Process small(testing::BinDir() + "/query-service",
                {"--listen", "127.0.0.1:" + std::to_string(port), "--read-db",
                 sys->read_uri, "--workers", "1", "--max-queue", "1"});
  ASSERT_TRUE(System::WaitServing(port, "", absl::Seconds(20))) << small.Log();
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::string a = testing::OpenAccount(sys->commands(), 1);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        v1::GetBalanceRequest req;
        req.set_account_id(a);
        v1::AccountBalance b;
        return stub->GetBalance(Ctx().get(), req, &b).ok();
      },
      absl::Seconds(10)));
  auto history = [&] {
    v1::GetHistoryRequest req;
    req.set_account_id(a);
    v1::GetHistoryResponse resp;
    return stub->GetHistory(Ctx(20).get(), req, &resp).error_code();
  };
  // The worker's read waits behind a lock held here.
  pqxx::connection holder(sys->read_uri);
  pqxx::work lock(holder);
  lock.exec("LOCK TABLE account_history IN ACCESS EXCLUSIVE MODE");
  std::atomic<int> ok{0}, refused{0}, other{0};
  auto count = [&](StatusCode code) {
    (code == StatusCode::OK                   ? ok
     : code == StatusCode::RESOURCE_EXHAUSTED ? refused
                                              : other)++;
  };
  std::thread busy([&] { count(history()); });
  pqxx::connection observer(sys->read_uri);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        pqxx::nontransaction tx(observer);
        return tx.exec1(
                     "SELECT count(*) FROM pg_stat_activity "
                     "WHERE wait_event_type = 'Lock' AND "
                     "application_name LIKE 'bank-query-service/%'")[0]
                   .as<int>() >= 1;
      },
      absl::Seconds(10)));
  std::vector<std::thread> more;
  for (int i = 0; i < 5; ++i) more.emplace_back([&] { count(history()); });
  // One of the five is queued; the other four are refused without waiting.
  EXPECT_TRUE(
      testing::WaitFor([&] { return refused.load() == 4; }, absl::Seconds(10)));
  EXPECT_EQ(ok.load(), 0);
  lock.abort();
  busy.join();
  for (auto& t : more) t.join();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(refused.load(), 4);
  EXPECT_EQ(other.load(), 0);
}

TEST(QueryServiceTest, AsOfBeforeBetweenAndAfterEvents) {
  std::string a = testing::OpenAccount(sys->commands(), 100);
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(a, 1, &b).ok());
  absl::Time t1 = absl::FromUnixMicros(b.updated_at().seconds() * 1000000 +
                                       b.updated_at().nanos() / 1000);
  v1::CommandResult r2 = Deposit(a, 50);
  ASSERT_TRUE(Balance(a, r2.version(), &b).ok());
  absl::Time t2 = absl::FromUnixMicros(b.updated_at().seconds() * 1000000 +
                                       b.updated_at().nanos() / 1000);
  ASSERT_GT(t2, t1);
  auto before = Ts(t1 - absl::Seconds(1));
  EXPECT_EQ(Balance(a, 0, &b, 10, &before).error_code(), StatusCode::NOT_FOUND);
  auto at_open = Ts(t1);
  ASSERT_TRUE(Balance(a, 0, &b, 10, &at_open).ok());
  EXPECT_EQ(b.balance(), 100);
  EXPECT_EQ(b.version(), 1);
  auto between = Ts(t1 + (t2 - t1) / 2);
  ASSERT_TRUE(Balance(a, 0, &b, 10, &between).ok());
  EXPECT_EQ(b.balance(), 100);
  auto after = Ts(t2 + absl::Seconds(5));
  ASSERT_TRUE(Balance(a, 0, &b, 10, &after).ok());
  EXPECT_EQ(b.balance(), 150);
  EXPECT_EQ(b.version(), 2);
}

// min_version with as_of: waits for the version, then answers as of the
// instant (through the pool, not from the waiter's row).
TEST(QueryServiceTest, MinVersionWithAsOfWaitsThenAnswersAsOfTheInstant) {
  std::string a = testing::OpenAccount(sys->commands(), 10);
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(a, 1, &b).ok());
  auto at_open = Ts(absl::FromUnixMicros(b.updated_at().seconds() * 1000000 +
                                         b.updated_at().nanos() / 1000));
  // Version 3 does not exist yet: the call waits for it.
  std::atomic<bool> done{false};
  grpc::Status waited;
  v1::AccountBalance as_of_open;
  std::thread t([&] {
    waited = Balance(a, 3, &as_of_open, 10, &at_open);
    done = true;
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(done.load());
  Deposit(a, 5);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(done.load());  // version 2 is not enough
  Deposit(a, 7);
  t.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  // As of the opening: version 1, the initial deposit only.
  EXPECT_EQ(as_of_open.version(), 1);
  EXPECT_EQ(as_of_open.balance(), 10);
  // Without as_of, the same wait answers with the row it waited for.
  ASSERT_TRUE(Balance(a, 3, &b).ok());
  EXPECT_EQ(b.version(), 3);
  EXPECT_EQ(b.balance(), 22);
  // A bad id with min_version is refused before any wait.
  EXPECT_EQ(Balance("not-a-uuid", 3, &b).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Balance(a, -1, &b).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST(QueryServiceTest, PagingReturnsEachItemExactlyOnce) {
  // 1,000 accounts straight from one transfer-heavy history: use the command
  // service for a 1,000-event history and the event store for many accounts.
  std::string hot = testing::OpenAccount(sys->commands(), 0);
  {
    pqxx::connection c(sys->events_uri);
    pqxx::work tx(c);
    tx.exec(R"sql(
      INSERT INTO events (event_id, stream_id, stream_version, event_type,
                          schema_version, data)
      SELECT gen_random_uuid(), id, 1, 'AccountOpened', 2,
             jsonb_build_object('account_id', id::text, 'owner', 'Paged',
                                'currency', 'EUR', 'initial_deposit', '1')
      FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 1000)) ids)sql");
    tx.exec_params(R"sql(
      INSERT INTO events (event_id, stream_id, stream_version, event_type,
                          schema_version, data)
      SELECT gen_random_uuid(), $1::uuid, v, 'MoneyDeposited', 1,
             jsonb_build_object('amount', v::text)
      FROM generate_series(2, 1000) AS v)sql",
                   hot);
    tx.commit();
  }
  v1::AccountBalance b;
  ASSERT_TRUE(Balance(hot, 1000, &b).ok());
  std::set<std::string> seen;
  int total = 0, pages = 0;
  std::string token;
  do {
    v1::ListAccountsRequest req;
    req.set_page_size(70);
    req.set_page_token(token);
    v1::ListAccountsResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(sys->queries().ListAccounts(ctx.get(), req, &resp).ok());
    ASSERT_LE(resp.accounts_size(), 70);
    for (const auto& a : resp.accounts()) {
      seen.insert(a.account_id());
      ++total;
    }
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(total, static_cast<int>(seen.size()));
  EXPECT_GE(total, 1001);
  EXPECT_GE(pages, 15);
  std::vector<int64_t> versions;
  token.clear();
  do {
    v1::GetHistoryRequest req;
    req.set_account_id(hot);
    req.set_page_size(0);  // The default.
    req.set_page_token(token);
    v1::GetHistoryResponse resp;
    auto ctx = Ctx();
    grpc::Status s = sys->queries().GetHistory(ctx.get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& h : resp.entries()) versions.push_back(h.version());
    token = resp.next_page_token();
  } while (!token.empty());
  ASSERT_EQ(versions.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(versions[i], i + 1);
  // A token from one account's history does not page another's.
  v1::GetHistoryRequest first;
  first.set_account_id(hot);
  first.set_page_size(10);
  v1::GetHistoryResponse page;
  auto ctx = Ctx();
  ASSERT_TRUE(sys->queries().GetHistory(ctx.get(), first, &page).ok());
  v1::GetHistoryRequest other;
  other.set_account_id(testing::OpenAccount(sys->commands(), 1));
  other.set_page_token(page.next_page_token());
  v1::GetHistoryResponse out;
  auto ctx2 = Ctx();
  EXPECT_EQ(sys->queries().GetHistory(ctx2.get(), other, &out).error_code(),
            StatusCode::INVALID_ARGUMENT);
}

std::string RunBankctl(const std::vector<std::string>& args, int* code) {
  std::vector<std::string> all = {
      "--command-host", "127.0.0.1:" + std::to_string(sys->command_port),
      "--query-host", "127.0.0.1:" + std::to_string(sys->query_port)};
  all.insert(all.end(), args.begin(), args.end());
  Process p(testing::BinDir() + "/bankctl", all);
  *code = p.Wait(absl::Seconds(30));
  return p.Log();
}

TEST(BankctlTest, EverySubcommandEndToEnd) {
  int code = 0;
  std::string out = RunBankctl(
      {"open", "--owner", "Alice", "--currency", "EUR", "--initial", "100.00"},
      &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("balance  100.00 EUR"), std::string::npos) << out;
  std::string alice = out.substr(out.find("opened ") + 7, 36);
  out = RunBankctl({"--json", "open", "--owner", "Bob", "--currency", "EUR"},
                   &code);
  ASSERT_EQ(code, 0) << out;
  std::string bob = out.substr(out.find("\"account_id\":\"") + 14, 36);
  out = RunBankctl({"deposit", alice, "0.05"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("balance  100.05 EUR"), std::string::npos) << out;
  out = RunBankctl({"transfer", alice, bob, "40.5"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("balance  59.55 EUR"), std::string::npos) << out;
  EXPECT_NE(out.find("balance  40.50 EUR"), std::string::npos) << out;
  absl::Time before_withdraw = absl::Now();
  absl::SleepFor(absl::Milliseconds(20));
  out = RunBankctl({"withdraw", bob, "40.50"}, &code);
  EXPECT_EQ(code, 0) << out;
  out = RunBankctl({"--json", "balance", bob}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"balance\":\"0\""), std::string::npos) << out;
  out = RunBankctl({"balance", bob, "--as-of",
                    absl::FormatTime(absl::RFC3339_full, before_withdraw,
                                     absl::UTCTimeZone())},
                   &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("40.50 EUR"), std::string::npos) << out;
  out = RunBankctl({"history", alice}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("TRANSFER_OUT"), std::string::npos) << out;
  EXPECT_NE(out.find(bob), std::string::npos) << out;
  out = RunBankctl({"close", bob}, &code);
  EXPECT_EQ(code, 0) << out;
  out = RunBankctl({"accounts", "--all"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(alice), std::string::npos);
  EXPECT_NE(out.find("closed"), std::string::npos);
  // Errors: the status code and message, and a non-zero exit.
  out = RunBankctl({"withdraw", alice, "1000"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("FAILED_PRECONDITION"), std::string::npos) << out;
  // The amounts in the message in the account's currency and decimals.
  EXPECT_NE(out.find("has 59.55 EUR, 1000.00 EUR requested"), std::string::npos)
      << out;
  out = RunBankctl({"close", alice}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("a balance of 59.55 EUR"), std::string::npos) << out;
  out = RunBankctl({"deposit", alice, "1.001"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("decimals"), std::string::npos) << out;
  out = RunBankctl({"balance", "not-a-uuid"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("INVALID_ARGUMENT"), std::string::npos) << out;
}

TEST(PythonClientTest, ExampleRunsAgainstTheSystem) {
  Process p("/usr/bin/python3",
            {std::string(BANK_SOURCE_DIR) + "/clients/python/example.py",
             "--command-host", "127.0.0.1:" + std::to_string(sys->command_port),
             "--query-host", "127.0.0.1:" + std::to_string(sys->query_port)},
            {{"PYTHONPATH", std::string(BANK_BUILD_DIR) + "/python"}});
  int code = p.Wait(absl::Seconds(60));
  std::string out = p.Log();
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("Alice: 74.50 EUR (version 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("Bob: 25.50 EUR (version 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("FAILED_PRECONDITION"), std::string::npos) << out;
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::pg, bank::StartSystem,
                                       [] { delete bank::sys; }));
}
