#include "query-service/group_member.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "query-service/group_logic.h"

namespace bank::query {
namespace {

constexpr int kCount = 4;

// An account id in partition `p` of kCount (the n-th such).
std::string AccountIn(int p, int n = 0) {
  for (int i = 0;; ++i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012x", i);
    if (PartitionOf(buf, kCount) == p && n-- == 0) return buf;
  }
}

GroupView View(const std::string& member, const std::vector<int>& mine,
               int64_t generation = 1, EntryPosition progress = {},
               EntryPosition delivered = {}) {
  GroupView v;
  v.partition_count = kCount;
  v.members = {member, "other"};
  for (int p = 0; p < kCount; ++p) {
    const bool is_mine = std::find(mine.begin(), mine.end(), p) != mine.end();
    v.partitions.push_back(
        {p, is_mine ? member : "other", generation, progress, delivered});
  }
  return v;
}

// A page of the stream: one entry per account, at positions 1, 2, ... of
// transaction `tx`.
struct Page {
  std::vector<v1::AccountEntry> entries;
  std::vector<EntryPosition> at;
  void Add(const std::string& account, int64_t tx, int64_t position) {
    v1::AccountEntry& e = entries.emplace_back();
    e.set_account_id(account);
    e.mutable_entry()->set_position(position);
    at.push_back({tx, position});
  }
};

TEST(GroupMemberTest, DeliversOnlyItsPartitionsAndStopsAtItsBound) {
  GroupMember m("me", /*max_unacked=*/2);
  EXPECT_FALSE(m.WantsEntries());  // No partitions yet.
  EXPECT_TRUE(m.Apply(View("me", {1})));
  EXPECT_EQ(m.partitions(), std::vector<int>{1});
  ASSERT_TRUE(m.WantsEntries());
  Page page;
  page.Add(AccountIn(0), 10, 1);
  page.Add(AccountIn(1), 10, 2);
  page.Add(AccountIn(2), 11, 3);
  page.Add(AccountIn(1), 11, 4);
  page.Add(AccountIn(1), 12, 5);
  bool full = false;
  auto got = m.Take(m.ReadFrom(), page.entries, page.at, &full);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(page.entries[got[0].index].entry().position(), 2);
  EXPECT_EQ(page.entries[got[1].index].entry().position(), 4);
  EXPECT_TRUE(full);
  EXPECT_FALSE(m.WantsEntries());
  // It read to position 4 (of transaction 11): the next read starts there.
  EXPECT_EQ(m.ReadFrom(), (EntryPosition{11, 4}));
  // Nothing acknowledged: only the delivered mark moves.
  auto marks = m.ProgressToSave();
  ASSERT_EQ(marks.size(), 1u);
  EXPECT_EQ(marks[0].progress, (EntryPosition{}));
  EXPECT_EQ(marks[0].delivered, (EntryPosition{11, 4}));
  m.Saved(marks);
  EXPECT_TRUE(m.ProgressToSave().empty());
  // The second acknowledged first: the progress waits for the first.
  EXPECT_EQ(m.Ack({4}), 1);
  EXPECT_TRUE(m.ProgressToSave().empty());
  EXPECT_EQ(m.Ack({2, 2, 99}), 1);  // A repeat and a stranger count nothing.
  auto save = m.ProgressToSave();
  ASSERT_EQ(save.size(), 1u);
  EXPECT_EQ(save[0].partition, 1);
  EXPECT_EQ(save[0].generation, 1);
  EXPECT_EQ(save[0].progress, (EntryPosition{11, 4}));
  m.Saved(save);
  EXPECT_TRUE(m.ProgressToSave().empty());
  EXPECT_TRUE(m.WantsEntries());
}

TEST(GroupMemberTest, ProgressPassesEntriesOfOtherPartitionsOnceAllAcked) {
  GroupMember m("me", 10);
  m.Apply(View("me", {1}));
  Page page;
  page.Add(AccountIn(1), 10, 1);
  page.Add(AccountIn(0), 10, 2);
  page.Add(AccountIn(0), 11, 3);
  bool full = false;
  ASSERT_EQ(m.Take(m.ReadFrom(), page.entries, page.at, &full).size(), 1u);
  EXPECT_FALSE(full);
  m.Ack({1});
  auto save = m.ProgressToSave();
  ASSERT_EQ(save.size(), 1u);
  // Nothing in flight: handled up to where it read.
  EXPECT_EQ(save[0].progress, (EntryPosition{11, 3}));
  EXPECT_EQ(save[0].delivered, (EntryPosition{11, 3}));
}

TEST(GroupMemberTest, APartitionThatComesStartsAtItsStoredProgress) {
  GroupMember m("me", 10);
  m.Apply(View("me", {1}));
  Page first;
  first.Add(AccountIn(1), 10, 1);
  first.Add(AccountIn(2), 10, 2);
  bool full = false;
  const EntryPosition from = m.ReadFrom();
  ASSERT_EQ(m.Take(from, first.entries, first.at, &full).size(), 1u);
  // Partition 2 arrives (stored progress: nothing) while a read from (10,2)
  // is under way: that read cannot give it the entry at (10,2).
  EXPECT_TRUE(m.Apply(View("me", {1, 2}, 1)));
  EXPECT_EQ(m.ReadFrom(), (EntryPosition{0, 0}));
  Page second;
  second.Add(AccountIn(2), 12, 5);
  auto got = m.Take({10, 2}, second.entries, second.at, &full);
  EXPECT_TRUE(got.empty());  // Partition 2 waits for a read from its start.
  auto again = m.Take(m.ReadFrom(), first.entries, first.at, &full);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].partition, 2);
  EXPECT_EQ(first.entries[again[0].index].entry().position(), 2);
}

TEST(GroupMemberTest, APartitionThatGoesDropsItsEntriesInFlight) {
  GroupMember m("me", 10);
  m.Apply(View("me", {1, 2}));
  Page page;
  page.Add(AccountIn(1), 10, 1);
  page.Add(AccountIn(2), 10, 2);
  bool full = false;
  ASSERT_EQ(m.Take(m.ReadFrom(), page.entries, page.at, &full).size(), 2u);
  EXPECT_EQ(m.unacked(), 2);
  EXPECT_TRUE(m.Apply(View("me", {1}, 2)));
  // Partition 1 came back under generation 2: a new start, nothing in
  // flight; partition 2 went.
  EXPECT_EQ(m.unacked(), 0);
  EXPECT_EQ(m.Ack({1, 2}), 0);  // Late: they move nothing.
  EXPECT_TRUE(m.ProgressToSave().empty());
  // Delivered again to the new generation, from the stored progress.
  auto got = m.Take(m.ReadFrom(), page.entries, page.at, &full);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(page.entries[got[0].index].entry().position(), 1);
}

TEST(GroupMemberTest, EntriesUpToTheDeliveredMarkAreRedeliveries) {
  GroupMember m("me", 10);
  m.Apply(View("me", {1}, 3, /*progress=*/{10, 1}, /*delivered=*/{11, 3}));
  Page page;
  page.Add(AccountIn(1), 11, 3);
  page.Add(AccountIn(1), 12, 4);
  bool full = false;
  auto got = m.Take(m.ReadFrom(), page.entries, page.at, &full);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].redelivered);
  EXPECT_FALSE(got[1].redelivered);
}

TEST(GroupMemberTest, ApplyWithTheSamePartitionsChangesNothing) {
  GroupMember m("me", 10);
  EXPECT_TRUE(m.Apply(View("me", {0, 3})));
  EXPECT_FALSE(m.Apply(View("me", {0, 3})));
  EXPECT_TRUE(m.Apply(View("me", {})));
  EXPECT_FALSE(m.WantsEntries());
}

}  // namespace
}  // namespace bank::query
