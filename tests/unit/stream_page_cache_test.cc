#include "query-service/stream_page_cache.h"

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace bank::query {
namespace {

// A stream of `size` entries, the i-th (from 1) at (i, i); reads counted.
class FakeStream {
 public:
  explicit FakeStream(int64_t size) : size_(size) {}
  StreamPageCache::ReadFn Fn() {
    return [this](EntryPosition after, int limit, absl::Time) {
      ++reads;
      ReadModelReader::StreamPage page;
      for (int64_t i = after.position + 1;
           i <= size_ && static_cast<int>(page.at.size()) < limit; ++i) {
        page.entries.emplace_back().mutable_entry()->set_position(i);
        page.at.push_back({i, i});
      }
      return absl::StatusOr<ReadModelReader::StreamPage>(std::move(page));
    };
  }
  int reads = 0;

 private:
  const int64_t size_;
};

const absl::Time kDeadline = absl::InfiniteFuture();

TEST(StreamPageCacheTest, AFullPageServesLaterStartsInsideIt) {
  FakeStream stream(3000);
  StreamPageCache cache(stream.Fn());
  auto first = cache.Read({0, 0}, 1000, kDeadline);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->entries().size(), 1000u);
  EXPECT_TRUE(first->more);
  EXPECT_EQ(stream.reads, 1);
  // Another member, at 500: the rest of the same page, from 501.
  auto inside = cache.Read({500, 500}, 1000, kDeadline);
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(stream.reads, 1);
  ASSERT_EQ(inside->entries().size(), 500u);
  EXPECT_EQ(inside->entries()[0].entry().position(), 501);
  EXPECT_EQ(inside->at().back(), (EntryPosition{1000, 1000}));
  EXPECT_TRUE(inside->more);
  // The same start again.
  ASSERT_TRUE(cache.Read({0, 0}, 1000, kDeadline).ok());
  EXPECT_EQ(stream.reads, 1);
  // From the page's last entry: past it, so read.
  auto next = cache.Read({1000, 1000}, 1000, kDeadline);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(stream.reads, 2);
  EXPECT_EQ(next->entries()[0].entry().position(), 1001);
}

TEST(StreamPageCacheTest, AShortPageIsNeverServedAgain) {
  FakeStream stream(2500);
  StreamPageCache cache(stream.Fn());
  auto end = cache.Read({2000, 2000}, 1000, kDeadline);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->entries().size(), 500u);
  EXPECT_FALSE(end->more);
  // The live end: new entries may have come, so it reads each time.
  ASSERT_TRUE(cache.Read({2000, 2000}, 1000, kDeadline).ok());
  ASSERT_TRUE(cache.Read({2100, 2100}, 1000, kDeadline).ok());
  EXPECT_EQ(stream.reads, 3);
}

TEST(StreamPageCacheTest, KeepsOnlyTheNewestPages) {
  FakeStream stream(10000);
  StreamPageCache cache(stream.Fn(), /*pages=*/2);
  for (int64_t from : {0, 1000, 2000}) {
    ASSERT_TRUE(cache.Read({from, from}, 1000, kDeadline).ok());
  }
  EXPECT_EQ(stream.reads, 3);
  ASSERT_TRUE(cache.Read({1500, 1500}, 1000, kDeadline).ok());
  EXPECT_EQ(stream.reads, 3);  // Kept.
  ASSERT_TRUE(cache.Read({500, 500}, 1000, kDeadline).ok());
  EXPECT_EQ(stream.reads, 4);  // Dropped: read again.
}

// A read that blocks until released, over a FakeStream.
class HeldStream {
 public:
  explicit HeldStream(int64_t size) : stream_(size), read_(stream_.Fn()) {}
  StreamPageCache::ReadFn Fn() {
    return [this](EntryPosition after, int limit, absl::Time deadline) {
      release_.WaitForNotification();
      absl::MutexLock lock(&mu_);
      return read_(after, limit, deadline);
    };
  }
  void Release() { release_.Notify(); }
  int reads() {
    absl::MutexLock lock(&mu_);
    return stream_.reads;
  }

 private:
  absl::Mutex mu_;
  FakeStream stream_;
  StreamPageCache::ReadFn read_;
  absl::Notification release_;
};

// Starts two reads of the same start and lets the first finish only once
// the second waits for it.
void ReadTwiceAtOnce(StreamPageCache& cache, HeldStream& held,
                     absl::StatusOr<StreamPageCache::Slice>* a,
                     absl::StatusOr<StreamPageCache::Slice>* b) {
  std::thread first([&] { *a = cache.Read({0, 0}, 1000, kDeadline); });
  std::thread second([&] { *b = cache.Read({0, 0}, 1000, kDeadline); });
  // One of them reads; the other joins it. Wait for the join, without a
  // bound: a cache that does not join hangs here and the test times out.
  while (cache.joined() == 0) absl::SleepFor(absl::Milliseconds(1));
  held.Release();
  first.join();
  second.join();
}

TEST(StreamPageCacheTest, TwoReadsOfOneStartAtOnceReadOnce) {
  HeldStream held(3000);
  StreamPageCache cache(held.Fn());
  absl::StatusOr<StreamPageCache::Slice> a, b;
  ReadTwiceAtOnce(cache, held, &a, &b);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(held.reads(), 1);
  EXPECT_EQ(a->entries().size(), 1000u);
  EXPECT_EQ(b->entries().size(), 1000u);
  EXPECT_EQ(b->wire()[0], a->wire()[0]);
  EXPECT_TRUE(b->more);
}

TEST(StreamPageCacheTest, AJoinedReadThatEndedShortIsReadAgain) {
  // The stream's end: new entries may have come after the first read
  // began, which the one that joined it was woken for.
  HeldStream held(500);
  StreamPageCache cache(held.Fn());
  absl::StatusOr<StreamPageCache::Slice> a, b;
  ReadTwiceAtOnce(cache, held, &a, &b);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(held.reads(), 2);
  EXPECT_EQ(a->entries().size(), 500u);
  EXPECT_EQ(b->entries().size(), 500u);
  EXPECT_FALSE(b->more);
}

TEST(StreamPageCacheTest, EachEntryAlsoAsAConsumeResponse) {
  FakeStream stream(10);
  StreamPageCache cache(stream.Fn());
  auto page = cache.Read({3, 3}, 1000, kDeadline);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->wire().size(), 7u);
  v1::ConsumeResponse r;
  ASSERT_TRUE(r.ParseFromString(page->wire()[0]));
  EXPECT_EQ(r.entry().entry().position(), 4);
}

}  // namespace
}  // namespace bank::query
