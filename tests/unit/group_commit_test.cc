// GroupCommitEventStore's batching logic, with a fake BatchAppender (the real
// one is covered against PostgreSQL in command_service_pgtest).
#include "common/eventstore/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace bank::eventstore {
namespace {

// Reads are never used by these tests.
class NoReads final : public EventStore {
 public:
  absl::StatusOr<std::vector<StreamResult>> Append(
      const std::vector<StreamAppend>&, const CommandRecord*,
      absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<std::vector<RecordedEvent>> ReadStream(const std::string&,
                                                        int64_t, int,
                                                        absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<std::optional<StoredCommand>> FindCommand(
      const std::string&, absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<std::optional<Snapshot>> LoadSnapshot(const std::string&,
                                                       absl::Time) override {
    return absl::UnimplementedError("");
  }
  absl::Status SaveSnapshot(const Snapshot&, absl::Time) override {
    return absl::UnimplementedError("");
  }
};

// Answers each item from its stream id: "conflict..." -> ABORTED, anything
// else -> version = expected_version + events. Records batch sizes; the
// first batch can be held at a gate; `fail_all` fails whole batches.
class FakeAppender final : public BatchAppender {
 public:
  std::vector<absl::StatusOr<std::vector<StreamResult>>> AppendBatch(
      const std::vector<BatchItem>& items, absl::Time) override {
    if (hold_first && calls.fetch_add(1) == 0) {
      entered.Notify();
      gate.WaitForNotification();
    }
    {
      absl::MutexLock lock(&mu);
      sizes.push_back(items.size());
      for (const BatchItem& i : items)
        sent.push_back(i.appends->at(0).stream_id);
    }
    std::vector<absl::StatusOr<std::vector<StreamResult>>> out;
    for (const BatchItem& i : items) {
      if (fail_all) {
        out.push_back(absl::UnavailableError("connection lost"));
        continue;
      }
      const StreamAppend& a = i.appends->at(0);
      if (a.stream_id.rfind("conflict", 0) == 0) {
        out.push_back(absl::AbortedError("conflict"));
      } else {
        out.push_back(std::vector<StreamResult>{
            {a.stream_id,
             a.expected_version + static_cast<int64_t>(a.events.size()), 1}});
      }
    }
    return out;
  }

  bool hold_first = false;
  bool fail_all = false;
  std::atomic<int> calls{0};
  absl::Notification entered, gate;
  absl::Mutex mu;
  std::vector<size_t> sizes;
  std::vector<std::string> sent;
};

std::vector<StreamAppend> One(const std::string& stream, int64_t expected) {
  return {StreamAppend{stream, expected, {NewEvent{"e", "T", 1, "{}", "{}"}}}};
}

absl::Time Later() { return absl::Now() + absl::Seconds(30); }

TEST(GroupCommitTest, EachCallerGetsItsOwnAnswer) {
  NoReads reads;
  FakeAppender fake;
  GroupCommitEventStore store(reads, fake, {.max_batch = 32, .committers = 2});
  std::vector<std::thread> threads;
  std::atomic<int> checked{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string s = (i % 7 == 0 ? "conflict-" : "s-") +
                              std::to_string(t) + "-" + std::to_string(i);
        auto r = store.Append(One(s, i), nullptr, Later());
        if (i % 7 == 0) {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << s;
        } else {
          ASSERT_TRUE(r.ok()) << r.status();
          EXPECT_EQ(r->at(0).stream_id, s);
          EXPECT_EQ(r->at(0).version, i + 1);
        }
        ++checked;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(checked.load(), 800);
  absl::MutexLock lock(&fake.mu);
  EXPECT_EQ(fake.sent.size(), 800u);
}

TEST(GroupCommitTest, WaitingAppendsShareOneBatchUpToMaxBatch) {
  NoReads reads;
  FakeAppender fake;
  fake.hold_first = true;
  GroupCommitEventStore store(reads, fake, {.max_batch = 8, .committers = 1});
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    EXPECT_TRUE(store.Append(One("first", 0), nullptr, Later()).ok());
  });
  fake.entered.WaitForNotification();  // The committer is busy with "first".
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      EXPECT_TRUE(
          store.Append(One("s" + std::to_string(i), 0), nullptr, Later()).ok());
    });
  }
  while (store.queued() < 12) absl::SleepFor(absl::Milliseconds(1));
  fake.gate.Notify();
  for (auto& t : threads) t.join();
  absl::MutexLock lock(&fake.mu);
  EXPECT_EQ(fake.sizes, (std::vector<size_t>{1, 8, 4}));
}

TEST(GroupCommitTest, ASecondBatchStartsDuringACommitOnlyForABacklog) {
  NoReads reads;
  FakeAppender fake;
  fake.hold_first = true;
  GroupCommitEventStore store(
      reads, fake, {.max_batch = 8, .committers = 2, .join_backlog = 3});
  std::vector<std::thread> threads;
  auto append = [&](const std::string& s) {
    threads.emplace_back([&store, s] {
      EXPECT_TRUE(store.Append(One(s, 0), nullptr, Later()).ok()) << s;
    });
  };
  append("first");
  fake.entered.WaitForNotification();  // One committer is busy with "first".
  append("s0");
  append("s1");
  while (store.queued() < 2) absl::SleepFor(absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(fake.calls.load(), 1);  // Two waiting: the other committer idles.
  EXPECT_EQ(store.queued(), 2u);
  append("s2");  // Three: it starts a batch of all three.
  auto sent = [&fake] {
    absl::MutexLock lock(&fake.mu);
    return fake.sizes.size();
  };
  while (sent() < 1) absl::SleepFor(absl::Milliseconds(1));
  fake.gate.Notify();
  for (auto& t : threads) t.join();
  absl::MutexLock lock(&fake.mu);
  EXPECT_EQ(fake.sizes, (std::vector<size_t>{3, 1}));
}

TEST(GroupCommitTest, AFailedTransactionIsEveryonesAnswer) {
  NoReads reads;
  FakeAppender fake;
  fake.fail_all = true;
  fake.hold_first = true;
  GroupCommitEventStore store(reads, fake, {.max_batch = 8, .committers = 1});
  std::vector<std::thread> threads;
  auto append = [&](const std::string& s) {
    threads.emplace_back([&store, s] {
      auto r = store.Append(One(s, 0), nullptr, Later());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << s;
    });
  };
  append("first");
  fake.entered.WaitForNotification();  // The one committer holds "first".
  for (const char* s : {"s0", "s1", "s2", "s3"}) append(s);
  while (store.queued() < 4) absl::SleepFor(absl::Milliseconds(1));
  fake.gate.Notify();
  for (auto& t : threads) t.join();
  // The four queued appends went in one batch, and its failure answered
  // each of them.
  absl::MutexLock lock(&fake.mu);
  EXPECT_EQ(fake.sizes, (std::vector<size_t>{1, 4}));
}

TEST(GroupCommitTest, ExpiredAppendsAreAnsweredWithoutBeingSent) {
  NoReads reads;
  FakeAppender fake;
  fake.hold_first = true;
  GroupCommitEventStore store(reads, fake, {.committers = 1});
  std::thread first([&] {
    EXPECT_TRUE(store.Append(One("first", 0), nullptr, Later()).ok());
  });
  fake.entered.WaitForNotification();
  std::thread late([&] {
    auto r = store.Append(One("late", 0), nullptr,
                          absl::Now() + absl::Milliseconds(20));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  });
  while (store.queued() < 1) absl::SleepFor(absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(50));  // Past the late one's deadline.
  fake.gate.Notify();
  first.join();
  late.join();
  absl::MutexLock lock(&fake.mu);
  EXPECT_EQ(fake.sent, (std::vector<std::string>{"first"}));
}

TEST(GroupCommitTest, AppendsToOneStreamAreNeverInTwoBatchesAtOnce) {
  NoReads reads;
  FakeAppender fake;
  fake.hold_first = true;
  GroupCommitEventStore store(reads, fake, {.committers = 2});
  auto first_appends = One("A", 0);
  auto first = store.StartAppend(first_appends, nullptr, Later());
  fake.entered.WaitForNotification();  // Committer 1 holds A's batch.
  auto second_appends = One("A", 1), other_appends = One("B", 0);
  auto second = store.StartAppend(second_appends, nullptr, Later());
  auto other = store.StartAppend(other_appends, nullptr, Later());
  // Committer 2 takes B, which is free, but not A's follower.
  ASSERT_TRUE(other->Wait().ok());
  EXPECT_EQ(store.queued(), 1u);
  fake.gate.Notify();
  ASSERT_TRUE(first->Wait().ok());
  auto r = second->Wait();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->at(0).version, 2);
  absl::MutexLock lock(&fake.mu);
  // (The held batch records what it sent once released.)
  EXPECT_EQ(fake.sent, (std::vector<std::string>{"B", "A", "A"}));
}

// Then instead of Wait: the committer that learns the outcome calls back,
// once, outside its lock (a callback may start the next append); an outcome
// known already is delivered at once, on the caller's thread.
TEST(GroupCommitTest, ThenAnswersFromTheCommitterOnceAndMayAppendAgain) {
  NoReads reads;
  FakeAppender fake;
  fake.hold_first = true;
  GroupCommitEventStore store(reads, fake, {.committers = 1});
  auto first_appends = One("A", 0), second_appends = One("A", 1);
  std::unique_ptr<PendingAppend> second;
  absl::Notification second_done;
  absl::StatusOr<std::vector<StreamResult>> second_result;
  std::atomic<int> first_calls{0};
  std::thread::id first_thread;
  const std::thread::id test_thread = std::this_thread::get_id();
  auto first = store.StartAppend(first_appends, nullptr, Later());
  fake.entered.WaitForNotification();  // The committer holds A's batch.
  first->Then([&](absl::StatusOr<std::vector<StreamResult>> r) {
    ++first_calls;
    first_thread = std::this_thread::get_id();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->at(0).version, 1);
    // From the callback: the next append on the same stream.
    second = store.StartAppend(second_appends, nullptr, Later());
    second->Then([&](absl::StatusOr<std::vector<StreamResult>> r2) {
      second_result = std::move(r2);
      second_done.Notify();
    });
  });
  EXPECT_EQ(first_calls.load(), 0);  // Not before the commit.
  fake.gate.Notify();
  ASSERT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(first_calls.load(), 1);
  EXPECT_NE(first_thread, test_thread);
  ASSERT_TRUE(second_result.ok()) << second_result.status();
  EXPECT_EQ(second_result->at(0).version, 2);

  // Answered already (nothing to append): delivered here and now.
  std::vector<StreamAppend> none;
  int calls = 0;
  std::thread::id answered_on;
  store.StartAppend(none, nullptr, Later())
      ->Then([&](absl::StatusOr<std::vector<StreamResult>> r) {
        ++calls;
        answered_on = std::this_thread::get_id();
        EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
      });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(answered_on, test_thread);
}

TEST(GroupCommitTest, NothingToAppendIsInvalid) {
  NoReads reads;
  FakeAppender fake;
  GroupCommitEventStore store(reads, fake, {});
  EXPECT_EQ(store.Append({}, nullptr, Later()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bank::eventstore
