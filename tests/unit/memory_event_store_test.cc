// The EventStore contract against the in-memory store (the same suite runs
// against PostgreSQL in tests/integration/event_store_pgtest.cc).
#include "common/eventstore/memory_event_store.h"

#include <memory>

#include "tests/contract/event_store_contract.h"

namespace bank::eventstore {
namespace {

struct MemoryFactory {
  struct UnderTest {
    MemoryEventStore memory;
    EventStore& store() { return memory; }
    BatchAppender& appender() { return memory; }
  };
  static std::unique_ptr<UnderTest> Make() {
    return std::make_unique<UnderTest>();
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Memory, EventStoreContract, MemoryFactory);

// The hook tests use to hold or fail appends: a failed transaction writes
// nothing, for any of its commands.
TEST(MemoryEventStoreTest, AFailedTransactionWritesNothing) {
  MemoryEventStore store;
  store.SetBeforeAppend([] { return absl::UnavailableError("cut"); });
  const std::string s = util::NewUuid();
  std::vector<StreamAppend> one{
      {s, 0, {{util::NewUuid(), "T", 1, "{}", "{}"}}}};
  std::vector<StreamAppend> two{
      {util::NewUuid(), 0, {{util::NewUuid(), "T", 1, "{}", "{}"}}}};
  auto r = store.AppendBatch({{&one, nullptr}, {&two, nullptr}},
                             absl::Now() + absl::Seconds(5));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r[1].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store.AllEvents().empty());
  store.SetBeforeAppend(nullptr);
  EXPECT_TRUE(store.Append(one, nullptr, absl::Now() + absl::Seconds(5)).ok());
  EXPECT_EQ(store.AllEvents().size(), 1u);
}

}  // namespace
}  // namespace bank::eventstore
