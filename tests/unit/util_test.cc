#include <pqxx/pqxx>
#include <random>

#include "common/db/array_literal.h"
#include "common/db/connection_pool.h"
#include "common/db/pg_status.h"
#include "common/db/uri.h"
#include "common/util/text.h"
#include "common/util/uuid.h"
#include "gtest/gtest.h"

namespace bank {
namespace {

TEST(StatementTimeoutTest, SetsOnceThenKeepsWhileDeadlinesDrift) {
  using absl::Milliseconds;
  // Not set yet: set with headroom, never below what was asked.
  std::optional<absl::Duration> first =
      db::StatementTimeoutToSet(absl::ZeroDuration(), Milliseconds(9990));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, Milliseconds(10989));
  // Calls whose deadlines drift by milliseconds keep it: no round trip.
  EXPECT_FALSE(db::StatementTimeoutToSet(*first, Milliseconds(9990)));
  EXPECT_FALSE(db::StatementTimeoutToSet(*first, Milliseconds(9999)));
  EXPECT_FALSE(db::StatementTimeoutToSet(*first, Milliseconds(10989)));
  EXPECT_FALSE(db::StatementTimeoutToSet(*first, Milliseconds(8800)));
  // A longer budget than the setting: raised (never cut a statement short).
  EXPECT_EQ(db::StatementTimeoutToSet(*first, Milliseconds(11000)),
            Milliseconds(12100));
  // A much shorter one: lowered, so the statement ends near its deadline.
  EXPECT_EQ(db::StatementTimeoutToSet(*first, Milliseconds(500)),
            Milliseconds(550));
  // Tiny and non-positive budgets: at least 1 ms (0 would disable it), and a
  // rounded-up setting of a tiny one is kept, not reset on every call.
  EXPECT_EQ(
      db::StatementTimeoutToSet(absl::ZeroDuration(), absl::ZeroDuration()),
      Milliseconds(2));
  EXPECT_FALSE(db::StatementTimeoutToSet(Milliseconds(2), Milliseconds(1)));
  EXPECT_FALSE(
      db::StatementTimeoutToSet(Milliseconds(2), absl::Microseconds(-5)));
}

// libpqxx 6.4 throws class 40 errors outside its sql_error hierarchy and
// without their SQLSTATE; they still map to what callers retry on.
TEST(PgStatusTest, RollbacksMapByTheirClass) {
  EXPECT_EQ(db::SqlState(pqxx::serialization_failure("moved")), "40001");
  EXPECT_EQ(
      db::StatusFromException(pqxx::serialization_failure("moved"), "x").code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(
      db::StatusFromException(pqxx::deadlock_detected("cycle"), "x").code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(
      db::StatusFromException(pqxx::transaction_rollback("other"), "x").code(),
      absl::StatusCode::kAborted);
  absl::Status unknown =
      db::StatusFromException(pqxx::statement_completion_unknown("lost"), "x");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(db::IsConnectionLost(pqxx::serialization_failure("moved")));
  EXPECT_EQ(db::StatusFromException(
                pqxx::sql_error("duplicate key value violates unique "
                                "constraint \"k\"",
                                "INSERT", "23505"),
                "x")
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(TextTest, Utf8Length) {
  EXPECT_EQ(util::Utf8Length("abc"), 3u);
  EXPECT_EQ(util::Utf8Length("\xc3\xa9t\xc3\xa9"), 3u);
  EXPECT_EQ(util::Utf8Length("\xf0\x9f\x92\xb0"), 1u);
  EXPECT_EQ(util::Utf8Length(""), 0u);
  EXPECT_FALSE(util::Utf8Length("\xff").has_value());
  EXPECT_FALSE(util::Utf8Length("\xc3").has_value());              // truncated
  EXPECT_FALSE(util::Utf8Length("\xc0\xaf").has_value());          // overlong
  EXPECT_FALSE(util::Utf8Length("\xed\xa0\x80").has_value());      // surrogate
  EXPECT_FALSE(util::Utf8Length("\xf4\x90\x80\x80").has_value());  // > U+10FFFF
}

TEST(TextTest, UtcTimestampsMatchAbslFormatting) {
  auto fast = [](absl::Time t) {
    std::string out = "x";
    util::AppendUtcTimestamp(t, &out);
    return out.substr(1);
  };
  auto slow = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", t, absl::UTCTimeZone());
  };
  EXPECT_EQ(fast(absl::UnixEpoch()), "1970-01-01 00:00:00.000000+00");
  EXPECT_EQ(fast(absl::FromUnixMicros(-1)), "1969-12-31 23:59:59.999999+00");
  EXPECT_EQ(fast(absl::FromUnixMicros(951782400000000)),  // leap day 2000
            "2000-02-29 00:00:00.000000+00");
  // Sub-microsecond digits are dropped, as %E6S does.
  EXPECT_EQ(fast(absl::UnixEpoch() + absl::Nanoseconds(1999)),
            "1970-01-01 00:00:00.000001+00");
  std::mt19937_64 rng(11);
  // Years 1 to 9999 (before 1000 and after 9999 the slow path answers).
  const int64_t lo = -62135596800LL * 1000000, hi = 253402300799LL * 1000000;
  for (int i = 0; i < 200000; ++i) {
    int64_t us =
        lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo));
    if (i % 3 == 0) us = static_cast<int64_t>(rng() % 4102444800000000ULL);
    absl::Time t = absl::FromUnixMicros(us);
    ASSERT_EQ(fast(t), slow(t)) << us;
  }
  for (int64_t us : {lo, lo - 1, hi, hi + 1, hi * 2, lo * 2}) {
    absl::Time t = absl::FromUnixMicros(us);
    EXPECT_EQ(fast(t), slow(t)) << us;
  }
}

TEST(TextTest, Uuids) {
  EXPECT_TRUE(util::IsUuid("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_TRUE(util::IsUuid("123E4567-E89B-12D3-A456-426614174000"));
  EXPECT_FALSE(util::IsUuid("123e4567e89b12d3a456426614174000"));
  EXPECT_FALSE(util::IsUuid("123e4567-e89b-12d3-a456-42661417400g"));
  EXPECT_FALSE(util::IsUuid(""));
  std::string a = util::NewUuid(), b = util::NewUuid();
  EXPECT_TRUE(util::IsUuid(a));
  EXPECT_NE(a, b);
  EXPECT_EQ(a[14], '4');
}

// Statuses reach clients: they do not say where the database runs.
TEST(PgStatusTest, MessagesNameNoHostAddressSocketOrPort) {
  const char* const libpq_errors[] = {
      "connection to server at \"db-7.internal\" (10.1.2.3), port 5433 "
      "failed: Connection refused\n\tIs the server running on that host and "
      "accepting TCP/IP connections?",
      "connection to server at \"10.1.2.3\", port 5433 failed: FATAL:  the "
      "database system is starting up",
      "connection to server on socket \"/run/db-7/.s.PGSQL.5433\" failed: No "
      "such file or directory",
      "could not connect to server: Connection refused\n\tIs the server "
      "running on host \"db-7.internal\" (10.1.2.3) and accepting\n\tTCP/IP "
      "connections on port 5433?",
      "could not translate host name \"db-7.internal\" to address: Name or "
      "service not known",
  };
  for (const char* text : libpq_errors) {
    absl::Status s =
        db::StatusFromException(pqxx::broken_connection(text), "reading");
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << text;
    for (const char* secret : {"db-7", "10.1.2.3", "5433"}) {
      EXPECT_EQ(s.message().find(secret), absl::string_view::npos)
          << s.message();
    }
    EXPECT_NE(s.message().find("reading"), absl::string_view::npos);
  }
  // Other errors keep their words.
  EXPECT_EQ(db::WithoutEndpoints("syntax error at or near \"SELEC\""),
            "syntax error at or near \"SELEC\"");
}

TEST(UriTest, MasksPasswords) {
  EXPECT_EQ(db::MaskPassword("postgresql://bank:s3cret@db:5432/bank_events"),
            "postgresql://bank:****@db:5432/bank_events");
  EXPECT_EQ(db::MaskPassword(
                "postgresql://db/x?user=u&password=s3cret&sslmode=require"),
            "postgresql://db/x?user=u&password=****&sslmode=require");
  EXPECT_EQ(db::MaskPassword("host=db password=s3cret dbname=x"),
            "host=db password=**** dbname=x");
  EXPECT_EQ(db::MaskPassword("postgresql:///bank_events"),
            "postgresql:///bank_events");
}

TEST(ArrayLiteralTest, QuotesEveryElement) {
  EXPECT_EQ(db::ToArrayLiteral({}), "{}");
  EXPECT_EQ(db::ToArrayLiteral({"a", "{\"k\": \"v\\\\\"}"}),
            "{\"a\",\"{\\\"k\\\": \\\"v\\\\\\\\\\\"}\"}");
  // Optional elements (the event an append follows): empty is NULL,
  // unquoted; otherwise an empty string stays an empty element.
  EXPECT_EQ(db::ToArrayLiteral({"", "b", ""}, /*empty_is_null=*/true),
            "{NULL,\"b\",NULL}");
  EXPECT_EQ(db::ToArrayLiteral({"", "b"}, /*empty_is_null=*/false),
            "{\"\",\"b\"}");
}

}  // namespace
}  // namespace bank
