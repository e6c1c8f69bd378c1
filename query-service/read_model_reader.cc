#include "query-service/read_model_reader.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/db/array_literal.h"
#include "common/db/run.h"
#include "common/readmodel/progress_notice.h"

namespace bank::query {
namespace {

constexpr char kBalanceSql[] = R"sql(
SELECT account_id::text, owner, currency, balance, version, status,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM account_balances WHERE account_id = $1::uuid
)sql";

// One statement, one snapshot: the rows and how far the projection that
// wrote them had got (the balance cache's admission test).
constexpr char kBalancesSql[] = R"sql(
SELECT account_id::text, owner, currency, balance, version, status,
       (extract(epoch FROM updated_at) * 1000000)::bigint,
       coalesce((SELECT events_applied FROM projection_checkpoints
                 WHERE projection = $2), -1)
FROM account_balances WHERE account_id = ANY($1::uuid[])
)sql";

constexpr char kBalanceAsOfSql[] = R"sql(
SELECT b.account_id::text, b.owner, b.currency, h.balance_after, h.version,
       CASE WHEN h.kind = 6 THEN 2 ELSE 1 END,
       (extract(epoch FROM h.occurred_at) * 1000000)::bigint
FROM account_history h JOIN account_balances b USING (account_id)
WHERE h.account_id = $1::uuid
  AND h.occurred_at <= 'epoch'::timestamptz + $2::bigint * interval '1 microsecond'
ORDER BY h.occurred_at DESC, h.version DESC
LIMIT 1
)sql";

constexpr char kListAccountsSql[] = R"sql(
SELECT account_id::text, owner, currency, balance, version, status,
       (extract(epoch FROM updated_at) * 1000000)::bigint
FROM account_balances
WHERE account_id > $1::uuid
ORDER BY account_id
LIMIT $2
)sql";

constexpr char kHistorySql[] = R"sql(
SELECT version, kind, amount, balance_after,
       (extract(epoch FROM occurred_at) * 1000000)::bigint,
       coalesce(counterparty_account_id::text, ''), position
FROM account_history
WHERE account_id = $1::uuid AND version > $2
ORDER BY version
LIMIT $3
)sql";

// For each (account $1[i], version $2[i]): the account's row and up to $3 of
// its entries after that version, tagged with i. A null account when it is
// unknown, one row with a null version when it has no such entry.
constexpr char kWatchSql[] = R"sql(
SELECT w.i, b.account_id::text, b.owner, b.currency, h.version, h.kind,
       h.amount, h.balance_after,
       (extract(epoch FROM h.occurred_at) * 1000000)::bigint,
       coalesce(h.counterparty_account_id::text, ''), h.position
FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS w(account_id, after, i)
LEFT JOIN account_balances b ON b.account_id = w.account_id
LEFT JOIN LATERAL (
  SELECT * FROM account_history
  WHERE account_id = b.account_id AND version > w.after
  ORDER BY version
  LIMIT $3) h ON true
ORDER BY w.i, h.version
)sql";

// The stream order, bounded by the live checkpoint of the same snapshot
// (one statement): every row up to it is committed, and the projector only
// adds rows after it.
constexpr char kStreamSql[] = R"sql(
SELECT h.account_id::text, h.version, h.kind, h.amount, h.balance_after,
       (extract(epoch FROM h.occurred_at) * 1000000)::bigint,
       coalesce(h.counterparty_account_id::text, ''), h.position,
       h.transaction_id
FROM account_history h, projection_checkpoints c
WHERE c.projection = $4
  AND (h.transaction_id, h.position) > ($1, $2)
  AND (h.transaction_id, h.position) <= (c.transaction_id, c.position)
ORDER BY h.transaction_id, h.position
LIMIT $3
)sql";

constexpr char kStreamOriginSql[] = R"sql(
SELECT account_id::text FROM account_history
ORDER BY transaction_id, position
LIMIT 1
)sql";

constexpr char kLiveCheckpointSql[] = R"sql(
SELECT transaction_id, position FROM projection_checkpoints
WHERE projection = $1
)sql";

void Prepare(pqxx::connection& c) {
  c.prepare("balance", kBalanceSql);
  c.prepare("balances", kBalancesSql);
  c.prepare("balance_as_of", kBalanceAsOfSql);
  c.prepare("list_accounts", kListAccountsSql);
  c.prepare("history", kHistorySql);
  c.prepare("watch", kWatchSql);
  c.prepare("stream", kStreamSql);
  c.prepare("stream_origin", kStreamOriginSql);
  c.prepare("live_checkpoint", kLiveCheckpointSql);
}

void SetTime(google::protobuf::Timestamp* ts, int64_t micros) {
  *ts = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(micros);
}

v1::AccountBalance ToBalance(const pqxx::row& row) {
  v1::AccountBalance b;
  b.set_account_id(row[0].as<std::string>());
  b.set_owner(row[1].as<std::string>());
  b.set_currency(row[2].as<std::string>());
  b.set_balance(row[3].as<int64_t>());
  b.set_version(row[4].as<int64_t>());
  b.set_status(static_cast<v1::AccountStatus>(row[5].as<int>()));
  SetTime(b.mutable_updated_at(), row[6].as<int64_t>());
  return b;
}

// A history entry from `row`, its columns from `first` on: version, kind,
// amount, balance_after, occurred_at (us), counterparty, position.
v1::HistoryEntry ToEntry(const pqxx::row& row, int first) {
  v1::HistoryEntry h;
  h.set_version(row[first].as<int64_t>());
  h.set_kind(static_cast<v1::EntryKind>(row[first + 1].as<int>()));
  h.set_amount(row[first + 2].as<int64_t>());
  h.set_balance_after(row[first + 3].as<int64_t>());
  SetTime(h.mutable_occurred_at(), row[first + 4].as<int64_t>());
  h.set_counterparty_account_id(row[first + 5].as<std::string>());
  h.set_position(row[first + 6].as<int64_t>());
  return h;
}

}  // namespace

ReadModelReader::ReadModelReader(const std::string& uri, int pool_size,
                                 absl::Duration outage_wait)
    : pool_({.uri = uri,
             .size = pool_size,
             .on_connect = Prepare,
             .application_name = "bank-query-service"}),
      outage_wait_(outage_wait) {}

template <typename Fn>
auto ReadModelReader::With(absl::Time deadline, const char* what, Fn fn)
    -> decltype(fn(std::declval<db::ConnectionPool::Lease&>())) {
  // Reads only: a call that meets a lost connection runs again on a new one.
  return db::RunRepeatable(pool_, what, deadline, outage_wait_, std::move(fn));
}

absl::StatusOr<std::optional<v1::AccountBalance>> ReadModelReader::GetBalance(
    const std::string& account_id, absl::Time deadline) {
  return With(deadline, "reading a balance",
              [&](db::ConnectionPool::Lease& c)
                  -> absl::StatusOr<std::optional<v1::AccountBalance>> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared("balance", account_id);
                if (r.empty()) return std::optional<v1::AccountBalance>();
                return std::optional<v1::AccountBalance>(ToBalance(r[0]));
              });
}

absl::StatusOr<ReadModelReader::Balances> ReadModelReader::GetBalances(
    const std::vector<std::string>& account_ids, absl::Time deadline) {
  return With(deadline, "reading balances",
              [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<Balances> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared(
                    "balances", db::ToArrayLiteral(account_ids),
                    readmodel::kLiveProjection);
                Balances out;
                out.rows.reserve(r.size());
                for (const auto& row : r) out.rows.push_back(ToBalance(row));
                if (!r.empty()) out.applied = r[0][7].as<int64_t>();
                return out;
              });
}

absl::StatusOr<std::optional<v1::AccountBalance>>
ReadModelReader::GetBalanceAsOf(const std::string& account_id, absl::Time as_of,
                                absl::Time deadline) {
  return With(deadline, "reading a past balance",
              [&](db::ConnectionPool::Lease& c)
                  -> absl::StatusOr<std::optional<v1::AccountBalance>> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared("balance_as_of", account_id,
                                                  absl::ToUnixMicros(as_of));
                if (r.empty()) return std::optional<v1::AccountBalance>();
                return std::optional<v1::AccountBalance>(ToBalance(r[0]));
              });
}

absl::StatusOr<std::vector<v1::AccountBalance>> ReadModelReader::ListAccounts(
    const std::string& after_id, int limit, absl::Time deadline) {
  return With(deadline, "listing accounts",
              [&](db::ConnectionPool::Lease& c)
                  -> absl::StatusOr<std::vector<v1::AccountBalance>> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared(
                    "list_accounts",
                    after_id.empty() ? "00000000-0000-0000-0000-000000000000"
                                     : after_id,
                    limit);
                std::vector<v1::AccountBalance> out;
                for (const auto& row : r) out.push_back(ToBalance(row));
                return out;
              });
}

absl::StatusOr<std::vector<v1::HistoryEntry>> ReadModelReader::GetHistory(
    const std::string& account_id, int64_t after_version, int limit,
    absl::Time deadline) {
  return With(deadline, "reading history",
              [&](db::ConnectionPool::Lease& c)
                  -> absl::StatusOr<std::vector<v1::HistoryEntry>> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared("history", account_id,
                                                  after_version, limit);
                std::vector<v1::HistoryEntry> out;
                for (const auto& row : r) out.push_back(ToEntry(row, 0));
                return out;
              });
}

absl::StatusOr<std::vector<ReadModelReader::WatchRows>>
ReadModelReader::WatchEntries(const std::vector<WatchFrom>& from, int limit,
                              absl::Time deadline) {
  std::vector<std::string> ids, versions;
  for (const WatchFrom& f : from) {
    ids.push_back(f.account_id);
    versions.push_back(std::to_string(f.after_version));
  }
  return With(deadline, "reading accounts' entries",
              [&](db::ConnectionPool::Lease& c)
                  -> absl::StatusOr<std::vector<WatchRows>> {
                pqxx::nontransaction tx(*c);
                pqxx::result r =
                    tx.exec_prepared("watch", db::ToArrayLiteral(ids),
                                     db::ToArrayLiteral(versions), limit);
                std::vector<WatchRows> out(from.size());
                for (const auto& row : r) {
                  WatchRows& rows = out[row[0].as<size_t>() - 1];
                  if (row[1].is_null()) continue;  // Unknown account.
                  if (!rows) rows.emplace();
                  if (row[4].is_null())
                    continue;  // No entry after the version.
                  v1::AccountUpdate& u = rows->emplace_back();
                  *u.mutable_entry() = ToEntry(row, 4);
                  const v1::HistoryEntry& e = u.entry();
                  v1::AccountBalance* b = u.mutable_balance();
                  b->set_account_id(row[1].as<std::string>());
                  b->set_owner(row[2].as<std::string>());
                  b->set_currency(row[3].as<std::string>());
                  b->set_balance(e.balance_after());
                  b->set_version(e.version());
                  b->set_status(e.kind() == v1::ENTRY_KIND_CLOSED
                                    ? v1::ACCOUNT_STATUS_CLOSED
                                    : v1::ACCOUNT_STATUS_OPEN);
                  *b->mutable_updated_at() = e.occurred_at();
                }
                return out;
              });
}

absl::StatusOr<ReadModelReader::StreamPage> ReadModelReader::ReadStream(
    EntryPosition after, int limit, absl::Time deadline) {
  return With(
      deadline, "reading the entry stream",
      [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<StreamPage> {
        pqxx::nontransaction tx(*c);
        pqxx::result r =
            tx.exec_prepared("stream", after.transaction_id, after.position,
                             limit, readmodel::kLiveProjection);
        StreamPage out;
        out.entries.reserve(r.size());
        out.at.reserve(r.size());
        for (const auto& row : r) {
          v1::AccountEntry& e = out.entries.emplace_back();
          e.set_account_id(row[0].as<std::string>());
          *e.mutable_entry() = ToEntry(row, 1);
          out.at.push_back({row[8].as<int64_t>(), e.entry().position()});
        }
        return out;
      });
}

absl::StatusOr<std::string> ReadModelReader::StreamOrigin(absl::Time deadline) {
  return With(deadline, "reading the stream's origin",
              [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<std::string> {
                pqxx::nontransaction tx(*c);
                pqxx::result r = tx.exec_prepared("stream_origin");
                return r.empty() ? std::string() : r[0][0].as<std::string>();
              });
}

absl::StatusOr<EntryPosition> ReadModelReader::LiveCheckpoint(
    absl::Time deadline) {
  return With(
      deadline, "reading the checkpoint",
      [&](db::ConnectionPool::Lease& c) -> absl::StatusOr<EntryPosition> {
        pqxx::nontransaction tx(*c);
        pqxx::result r =
            tx.exec_prepared("live_checkpoint", readmodel::kLiveProjection);
        if (r.empty()) return EntryPosition{};
        return EntryPosition{r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
      });
}

}  // namespace bank::query
