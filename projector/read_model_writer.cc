#include "projector/read_model_writer.h"

#include <algorithm>
#include <pqxx/tablewriter>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/db/binary_copy.h"
#include "common/db/pg_status.h"
#include "common/db/array_literal.h"
#include "common/readmodel/progress_notice.h"
#include "common/util/text.h"

namespace bank::projector {
namespace {

using db::ToArrayLiteral;

// {S} is the table-set suffix ("" or "_rebuild"). The upsert and the history
// insert are also apply_batch's (sql/read/003_apply_batch.sql), which writes
// the live batches; these statements write the shadow tables while a
// rebuild swaps them in. Keep the two in step.
constexpr char kLoadRowsSql[] = R"sql(
SELECT account_id::text, owner, currency, balance, version, status,
       (extract(epoch FROM opened_at) * 1000000)::bigint,
       (extract(epoch FROM updated_at) * 1000000)::bigint, last_position
FROM account_balances{S}
WHERE account_id = ANY($1::uuid[])
)sql";

constexpr char kUpsertBalancesSql[] = R"sql(
INSERT INTO account_balances{S} AS b
  (account_id, owner, currency, balance, version, status, opened_at,
   updated_at, last_position)
SELECT id, owner, currency, balance, version, status,
       'epoch'::timestamptz + opened_us * interval '1 microsecond',
       'epoch'::timestamptz + updated_us * interval '1 microsecond',
       last_position
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
            $6::smallint[], $7::bigint[], $8::bigint[], $9::bigint[])
     AS t(id, owner, currency, balance, version, status, opened_us,
          updated_us, last_position)
ON CONFLICT (account_id) DO UPDATE
  SET owner = EXCLUDED.owner, currency = EXCLUDED.currency,
      balance = EXCLUDED.balance, version = EXCLUDED.version,
      status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
      last_position = EXCLUDED.last_position
  WHERE b.version < EXCLUDED.version
)sql";

constexpr char kInsertHistorySql[] = R"sql(
INSERT INTO account_history{S}
  (account_id, version, kind, amount, balance_after, occurred_at,
   counterparty_account_id, position)
SELECT id, version, kind, amount, balance_after,
       'epoch'::timestamptz + occurred_us * interval '1 microsecond',
       NULLIF(counterparty, '')::uuid, position
FROM unnest($1::uuid[], $2::bigint[], $3::smallint[], $4::bigint[],
            $5::bigint[], $6::bigint[], $7::text[], $8::bigint[])
     AS t(id, version, kind, amount, balance_after, occurred_us,
          counterparty, position)
ON CONFLICT (account_id, version) DO NOTHING
)sql";

constexpr char kInsertPoisonSql[] = R"sql(
INSERT INTO poison_events (position, stream_id, event_type, error)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[])
ON CONFLICT (position) DO NOTHING
)sql";

constexpr char kEnsureCheckpointSql[] = R"sql(
INSERT INTO projection_checkpoints (projection, transaction_id, position)
VALUES ($1, 0, 0) ON CONFLICT (projection) DO NOTHING
)sql";

constexpr char kLockCheckpointSql[] = R"sql(
SELECT transaction_id, position, events_applied FROM projection_checkpoints
WHERE projection = $1 FOR UPDATE
)sql";

constexpr char kReadCheckpointSql[] = R"sql(
SELECT transaction_id, position, events_applied FROM projection_checkpoints
WHERE projection = $1
)sql";

// A live batch in one round trip: sql/read/003_apply_batch.sql.
constexpr char kApplyBatchSql[] = R"sql(
SELECT apply_batch($1, $2, $3, $4, $5, $6, $7,
                   $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18, $19, $20, $21, $22, $23, $24,
                   $25, $26, $27, $28, $29, $30)
)sql";

constexpr char kUpdateCheckpointSql[] = R"sql(
UPDATE projection_checkpoints
SET transaction_id = $2, position = $3,
    events_applied = events_applied + $4, updated_at = now()
WHERE projection = $1
RETURNING events_applied
)sql";

// Progress notices (common/readmodel/progress_notice.h), sent in order.
constexpr char kNotifySql[] = R"sql(
SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS n(p, i)
ORDER BY i
)sql";

// Shadow tables: the live tables' columns and constraints, no indexes yet.
constexpr char kResetShadowSql[] = R"sql(
DROP TABLE IF EXISTS account_balances_rebuild;
DROP TABLE IF EXISTS account_history_rebuild;
CREATE TABLE account_balances_rebuild
  (LIKE account_balances INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE account_history_rebuild
  (LIKE account_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
)sql";

// The live tables' indexes, as DDL for the shadow tables: each index is
// created under its live name plus "_rebuild"; primary keys are then
// attached from their unique index.
constexpr char kShadowIndexesSql[] = R"sql(
SELECT replace(replace(indexdef, ' ON public.' || tablename || ' ',
                       ' ON public.' || tablename || '_rebuild '),
               'INDEX ' || indexname || ' ', 'INDEX ' || indexname || '_rebuild '),
       tablename || '_rebuild', indexname || '_rebuild',
       indexname = tablename || '_pkey'
FROM pg_indexes
WHERE schemaname = 'public'
  AND tablename IN ('account_balances', 'account_history')
)sql";

constexpr char kSwapTablesSql[] = R"sql(
ALTER TABLE account_balances RENAME TO account_balances_old;
ALTER TABLE account_history RENAME TO account_history_old;
ALTER TABLE account_balances_rebuild RENAME TO account_balances;
ALTER TABLE account_history_rebuild RENAME TO account_history;
DROP TABLE account_balances_old;
DROP TABLE account_history_old;
)sql";

// After the swap: give the indexes (and primary keys) their live names back.
constexpr char kRenameIndexesSql[] = R"sql(
SELECT format('ALTER INDEX %I RENAME TO %I', indexname,
              left(indexname, length(indexname) - length('_rebuild')))
FROM pg_indexes
WHERE schemaname = 'public'
  AND tablename IN ('account_balances', 'account_history')
  AND indexname LIKE '%\_rebuild'
)sql";

constexpr char kDeleteCheckpointSql[] =
    "DELETE FROM projection_checkpoints WHERE projection = $1";

std::string Micros(absl::Time t) {
  return std::to_string(absl::ToUnixMicros(t));
}

// The columns of the rows to write, as array literals in the order of the
// statements' (and apply_batch's) parameters.
std::vector<std::string> BalanceArrays(const std::vector<BalanceRow>& rows) {
  std::vector<std::string> id, owner, cur, bal, ver, st, opened, updated, pos;
  for (const BalanceRow& b : rows) {
    id.push_back(b.account_id);
    owner.push_back(b.owner);
    cur.push_back(b.currency);
    bal.push_back(std::to_string(b.balance));
    ver.push_back(std::to_string(b.version));
    st.push_back(std::to_string(b.status));
    opened.push_back(Micros(b.opened_at));
    updated.push_back(Micros(b.updated_at));
    pos.push_back(std::to_string(b.last_position));
  }
  return {ToArrayLiteral(id),     ToArrayLiteral(owner),   ToArrayLiteral(cur),
          ToArrayLiteral(bal),    ToArrayLiteral(ver),     ToArrayLiteral(st),
          ToArrayLiteral(opened), ToArrayLiteral(updated), ToArrayLiteral(pos)};
}

std::vector<std::string> HistoryArrays(const std::vector<HistoryRow>& rows) {
  std::vector<std::string> id, ver, kind, amount, after, at, cp, pos;
  for (const HistoryRow& h : rows) {
    id.push_back(h.account_id);
    ver.push_back(std::to_string(h.version));
    kind.push_back(std::to_string(h.kind));
    amount.push_back(std::to_string(h.amount));
    after.push_back(std::to_string(h.balance_after));
    at.push_back(Micros(h.occurred_at));
    cp.push_back(h.counterparty_account_id);
    pos.push_back(std::to_string(h.position));
  }
  return {ToArrayLiteral(id),     ToArrayLiteral(ver),   ToArrayLiteral(kind),
          ToArrayLiteral(amount), ToArrayLiteral(after), ToArrayLiteral(at),
          ToArrayLiteral(cp),     ToArrayLiteral(pos)};
}

std::vector<std::string> PoisonArrays(const std::vector<PoisonEvent>& rows) {
  std::vector<std::string> pos, stream, type, error;
  for (const PoisonEvent& p : rows) {
    pos.push_back(std::to_string(p.position));
    stream.push_back(p.stream_id);
    type.push_back(p.event_type);
    error.push_back(p.error);
  }
  return {ToArrayLiteral(pos), ToArrayLiteral(stream), ToArrayLiteral(type),
          ToArrayLiteral(error)};
}

// A timestamptz in COPY's text format.
std::string CopyTime(absl::Time t) {
  std::string out;
  util::AppendUtcTimestamp(t, &out);
  return out;
}

}  // namespace

ReadModelWriter::ReadModelWriter(std::string uri, std::string projection,
                                 std::string suffix, int row_cache_size)
    : uri_(std::move(uri)),
      projection_(std::move(projection)),
      suffix_(std::move(suffix)),
      row_cache_size_(static_cast<size_t>(std::max(0, row_cache_size))) {}

void ReadModelWriter::KeepPendingRows() {
  if (row_cache_size_ == 0) return;
  // Bounded: when full, start over (rows are read again on demand).
  if (rows_.size() + pending_rows_.size() > row_cache_size_) rows_.clear();
  for (BalanceRow& b : pending_rows_) {
    std::string id = b.account_id;
    rows_.insert_or_assign(std::move(id), std::move(b));
  }
  pending_rows_.clear();
}

absl::Status ReadModelWriter::Connect() {
  if (conn_ != nullptr && conn_->is_open()) return absl::OkStatus();
  try {
    conn_ = std::make_unique<pqxx::connection>(uri_);
    conn_->set_variable("application_name", "'bank-projector-writer'");
    auto with = [this](const char* sql) {
      return absl::StrReplaceAll(sql, {{"{S}", suffix_}});
    };
    conn_->prepare("load_rows", with(kLoadRowsSql));
    conn_->prepare("upsert_balances", with(kUpsertBalancesSql));
    conn_->prepare("insert_history", with(kInsertHistorySql));
    conn_->prepare("insert_poison", kInsertPoisonSql);
    conn_->prepare("ensure_checkpoint", kEnsureCheckpointSql);
    conn_->prepare("lock_checkpoint", kLockCheckpointSql);
    conn_->prepare("update_checkpoint", kUpdateCheckpointSql);
    conn_->prepare("notify", kNotifySql);
    if (suffix_.empty()) {
      conn_->prepare("read_checkpoint", kReadCheckpointSql);
      conn_->prepare("apply_batch", kApplyBatchSql);
    }
  } catch (const std::exception& e) {
    conn_.reset();
    return db::StatusFromException(e, "connecting to the read database");
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadModelWriter::LoadCheckpoint() {
  // Whoever moved the checkpoint since may have written the rows kept.
  rows_.clear();
  applied_total_.reset();
  if (absl::Status s = Connect(); !s.ok()) return s;
  try {
    pqxx::work tx(*conn_);
    tx.exec_prepared("ensure_checkpoint", projection_);
    pqxx::result r = tx.exec_prepared("lock_checkpoint", projection_);
    Checkpoint c{r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
    const int64_t applied = r[0][2].as<int64_t>();
    tx.commit();
    applied_total_ = applied;
    return c;
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "loading the checkpoint");
  }
}

absl::StatusOr<BatchChanges> ReadModelWriter::Project(
    pqxx::transaction_base& tx,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  pending_rows_.clear();
  absl::flat_hash_map<std::string, BalanceRow> current;
  std::vector<std::string> ids;
  for (const auto& e : events) {
    if (current.contains(e.stream_id)) continue;
    auto kept = rows_.find(e.stream_id);
    if (kept != rows_.end()) {
      current.emplace(e.stream_id, kept->second);
    } else {
      ids.push_back(e.stream_id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  pqxx::result loaded;
  if (!ids.empty()) {
    loaded = tx.exec_prepared("load_rows", ToArrayLiteral(ids));
  }
  for (const auto& row : loaded) {
    BalanceRow b;
    b.account_id = row[0].as<std::string>();
    b.owner = row[1].as<std::string>();
    b.currency = row[2].as<std::string>();
    b.balance = row[3].as<int64_t>();
    b.version = row[4].as<int64_t>();
    b.status = row[5].as<int>();
    b.opened_at = absl::FromUnixMicros(row[6].as<int64_t>());
    b.updated_at = absl::FromUnixMicros(row[7].as<int64_t>());
    b.last_position = row[8].as<int64_t>();
    if (row_cache_size_ > 0) pending_rows_.push_back(b);
    current.emplace(b.account_id, std::move(b));
  }
  absl::StatusOr<BatchChanges> changes =
      ProjectBatch(current, events, skip_poison);
  if (!changes.ok()) return changes.status();
  if (row_cache_size_ > 0) {
    // Written after the rows read above, so they win when both are kept.
    pending_rows_.insert(pending_rows_.end(), changes->balances.begin(),
                         changes->balances.end());
  }
  return changes;
}

BatchResult ReadModelWriter::ResultOf(
    const BatchChanges& changes,
    const std::vector<eventstore::RecordedEvent>& events) {
  BatchResult out;
  out.moved.reserve(changes.balances.size());
  for (const BalanceRow& b : changes.balances) {
    out.moved.push_back({.account_id = b.account_id,
                         .version = b.version,
                         .has_row = true,
                         .balance = b.balance,
                         .status = b.status,
                         .updated_us = absl::ToUnixMicros(b.updated_at),
                         .currency = b.currency,
                         .owner = b.owner});
  }
  out.applied = changes.applied;
  out.duplicates = changes.duplicates;
  out.poison = static_cast<int64_t>(changes.poison.size());
  if (!events.empty()) {
    out.checkpoint = {events.back().transaction_id, events.back().position};
  }
  return out;
}

absl::StatusOr<BatchResult> ReadModelWriter::ApplyInTx(
    pqxx::work& tx, const std::vector<eventstore::RecordedEvent>& events,
    bool skip_poison) {
  absl::StatusOr<BatchChanges> changes = Project(tx, events, skip_poison);
  if (!changes.ok()) return changes.status();
  if (!changes->balances.empty()) {
    std::vector<std::string> b = BalanceArrays(changes->balances);
    tx.exec_prepared("upsert_balances", b[0], b[1], b[2], b[3], b[4], b[5],
                     b[6], b[7], b[8]);
  }
  if (!changes->history.empty()) {
    std::vector<std::string> h = HistoryArrays(changes->history);
    tx.exec_prepared("insert_history", h[0], h[1], h[2], h[3], h[4], h[5], h[6],
                     h[7]);
  }
  if (!changes->poison.empty()) {
    std::vector<std::string> x = PoisonArrays(changes->poison);
    tx.exec_prepared("insert_poison", x[0], x[1], x[2], x[3]);
  }
  return ResultOf(*changes, events);
}

absl::StatusOr<BatchResult> ReadModelWriter::ApplyBatch(
    const Checkpoint& expected,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  if (events.empty()) return BatchResult{expected};
  absl::StatusOr<BatchResult> out =
      ApplyBatchOnce(expected, events, skip_poison);
  if (out.ok()) {
    KeepPendingRows();
  } else {
    rows_.clear();
    pending_rows_.clear();
    applied_total_.reset();
  }
  return out;
}

absl::StatusOr<BatchResult> ReadModelWriter::ApplyBatchOnce(
    const Checkpoint& expected,
    const std::vector<eventstore::RecordedEvent>& events, bool skip_poison) {
  if (!suffix_.empty()) {
    return absl::InternalError(
        "ApplyBatch writes the live tables only; a rebuild uses BulkLoad");
  }
  if (absl::Status s = Connect(); !s.ok()) return s;
  try {
    // Each statement its own transaction: the rows not kept are read first,
    // then apply_batch checks under the checkpoint's row lock that nobody
    // moved it since `expected` (every writer moves it with the rows, so
    // rows read before an unmoved checkpoint are current) and writes the
    // whole batch.
    pqxx::nontransaction tx(*conn_);
    if (!applied_total_.has_value()) {
      pqxx::result r = tx.exec_prepared("read_checkpoint", projection_);
      if (r.empty()) return absl::AbortedError("checkpoint row is missing");
      applied_total_ = r[0][2].as<int64_t>();
    }
    absl::StatusOr<BatchChanges> changes = Project(tx, events, skip_poison);
    if (!changes.ok()) {
      // Refused on rows kept from before another writer moved on? Then the
      // batch is not this writer's to judge: reload and go on.
      pqxx::result r = tx.exec_prepared("read_checkpoint", projection_);
      if (r.empty() || r[0][0].as<int64_t>() != expected.transaction_id ||
          r[0][1].as<int64_t>() != expected.position ||
          r[0][2].as<int64_t>() != *applied_total_) {
        return absl::AbortedError(
            absl::StrCat("checkpoint of ", projection_, " moved (expected ",
                         expected.transaction_id, "/", expected.position, ")"));
      }
      return changes.status();
    }
    BatchResult out = ResultOf(*changes, events);
    const int64_t applied_before = *applied_total_;
    // Readers (the query service's cache) learn which accounts moved, and
    // their rows.
    const std::vector<std::string> notices =
        readmodel::EncodeProgress(applied_before + out.applied, out.moved);
    std::vector<std::string> b = BalanceArrays(changes->balances);
    std::vector<std::string> h = HistoryArrays(changes->history);
    std::vector<std::string> x = PoisonArrays(changes->poison);
    pqxx::result r = tx.exec_prepared(
        "apply_batch", projection_, expected.transaction_id, expected.position,
        applied_before, out.checkpoint.transaction_id, out.checkpoint.position,
        out.applied, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], h[0],
        h[1], h[2], h[3], h[4], h[5], h[6], h[7], x[0], x[1], x[2], x[3],
        readmodel::kProgressChannel, ToArrayLiteral(notices));
    applied_total_ = r[0][0].as<int64_t>();
    return out;
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "applying a batch to the read model");
  }
}

absl::Status ReadModelWriter::ResetShadow() {
  if (absl::Status s = Connect(); !s.ok()) return s;
  try {
    pqxx::work tx(*conn_);
    tx.exec(kResetShadowSql);
    tx.exec_params(kDeleteCheckpointSql, projection_);
    tx.exec_prepared("ensure_checkpoint", projection_);
    tx.commit();
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "creating the rebuild tables");
  }
  return absl::OkStatus();
}

struct ReadModelWriter::Bulk {
  // The table is truncated in the COPY's transaction so that the COPY may
  // load it frozen: nothing else reads it before the swap, and its rows
  // then need no hint bits or freezing later (the index builds and the
  // first readers of the swapped-in table skip that work).
  Bulk(const std::string& uri, const std::string& table)
      : copy(uri,
             "COPY " + table +
                 " (account_id, version, kind, amount, balance_after, "
                 "occurred_at, counterparty_account_id, position) FROM STDIN "
                 "(FORMAT binary, FREEZE)",
             "bank-projector-rebuild", {"TRUNCATE " + table}) {}
  db::BinaryCopyIn copy;
  std::vector<PoisonEvent> poison;
};

ReadModelWriter::~ReadModelWriter() = default;

void ReadModelWriter::Disconnect() {
  bulk_.reset();
  conn_.reset();
  rows_.clear();
  applied_total_.reset();
}

absl::StatusOr<BatchResult> ReadModelWriter::BulkLoad(
    const std::vector<eventstore::RecordedEvent>& events,
    absl::flat_hash_map<std::string, AccountFold>& state, bool skip_poison) {
  BatchResult out;
  if (events.empty()) return out;
  BatchChanges changes;
  if (absl::Status s = FoldBatch(state, events, skip_poison, &changes);
      !s.ok()) {
    return s;
  }
  try {
    if (bulk_ == nullptr) {
      bulk_ = std::make_unique<Bulk>(uri_, "account_history" + suffix_);
    }
    for (const HistoryRow& h : changes.history) {
      db::BinaryCopyIn& c = bulk_->copy;
      c.StartRow(8);
      c.AddUuid(h.account_id);
      c.AddInt64(h.version);
      c.AddInt16(static_cast<int16_t>(h.kind));
      c.AddInt64(h.amount);
      c.AddInt64(h.balance_after);
      c.AddTimestamp(h.occurred_at);
      if (h.counterparty_account_id.empty()) {
        c.AddNull();
      } else {
        c.AddUuid(h.counterparty_account_id);
      }
      c.AddInt64(h.position);
    }
  } catch (const std::exception& e) {
    bulk_.reset();
    return db::StatusFromException(e, "loading the rebuild tables");
  }
  for (PoisonEvent& p : changes.poison) bulk_->poison.push_back(std::move(p));
  out.applied = changes.applied;
  out.duplicates = changes.duplicates;
  out.poison = static_cast<int64_t>(changes.poison.size());
  out.checkpoint = {events.back().transaction_id, events.back().position};
  return out;
}

absl::Status ReadModelWriter::EndBulk() {
  if (bulk_ == nullptr) return absl::OkStatus();
  std::unique_ptr<Bulk> bulk = std::move(bulk_);
  try {
    bulk->copy.Finish();
  } catch (const std::exception& e) {
    return db::StatusFromException(e, "loading the rebuild tables");
  }
  if (bulk->poison.empty()) return absl::OkStatus();
  if (absl::Status s = Connect(); !s.ok()) return s;
  try {
    std::vector<std::string> pos, stream, type, error;
    for (const PoisonEvent& p : bulk->poison) {
      pos.push_back(std::to_string(p.position));
      stream.push_back(p.stream_id);
      type.push_back(p.event_type);
      error.push_back(p.error);
    }
    pqxx::work tx(*conn_);
    tx.exec_prepared("insert_poison", ToArrayLiteral(pos),
                     ToArrayLiteral(stream), ToArrayLiteral(type),
                     ToArrayLiteral(error));
    tx.commit();
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "recording poison events");
  }
  return absl::OkStatus();
}

absl::Status ReadModelWriter::FinishShadow(
    const absl::flat_hash_map<std::string, AccountFold>& state,
    const Checkpoint& checkpoint) {
  if (absl::Status s = EndBulk(); !s.ok()) return s;
  if (absl::Status s = Connect(); !s.ok()) return s;
  // The balances, and the DDL of the indexes to build.
  struct Index {
    std::string ddl, table, name;
    bool primary_key;
  };
  std::vector<Index> indexes;
  try {
    pqxx::work tx(*conn_);
    {
      const std::vector<std::string> columns = {
          "account_id", "owner",     "currency",   "balance",      "version",
          "status",     "opened_at", "updated_at", "last_position"};
      pqxx::tablewriter copy(tx, "account_balances" + suffix_, columns.begin(),
                             columns.end(), "\\N");
      for (const auto& [id, fold] : state) {
        // Accounts seen only through poison were never opened: no row.
        if (fold.row.version == 0) continue;
        const BalanceRow b = fold.FinalRow();
        copy << std::vector<std::string>{b.account_id,
                                         b.owner,
                                         b.currency,
                                         std::to_string(b.balance),
                                         std::to_string(b.version),
                                         std::to_string(b.status),
                                         CopyTime(b.opened_at),
                                         CopyTime(b.updated_at),
                                         std::to_string(b.last_position)};
      }
      copy.complete();
    }
    for (const auto& row : tx.exec(kShadowIndexesSql)) {
      indexes.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                         row[2].as<std::string>(), row[3].as<bool>()});
    }
    tx.commit();
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "writing the rebuild balances");
  }
  // Each index is one sort of its table: they are built side by side, one
  // connection each (committed tables, so no transaction is shared; a crash
  // here leaves shadow tables that the next rebuild drops). Statistics
  // sampled at the same time only slowed the sorts down on two cores.
  std::vector<std::string> jobs;
  for (const Index& index : indexes) jobs.push_back(index.ddl);
  std::vector<absl::Status> built(jobs.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < jobs.size(); ++i) {
      threads.emplace_back([this, &jobs, &built, i] {
        try {
          pqxx::connection c(uri_);
          c.set_variable("application_name", "'bank-projector-indexer'");
          // One process per index: with both built at once, parallel
          // workers only fought over the cores (about 10 % slower here).
          c.set_variable("max_parallel_maintenance_workers", "0");
          pqxx::nontransaction tx(c);
          tx.exec(jobs[i]);
        } catch (const std::exception& e) {
          built[i] = db::StatusFromException(e, "indexing the rebuild tables");
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const absl::Status& s : built) {
    if (!s.ok()) return s;
  }
  try {
    pqxx::work tx(*conn_);
    for (const Index& index : indexes) {
      if (index.primary_key) {
        tx.exec("ALTER TABLE " + tx.quote_name(index.table) +
                " ADD PRIMARY KEY USING INDEX " + tx.quote_name(index.name));
      }
    }
    tx.exec("ANALYZE account_balances" + suffix_);
    tx.exec("ANALYZE account_history" + suffix_);
    tx.exec_prepared("update_checkpoint", projection_,
                     checkpoint.transaction_id, checkpoint.position, 0);
    tx.commit();
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "indexing the rebuild tables");
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadModelWriter::SwapIn(
    const std::string& live_projection, EventReader& reader, int batch_size) {
  if (absl::Status s = Connect(); !s.ok()) return s;
  try {
    pqxx::work tx(*conn_);
    // Holding the live checkpoint's row lock stops the live projector
    // between batches; its next batch sees the moved checkpoint and reloads.
    tx.exec_prepared("ensure_checkpoint", live_projection);
    tx.exec_prepared("lock_checkpoint", live_projection);
    pqxx::result r = tx.exec_prepared("lock_checkpoint", projection_);
    Checkpoint ckpt{r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
    while (true) {
      absl::StatusOr<std::vector<eventstore::RecordedEvent>> events =
          reader.ReadAfter(ckpt, batch_size);
      if (!events.ok()) return events.status();
      if (events->empty()) break;
      absl::StatusOr<BatchResult> applied = ApplyInTx(tx, *events, false);
      if (!applied.ok()) return applied.status();
      ckpt = applied->checkpoint;
    }
    tx.exec(kSwapTablesSql);
    for (const auto& row : tx.exec(kRenameIndexesSql)) {
      tx.exec(row[0].as<std::string>());
    }
    tx.exec_prepared("update_checkpoint", live_projection, ckpt.transaction_id,
                     ckpt.position, 0);
    // Everything changed: readers drop what they cached.
    tx.exec_prepared(
        "notify", readmodel::kProgressChannel,
        ToArrayLiteral(std::vector<std::string>{readmodel::EncodeReset()}));
    tx.exec_params(kDeleteCheckpointSql, projection_);
    tx.commit();
    return ckpt;
  } catch (const std::exception& e) {
    if (db::IsConnectionLost(e)) conn_.reset();
    return db::StatusFromException(e, "swapping in the rebuilt read model");
  }
}

}  // namespace bank::projector
