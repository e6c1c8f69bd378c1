#include "query-service/balance_cache.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

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

ProgressNotice Moved(int64_t applied,
                     std::vector<std::pair<std::string, int64_t>> accounts) {
  ProgressNotice n;
  n.applied = applied;
  n.accounts = std::move(accounts);
  return n;
}

TEST(ProgressNoticeTest, RoundTripsABatch) {
  std::vector<std::string> p = EncodeProgress(42, {{kA, 7}, {kB, 1}});
  ASSERT_EQ(p.size(), 1u);
  ProgressNotice n = DecodeProgress(p[0]);
  EXPECT_FALSE(n.reset);
  EXPECT_EQ(n.applied, 42);
  ASSERT_EQ(n.accounts.size(), 2u);
  EXPECT_EQ(n.accounts[0], (std::pair<std::string, int64_t>{kA, 7}));
  EXPECT_EQ(n.accounts[1], (std::pair<std::string, int64_t>{kB, 1}));
  // A batch that moved no account still says how far the projection got.
  ProgressNotice none = DecodeProgress(EncodeProgress(43, {})[0]);
  EXPECT_FALSE(none.reset);
  EXPECT_EQ(none.applied, 43);
  EXPECT_TRUE(none.accounts.empty());
}

TEST(ProgressNoticeTest, SplitsWithinThePayloadLimitThenFallsBackToReset) {
  std::vector<std::pair<std::string, int64_t>> many;
  for (int i = 0; i < 100; ++i) {
    many.emplace_back(std::string(kA).replace(0, 3, std::to_string(100 + i)),
                      i + 1);
  }
  std::vector<std::string> p = EncodeProgress(9, many, /*max_payload=*/1000,
                                              /*max_notices=*/8);
  ASSERT_GT(p.size(), 1u);
  std::vector<std::pair<std::string, int64_t>> back;
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
  // The default limits stay under PostgreSQL's 8000-byte payload.
  for (const std::string& payload : EncodeProgress(9, many)) {
    EXPECT_LT(payload.size(), 8000u);
  }
}

TEST(ProgressNoticeTest, AnythingElseReadsAsReset) {
  EXPECT_TRUE(DecodeProgress(EncodeReset()).reset);
  for (const char* bad : {"", "12345", "a", "a x", "a -1", "b 3", "a 3 nocolon",
                          "a 3 id:0", "a 3 id:x", "a 3 :4"}) {
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

TEST(BalanceCacheTest, ConcurrentReadersAndNoticesNeverSeeADroppedVersion) {
  // Writers offer increasing versions and notice each; readers must never
  // get a version older than one noticed before their read began.
  BalanceCache cache(100);
  cache.Start();
  std::atomic<int64_t> noticed{0};
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::thread writer([&] {
    for (int64_t v = 1; v <= 20000; ++v) {
      const uint64_t epoch = cache.Epoch();
      cache.Apply(Moved(v, {{kA, v}}));
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
        if (cache.Get(kA, 0, &out) && out.version() < floor) ++violations;
      }
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0);
}

}  // namespace
}  // namespace bank
