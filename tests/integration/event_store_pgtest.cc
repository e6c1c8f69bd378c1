// The EventStore contract against PostgreSQL (the same suite runs against
// the in-memory store in tests/unit/memory_event_store_test.cc), and what
// only the database can promise.
#include <future>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/db/migrations.h"
#include "common/eventstore/pg_event_store.h"
#include "common/util/outcome.h"
#include "common/util/uuid.h"
#include "gtest/gtest.h"
#include "sql/migrations.h"
#include "tests/contract/event_store_contract.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_environment.h"

namespace bank::eventstore {
namespace {

testing::PgCluster* cluster = nullptr;
std::string uri;

// The database the tests use, migrated.
void Prepare(testing::PgCluster& c) {
  ASSERT_TRUE(c.CreateDatabase("bank_events").ok());
  uri = c.Uri("bank_events");
  ASSERT_TRUE(db::ApplyMigrations(uri, sql::EventsMigrations(), "m").ok());
}

struct PgFactory {
  struct UnderTest {
    PgEventStore pg{{.uri = uri, .pool_size = 4}};
    EventStore& store() { return pg; }
    BatchAppender& appender() { return pg; }
  };
  static std::unique_ptr<UnderTest> Make() {
    return std::make_unique<UnderTest>();
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, EventStoreContract, PgFactory);

TEST(PgEventStoreTest, EventsAreAppendOnly) {
  PgEventStore store({.uri = uri, .pool_size = 1});
  const std::string s = util::NewUuid();
  ASSERT_TRUE(store
                  .Append({{s,
                            0,
                            {{util::NewUuid(), "MoneyDeposited", 1,
                              R"({"amount": "5"})", "{}"}}}},
                          nullptr, absl::Now() + absl::Seconds(10))
                  .ok());
  pqxx::connection c(uri);
  for (const char* sql : {"UPDATE events SET data = '{}'", "DELETE FROM events",
                          "TRUNCATE events"}) {
    pqxx::work tx(c);
    EXPECT_THROW(tx.exec(sql), pqxx::sql_error) << sql;
  }
  auto events = store.ReadStream(s, 0, 10, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->at(0).data, R"({"amount": "5"})");
}

// One definition of an append (sql/events/006 drops 003's overload).
TEST(PgEventStoreTest, OneAppendFunction) {
  pqxx::connection c(uri);
  pqxx::work tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_proc WHERE proname = "
                     "'append_commands'")[0]
                .as<int>(),
            1);
}

TEST(PgEventStoreTest, UnreachableDatabaseIsUnavailable) {
  PgEventStore store({.uri = "postgresql://postgres@127.0.0.1:" +
                             std::to_string(testing::PickFreePort()) +
                             "/bank_events?connect_timeout=2",
                      .pool_size = 1});
  auto r =
      store.ReadStream(util::NewUuid(), 0, 10, absl::Now() + absl::Seconds(10));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

// What an append answers when its connection is lost after it was sent:
// the true outcome, looked up, or "outcome unknown" only when it cannot be
// learned within the deadline.

// The pid of the event store's server process that waits on `wait_event`
// (other than `not_pid`), once there is one; 0 after 20 s.
int WaitingStoreBackend(const std::string& wait_event, int not_pid = 0) {
  pqxx::connection c(uri);
  for (int i = 0; i < 2000; ++i) {
    pqxx::nontransaction tx(c);
    pqxx::result r = tx.exec_params(
        "SELECT pid FROM pg_stat_activity "
        "WHERE application_name LIKE 'bank-event-store/%' "
        "AND wait_event = $1 AND pid <> $2",
        wait_event, not_pid);
    if (!r.empty()) return r[0][0].as<int>();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return 0;
}

void Terminate(int pid) {
  pqxx::connection c(uri);
  pqxx::nontransaction tx(c);
  tx.exec_params("SELECT pg_terminate_backend($1, 5000)", pid);
}

void SetSynchronousStandbys(const std::string& names) {
  pqxx::connection c(uri);
  pqxx::nontransaction tx(c);
  tx.exec(names.empty()
              ? "ALTER SYSTEM RESET synchronous_standby_names"
              : "ALTER SYSTEM SET synchronous_standby_names = '" + names + "'");
  tx.exec("SELECT pg_reload_conf()");
}

int64_t EventsOf(const std::string& stream) {
  pqxx::connection c(uri);
  pqxx::nontransaction tx(c);
  return tx
      .exec_params1("SELECT count(*) FROM events WHERE stream_id = $1::uuid",
                    stream)[0]
      .as<int64_t>();
}

struct Deposit {
  std::string stream = util::NewUuid();
  std::string event_id = util::NewUuid();
  std::vector<StreamAppend> appends{
      {stream,
       0,
       {{event_id, "MoneyDeposited", 1, R"({"amount": "5"})", "{}"}}}};
  CommandRecord command{util::NewUuid(), "Deposit", "request"};
};

// Sent, then the connection lost before the commit: nothing was written,
// so the batch runs again on a fresh connection and its answer is the true
// one; the command's event is stored once.
TEST(AppendOutcomeTest, LostBeforeTheCommitRunsAgain) {
  PgEventStore store({.uri = uri, .pool_size = 2});
  Deposit d;
  pqxx::connection blocker(uri);
  pqxx::work lock(blocker);
  lock.exec("LOCK TABLE events IN EXCLUSIVE MODE");  // Holds the append.
  auto appended = std::async(std::launch::async, [&] {
    return store.Append(d.appends, &d.command, absl::Now() + absl::Seconds(30));
  });
  const int first = WaitingStoreBackend("relation");
  ASSERT_NE(first, 0);
  Terminate(first);
  // Found not committed, and sent again: it waits for the lock anew.
  ASSERT_NE(WaitingStoreBackend("relation", first), 0);
  lock.commit();
  absl::StatusOr<std::vector<StreamResult>> r = appended.get();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->at(0).version, 1);
  EXPECT_EQ(EventsOf(d.stream), 1);
  EXPECT_EQ(store.unknown_outcomes(), 1);
}

// Committed, then the connection lost before the answer arrived: the store
// learns that it committed and answers the stored version and position, but
// only once the synchronous standby has it.
TEST(AppendOutcomeTest, LostAfterTheCommitAnswersTheCommit) {
  PgEventStore store({.uri = uri, .pool_size = 2});
  Deposit d;
  SetSynchronousStandbys("nobody");  // Every commit waits.
  auto appended = std::async(std::launch::async, [&] {
    return store.Append(d.appends, &d.command, absl::Now() + absl::Seconds(30));
  });
  const int first = WaitingStoreBackend("SyncRep");
  ASSERT_NE(first, 0);
  Terminate(first);  // Committed here, not yet on any standby.
  // The lookup found it, and its own commit waits for the standby.
  const int second = WaitingStoreBackend("SyncRep", first);
  SetSynchronousStandbys("");
  ASSERT_NE(second, 0);
  absl::StatusOr<std::vector<StreamResult>> r = appended.get();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->at(0).stream_id, d.stream);
  EXPECT_EQ(r->at(0).version, 1);
  pqxx::connection c(uri);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(r->at(0).position,
            tx.exec_params1("SELECT position FROM events WHERE event_id = "
                            "$1::uuid",
                            d.event_id)[0]
                .as<int64_t>());
  EXPECT_EQ(EventsOf(d.stream), 1);
  EXPECT_EQ(store.unknown_outcomes(), 1);
}

// The database goes away after the append was sent and does not come back
// within the deadline: the answer says the outcome is unknown (and so that a
// retry with the same command_id is safe), never "not applied".
TEST(AppendOutcomeTest, UnknownWhenTheDatabaseStaysAway) {
  PgEventStore store({.uri = uri, .pool_size = 2});
  Deposit d;
  pqxx::connection blocker(uri);
  pqxx::work lock(blocker);
  lock.exec("LOCK TABLE events IN EXCLUSIVE MODE");
  auto appended = std::async(std::launch::async, [&] {
    return store.Append(d.appends, &d.command, absl::Now() + absl::Seconds(4));
  });
  ASSERT_NE(WaitingStoreBackend("relation"), 0);
  ASSERT_TRUE(cluster->Stop(/*immediate=*/true).ok());
  absl::StatusOr<std::vector<StreamResult>> r = appended.get();
  ASSERT_TRUE(cluster->Restart().ok());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(util::IsOutcomeUnknown(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "could not be learned"))
      << r.status();
  EXPECT_EQ(store.unknown_outcomes(), 1);
}

// Nothing sent (the database is away from the start): UNAVAILABLE, known
// not applied, and no lookup.
TEST(AppendOutcomeTest, NotSentIsNotApplied) {
  PgEventStore store({.uri = "postgresql://postgres@127.0.0.1:" +
                             std::to_string(testing::PickFreePort()) +
                             "/bank_events?connect_timeout=2",
                      .pool_size = 1});
  Deposit d;
  auto r = store.Append(d.appends, &d.command, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_FALSE(util::IsOutcomeUnknown(r.status())) << r.status();
  EXPECT_EQ(store.unknown_outcomes(), 0);
}

}  // namespace
}  // namespace bank::eventstore

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::eventstore::cluster,
                                       bank::eventstore::Prepare));
}
