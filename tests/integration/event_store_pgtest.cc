// The EventStore contract against PostgreSQL (the same suite runs against
// the in-memory store in tests/unit/memory_event_store_test.cc), and what
// only the database can promise.
#include <memory>
#include <pqxx/pqxx>

#include "common/db/migrations.h"
#include "common/eventstore/pg_event_store.h"
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

}  // namespace
}  // namespace bank::eventstore

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv,
      new bank::testing::PgEnvironment(&bank::eventstore::cluster,
                                       bank::eventstore::Prepare));
}
