#include "query-service/group_logic.h"

#include <set>

#include "gtest/gtest.h"

namespace bank::query {
namespace {

TEST(PartitionOfTest, StableSpreadAndCaseBlind) {
  const std::string id = "123e4567-e89b-12d3-a456-426614174000";
  // Fixed forever (FNV-1a 64 of the text): a change would move accounts
  // between the partitions of existing groups.
  EXPECT_EQ(PartitionOf(id, 16), 15);
  EXPECT_EQ(PartitionOf(id, 1000), 31);
  EXPECT_EQ(PartitionOf(id, 1), 0);
  EXPECT_EQ(PartitionOf(id, 16),
            PartitionOf("123E4567-E89B-12D3-A456-426614174000", 16));
  // 4,096 ids over 8 partitions: none empty, none over twice its share.
  std::vector<int> counts(8);
  for (int i = 0; i < 4096; ++i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012x", i * 7919);
    ++counts[PartitionOf(buf, 8)];
  }
  for (int c : counts) {
    EXPECT_GT(c, 0);
    EXPECT_LT(c, 2 * 4096 / 8);
  }
}

TEST(GroupNameTest, LettersDigitsAndThreeMarks) {
  EXPECT_TRUE(ValidateGroupName("fraud-check_v2.eu").ok());
  EXPECT_TRUE(ValidateGroupName(std::string(100, 'a')).ok());
  EXPECT_FALSE(ValidateGroupName("").ok());
  EXPECT_FALSE(ValidateGroupName(std::string(101, 'a')).ok());
  EXPECT_FALSE(ValidateGroupName("a b").ok());
  EXPECT_FALSE(ValidateGroupName("a/b").ok());
}

// Every partition owned exactly once, shares differ by at most one.
void ExpectBalanced(const std::map<std::string, std::vector<int>>& a,
                    int partitions) {
  std::set<int> seen;
  size_t lo = partitions, hi = 0;
  for (const auto& [m, ps] : a) {
    lo = std::min(lo, ps.size());
    hi = std::max(hi, ps.size());
    for (int p : ps) EXPECT_TRUE(seen.insert(p).second) << "partition " << p;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(partitions));
  EXPECT_LE(hi - lo, 1u);
}

std::map<int, std::string> Owners(
    const std::map<std::string, std::vector<int>>& a) {
  std::map<int, std::string> out;
  for (const auto& [m, ps] : a) {
    for (int p : ps) out[p] = m;
  }
  return out;
}

TEST(AssignTest, BalancedAndStickyAcrossJoinsAndLeaves) {
  auto a = Assign({"w1", "w2", "w3"}, 16, {});
  ExpectBalanced(a, 16);
  // A fourth joins: only what it takes moves.
  auto b = Assign({"w1", "w2", "w3", "w4"}, 16, Owners(a));
  ExpectBalanced(b, 16);
  int moved = 0;
  for (const auto& [p, m] : Owners(b)) moved += Owners(a)[p] != m;
  EXPECT_EQ(moved, 4);
  // w2 leaves: only its partitions move.
  auto c = Assign({"w1", "w3", "w4"}, 16, Owners(b));
  ExpectBalanced(c, 16);
  for (const auto& [p, m] : Owners(b)) {
    if (m != "w2") EXPECT_EQ(Owners(c)[p], m) << "partition " << p;
  }
  // More members than partitions: some get none, all are listed.
  auto d = Assign({"a", "b", "c"}, 2, {});
  ExpectBalanced(d, 2);
  EXPECT_EQ(d.size(), 3u);
  EXPECT_TRUE(Assign({}, 4, {}).empty());
}

TEST(PartitionAcksTest, ProgressMovesOnlyPastAnAcknowledgedPrefix) {
  PartitionAcks acks;
  acks.Delivered(10, {5, 10});
  acks.Delivered(12, {5, 12});
  acks.Delivered(11, {6, 11});
  EXPECT_EQ(acks.in_flight(), 3u);
  EXPECT_TRUE(acks.Ack(12));
  EXPECT_FALSE(acks.Advance().has_value());  // 10 is not acknowledged.
  EXPECT_FALSE(acks.Ack(12));                // Twice.
  EXPECT_FALSE(acks.Ack(99));                // Never delivered.
  EXPECT_TRUE(acks.Ack(10));
  EXPECT_EQ(acks.Advance(), (EntryPosition{5, 12}));
  EXPECT_EQ(acks.in_flight(), 1u);
  EXPECT_TRUE(acks.Ack(11));
  EXPECT_EQ(acks.Advance(), (EntryPosition{6, 11}));
  EXPECT_FALSE(acks.Advance().has_value());
}

}  // namespace
}  // namespace bank::query
