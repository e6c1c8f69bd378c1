// The least-privilege roles of sql/roles.sql: the system runs with them, and
// each role is refused what it must not do.
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>

#include "common/db/pg_status.h"
#include "gtest/gtest.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::PgCluster;
using testing::Process;
using testing::System;

PgCluster* pg = nullptr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Uri(const std::string& role, const std::string& db) {
  return "postgresql://" + role + "@127.0.0.1:" + std::to_string(pg->port()) +
         "/" + db;
}

// The SQLSTATE of running sql as role on db ("" when it succeeds).
std::string Try(const std::string& role, const std::string& db,
                const std::string& sql) {
  try {
    pqxx::connection c(Uri(role, db));
    pqxx::work tx(c);
    tx.exec(sql);
    tx.commit();
    return "";
  } catch (const std::exception& e) {
    return db::SqlState(e);  // Falls back to the message when pqxx lost it.
  }
}

class RolesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = PgCluster::Start();
    ASSERT_TRUE(c.ok()) << c.status();
    pg = c->release();
    pqxx::connection admin(pg->Uri("postgres"));
    {
      pqxx::nontransaction tx(admin);
      tx.exec(ReadFile(std::string(BANK_SOURCE_DIR) + "/sql/roles.sql"));
      tx.exec("CREATE DATABASE bank_events OWNER bank_owner");
      tx.exec("CREATE DATABASE bank_read OWNER bank_projector");
    }
  }
  static void TearDownTestSuite() { delete pg; }
};

TEST_F(RolesTest, SystemRunsWithLeastPrivilegeAndEachRoleIsRefusedTheRest) {
  int cport = testing::PickFreePort(), qport = testing::PickFreePort();
  // As deployed: a one-shot step migrates as the owner and exits; the
  // service then starts with its own role alone, which may not create in
  // the schema, and finds the schema current.
  Process migrate(testing::BinDir() + "/command-service",
                  {"--migrate-only", "--metrics-listen", "", "--events-db",
                   Uri("bank_owner", "bank_events")});
  ASSERT_EQ(migrate.Wait(absl::Seconds(60)), 0) << migrate.Log();
  Process command(testing::BinDir() + "/command-service",
                  {"--listen", "127.0.0.1:" + std::to_string(cport),
                   "--events-db", Uri("bank_command", "bank_events")});
  ASSERT_TRUE(System::WaitServing(cport, "", absl::Seconds(30)))
      << command.Log();
  Process projector(
      testing::BinDir() + "/projector",
      {"--events-db", Uri("bank_projector", "bank_events"), "--read-db",
       Uri("bank_projector", "bank_read"), "--poll-interval", "0.2"});
  Process query(testing::BinDir() + "/query-service",
                {"--listen", "127.0.0.1:" + std::to_string(qport), "--read-db",
                 Uri("bank_query", "bank_read")});
  ASSERT_TRUE(System::WaitServing(qport, "", absl::Seconds(30))) << query.Log();
  // The projector creates the read schema: wait for it.
  ASSERT_TRUE(testing::WaitFor(
      [] {
        return Try("bank_query", "bank_read",
                   "SELECT 1 FROM account_balances LIMIT 1") == "";
      },
      absl::Seconds(30)))
      << projector.Log();

  // The whole flow works with these privileges.
  auto commands = v1::CommandService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(cport),
                          grpc::InsecureChannelCredentials()));
  auto queries = v1::QueryService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(qport),
                          grpc::InsecureChannelCredentials()));
  std::string a = testing::OpenAccount(*commands, 500);
  v1::GetBalanceRequest q;
  q.set_account_id(a);
  q.set_min_version(1);
  v1::AccountBalance b;
  auto ctx = testing::Ctx();
  grpc::Status s = queries->GetBalance(ctx.get(), q, &b);
  ASSERT_TRUE(s.ok()) << s.error_message() << projector.Log();
  EXPECT_EQ(b.balance(), 500);
  // A rebuild as the projector role keeps the query role's access.
  Process rebuild(
      testing::BinDir() + "/projector",
      {"--events-db", Uri("bank_projector", "bank_events"), "--read-db",
       Uri("bank_projector", "bank_read"), "--rebuild"});
  ASSERT_EQ(rebuild.Wait(absl::Seconds(60)), 0) << rebuild.Log();
  EXPECT_EQ(Try("bank_query", "bank_read", "SELECT * FROM account_balances"),
            "");
  EXPECT_EQ(Try("bank_query", "bank_read", "SELECT * FROM account_history"),
            "");

  const std::string denied = "42501";  // insufficient_privilege
  // The command service appends and reads; it cannot change the past.
  EXPECT_EQ(Try("bank_command", "bank_events", "SELECT count(*) FROM events"),
            "");
  EXPECT_EQ(Try("bank_command", "bank_events", "UPDATE events SET data = '{}'"),
            denied);
  EXPECT_EQ(Try("bank_command", "bank_events", "DELETE FROM events"), denied);
  EXPECT_EQ(Try("bank_command", "bank_events", "TRUNCATE events"), denied);
  EXPECT_EQ(Try("bank_command", "bank_events", "DELETE FROM commands"), denied);
  EXPECT_EQ(Try("bank_command", "bank_events",
                "ALTER TABLE events DISABLE TRIGGER ALL"),
            denied);
  EXPECT_EQ(Try("bank_command", "bank_events", "DROP TABLE events"), denied);
  // Events go in only through append_commands (sql/events/007): a row that
  // names its own transaction_id (below the projector's checkpoint) or its
  // own position cannot be written, nor a command record.
  EXPECT_EQ(Try("bank_command", "bank_events",
                "INSERT INTO events (event_id, stream_id, stream_version, "
                "event_type, schema_version, data, transaction_id) VALUES "
                "(gen_random_uuid(), gen_random_uuid(), 1, 'AccountOpened', 1, "
                "'{\"owner\": \"M\", \"currency\": \"EUR\"}', '1')"),
            denied);
  EXPECT_EQ(Try("bank_command", "bank_events",
                "INSERT INTO events (position, event_id, stream_id, "
                "stream_version, event_type, schema_version, data) OVERRIDING "
                "SYSTEM VALUE VALUES (1000000, gen_random_uuid(), "
                "gen_random_uuid(), 1, 'AccountOpened', 1, '{}')"),
            denied);
  EXPECT_EQ(Try("bank_command", "bank_events",
                "INSERT INTO commands (command_id, request_type, request, "
                "result) VALUES ('x', 'Deposit', '', '[]')"),
            denied);
  // Nor may another role call the function that runs as the owner.
  EXPECT_EQ(Try("bank_projector", "bank_events",
                "SELECT * FROM append_commands('{}', '{}', '{}', '{}', '{}', "
                "'{}', '{}', '{}', '{}', '{}', '{}', '{}')"),
            denied);
  EXPECT_EQ(Try("bank_command", "bank_events", "CREATE TABLE x (i int)"),
            denied);
  // Even the owner cannot UPDATE or DELETE events: the triggers refuse.
  EXPECT_EQ(Try("bank_owner", "bank_events", "DELETE FROM events"), denied);
  // The projector reads events and nothing more there.
  EXPECT_EQ(Try("bank_projector", "bank_events", "SELECT count(*) FROM events"),
            "");
  EXPECT_EQ(Try("bank_projector", "bank_events",
                "INSERT INTO events (event_id, stream_id, stream_version, "
                "event_type, schema_version, data) VALUES (gen_random_uuid(), "
                "gen_random_uuid(), 1, 'AccountOpened', 2, '{}')"),
            denied);
  EXPECT_EQ(Try("bank_projector", "bank_events", "SELECT * FROM commands"),
            denied);
  // The query service only reads the read model.
  EXPECT_EQ(
      Try("bank_query", "bank_read", "UPDATE account_balances SET balance = 0"),
      denied);
  EXPECT_EQ(Try("bank_query", "bank_read", "DELETE FROM account_history"),
            denied);
  EXPECT_EQ(Try("bank_query", "bank_read",
                "UPDATE projection_checkpoints SET position = 0"),
            denied);
  EXPECT_EQ(Try("bank_query", "bank_events", "SELECT * FROM events"), denied);
  // It keeps the consumer groups (and only those).
  EXPECT_EQ(Try("bank_query", "bank_read",
                "INSERT INTO consumer_groups (group_name, partition_count) "
                "VALUES ('roles', 1)"),
            "");
  EXPECT_EQ(Try("bank_query", "bank_read",
                "DELETE FROM consumer_groups WHERE group_name = 'roles'"),
            "");
  // Nothing changed.
  EXPECT_EQ(Try("bank_command", "bank_events",
                "DO $$ BEGIN IF (SELECT count(*) FROM events) <> 1 THEN "
                "RAISE EXCEPTION 'changed'; END IF; END $$"),
            "");
}

TEST_F(RolesTest, TheServiceRoleAloneDoesNotMigrateAndSaysWhoMust) {
  {
    pqxx::connection admin(pg->Uri("postgres"));
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE bank_events_new OWNER bank_owner");
  }
  Process command(testing::BinDir() + "/command-service",
                  {"--listen", "127.0.0.1:0", "--metrics-listen", "",
                   "--events-db", Uri("bank_command", "bank_events_new")});
  EXPECT_EQ(command.Wait(absl::Seconds(60)), 1) << command.Log();
  EXPECT_NE(command.Log().find("has schema version 0, this build needs"),
            std::string::npos)
      << command.Log();
  EXPECT_NE(command.Log().find("this role may not migrate it"),
            std::string::npos)
      << command.Log();
  // Nothing was created.
  pqxx::connection owner(Uri("bank_owner", "bank_events_new"));
  pqxx::nontransaction tx(owner);
  EXPECT_EQ(
      tx.exec("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
              "ON n.oid = c.relnamespace WHERE n.nspname = 'public'")[0][0]
          .as<int>(),
      0);
}

}  // namespace
}  // namespace bank
