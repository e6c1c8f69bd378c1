// The real projector executable against a real PostgreSQL: late commits,
// kill -9 under a backlog, database restarts, rebuild, standby takeover and
// poison events. After each, the oracle folds the event store from scratch
// and compares it with the read model.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/db/binary_copy.h"
#include "common/db/migrations.h"
#include "common/domain/event_codec.h"
#include "common/readmodel/progress_notice.h"
#include "gtest/gtest.h"
#include "projector/event_reader.h"
#include "projector/live_writer.h"
#include "sql/migrations.h"
#include "tests/support/oracle.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::PgCluster;
using testing::Process;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;

int64_t Query(const std::string& uri, const std::string& sql) {
  try {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    pqxx::result r = tx.exec(sql);
    tx.commit();
    if (r.empty() || r[0][0].is_null()) return -1;
    return r[0][0].as<int64_t>();
  } catch (const std::exception&) {
    return -2;
  }
}

// Inserts `accounts` accounts with `deposits` deposits each straight into the
// event store, in one transaction (a backlog the projector has not seen).
void InsertBacklog(const std::string& events_uri, int accounts, int deposits) {
  pqxx::connection c(events_uri);
  pqxx::work tx(c);
  tx.exec_params(R"sql(
    WITH ids AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1))
    INSERT INTO events (event_id, stream_id, stream_version, event_type,
                        schema_version, data)
    SELECT gen_random_uuid(), id, v,
           CASE WHEN v = 1 THEN 'AccountOpened' ELSE 'MoneyDeposited' END,
           CASE WHEN v = 1 THEN 2 ELSE 1 END,
           CASE WHEN v = 1 THEN jsonb_build_object('account_id', id::text,
                  'owner', 'Backlog', 'currency', 'EUR', 'initial_deposit', '100')
                ELSE jsonb_build_object('amount', (v * 3)::text) END
    FROM ids, generate_series(1, $2 + 1) AS v
    ORDER BY id, v)sql",
                 accounts, deposits);
  tx.commit();
}

int64_t EventCount(const System& s) {
  return Query(s.events_uri, "SELECT count(*) FROM events");
}

// Waits until the read model holds as many history rows as there are events.
bool CaughtUp(const System& s, absl::Duration timeout) {
  return WaitFor(
      [&] {
        return Query(s.read_uri, "SELECT count(*) FROM account_history") ==
               EventCount(s);
      },
      timeout);
}

void ExpectModelMatchesEvents(const System& s) {
  long n = 0;
  auto diffs = testing::CompareReadModel(s.events_uri, s.read_uri, &n);
  EXPECT_GT(n, 0);
  for (size_t i = 0; i < diffs.size() && i < 10; ++i) ADD_FAILURE() << diffs[i];
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences";
}

class ProjectorTest : public ::testing::Test {
 protected:
  void Start(const std::string& name) {
    sys_ = std::make_unique<System>(*pg, name);
    sys_->command = sys_->StartCommandService();
    ASSERT_TRUE(System::WaitServing(sys_->command_port, "", absl::Seconds(30)))
        << sys_->command->Log();
  }
  std::unique_ptr<System> sys_;
};

eventstore::RecordedEvent Recorded(const std::string& stream, int64_t version,
                                   const domain::AccountEvent& e,
                                   int64_t position) {
  domain::EncodedEvent enc = domain::EncodeEvent(e);
  eventstore::RecordedEvent r;
  r.stream_id = stream;
  r.stream_version = version;
  r.type = enc.type;
  r.schema_version = enc.schema_version;
  r.data = enc.json;
  r.position = position;
  r.transaction_id = 10;
  r.recorded_at = absl::FromUnixSeconds(1000 + position);
  return r;
}

// The live writer keeps the rows it wrote between batches; another writer
// (a second projector, a rebuild) moving the checkpoint makes it drop them.
TEST(LiveWriterTest, KeptRowsNeverOutliveAnotherWriter) {
  ASSERT_TRUE(pg->CreateDatabase("kept_rows").ok());
  const std::string uri = pg->Uri("kept_rows");
  ASSERT_TRUE(
      db::ApplyMigrations(uri, sql::ReadMigrations(), "bank_read_migrations")
          .ok());
  const std::string id = "33333333-3333-4333-8333-333333333333";
  events::v1::AccountOpened opened;
  opened.set_account_id(id);
  opened.set_owner("Ann");
  opened.set_currency("EUR");
  opened.set_initial_deposit(100);
  auto deposit = [](int64_t amount) {
    events::v1::MoneyDeposited d;
    d.set_amount(amount);
    return domain::AccountEvent(d);
  };
  projector::LiveWriter a(uri, "accounts", 1000);
  projector::LiveWriter b(uri, "accounts", 1000);
  absl::StatusOr<projector::Checkpoint> ca = a.LoadCheckpoint();
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto r1 = a.ApplyBatch(
      *ca, {Recorded(id, 1, opened, 1), Recorded(id, 2, deposit(10), 2)},
      false);
  ASSERT_TRUE(r1.ok()) << r1.status();
  // Another writer moves on from there.
  absl::StatusOr<projector::Checkpoint> cb = b.LoadCheckpoint();
  ASSERT_TRUE(cb.ok());
  EXPECT_EQ(*cb, r1->checkpoint);
  auto r2 = b.ApplyBatch(*cb, {Recorded(id, 3, deposit(20), 3)}, false);
  ASSERT_TRUE(r2.ok()) << r2.status();
  // The first writer's next batch is refused, and after reloading the
  // checkpoint it builds on the other writer's row, not on the one it kept.
  auto refused =
      a.ApplyBatch(r1->checkpoint, {Recorded(id, 4, deposit(40), 4)}, false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  ca = a.LoadCheckpoint();
  ASSERT_TRUE(ca.ok());
  auto r4 = a.ApplyBatch(*ca, {Recorded(id, 4, deposit(40), 4)}, false);
  ASSERT_TRUE(r4.ok()) << r4.status();
  // And with its own row kept, once more.
  auto r5 =
      a.ApplyBatch(r4->checkpoint, {Recorded(id, 5, deposit(1), 5)}, false);
  ASSERT_TRUE(r5.ok()) << r5.status();
  EXPECT_EQ(Query(uri, "SELECT balance FROM account_balances"), 171);
  EXPECT_EQ(Query(uri, "SELECT version FROM account_balances"), 5);
  EXPECT_EQ(Query(uri, "SELECT count(*) FROM account_history"), 5);
  EXPECT_EQ(Query(uri,
                  "SELECT balance_after FROM account_history "
                  "WHERE version = 5"),
            171);
}

// A live batch is one call (sql/read/004_stream_order.sql): the rows, the
// checkpoint with its events_applied, and the progress notices the query
// service's cache follows, all or nothing.
TEST(LiveWriterTest, OneCallWritesTheBatchAndAnnouncesIt) {
  ASSERT_TRUE(pg->CreateDatabase("one_call").ok());
  const std::string uri = pg->Uri("one_call");
  ASSERT_TRUE(
      db::ApplyMigrations(uri, sql::ReadMigrations(), "bank_read_migrations")
          .ok());
  pqxx::connection listener(uri);
  struct Receiver : pqxx::notification_receiver {
    using pqxx::notification_receiver::notification_receiver;
    std::vector<readmodel::ProgressNotice> notices;
    void operator()(const std::string& payload, int) override {
      notices.push_back(readmodel::DecodeProgress(payload));
    }
  } receiver(listener, readmodel::kProgressChannel);
  auto next_notice = [&]() -> std::optional<readmodel::ProgressNotice> {
    for (int i = 0; i < 20 && receiver.notices.empty(); ++i) {
      listener.await_notification(0, 100000);
    }
    if (receiver.notices.empty()) return std::nullopt;
    readmodel::ProgressNotice n = receiver.notices.front();
    receiver.notices.erase(receiver.notices.begin());
    return n;
  };
  const std::string x = "44444444-4444-4444-8444-444444444444";
  const std::string y = "55555555-5555-4555-8555-555555555555";
  auto opened = [](const std::string& id) {
    events::v1::AccountOpened o;
    o.set_account_id(id);
    // Quotes, backslashes, braces, a comma, colons, a per cent sign, a
    // space and a tab: whatever the notice and its array literal escape.
    o.set_owner("Bo \"B\" \\ {1,2}: 100%\t\xc3\xa9");
    o.set_currency("EUR");
    o.set_initial_deposit(50);
    return domain::AccountEvent(o);
  };
  events::v1::MoneyDeposited d;
  d.set_amount(5);
  const domain::AccountEvent deposit(d);

  projector::LiveWriter a(uri, "accounts", 1000);
  absl::StatusOr<projector::Checkpoint> c = a.LoadCheckpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  auto r1 =
      a.ApplyBatch(*c,
                   {Recorded(x, 1, opened(x), 1), Recorded(y, 1, opened(y), 2),
                    Recorded(x, 2, deposit, 3)},
                   false);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->applied, 3);
  std::optional<readmodel::ProgressNotice> n = next_notice();
  ASSERT_TRUE(n.has_value());
  EXPECT_FALSE(n->reset);
  EXPECT_EQ(n->applied, 3);
  // Each account with its row as stored, so that readers need not read it.
  auto stored_rows = [&uri] {
    pqxx::connection conn(uri);
    pqxx::nontransaction tx(conn);
    std::vector<readmodel::MovedAccount> rows;
    for (const auto& r : tx.exec(
             "SELECT account_id::text, version, balance, status, "
             "(extract(epoch FROM updated_at) * 1000000)::bigint, currency, "
             "owner FROM account_balances ORDER BY account_id")) {
      rows.push_back({.account_id = r[0].as<std::string>(),
                      .version = r[1].as<int64_t>(),
                      .has_row = true,
                      .balance = r[2].as<int64_t>(),
                      .status = r[3].as<int32_t>(),
                      .updated_us = r[4].as<int64_t>(),
                      .currency = r[5].as<std::string>(),
                      .owner = r[6].as<std::string>()});
    }
    return rows;
  };
  std::vector<readmodel::MovedAccount> moved = n->accounts;
  std::sort(moved.begin(), moved.end(), [](const auto& l, const auto& r) {
    return l.account_id < r.account_id;
  });
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved[0].account_id, x);
  EXPECT_EQ(moved[0].version, 2);
  EXPECT_EQ(moved[0].balance, 55);
  EXPECT_EQ(moved[1].account_id, y);
  EXPECT_EQ(moved[1].version, 1);
  EXPECT_EQ(moved, stored_rows());
  EXPECT_EQ(Query(uri, "SELECT events_applied FROM projection_checkpoints"), 3);
  EXPECT_EQ(Query(uri, "SELECT position FROM projection_checkpoints"), 3);
  EXPECT_EQ(Query(uri, "SELECT sum(balance) FROM account_balances"), 105);
  EXPECT_EQ(Query(uri, "SELECT count(*) FROM account_history"), 3);

  // Another writer moves on; the first one's next batch, built on the
  // checkpoint it left, changes nothing and announces nothing.
  projector::LiveWriter b(uri, "accounts", 0);
  absl::StatusOr<projector::Checkpoint> cb = b.LoadCheckpoint();
  ASSERT_TRUE(cb.ok());
  auto rb = b.ApplyBatch(*cb, {Recorded(y, 2, deposit, 4)}, false);
  ASSERT_TRUE(rb.ok()) << rb.status();
  n = next_notice();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->applied, 4);
  auto refused =
      a.ApplyBatch(r1->checkpoint, {Recorded(x, 3, deposit, 5)}, false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted)
      << refused.status();
  EXPECT_FALSE(next_notice().has_value());
  EXPECT_EQ(Query(uri, "SELECT events_applied FROM projection_checkpoints"), 4);
  EXPECT_EQ(Query(uri, "SELECT position FROM projection_checkpoints"), 4);
  EXPECT_EQ(Query(uri, "SELECT sum(balance) FROM account_balances"), 110);
  EXPECT_EQ(Query(uri, "SELECT count(*) FROM account_history"), 4);

  // After reloading, it goes on from the other writer's checkpoint.
  c = a.LoadCheckpoint();
  ASSERT_TRUE(c.ok());
  auto r3 = a.ApplyBatch(*c, {Recorded(x, 3, deposit, 5)}, false);
  ASSERT_TRUE(r3.ok()) << r3.status();
  n = next_notice();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->applied, 5);
  ASSERT_EQ(n->accounts.size(), 1u);
  EXPECT_EQ(n->accounts[0].account_id, x);
  EXPECT_EQ(n->accounts[0].version, 3);
  EXPECT_EQ(n->accounts[0].balance, 60);
  EXPECT_EQ(n->accounts[0], stored_rows()[0]);
  EXPECT_EQ(Query(uri, "SELECT sum(balance) FROM account_balances"), 115);

  // The function itself refuses a stale checkpoint, whatever the caller
  // kept: SQLSTATE 40001 and nothing written.
  {
    pqxx::connection raw(uri);
    pqxx::nontransaction tx(raw);
    EXPECT_THROW(
        tx.exec("SELECT apply_batch('accounts', 0, 4, 4, 0, 6, 1, "
                "'{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', "
                "'{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', "
                "'{}', '{}', '{}', '{}', 'bank_projection', '{}')"),
        pqxx::serialization_failure);
  }
  EXPECT_EQ(Query(uri, "SELECT position FROM projection_checkpoints"), 5);
  EXPECT_EQ(Query(uri, "SELECT events_applied FROM projection_checkpoints"), 5);
}

// The rebuild's binary COPY in both directions, at the edges of each type.
TEST(BinaryCopyTest, RoundTripsEdgeValuesAndRefusesBadUuids) {
  ASSERT_TRUE(pg->CreateDatabase("binary_copy").ok());
  const std::string uri = pg->Uri("binary_copy");
  {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    tx.exec(
        "CREATE TABLE t (id uuid, other uuid, small smallint, big bigint, "
        "at timestamptz, note jsonb)");
    tx.commit();
  }
  const absl::Time before_2000 = absl::FromUnixMicros(-1234567);  // 1969
  const absl::Time after_2000 = absl::FromUnixMicros(1795766671338649);
  {
    db::BinaryCopyIn in(uri,
                        "COPY t (id, other, small, big, at) FROM STDIN "
                        "(FORMAT binary)",
                        "test");
    in.StartRow(5);
    in.AddUuid("0123ABCD-4567-89ab-cdef-0123456789AB");
    in.AddNull();
    in.AddInt16(-32768);
    in.AddInt64(INT64_MIN);
    in.AddTimestamp(before_2000);
    in.StartRow(5);
    in.AddUuid("ffffffff-ffff-ffff-ffff-ffffffffffff");
    in.AddUuid("00000000-0000-0000-0000-000000000000");
    in.AddInt16(32767);
    in.AddInt64(INT64_MAX);
    in.AddTimestamp(after_2000);
    EXPECT_EQ(in.Finish(), 2);
  }
  EXPECT_EQ(Query(uri,
                  "SELECT count(*) FROM t WHERE id = "
                  "'0123abcd-4567-89ab-cdef-0123456789ab' AND other IS "
                  "NULL AND small = -32768 AND big = "
                  "-9223372036854775808 AND at = "
                  "'1969-12-31 23:59:58.765433+00'"),
            1);
  EXPECT_EQ(Query(uri,
                  "SELECT count(*) FROM t WHERE small = 32767 AND big = "
                  "9223372036854775807 AND at = "
                  "'2026-11-27 08:04:31.338649+00'"),
            1);
  // A bad uuid fails the COPY, and nothing of it is committed.
  {
    db::BinaryCopyIn in(uri, "COPY t (id) FROM STDIN (FORMAT binary)", "test");
    in.StartRow(1);
    in.AddUuid("00000000-0000-0000-0000-000000000001");
    in.StartRow(1);
    EXPECT_THROW(in.AddUuid("00000000-0000-0000-0000-00000000000g"),
                 pqxx::data_exception);
    EXPECT_THROW(in.AddUuid("0000000000000000000000000000000000ab"),
                 pqxx::data_exception);
    // Every digit position is checked, high and low, and bytes past ASCII.
    for (const char* bad : {"g0000000-0000-0000-0000-000000000000",
                            "00000000-0000-0000-00G0-000000000000",
                            "00000000-0000-0000-0000-00000000000\xc3",
                            "00000000-0000-0000-0000-00000000000",
                            "00000000-00000-000-0000-000000000000",
                            "00000000-0000-0000-0000-0000000000 0"}) {
      EXPECT_THROW(in.AddUuid(bad), pqxx::data_exception) << bad;
    }
  }
  EXPECT_EQ(Query(uri, "SELECT count(*) FROM t"), 2);
  // And back out, in PostgreSQL's send formats.
  {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    tx.exec("UPDATE t SET note = '{\"a\": \"b\"}'");
    tx.commit();
  }
  db::BinaryCopyOut out(uri, "test");
  std::vector<std::string> rows;
  out.Run(
      "COPY (SELECT id, other, small, big, at, note FROM t ORDER BY small) "
      "TO STDOUT (FORMAT binary)",
      [&](const std::vector<db::BinaryCopyOut::Field>& f) {
        ASSERT_EQ(f.size(), 6u);
        using F = db::BinaryCopyOut;
        rows.push_back(absl::StrCat(
            F::UuidText(f[0]), " ", f[1].null ? "null" : F::UuidText(f[1]), " ",
            F::Int16(f[2]), " ", F::Int64(f[3]), " ",
            absl::ToUnixMicros(F::Timestamp(f[4])), " ", F::JsonbText(f[5])));
      });
  EXPECT_EQ(rows, (std::vector<std::string>{
                      "0123abcd-4567-89ab-cdef-0123456789ab null -32768 "
                      "-9223372036854775808 -1234567 {\"a\": \"b\"}",
                      "ffffffff-ffff-ffff-ffff-ffffffffffff "
                      "00000000-0000-0000-0000-000000000000 32767 "
                      "9223372036854775807 1795766671338649 {\"a\": \"b\"}"}));
  // A failing statement throws with its SQLSTATE; the next one reconnects.
  try {
    out.Run("COPY (SELECT 1/0) TO STDOUT (FORMAT binary)",
            [](const std::vector<db::BinaryCopyOut::Field>&) {});
    ADD_FAILURE() << "division by zero did not throw";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "22012");
  }
  int n = 0;
  out.Run("COPY (SELECT 1) TO STDOUT (FORMAT binary)",
          [&](const std::vector<db::BinaryCopyOut::Field>& f) {
            n += db::BinaryCopyOut::Int32(f[0]);
          });
  EXPECT_EQ(n, 1);
}

// The rebuild's history load: TRUNCATE and COPY ... FREEZE in one
// transaction, committed by Finish and rolled back as a whole without it.
// The tailing read runs one generic plan per session that walks the
// (transaction_id, position) index, whatever the statistics say: never
// planned afresh per call, never a full scan or a sort.
TEST(EventReaderTest, ReadsWalkTheIndexWithOneGenericPlan) {
  ASSERT_TRUE(pg->CreateDatabase("reader_plan").ok());
  const std::string uri = pg->Uri("reader_plan");
  ASSERT_TRUE(db::ApplyMigrations(uri, sql::EventsMigrations(),
                                  "bank_events_migrations")
                  .ok());
  InsertBacklog(uri, 100, 19);  // 2,000 events, not yet analyzed.
  projector::EventReader reader(uri);
  auto read_all = [&] {
    projector::Checkpoint c;
    int64_t n = 0;
    while (true) {
      auto events = reader.ReadAfter(c, 150);
      if (!events.ok()) {
        ADD_FAILURE() << events.status();
        return n;
      }
      if (events->empty()) return n;
      for (const auto& e : *events) {
        projector::Checkpoint next{e.transaction_id, e.position};
        EXPECT_TRUE(next.transaction_id > c.transaction_id ||
                    (next.transaction_id == c.transaction_id &&
                     next.position > c.position))
            << "out of order at position " << e.position;
        c = next;
        ++n;
      }
    }
  };
  auto expect_index_walk = [&](const char* when) {
    auto plan = reader.ExplainReadAfter({0, 0}, 150);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_NE(
        plan->explain.find("Index Scan using events_transaction_position_idx"),
        std::string::npos)
        << when << ":\n"
        << plan->explain;
    EXPECT_EQ(plan->explain.find("Seq Scan"), std::string::npos)
        << when << ":\n"
        << plan->explain;
    EXPECT_EQ(plan->explain.find("Sort"), std::string::npos) << when << ":\n"
                                                             << plan->explain;
    EXPECT_EQ(plan->custom_plans, 0) << when;
    EXPECT_GE(plan->generic_plans, 14) << when;
  };
  EXPECT_EQ(read_all(), 2000);
  expect_index_walk("before ANALYZE");
  // Statistics that say every event is selected, then the plan remade after
  // they change.
  EXPECT_EQ(Query(uri, "ANALYZE events"), -1);
  EXPECT_EQ(read_all(), 2000);
  expect_index_walk("after ANALYZE");
  auto head = reader.Head({0, 0});
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->head_position,
            Query(uri, "SELECT max(position) FROM events"));
  EXPECT_TRUE(head->oldest_pending.has_value());
}

TEST(BinaryCopyTest, StatementsBeforeTheCopyShareItsTransaction) {
  ASSERT_TRUE(pg->CreateDatabase("binary_copy_tx").ok());
  const std::string uri = pg->Uri("binary_copy_tx");
  {
    pqxx::connection c(uri);
    pqxx::work tx(c);
    tx.exec("CREATE TABLE t (n bigint)");
    tx.exec("INSERT INTO t SELECT generate_series(1, 3)");
    tx.commit();
  }
  const std::string copy = "COPY t (n) FROM STDIN (FORMAT binary, FREEZE)";
  {
    db::BinaryCopyIn in(uri, copy, "test", {"TRUNCATE t"});
    in.StartRow(1);
    in.AddInt64(10);
  }  // Never finished: the TRUNCATE is rolled back with the rows.
  EXPECT_EQ(Query(uri, "SELECT count(*) FROM t"), 3);
  {
    db::BinaryCopyIn in(uri, copy, "test", {"TRUNCATE t"});
    for (int64_t n : {10, 20}) {
      in.StartRow(1);
      in.AddInt64(n);
    }
    EXPECT_EQ(in.Finish(), 2);
  }
  EXPECT_EQ(Query(uri, "SELECT sum(n) FROM t"), 30);
  // FREEZE needs the table truncated (or created) in the same transaction
  // (PostgreSQL says so once the data is sent).
  try {
    db::BinaryCopyIn in(uri, copy, "test");
    in.StartRow(1);
    in.AddInt64(40);
    in.Finish();
    ADD_FAILURE() << "COPY FREEZE outside the truncating transaction loaded";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "55000") << e.what();
  }
  // A failing statement before the COPY throws with its SQLSTATE.
  try {
    db::BinaryCopyIn in(uri, copy, "test", {"TRUNCATE no_such_table"});
    ADD_FAILURE() << "TRUNCATE of a missing table did not throw";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "42P01") << e.what();
  }
  EXPECT_EQ(Query(uri, "SELECT sum(n) FROM t"), 30);
}

TEST_F(ProjectorTest, NeverSkipsAnEventThatCommitsLate) {
  Start("late");
  std::string a = testing::OpenAccount(sys_->commands(), 100);
  sys_->projector = sys_->StartProjector();
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20))) << sys_->projector->Log();
  // A writer takes a position and holds its transaction open...
  pqxx::connection held_conn(sys_->events_uri);
  pqxx::work held(held_conn);
  int64_t held_position =
      held.exec_params(
              "INSERT INTO events (event_id, stream_id, stream_version, "
              "event_type, schema_version, data) VALUES (gen_random_uuid(), "
              "$1::uuid, 2, 'MoneyDeposited', 1, '{\"amount\":\"7\"}') "
              "RETURNING position",
              a)[0][0]
          .as<int64_t>();
  // ...while other events commit past it with higher positions.
  std::string b = testing::OpenAccount(sys_->commands(), 5);
  std::string c = testing::OpenAccount(sys_->commands(), 6);
  int64_t later = Query(sys_->events_uri, "SELECT max(position) FROM events");
  ASSERT_GT(later, held_position);
  // The projector runs (several polls) but its mark stays behind the held
  // event: nothing after it is taken as read.
  absl::SleepFor(absl::Milliseconds(800));
  EXPECT_LT(Query(sys_->read_uri,
                  "SELECT position FROM projection_checkpoints "
                  "WHERE projection = 'accounts'"),
            held_position);
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT version FROM account_balances WHERE "
                  "account_id = '" +
                      a + "'"),
            1);
  held.commit();
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20)));
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT balance FROM account_balances WHERE "
                  "account_id = '" +
                      a + "'"),
            107);
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT balance FROM account_balances WHERE "
                  "account_id = '" +
                      c + "'"),
            6);
  ExpectModelMatchesEvents(*sys_);
}

TEST_F(ProjectorTest, KillNineDuringBacklogLosesAndRepeatsNothing) {
  Start("kill");
  InsertBacklog(sys_->events_uri, 2000, 49);  // 100,000 events
  std::mt19937 rng(42);
  int interrupted = 0;
  // Small batches, behind too: many commits for the kills to fall between.
  const std::vector<std::string> small = {"--batch-size", "250",
                                          "--catch-up-batch-size", "250"};
  for (int round = 0; round < 8; ++round) {
    // -2 before the first projector made the read model's tables.
    const int64_t before = std::max<int64_t>(
        0, Query(sys_->read_uri, "SELECT count(*) FROM account_history"));
    auto p = sys_->StartProjector(small);
    // Killed while it works: once it has applied something this round (its
    // start alone can outlast a fixed delay, under a sanitizer or on a slow
    // machine), then at a random point of the next few batches.
    ASSERT_TRUE(WaitFor(
        [&] {
          return Query(sys_->read_uri, "SELECT count(*) FROM account_history") >
                 before;
        },
        absl::Seconds(60)))
        << p->Log();
    absl::SleepFor(absl::Milliseconds(rng() % 80));
    p->Signal(SIGKILL);
    p->Wait(absl::Seconds(10));
    int64_t projected =
        Query(sys_->read_uri, "SELECT count(*) FROM account_history");
    if (projected >= 0 && projected < EventCount(*sys_)) ++interrupted;
  }
  EXPECT_GT(interrupted, 0) << "the backlog was too small to interrupt";
  sys_->projector = sys_->StartProjector(small);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(60))) << sys_->projector->Log();
  ExpectModelMatchesEvents(*sys_);
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT events_applied FROM projection_checkpoints "
                  "WHERE projection = 'accounts'"),
            EventCount(*sys_));
}

// Live reads take --batch-size events; once a read fills its batch, the
// projector is behind and takes --catch-up-batch-size per transaction.
TEST_F(ProjectorTest, WorksOffABacklogInCatchUpBatches) {
  Start("catchup");
  InsertBacklog(sys_->events_uri, 60, 49);  // 3,000 events
  sys_->projector =
      sys_->StartProjector({"--batch-size", "100", "--catch-up-batch-size",
                            "1000", "--log-level", "debug"});
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(30))) << sys_->projector->Log();
  const std::string log = sys_->projector->Log();
  std::vector<int> sizes;
  for (size_t at = 0; (at = log.find("applied ", at)) != std::string::npos;
       ++at) {
    int n = 0;
    if (std::sscanf(log.c_str() + at, "applied %d events", &n) == 1) {
      sizes.push_back(n);
    }
  }
  EXPECT_EQ(sizes, (std::vector<int>{100, 1000, 1000, 900})) << log;
  ExpectModelMatchesEvents(*sys_);
}

TEST_F(ProjectorTest, ReconnectsAndCatchesUpAfterPostgresRestarts) {
  Start("restart");
  sys_->projector = sys_->StartProjector();
  std::string a = testing::OpenAccount(sys_->commands(), 1);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20)));
  ASSERT_TRUE(pg->Stop(/*immediate=*/true).ok());
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(pg->Restart().ok());
  // The command service recovers by itself too.
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::DepositRequest d;
        d.set_account_id(a);
        d.set_amount(5);
        v1::CommandResult r;
        auto ctx = testing::Ctx(2);
        return sys_->commands().Deposit(ctx.get(), d, &r).ok();
      },
      absl::Seconds(30)));
  InsertBacklog(sys_->events_uri, 10, 5);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(30))) << sys_->projector->Log();
  EXPECT_TRUE(sys_->projector->Running());
  ExpectModelMatchesEvents(*sys_);
}

TEST_F(ProjectorTest, RebuildEqualsTheLiveModelWithoutStoppingIt) {
  Start("rebuild");
  sys_->projector = sys_->StartProjector();
  InsertBacklog(sys_->events_uri, 200, 9);
  std::string a = testing::OpenAccount(sys_->commands(), 1);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(30)));
  Process rebuild(testing::BinDir() + "/projector",
                  {"--events-db", sys_->events_uri, "--read-db", sys_->read_uri,
                   "--rebuild"});
  // Writes go on during the rebuild.
  for (int i = 0; i < 20; ++i) testing::OpenAccount(sys_->commands(), i);
  EXPECT_EQ(rebuild.Wait(absl::Seconds(60)), 0) << rebuild.Log();
  EXPECT_NE(rebuild.Log().find("rebuild done"), std::string::npos)
      << rebuild.Log();
  for (int i = 0; i < 5; ++i) testing::OpenAccount(sys_->commands(), i);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(30))) << sys_->projector->Log();
  ExpectModelMatchesEvents(*sys_);
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT count(*) FROM pg_tables WHERE tablename "
                  "LIKE '%rebuild%' OR tablename LIKE '%_old'"),
            0);
}

TEST_F(ProjectorTest, StandbyTakesOverWhenTheActiveProjectorDies) {
  Start("standby");
  auto first = sys_->StartProjector();
  ASSERT_TRUE(
      WaitFor([&] { return first->Log().find("active") != std::string::npos; },
              absl::Seconds(20)));
  auto second = sys_->StartProjector();
  ASSERT_TRUE(WaitFor(
      [&] { return second->Log().find("standby") != std::string::npos; },
      absl::Seconds(20)))
      << second->Log();
  testing::OpenAccount(sys_->commands(), 3);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20)));
  EXPECT_EQ(second->Log().find("applied"), std::string::npos);
  first->Signal(SIGKILL);
  first->Wait(absl::Seconds(10));
  absl::Time killed = absl::Now();
  testing::OpenAccount(sys_->commands(), 4);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20))) << second->Log();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(10));
  EXPECT_NE(second->Log().find("active: this projector applies events"),
            std::string::npos);
  ExpectModelMatchesEvents(*sys_);
}

TEST_F(ProjectorTest, PoisonEventStopsTheProjectionOrIsRecordedWhenAllowed) {
  Start("poison");
  std::string a = testing::OpenAccount(sys_->commands(), 1);
  int64_t poison_position = Query(
      sys_->events_uri,
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), gen_random_uuid(), 1, "
      "'MoneyTeleported', 1, '{}') RETURNING position");
  std::string b = testing::OpenAccount(sys_->commands(), 2);
  auto strict = sys_->StartProjector();
  EXPECT_EQ(strict->Wait(absl::Seconds(20)), 3) << strict->Log();
  EXPECT_NE(strict->Log().find("position " + std::to_string(poison_position)),
            std::string::npos)
      << strict->Log();
  EXPECT_NE(strict->Log().find("MoneyTeleported"), std::string::npos);
  // Stopped before the poison: b (after it) is not projected.
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT count(*) FROM account_balances WHERE "
                  "account_id = '" +
                      b + "'"),
            0);
  // Restarted with --skip-poison: recorded, and everything after it applied.
  sys_->projector = sys_->StartProjector({"--skip-poison"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return Query(sys_->read_uri,
                     "SELECT count(*) FROM account_balances WHERE "
                     "account_id = '" +
                         b + "'") == 1;
      },
      absl::Seconds(20)))
      << sys_->projector->Log();
  EXPECT_EQ(Query(sys_->read_uri, "SELECT position FROM poison_events"),
            poison_position);
  EXPECT_NE(sys_->projector->Log().find("poison"), std::string::npos);
}

// A stored amount no command can have recorded (inserted by hand, as the
// owner) is poison for the projector and, for the command service, a
// corrupt account: its commands are refused with INTERNAL naming the event,
// and nothing is written.
TEST_F(ProjectorTest, ACorruptStoredAmountIsPoisonAndRefusesTheAccount) {
  Start("corrupt_amount");
  std::string a = testing::OpenAccount(sys_->commands(), 100);
  std::string b = testing::OpenAccount(sys_->commands(), 5);
  // a's balance would overflow; b's deposit is negative.
  const int64_t overflow_position = Query(
      sys_->events_uri,
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), '" +
          a +
          "', 2, 'MoneyDeposited', 1, "
          "'{\"amount\": \"9223372036854775807\"}') RETURNING position");
  const int64_t negative_position = Query(
      sys_->events_uri,
      "INSERT INTO events (event_id, stream_id, stream_version, event_type, "
      "schema_version, data) VALUES (gen_random_uuid(), '" +
          b +
          "', 2, 'MoneyDeposited', 1, '{\"amount\": \"-500\"}') "
          "RETURNING position");
  const int64_t events_before =
      Query(sys_->events_uri, "SELECT count(*) FROM events");
  for (const std::string& id : {a, b}) {
    v1::DepositRequest req;
    req.set_account_id(id);
    req.set_amount(1);
    v1::CommandResult resp;
    grpc::Status s = sys_->commands().Deposit(testing::Ctx().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << id;
    const int64_t position = id == a ? overflow_position : negative_position;
    EXPECT_NE(s.error_message().find("position " + std::to_string(position)),
              std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find(id), std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(Query(sys_->events_uri, "SELECT count(*) FROM events"),
            events_before);

  auto strict = sys_->StartProjector();
  EXPECT_EQ(strict->Wait(absl::Seconds(20)), 3) << strict->Log();
  EXPECT_NE(strict->Log().find("position " + std::to_string(overflow_position)),
            std::string::npos)
      << strict->Log();
  EXPECT_NE(strict->Log().find("overflow"), std::string::npos) << strict->Log();
  sys_->projector = sys_->StartProjector({"--skip-poison"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return Query(sys_->read_uri, "SELECT count(*) FROM poison_events") == 2;
      },
      absl::Seconds(20)))
      << sys_->projector->Log();
  EXPECT_EQ(Query(sys_->read_uri, "SELECT min(position) FROM poison_events"),
            overflow_position);
  EXPECT_EQ(Query(sys_->read_uri, "SELECT max(position) FROM poison_events"),
            negative_position);
  // The accounts stay as their good events left them.
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT balance FROM account_balances WHERE account_id = '" +
                      a + "'"),
            100);
  EXPECT_EQ(Query(sys_->read_uri,
                  "SELECT balance FROM account_balances WHERE account_id = '" +
                      b + "'"),
            5);
}

TEST_F(ProjectorTest, BurstOfNotificationsIsCoalesced) {
  Start("burst");
  sys_->projector = sys_->StartProjector({"--log-level", "debug"});
  testing::OpenAccount(sys_->commands(), 1);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20)));
  // 200 appends notify while the projector is frozen...
  sys_->projector->Signal(SIGSTOP);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) testing::OpenAccount(sys_->commands(), 1);
    });
  }
  for (auto& th : threads) th.join();
  size_t before = sys_->projector->Log().size();
  sys_->projector->Signal(SIGCONT);
  ASSERT_TRUE(CaughtUp(*sys_, absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(500));
  // ...and cost one catch-up, not 200.
  std::string log = sys_->projector->Log().substr(before);
  int batches = 0;
  for (size_t at = 0; (at = log.find("applied ", at)) != std::string::npos;
       ++at) {
    ++batches;
  }
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, 2) << log;
  ExpectModelMatchesEvents(*sys_);
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
