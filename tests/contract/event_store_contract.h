// The EventStore contract (common/eventstore/event_store.h), one suite for
// every implementation. A test file instantiates it with a factory type F
// whose static Make() returns a std::unique_ptr to an object with
// `EventStore& store()` and `BatchAppender& appender()`:
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Memory, EventStoreContract, MemoryFactory);
//
// Every case works on new random stream ids, so stores may be shared.
#ifndef BANK_TESTS_CONTRACT_EVENT_STORE_CONTRACT_H_
#define BANK_TESTS_CONTRACT_EVENT_STORE_CONTRACT_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/eventstore/event_store.h"
#include "common/util/uuid.h"

namespace bank::eventstore {

template <typename F>
class EventStoreContract : public ::testing::Test {
 protected:
  void SetUp() override { under_test_ = F::Make(); }

  EventStore& store() { return under_test_->store(); }
  BatchAppender& appender() { return under_test_->appender(); }

  static absl::Time Later() { return absl::Now() + absl::Seconds(10); }
  static NewEvent Event(const std::string& id = util::NewUuid()) {
    return NewEvent{id, "MoneyDeposited", 1, R"({"amount": "5"})",
                    R"({"instance": "contract"})"};
  }
  // A new stream with `events` events.
  std::string Stream(int events) {
    const std::string id = util::NewUuid();
    if (events > 0) {
      StreamAppend a{id, 0, {}};
      for (int i = 0; i < events; ++i) a.events.push_back(Event());
      auto r = store().Append({a}, nullptr, Later());
      EXPECT_TRUE(r.ok()) << r.status();
    }
    return id;
  }
  std::vector<RecordedEvent> Read(const std::string& stream,
                                  int64_t after = 0) {
    auto r = store().ReadStream(stream, after, 1000, Later());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<RecordedEvent>();
  }
  int64_t VersionOf(const std::string& stream) {
    return static_cast<int64_t>(Read(stream).size());
  }
  bool Recorded(const std::string& command_id) {
    auto r = store().FindCommand(command_id, Later());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->has_value();
  }

 private:
  decltype(F::Make()) under_test_;
};

TYPED_TEST_SUITE_P(EventStoreContract);

TYPED_TEST_P(EventStoreContract, AppendsAndReadsInVersionOrder) {
  const std::string s = util::NewUuid();
  std::vector<NewEvent> first = {this->Event(), this->Event(), this->Event()};
  auto r1 = this->store().Append({{s, 0, first}}, nullptr, this->Later());
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(r1->size(), 1u);
  EXPECT_EQ(r1->at(0).stream_id, s);
  EXPECT_EQ(r1->at(0).version, 3);
  auto r2 = this->store().Append({{s, 3, {this->Event(), this->Event()}}},
                                 nullptr, this->Later());
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->at(0).version, 5);
  EXPECT_GT(r2->at(0).position, r1->at(0).position);

  std::vector<RecordedEvent> all = this->Read(s);
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].stream_id, s);
    EXPECT_EQ(all[i].stream_version, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(all[i].type, "MoneyDeposited");
    EXPECT_EQ(all[i].schema_version, 1);
    if (i > 0) {
      EXPECT_GT(all[i].position, all[i - 1].position);
    }
  }
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(all[i].event_id, first[i].event_id);
    // The events of one append share its transaction.
    EXPECT_EQ(all[i].transaction_id, all[0].transaction_id);
  }
  EXPECT_EQ(all[2].position, r1->at(0).position);
  EXPECT_EQ(all[4].position, r2->at(0).position);
  EXPECT_NE(all[3].transaction_id, all[0].transaction_id);

  // A page after a version, bounded by max_count.
  auto page = this->store().ReadStream(s, 2, 2, this->Later());
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->at(0).stream_version, 3);
  EXPECT_EQ(page->at(1).stream_version, 4);
  EXPECT_TRUE(this->Read(s, 5).empty());
  EXPECT_TRUE(this->Read(util::NewUuid()).empty());
}

TYPED_TEST_P(EventStoreContract, RefusesAStreamNotAtItsExpectedVersion) {
  const std::string s = this->Stream(2);
  // Behind (another writer got there first), ahead (a gap), and "must not
  // exist" for a stream that does: all ABORTED, nothing written.
  for (int64_t expected : {1, 3, 7, 0}) {
    auto r = this->store().Append({{s, expected, {this->Event()}}}, nullptr,
                                  this->Later());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted)
        << "expected_version " << expected << ": " << r.status();
  }
  EXPECT_EQ(this->VersionOf(s), 2);
  // A stream that does not exist yet must be appended at 0.
  const std::string fresh = util::NewUuid();
  EXPECT_EQ(this->store()
                .Append({{fresh, 1, {this->Event()}}}, nullptr, this->Later())
                .status()
                .code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(this->VersionOf(fresh), 0);
}

TYPED_TEST_P(EventStoreContract, AppendFailingHalfWayLeavesNothingBehind) {
  const std::string a = this->Stream(1), b = this->Stream(1);
  // Stream a appends fine at version 2; stream b claims version 1, which
  // exists: the whole append, command record included, must vanish.
  CommandRecord rec{"half-way-" + util::NewUuid(), "Deposit", "x"};
  auto r = this->store().Append({{a, 1, {this->Event()}}, {b, 0, {this->Event()}}},
                                &rec, this->Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(this->VersionOf(a), 1);
  EXPECT_EQ(this->VersionOf(b), 1);
  EXPECT_FALSE(this->Recorded(rec.command_id));
}

TYPED_TEST_P(EventStoreContract, RecordsTheCommandAndRefusesItsIdAgain) {
  const std::string a = this->Stream(1), b = this->Stream(0);
  CommandRecord rec{"record-" + util::NewUuid(), "Transfer", "\x01request"};
  // Streams given out of id order: results follow the appends' order.
  const bool a_first = a < b;
  std::vector<StreamAppend> appends = {{a, 1, {this->Event()}},
                                       {b, 0, {this->Event(), this->Event()}}};
  if (a_first) std::swap(appends[0], appends[1]);
  auto r = this->store().Append(appends, &rec, this->Later());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at(0).stream_id, appends[0].stream_id);
  EXPECT_EQ(r->at(1).stream_id, appends[1].stream_id);

  auto stored = this->store().FindCommand(rec.command_id, this->Later());
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->request_type, "Transfer");
  EXPECT_EQ((*stored)->request, rec.request);
  ASSERT_EQ((*stored)->results.size(), 2u);
  for (const StreamResult& s : (*stored)->results) {
    const StreamResult& appended =
        s.stream_id == r->at(0).stream_id ? r->at(0) : r->at(1);
    EXPECT_EQ(s.stream_id, appended.stream_id);
    EXPECT_EQ(s.version, appended.version);
    EXPECT_EQ(s.position, appended.position);
  }
  EXPECT_EQ(this->VersionOf(a), 2);
  EXPECT_EQ(this->VersionOf(b), 2);

  // The same id again, on a correct version: ALREADY_EXISTS, nothing written.
  auto again =
      this->store().Append({{a, 2, {this->Event()}}}, &rec, this->Later());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists)
      << again.status();
  EXPECT_EQ(this->VersionOf(a), 2);
  auto none = this->store().FindCommand("never-" + util::NewUuid(),
                                        this->Later());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

// Group commit: one transaction holds many commands, and each of them is
// still all-or-nothing on its own.
TYPED_TEST_P(EventStoreContract, BatchIsolatesEachCommand) {
  const std::string a = this->Stream(1), b = this->Stream(1),
                    c = this->Stream(1);
  CommandRecord first{"batch-" + util::NewUuid(), "Deposit", "x"};
  ASSERT_TRUE(this->store()
                  .Append({{b, 1, {this->Event()}}}, &first, this->Later())
                  .ok());
  // 0: fine. 1: a chained after 0 in the same batch, but b claims version
  // 1, which exists: all of 1 must vanish. 2: a command_id recorded
  // already. 3: a gap (c is at version 1, not 5). 4: fine, with its record.
  std::vector<StreamAppend> i0{{a, 1, {this->Event()}}};
  std::vector<StreamAppend> i1{{a, 2, {this->Event()}}, {b, 1, {this->Event()}}};
  std::vector<StreamAppend> i2{{c, 1, {this->Event()}}};
  std::vector<StreamAppend> i3{{c, 5, {this->Event()}}};
  std::vector<StreamAppend> i4{{c, 1, {this->Event()}}};
  CommandRecord r1{"batch-" + util::NewUuid(), "Transfer", "y"};
  CommandRecord r4{"batch-" + util::NewUuid(), "Deposit", "z"};
  auto results = this->appender().AppendBatch(
      {{&i0, nullptr}, {&i1, &r1}, {&i2, &first}, {&i3, nullptr}, {&i4, &r4}},
      this->Later());
  ASSERT_EQ(results.size(), 5u);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_EQ(results[0]->at(0).version, 2);
  EXPECT_EQ(results[1].status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(results[2].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(results[3].status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(results[4].ok()) << results[4].status();
  EXPECT_EQ(results[4]->at(0).stream_id, c);
  EXPECT_EQ(results[4]->at(0).version, 2);
  EXPECT_EQ(this->VersionOf(a), 2);
  EXPECT_EQ(this->VersionOf(b), 2);
  EXPECT_EQ(this->VersionOf(c), 2);
  EXPECT_FALSE(this->Recorded(r1.command_id));
  EXPECT_TRUE(this->Recorded(r4.command_id));
  // Items 0 and 4 committed in one transaction.
  EXPECT_EQ(this->Read(a).back().transaction_id,
            this->Read(c).back().transaction_id);
  auto stored = this->store().FindCommand(r4.command_id, this->Later());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->results.at(0).position, results[4]->at(0).position);
}

// An append that names the event it follows (after_event_id) commits only
// on that very event: alone, chained in one batch, and command by command.
TYPED_TEST_P(EventStoreContract, AppendFollowsOnlyTheEventItNames) {
  const std::string a = this->Stream(1), b = this->Stream(1),
                    c = this->Stream(1);
  auto wrong = this->store().Append({{a, 1, {this->Event()}, util::NewUuid()}},
                                    nullptr, this->Later());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(this->VersionOf(a), 1);
  auto right = this->store().Append(
      {{a, 1, {this->Event()}, this->Read(a).at(0).event_id}}, nullptr,
      this->Later());
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_EQ(right->at(0).version, 2);

  // In one batch, a command may follow the event of the one before it.
  const std::string x = util::NewUuid();
  std::vector<StreamAppend> b0{{b, 1, {this->Event(x)}}};
  std::vector<StreamAppend> b1{{b, 2, {this->Event()}, x}};
  auto chained =
      this->appender().AppendBatch({{&b0, nullptr}, {&b1, nullptr}},
                                   this->Later());
  ASSERT_TRUE(chained[0].ok()) << chained[0].status();
  ASSERT_TRUE(chained[1].ok()) << chained[1].status();
  EXPECT_EQ(this->VersionOf(b), 3);

  // Another writer took c's version 2: the first command conflicts, the
  // second, which follows the first's event, conflicts with it; the third
  // follows the stored one.
  ASSERT_TRUE(
      this->store().Append({{c, 1, {this->Event()}}}, nullptr, this->Later())
          .ok());
  const std::string y = util::NewUuid();
  std::vector<StreamAppend> c0{{c, 1, {this->Event(y)}}};
  std::vector<StreamAppend> c1{{c, 2, {this->Event()}, y}};
  std::vector<StreamAppend> c2{
      {c, 2, {this->Event()}, this->Read(c).at(1).event_id}};
  auto mixed = this->appender().AppendBatch(
      {{&c0, nullptr}, {&c1, nullptr}, {&c2, nullptr}}, this->Later());
  EXPECT_EQ(mixed[0].status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(mixed[1].status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(mixed[2].ok()) << mixed[2].status();
  EXPECT_EQ(mixed[2]->at(0).version, 3);
  for (const RecordedEvent& e : this->Read(c)) EXPECT_NE(e.event_id, y);
  EXPECT_EQ(this->VersionOf(c), 3);
}

TYPED_TEST_P(EventStoreContract, AnEventIdIsStoredOnce) {
  const std::string a = this->Stream(0), b = this->Stream(0);
  const NewEvent e = this->Event();
  ASSERT_TRUE(this->store().Append({{a, 0, {e}}}, nullptr, this->Later()).ok());
  auto again = this->store().Append({{b, 0, {e}}}, nullptr, this->Later());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAborted)
      << again.status();
  EXPECT_EQ(this->VersionOf(b), 0);
}

// Pipelined commands on a busy account may save its snapshots at the same
// time: none fails, the newest stays; another schema version replaces it.
TYPED_TEST_P(EventStoreContract, KeepsTheNewestSnapshot) {
  const std::string id = util::NewUuid();
  auto none = this->store().LoadSnapshot(id, this->Later());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 1; i <= 20; ++i) {
        absl::Status s = this->store().SaveSnapshot(
            {id, i * 8 + t, 1, R"({"v": 1})"}, this->Later());
        EXPECT_TRUE(s.ok()) << s;
      }
    });
  }
  for (auto& th : threads) th.join();
  auto newest = this->store().LoadSnapshot(id, this->Later());
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->version, 167);
  ASSERT_TRUE(this->store().SaveSnapshot({id, 3, 1, R"({"v": 1})"},
                                         this->Later()).ok());
  EXPECT_EQ((*this->store().LoadSnapshot(id, this->Later()))->version, 167);
  ASSERT_TRUE(this->store().SaveSnapshot({id, 3, 2, R"({"v": 2})"},
                                         this->Later()).ok());
  auto replaced = this->store().LoadSnapshot(id, this->Later());
  ASSERT_TRUE(replaced.ok() && replaced->has_value());
  EXPECT_EQ((*replaced)->version, 3);
  EXPECT_EQ((*replaced)->schema_version, 2);
}

TYPED_TEST_P(EventStoreContract, GivesUpAtTheDeadline) {
  const std::string s = this->Stream(1);
  const absl::Time past = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(this->store().ReadStream(s, 0, 10, past).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  auto r = this->store().Append({{s, 1, {this->Event()}}}, nullptr, past);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_EQ(this->VersionOf(s), 1);
}

REGISTER_TYPED_TEST_SUITE_P(EventStoreContract, AppendsAndReadsInVersionOrder,
                            RefusesAStreamNotAtItsExpectedVersion,
                            AppendFailingHalfWayLeavesNothingBehind,
                            RecordsTheCommandAndRefusesItsIdAgain,
                            BatchIsolatesEachCommand,
                            AppendFollowsOnlyTheEventItNames,
                            AnEventIdIsStoredOnce, KeepsTheNewestSnapshot,
                            GivesUpAtTheDeadline);

}  // namespace bank::eventstore

#endif  // BANK_TESTS_CONTRACT_EVENT_STORE_CONTRACT_H_
