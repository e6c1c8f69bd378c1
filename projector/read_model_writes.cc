#include "projector/read_model_writes.h"

#include <algorithm>

#include "common/db/array_literal.h"

namespace bank::projector {
namespace {

using db::ToArrayLiteral;

constexpr char kLoadRowsSql[] = R"sql(
SELECT account_id::text, owner, currency, balance, version, status,
       (extract(epoch FROM opened_at) * 1000000)::bigint,
       (extract(epoch FROM updated_at) * 1000000)::bigint, last_position
FROM account_balances
WHERE account_id = ANY($1::uuid[])
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

constexpr char kMoveCheckpointSql[] = R"sql(
UPDATE projection_checkpoints
SET transaction_id = $2, position = $3, updated_at = now()
WHERE projection = $1
RETURNING events_applied
)sql";

constexpr char kDeleteCheckpointSql[] =
    "DELETE FROM projection_checkpoints WHERE projection = $1";

// A batch in one round trip: sql/read/004_stream_order.sql.
constexpr char kApplyBatchSql[] = R"sql(
SELECT apply_batch($1, $2, $3, $4, $5, $6, $7,
                   $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18, $19, $20, $21, $22, $23, $24, $25,
                   $26, $27, $28, $29, $30, $31)
)sql";

// Readers drop what they cached (common/readmodel/progress_notice.h).
constexpr char kNotifyResetSql[] = "SELECT pg_notify($1, $2)";

std::string Micros(absl::Time t) {
  return std::to_string(absl::ToUnixMicros(t));
}

StoredCheckpoint CheckpointOf(const pqxx::row& row) {
  return {{row[0].as<int64_t>(), row[1].as<int64_t>()}, row[2].as<int64_t>()};
}

// The columns of the rows to write, as array literals in the order of
// apply_batch's parameters.
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
  std::vector<std::string> id, ver, kind, amount, after, at, cp, pos, tx;
  for (const HistoryRow& h : rows) {
    id.push_back(h.account_id);
    ver.push_back(std::to_string(h.version));
    kind.push_back(std::to_string(h.kind));
    amount.push_back(std::to_string(h.amount));
    after.push_back(std::to_string(h.balance_after));
    at.push_back(Micros(h.occurred_at));
    cp.push_back(h.counterparty_account_id);
    pos.push_back(std::to_string(h.position));
    tx.push_back(std::to_string(h.transaction_id));
  }
  return {ToArrayLiteral(id),     ToArrayLiteral(ver),   ToArrayLiteral(kind),
          ToArrayLiteral(amount), ToArrayLiteral(after), ToArrayLiteral(at),
          ToArrayLiteral(cp),     ToArrayLiteral(pos),   ToArrayLiteral(tx)};
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

}  // namespace

void PrepareReadModelWrites(pqxx::connection& conn) {
  conn.prepare("load_rows", kLoadRowsSql);
  conn.prepare("ensure_checkpoint", kEnsureCheckpointSql);
  conn.prepare("lock_checkpoint", kLockCheckpointSql);
  conn.prepare("read_checkpoint", kReadCheckpointSql);
  conn.prepare("move_checkpoint", kMoveCheckpointSql);
  conn.prepare("delete_checkpoint", kDeleteCheckpointSql);
  conn.prepare("apply_batch", kApplyBatchSql);
}

StoredCheckpoint LockCheckpoint(pqxx::transaction_base& tx,
                                const std::string& projection) {
  tx.exec_prepared("ensure_checkpoint", projection);
  return CheckpointOf(tx.exec_prepared1("lock_checkpoint", projection));
}

std::optional<StoredCheckpoint> ReadCheckpoint(pqxx::transaction_base& tx,
                                               const std::string& projection) {
  pqxx::result r = tx.exec_prepared("read_checkpoint", projection);
  if (r.empty()) return std::nullopt;
  return CheckpointOf(r[0]);
}

int64_t MoveCheckpoint(pqxx::transaction_base& tx,
                       const std::string& projection, const Checkpoint& at) {
  return tx
      .exec_prepared1("move_checkpoint", projection, at.transaction_id,
                      at.position)[0]
      .as<int64_t>();
}

void DeleteCheckpoint(pqxx::transaction_base& tx,
                      const std::string& projection) {
  tx.exec_prepared("delete_checkpoint", projection);
}

absl::flat_hash_map<std::string, BalanceRow> CurrentRows(
    pqxx::transaction_base& tx,
    const std::vector<eventstore::RecordedEvent>& events,
    const absl::flat_hash_map<std::string, BalanceRow>& kept,
    std::vector<BalanceRow>* read) {
  absl::flat_hash_map<std::string, BalanceRow> current;
  std::vector<std::string> ids;
  for (const auto& e : events) {
    if (current.contains(e.stream_id)) continue;
    auto k = kept.find(e.stream_id);
    if (k != kept.end()) {
      current.emplace(e.stream_id, k->second);
    } else {
      ids.push_back(e.stream_id);
    }
  }
  if (ids.empty()) return current;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (const auto& row : tx.exec_prepared("load_rows", ToArrayLiteral(ids))) {
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
    if (read != nullptr) read->push_back(b);
    current.emplace(b.account_id, std::move(b));
  }
  return current;
}

BatchResult ResultOf(const BatchChanges& changes,
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

int64_t WriteBatch(pqxx::transaction_base& tx, const std::string& projection,
                   const StoredCheckpoint& expected, const BatchResult& result,
                   const BatchChanges& changes,
                   const std::vector<std::string>& notices) {
  const std::vector<std::string> b = BalanceArrays(changes.balances);
  const std::vector<std::string> h = HistoryArrays(changes.history);
  const std::vector<std::string> x = PoisonArrays(changes.poison);
  pqxx::row r = tx.exec_prepared1(
      "apply_batch", projection, expected.at.transaction_id,
      expected.at.position, expected.events_applied,
      result.checkpoint.transaction_id, result.checkpoint.position,
      result.applied, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8],
      h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], x[0], x[1], x[2],
      x[3], readmodel::kProgressChannel, ToArrayLiteral(notices));
  return r[0].as<int64_t>();
}

void NotifyReset(pqxx::transaction_base& tx) {
  tx.exec_params(kNotifyResetSql, readmodel::kProgressChannel,
                 readmodel::EncodeReset());
}

}  // namespace bank::projector
