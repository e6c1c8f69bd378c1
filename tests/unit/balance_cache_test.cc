#include "query-service/balance_cache.h"

#include <atomic>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/readmodel/progress_notice.h"
#include "gtest/gtest.h"

namespace bank {
namespace {

using query::BalanceCache;
using readmodel::DecodeProgress;
using readmodel::EncodeProgress;
using readmodel::EncodeReset;
using readmodel::ProgressNotice;

constexpr char kA[] = "123e4567-e89b-12d3-a456-426614174000";
constexpr char kB[] = "223e4567-e89b-12d3-a456-426614174000";

v1::AccountBalance Row(const std::string& id, int64_t version,
                       int64_t balance) {
  v1::AccountBalance b;
  b.set_account_id(id);
  b.set_owner("ada");
  b.set_currency("EUR");
  b.set_version(version);
  b.set_balance(balance);
  return b;
}

// A notice that names versions only (the format of the previous version).
ProgressNotice Moved(int64_t applied,
                     std::vector<std::pair<std::string, int64_t>> accounts) {
  ProgressNotice n;
  n.applied = applied;
  for (auto& [id, version] : accounts) {
    n.accounts.push_back({.account_id = id, .version = version});
  }
  return n;
}

readmodel::MovedAccount MovedRow(const std::string& id, int64_t version,
                                 int64_t balance, int32_t status = 1,
                                 int64_t updated_us = 1700000000123456) {
  return {.account_id = id,
          .version = version,
          .has_row = true,
          .balance = balance,
          .status = status,
          .updated_us = updated_us};
}

TEST(ProgressNoticeTest, RoundTripsABatch) {
  const std::vector<readmodel::MovedAccount> moved = {
      MovedRow(kA, 7, 700), MovedRow(kB, 1, 0, 2, -5)};
  std::vector<std::string> p = EncodeProgress(42, moved);
  ASSERT_EQ(p.size(), 1u);
  ProgressNotice n = DecodeProgress(p[0]);
  EXPECT_FALSE(n.reset);
  EXPECT_EQ(n.applied, 42);
  EXPECT_EQ(n.accounts, moved);
  // A batch that moved no account still says how far the projection got.
  ProgressNotice none = DecodeProgress(EncodeProgress(43, {})[0]);
  EXPECT_FALSE(none.reset);
  EXPECT_EQ(none.applied, 43);
  EXPECT_TRUE(none.accounts.empty());
}

readmodel::MovedAccount WithOwner(readmodel::MovedAccount a, std::string owner,
                                  std::string currency = "EUR") {
  a.owner = std::move(owner);
  a.currency = std::move(currency);
  return a;
}

TEST(ProgressNoticeTest, CarriesOwnersWhenTheyFitEscapingWhatWouldSplitThem) {
  const std::vector<readmodel::MovedAccount> moved = {
      WithOwner(MovedRow(kA, 7, 700), "Ada: 100% sure \xc3\xa9t\xc3\xa9\tx"),
      WithOwner(MovedRow(kB, 1, 0), "Bo", "USD")};
  std::vector<std::string> p = EncodeProgress(42, moved);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].find('\t'), std::string::npos) << p[0];
  ProgressNotice n = DecodeProgress(p[0]);
  ASSERT_FALSE(n.reset) << p[0];
  EXPECT_EQ(n.accounts, moved);
  // Too many for max_notices with owners: the rows go without them.
  std::vector<readmodel::MovedAccount> many;
  for (int i = 0; i < 40; ++i) {
    many.push_back(WithOwner(
        MovedRow(std::string(kA).replace(0, 3, std::to_string(100 + i)), 1, i),
        std::string(150, 'o')));
  }
  std::vector<std::string> without = EncodeProgress(9, many, 1000, 4);
  ASSERT_GT(without.size(), 1u);
  std::vector<readmodel::MovedAccount> back;
  for (const std::string& payload : without) {
    ProgressNotice part = DecodeProgress(payload);
    ASSERT_FALSE(part.reset);
    back.insert(back.end(), part.accounts.begin(), part.accounts.end());
  }
  ASSERT_EQ(back.size(), many.size());
  for (size_t i = 0; i < many.size(); ++i) {
    EXPECT_EQ(back[i].account_id, many[i].account_id);
    EXPECT_EQ(back[i].balance, many[i].balance);
    EXPECT_TRUE(back[i].owner.empty());
    EXPECT_TRUE(back[i].currency.empty());
  }
}

TEST(ProgressNoticeTest, ReadsThePreviousVersionsFormat) {
  // From a projector of the previous version, during a rolling upgrade.
  ProgressNotice n = DecodeProgress(absl::StrCat("a 42 ", kA, ":7 ", kB, ":1"));
  EXPECT_FALSE(n.reset);
  EXPECT_EQ(n.applied, 42);
  EXPECT_EQ(n.accounts, Moved(42, {{kA, 7}, {kB, 1}}).accounts);
  EXPECT_FALSE(n.accounts[0].has_row);
}

TEST(ProgressNoticeTest, SplitsWithinThePayloadLimitThenFallsBackToReset) {
  std::vector<readmodel::MovedAccount> many;
  for (int i = 0; i < 100; ++i) {
    many.push_back(MovedRow(
        std::string(kA).replace(0, 3, std::to_string(100 + i)), i + 1, i));
  }
  std::vector<std::string> p = EncodeProgress(9, many, /*max_payload=*/1000,
                                              /*max_notices=*/16);
  ASSERT_GT(p.size(), 1u);
  std::vector<readmodel::MovedAccount> back;
  for (const std::string& payload : p) {
    EXPECT_LE(payload.size(), 1000u);
    ProgressNotice n = DecodeProgress(payload);
    ASSERT_FALSE(n.reset) << payload;
    EXPECT_EQ(n.applied, 9);
    back.insert(back.end(), n.accounts.begin(), n.accounts.end());
  }
  EXPECT_EQ(back, many);
  // More than fits in max_notices: one reset instead of a partial list.
  std::vector<std::string> r = EncodeProgress(9, many, 1000, 2);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(DecodeProgress(r[0]).reset);
  // The default limits stay under PostgreSQL's 8000-byte payload, and hold
  // a live batch's accounts (1,000 events) with the largest fields.
  std::vector<readmodel::MovedAccount> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(
        MovedRow(std::string(kA).replace(0, 4, std::to_string(1000 + i)),
                 std::numeric_limits<int64_t>::max() - i,
                 std::numeric_limits<int64_t>::min() + i, 2,
                 std::numeric_limits<int64_t>::min()));
  }
  std::vector<std::string> all = EncodeProgress(9, batch);
  ASSERT_GT(all.size(), 1u);
  size_t decoded = 0;
  for (const std::string& payload : all) {
    EXPECT_LT(payload.size(), 8000u);
    ProgressNotice n = DecodeProgress(payload);
    ASSERT_FALSE(n.reset);
    decoded += n.accounts.size();
  }
  EXPECT_EQ(decoded, batch.size());
}

TEST(ProgressNoticeTest, AnythingElseReadsAsReset) {
  EXPECT_TRUE(DecodeProgress(EncodeReset()).reset);
  for (const char* bad : {"",
                          "12345",
                          "a",
                          "a x",
                          "a -1",
                          "c 3",
                          "a 3 nocolon",
                          "a 3 id:0",
                          "a 3 id:x",
                          "a 3 :4",
                          "a 3 id:4:5:1:6",
                          "b",
                          "b -1",
                          "b 3 id:4",
                          "b 3 id:0:5:1:6",
                          "b 3 id:4:x:1:6",
                          "b 3 id:4:5:0:6",
                          "b 3 id:4:5:1:",
                          "b 3 :4:5:1:6",
                          "b 3 id:4:5:1:6:7",
                          "b 3 id:4:5:1:6:EUR:",
                          "b 3 id:4:5:1:6::Bo",
                          "b 3 id:4:5:1:6:EUR:Bo:x",
                          "b 3 id:4:5:1:6:EUR:B%2",
                          "b 3 id:4:5:1:6:EUR:B%zz",
                          "b 3 id:4:5:1:6:EUR:%41"}) {
    EXPECT_TRUE(DecodeProgress(bad).reset) << bad;
  }
}

TEST(BalanceCacheTest, DisabledUntilStartedAndAfterStopped) {
  BalanceCache cache(10);
  v1::AccountBalance out;
  cache.Offer(cache.Epoch(), 5, Row(kA, 1, 100));
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  cache.Start();
  cache.Offer(cache.Epoch(), 5, Row(kA, 1, 100));
  ASSERT_TRUE(cache.Get(kA, 0, &out));
  EXPECT_EQ(out.balance(), 100);
  cache.Stop();
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  cache.Offer(cache.Epoch(), 5, Row(kA, 1, 100));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(BalanceCacheTest, ZeroCapacityNeverCaches) {
  BalanceCache cache(0);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 1, 100));
  v1::AccountBalance out;
  EXPECT_FALSE(cache.Get(kA, 0, &out));
}

TEST(BalanceCacheTest, HonoursMinVersion) {
  BalanceCache cache(10);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 3, 300));
  v1::AccountBalance out;
  EXPECT_TRUE(cache.Get(kA, 3, &out));
  EXPECT_FALSE(cache.Get(kA, 4, &out));
  EXPECT_FALSE(cache.Get(kB, 0, &out));
}

TEST(BalanceCacheTest, NoticeDropsOlderRowsOnly) {
  BalanceCache cache(10);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 3, 300));
  cache.Offer(cache.Epoch(), 0, Row(kB, 5, 500));
  // Version 5 of B is what is cached already: kept.
  cache.Apply(Moved(10, {{kA, 4}, {kB, 5}}));
  v1::AccountBalance out;
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  EXPECT_TRUE(cache.Get(kB, 0, &out));
}

TEST(BalanceCacheTest, NoticeWithRowsBringsCachedRowsToTheNoticedOnes) {
  BalanceCache cache(10);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 3, 300));
  ProgressNotice n;
  n.applied = 10;
  n.accounts = {MovedRow(kA, 5, 550, 2, 1700000000654321), MovedRow(kB, 2, 20)};
  cache.Apply(n);
  v1::AccountBalance out;
  ASSERT_TRUE(cache.Get(kA, 5, &out));
  EXPECT_EQ(out.account_id(), kA);
  EXPECT_EQ(out.owner(), "ada");  // Kept: set once, when the account opens.
  EXPECT_EQ(out.currency(), "EUR");
  EXPECT_EQ(out.balance(), 550);
  EXPECT_EQ(out.status(), v1::ACCOUNT_STATUS_CLOSED);
  EXPECT_EQ(out.updated_at().seconds(), 1700000000);
  EXPECT_EQ(out.updated_at().nanos(), 654321000);
  // Not cached, and the notice left out its owner and currency: not added.
  EXPECT_FALSE(cache.Get(kB, 0, &out));
  // With them, the whole row: added.
  n.applied = 11;
  n.accounts = {WithOwner(MovedRow(kB, 3, 30), "Bo", "USD")};
  cache.Apply(n);
  ASSERT_TRUE(cache.Get(kB, 3, &out));
  EXPECT_EQ(out.account_id(), kB);
  EXPECT_EQ(out.owner(), "Bo");
  EXPECT_EQ(out.currency(), "USD");
  EXPECT_EQ(out.balance(), 30);
  EXPECT_EQ(out.status(), v1::ACCOUNT_STATUS_OPEN);
  // A notice older than the cached row changes nothing.
  n.applied = 12;
  n.accounts = {MovedRow(kA, 4, 1)};
  cache.Apply(n);
  ASSERT_TRUE(cache.Get(kA, 0, &out));
  EXPECT_EQ(out.version(), 5);
  EXPECT_EQ(out.balance(), 550);
}

TEST(BalanceCacheTest, RowFromASnapshotBeforeTheLastNoticeIsNotAdmitted) {
  // The race the admission test closes: a read sees A at version 3, then
  // the batch moving A to 4 is noticed (A not cached: nothing to drop),
  // then the read offers version 3. Admitting it would serve 3 for good.
  BalanceCache cache(10);
  cache.Start();
  const uint64_t epoch = cache.Epoch();
  cache.Apply(Moved(10, {{kA, 4}}));
  cache.Offer(epoch, /*applied=*/9, Row(kA, 3, 300));
  v1::AccountBalance out;
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  // A read whose snapshot holds that batch is admitted.
  cache.Offer(cache.Epoch(), 10, Row(kA, 4, 400));
  ASSERT_TRUE(cache.Get(kA, 0, &out));
  EXPECT_EQ(out.version(), 4);
  // A later snapshot that is not yet noticed is admitted too: its batches'
  // notices, when they come, carry versions it already holds.
  cache.Offer(cache.Epoch(), 12, Row(kB, 2, 200));
  cache.Apply(Moved(11, {{kB, 1}}));
  cache.Apply(Moved(12, {{kB, 2}}));
  EXPECT_TRUE(cache.Get(kB, 2, &out));
}

TEST(BalanceCacheTest, NotAdmittedNewerRowStillDropsAnOlderCachedOne) {
  BalanceCache cache(10);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 3, 300));
  cache.Apply(Moved(20, {}));
  cache.Offer(cache.Epoch(), 15, Row(kA, 4, 400));  // Old snapshot.
  v1::AccountBalance out;
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  // An older row never replaces a newer cached one.
  cache.Offer(cache.Epoch(), 20, Row(kA, 5, 500));
  cache.Offer(cache.Epoch(), 20, Row(kA, 4, 400));
  ASSERT_TRUE(cache.Get(kA, 0, &out));
  EXPECT_EQ(out.version(), 5);
}

TEST(BalanceCacheTest, ResetAndRestartRefuseReadsBegunBefore) {
  BalanceCache cache(10);
  cache.Start();
  cache.Offer(cache.Epoch(), 0, Row(kA, 3, 300));
  uint64_t before = cache.Epoch();
  cache.Apply(DecodeProgress(EncodeReset()));
  v1::AccountBalance out;
  EXPECT_FALSE(cache.Get(kA, 0, &out));
  cache.Offer(before, 100, Row(kB, 1, 100));
  EXPECT_FALSE(cache.Get(kB, 0, &out));
  cache.Offer(cache.Epoch(), 100, Row(kB, 1, 100));
  EXPECT_TRUE(cache.Get(kB, 0, &out));
  before = cache.Epoch();
  cache.Stop();
  cache.Start();
  EXPECT_FALSE(cache.Get(kB, 0, &out));
  cache.Offer(before, 100, Row(kB, 1, 100));
  EXPECT_FALSE(cache.Get(kB, 0, &out));
}

TEST(BalanceCacheTest, StaysWithinCapacity) {
  BalanceCache cache(3);
  cache.Start();
  for (int i = 0; i < 10; ++i) {
    cache.Offer(cache.Epoch(), 0,
                Row(std::string(kA).replace(0, 1, std::to_string(i)), 1, i));
    EXPECT_LE(cache.size(), 3u);
  }
  EXPECT_EQ(cache.size(), 3u);
}

class ConcurrentBalanceCacheTest : public ::testing::TestWithParam<bool> {};

TEST_P(ConcurrentBalanceCacheTest, ReadersNeverSeeAVersionOlderThanNoticed) {
  // Writers offer increasing versions and notice each (with its row, or
  // naming the version only); readers must never get a version older than
  // one noticed before their read began, nor a row whose balance is not
  // the one of its version.
  const bool rows = GetParam();
  BalanceCache cache(100);
  cache.Start();
  std::atomic<int64_t> noticed{0};
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::thread writer([&] {
    for (int64_t v = 1; v <= 20000; ++v) {
      const uint64_t epoch = cache.Epoch();
      if (rows) {
        ProgressNotice n;
        n.applied = v;
        n.accounts = {MovedRow(kA, v, v)};
        cache.Apply(n);
      } else {
        cache.Apply(Moved(v, {{kA, v}}));
      }
      noticed = v;
      cache.Offer(epoch, v, Row(kA, v, v));
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      v1::AccountBalance out;
      while (!done) {
        int64_t floor = noticed.load();
        if (cache.Get(kA, 0, &out) &&
            (out.version() < floor || out.balance() != out.version())) {
          ++violations;
        }
      }
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0);
  // With rows, the account stayed cached throughout: the last version.
  v1::AccountBalance last;
  if (rows) {
    ASSERT_TRUE(cache.Get(kA, 20000, &last));
  }
}

INSTANTIATE_TEST_SUITE_P(NoticesWithAndWithoutRows, ConcurrentBalanceCacheTest,
                         ::testing::Bool());

}  // namespace
}  // namespace bank
