// The command logic (plan, pipeline, loader, idempotency, executor) through
// CommandHandler, the path production uses, against the in-memory event
// store: conflicts with another instance, pipelined commands, refusals
// decided on landed state, idempotent retries, overload, snapshots.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "command-service/command_handler.h"
#include "common/domain/event_codec.h"
#include "common/eventstore/group_commit.h"
#include "common/eventstore/memory_event_store.h"
#include "common/util/uuid.h"
#include "common/util/worker_pool.h"

namespace bank::command {
namespace {

using eventstore::MemoryEventStore;

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

// One command-service instance over `store`, with its own cache and pool.
struct Instance {
  explicit Instance(
      eventstore::EventStore& store, CommandHandler::Options options = {},
      std::function<bool()> refuse = [] { return false; })
      : handler(
            store,
            [this, refuse](std::function<void()> work) {
              if (refuse()) return false;
              ++offloaded;
              return pool.TrySubmit(std::move(work));
            },
            WithMetrics(options, registry)) {}

  static CommandHandler::Options WithMetrics(CommandHandler::Options o,
                                             metrics::Registry& r) {
    o.metrics = &r;
    return o;
  }
  double Count(const std::string& name) {
    return registry.GetCounter(name, "").value();
  }

  // Starts a command on this thread: when this returns, the command has been
  // decided and queued (or handed to the pool), and the future answers it.
  template <typename T, typename Start>
  static std::future<absl::StatusOr<T>> Begin(Start start) {
    auto answer = std::make_shared<std::promise<absl::StatusOr<T>>>();
    start([answer](absl::StatusOr<T> r) { answer->set_value(std::move(r)); });
    return answer->get_future();
  }
  template <typename T, typename Start>
  static absl::StatusOr<T> Await(Start start) {
    return Begin<T>(std::move(start)).get();
  }
  absl::StatusOr<v1::CommandResult> Open(int64_t initial) {
    auto req = std::make_shared<v1::OpenAccountRequest>();
    req->set_owner("Alice");
    req->set_currency("EUR");
    req->set_initial_deposit(initial);
    return Await<v1::CommandResult>(
        [&](auto done) { handler.OpenAccount(req, "", Later(), done); });
  }
  std::future<absl::StatusOr<v1::CommandResult>> BeginDeposit(
      const std::string& id, int64_t amount, const std::string& command_id = "",
      std::optional<int64_t> expected = std::nullopt) {
    auto req = std::make_shared<v1::DepositRequest>();
    req->set_account_id(id);
    req->set_amount(amount);
    req->set_command_id(command_id);
    if (expected) req->set_expected_version(*expected);
    return Begin<v1::CommandResult>(
        [&](auto done) { handler.Deposit(req, "", Later(), done); });
  }
  absl::StatusOr<v1::CommandResult> Deposit(
      const std::string& id, int64_t amount, const std::string& command_id = "",
      std::optional<int64_t> expected = std::nullopt) {
    return BeginDeposit(id, amount, command_id, expected).get();
  }
  std::future<absl::StatusOr<v1::CommandResult>> BeginWithdraw(
      const std::string& id, int64_t amount,
      const std::string& command_id = "") {
    auto req = std::make_shared<v1::WithdrawRequest>();
    req->set_account_id(id);
    req->set_amount(amount);
    req->set_command_id(command_id);
    return Begin<v1::CommandResult>(
        [&](auto done) { handler.Withdraw(req, "", Later(), done); });
  }
  absl::StatusOr<v1::CommandResult> Withdraw(
      const std::string& id, int64_t amount,
      const std::string& command_id = "") {
    return BeginWithdraw(id, amount, command_id).get();
  }
  absl::StatusOr<v1::TransferResult> Transfer(const std::string& from,
                                              const std::string& to,
                                              int64_t amount) {
    auto req = std::make_shared<v1::TransferRequest>();
    req->set_from_account_id(from);
    req->set_to_account_id(to);
    req->set_amount(amount);
    return Await<v1::TransferResult>(
        [&](auto done) { handler.Transfer(req, "", Later(), done); });
  }

  metrics::Registry registry;
  std::atomic<int> offloaded{0};
  CommandHandler handler;
  util::WorkerPool pool{4, 64};  // Drained before the handler goes.
};

// The balance the stored events add up to, folded by the domain.
int64_t StoredBalance(MemoryEventStore& store, const std::string& id) {
  domain::BankAccount account(id);
  for (const eventstore::RecordedEvent& e : store.AllEvents()) {
    if (e.stream_id != id) continue;
    absl::StatusOr<domain::AccountEvent> d =
        domain::DecodeEvent(e.type, e.schema_version, e.data);
    EXPECT_TRUE(d.ok()) << d.status();
    if (d.ok()) account.Apply(*d);
  }
  return account.state().balance;
}

int64_t VersionOf(MemoryEventStore& store, const std::string& id) {
  int64_t v = 0;
  for (const auto& e : store.AllEvents()) {
    if (e.stream_id == id) v = e.stream_version;
  }
  return v;
}

TEST(CommandLogicTest, DecidesAppendsAndRefusesOnTheAggregatesRules) {
  MemoryEventStore store;
  Instance a(store);
  auto opened = a.Open(100);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->version(), 1);
  const std::string id = opened->account_id();
  auto d = a.Deposit(id, 50);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->version(), 2);
  auto w = a.Withdraw(id, 500);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition)
      << w.status();
  EXPECT_EQ(a.Deposit(util::NewUuid(), 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(a.Deposit(id, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionOf(store, id), 2);
  EXPECT_EQ(StoredBalance(store, id), 150);
}

TEST(CommandLogicTest, AConflictWithAnotherInstanceIsDecidedAgain) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string id = a.Open(0)->account_id();  // Cached by a at v1.
  ASSERT_TRUE(b.Deposit(id, 10).ok());             // v2, unknown to a.
  auto r = a.Deposit(id, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 3);
  EXPECT_EQ(a.Count("bank_append_conflicts_total"), 1);
  EXPECT_EQ(a.Count("bank_command_retries_total"), 1);
  EXPECT_EQ(StoredBalance(store, id), 15);
}

TEST(CommandLogicTest, AnExpectedVersionIsNeverRetried) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string id = a.Open(0)->account_id();
  ASSERT_TRUE(b.Deposit(id, 10).ok());
  // a's cache agrees with expected_version 1; the store does not.
  auto r = a.Deposit(id, 5, "", 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(a.Count("bank_command_retries_total"), 0);
  EXPECT_EQ(VersionOf(store, id), 2);
  // Decided on the stored stream, a stale expected_version is refused too.
  EXPECT_EQ(a.Deposit(id, 5, "", 1).status().code(),
            absl::StatusCode::kAborted);
  auto ok = a.Deposit(id, 5, "", 2);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->version(), 3);
}

TEST(CommandLogicTest, GivesUpAfterMaxAttempts) {
  MemoryEventStore store;
  Instance a(store, {.max_attempts = 3});
  const std::string id = a.Open(0)->account_id();
  store.SetBeforeAppend([] { return absl::AbortedError("always behind"); });
  auto r = a.Deposit(id, 5);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_NE(r.status().message().find("gave up after 3 attempts"),
            std::string::npos)
      << r.status();
  EXPECT_EQ(a.Count("bank_append_conflicts_total"), 3);
  EXPECT_EQ(a.Count("bank_command_retries_total"), 2);
  EXPECT_EQ(VersionOf(store, id), 1);
}

// A refusal computed on the cache must rest on the stored stream: another
// instance's deposit makes the withdrawal possible.
TEST(CommandLogicTest, ARefusalIsDecidedOnLandedState) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string id = a.Open(100)->account_id();  // a's cache: 100.
  ASSERT_TRUE(b.Deposit(id, 100).ok());
  auto r = a.Withdraw(id, 150);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 3);
  EXPECT_EQ(StoredBalance(store, id), 50);
  // And a refusal that holds on the stored stream is answered as one.
  EXPECT_EQ(a.Withdraw(id, 51).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(VersionOf(store, id), 3);
}

TEST(CommandLogicTest, ARepeatedCommandIdAnswersItsFirstOutcome) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string id = a.Open(100)->account_id();
  auto first = a.Withdraw(id, 100, "cmd-1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed());
  // Again, through either instance: the first outcome, not a refusal of
  // the state it already changed.
  for (Instance* i : {&a, &b}) {
    auto again = i->Withdraw(id, 100, "cmd-1");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->replayed());
    EXPECT_EQ(again->version(), first->version());
    EXPECT_EQ(again->position(), first->position());
  }
  EXPECT_EQ(a.Deposit(id, 1, "cmd-1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionOf(store, id), 2);
  EXPECT_EQ(StoredBalance(store, id), 0);
}

// Commands on one busy account are decided on the state the previous one
// left while it is still in flight, and queued behind it.
TEST(CommandLogicTest, PipelinedCommandsFollowTheOnesInFlight) {
  MemoryEventStore memory;
  eventstore::GroupCommitEventStore batched(memory, memory, {});
  Instance a(batched);
  const std::string id = a.Open(0)->account_id();  // Read on the pool.
  const int offloaded_before = a.offloaded.load();
  absl::Notification entered, release;
  std::atomic<bool> hold{true};
  memory.SetBeforeAppend([&] {
    if (hold.exchange(false)) {
      entered.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  // Started on this thread: once Begin returns, the deposit is queued and
  // its account free for the next command (only its commit is held).
  auto first = a.BeginDeposit(id, 1);
  entered.WaitForNotification();
  auto second = a.BeginWithdraw(id, 1);
  // Decided on the deposit's state (a withdrawal the stored stream would
  // refuse) and queued behind it, without waiting for its commit.
  EXPECT_EQ(batched.queued(), 1);
  release.Notify();
  auto f = first.get();
  auto s = second.get();
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(f->version(), 2);
  EXPECT_EQ(s->version(), 3);
  EXPECT_EQ(a.Count("bank_append_conflicts_total"), 0);
  EXPECT_EQ(a.offloaded.load(), offloaded_before)
      << "nothing had to wait on the pool";
  EXPECT_EQ(StoredBalance(memory, id), 0);
}

// The pipelined command must not commit when the append it was decided on
// loses its version to another writer: the withdrawal was only possible on
// the deposit's balance.
TEST(CommandLogicTest, APipelinedCommandNeverBuildsOnAnotherWritersEvent) {
  MemoryEventStore memory;
  eventstore::GroupCommitEventStore batched(memory, memory, {});
  Instance a(batched), other(memory);
  const std::string id = a.Open(100)->account_id();
  absl::Notification entered, release;
  std::atomic<bool> hold{true};
  memory.SetBeforeAppend([&] {
    if (hold.exchange(false)) {
      entered.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  auto deposit = a.BeginDeposit(id, 100);
  entered.WaitForNotification();
  auto withdraw = a.BeginWithdraw(id, 200);
  EXPECT_EQ(batched.queued(), 1);
  auto theirs = other.Withdraw(id, 100);  // Takes version 2 first.
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  release.Notify();
  auto d = deposit.get();
  auto w = withdraw.get();
  ASSERT_TRUE(d.ok()) << d.status();  // Decided again: version 3.
  EXPECT_EQ(d->version(), 3);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition)
      << w.status();
  EXPECT_EQ(StoredBalance(memory, id), 100);
  EXPECT_EQ(VersionOf(memory, id), 3);
}

TEST(CommandLogicTest, TransfersMoveMoneyInOneAppend) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string from = a.Open(100)->account_id();
  const std::string to = a.Open(0)->account_id();
  auto t = a.Transfer(from, to, 30);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->from().version(), 2);
  EXPECT_EQ(t->to().version(), 2);
  // One transaction holds both sides.
  std::vector<eventstore::RecordedEvent> all = store.AllEvents();
  EXPECT_EQ(all[all.size() - 1].transaction_id,
            all[all.size() - 2].transaction_id);
  // Refused on the stored state by an instance that cached nothing.
  EXPECT_EQ(b.Transfer(from, to, 71).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StoredBalance(store, from), 70);
  EXPECT_EQ(StoredBalance(store, to), 30);
}

TEST(CommandLogicTest, AFullPoolIsResourceExhaustedAndWritesNothing) {
  MemoryEventStore store;
  Instance writer(store);
  const std::string id = writer.Open(0)->account_id();
  std::atomic<bool> refuse{true};
  Instance full(store, {}, [&] { return refuse.load(); });
  // Not cached: the command must read, on a pool that takes nothing.
  EXPECT_EQ(full.Deposit(id, 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(VersionOf(store, id), 1);
  refuse = false;
  ASSERT_TRUE(full.Deposit(id, 1).ok());
  EXPECT_EQ(VersionOf(store, id), 2);
}

TEST(CommandLogicTest, AnUnreachableStoreIsUnavailableAndForgetsTheCache) {
  MemoryEventStore store;
  Instance a(store), b(store);
  const std::string id = a.Open(0)->account_id();
  std::atomic<bool> down{true};
  store.SetBeforeAppend([&] {
    return down.exchange(false) ? absl::UnavailableError("connection lost")
                                : absl::OkStatus();
  });
  EXPECT_EQ(a.Deposit(id, 1).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(VersionOf(store, id), 1);
  // The failed append's state was dropped: another instance's write is
  // read, not conflicted with.
  ASSERT_TRUE(b.Deposit(id, 10).ok());
  auto r = a.Deposit(id, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), 3);
  EXPECT_EQ(a.Count("bank_append_conflicts_total"), 0);
}

TEST(CommandLogicTest, SnapshotsAreSavedAndLoaded) {
  MemoryEventStore store;
  Instance a(store, {.snapshot_every = 2});
  const std::string id = a.Open(0)->account_id();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.Deposit(id, 10).ok());
  auto snap = store.LoadSnapshot(id, Later());
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((*snap)->version, 4);
  // A new instance starts from it and reads on.
  Instance fresh(store, {.snapshot_every = 2});
  EXPECT_EQ(fresh.Withdraw(id, 31).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto w = fresh.Withdraw(id, 30);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 5);
}

}  // namespace
}  // namespace bank::command
