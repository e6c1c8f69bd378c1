#include "projector/rebuild_writer.h"

#include <pqxx/tablewriter>
#include <thread>

#include "common/db/binary_copy.h"
#include "common/util/text.h"

namespace bank::projector {
namespace {

// Shadow tables: the live tables' columns and constraints, no indexes yet.
constexpr char kResetShadowSql[] = R"sql(
DROP TABLE IF EXISTS account_balances_rebuild;
DROP TABLE IF EXISTS account_history_rebuild;
CREATE TABLE account_balances_rebuild
  (LIKE account_balances INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE account_history_rebuild
  (LIKE account_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
)sql";

// The history, loaded frozen: the table is truncated in the COPY's
// transaction, nothing else reads it before the swap, and its rows then
// need no hint bits or freezing later (the index builds and the first
// readers of the swapped-in table skip that work).
constexpr char kTruncateHistorySql[] = "TRUNCATE account_history_rebuild";
constexpr char kCopyHistorySql[] = R"sql(
COPY account_history_rebuild
  (account_id, version, kind, amount, balance_after, occurred_at,
   counterparty_account_id, position, transaction_id)
FROM STDIN (FORMAT binary, FREEZE)
)sql";

constexpr char kBalancesTable[] = "account_balances_rebuild";

// The live tables' indexes, as DDL for the shadow tables: each index is
// created under its live name plus "_rebuild"; primary keys are then
// attached from their unique index.
constexpr char kShadowIndexesSql[] = R"sql(
SELECT replace(replace(indexdef, ' ON public.' || tablename || ' ',
                       ' ON public.' || tablename || '_rebuild '),
               'INDEX ' || indexname || ' ', 'INDEX ' || indexname || '_rebuild '),
       format('ALTER TABLE %I ADD PRIMARY KEY USING INDEX %I',
              tablename || '_rebuild', indexname || '_rebuild'),
       indexname = tablename || '_pkey'
FROM pg_indexes
WHERE schemaname = 'public'
  AND tablename IN ('account_balances', 'account_history')
)sql";

constexpr char kAnalyzeShadowSql[] = R"sql(
ANALYZE account_balances_rebuild;
ANALYZE account_history_rebuild;
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

// A timestamptz in COPY's text format.
std::string CopyTime(absl::Time t) {
  std::string out;
  util::AppendUtcTimestamp(t, &out);
  return out;
}

}  // namespace

struct RebuildWriter::Bulk {
  explicit Bulk(const std::string& uri)
      : copy(uri, kCopyHistorySql, "bank-projector-rebuild",
             {kTruncateHistorySql}) {}
  db::BinaryCopyIn copy;
  std::vector<PoisonEvent> poison;
};

RebuildWriter::RebuildWriter(std::string uri, std::string live_projection)
    : live_projection_(std::move(live_projection)),
      shadow_projection_(live_projection_ + "_rebuild"),
      session_({.uri = std::move(uri),
                .application_name = "bank-projector-writer",
                .on_connect = PrepareReadModelWrites}) {}

RebuildWriter::~RebuildWriter() = default;

absl::Status RebuildWriter::Reset() {
  bulk_.reset();
  return session_.Run("creating the rebuild tables",
                      [&](pqxx::connection& c) -> absl::Status {
                        pqxx::work tx(c);
                        tx.exec(kResetShadowSql);
                        DeleteCheckpoint(tx, shadow_projection_);
                        LockCheckpoint(tx, shadow_projection_);
                        tx.commit();
                        return absl::OkStatus();
                      });
}

absl::StatusOr<BatchResult> RebuildWriter::Load(
    const std::vector<eventstore::RecordedEvent>& events,
    absl::flat_hash_map<std::string, AccountFold>& state, bool skip_poison) {
  BatchResult out;
  if (events.empty()) return out;
  BatchChanges changes;
  if (absl::Status s = FoldBatch(state, events, skip_poison, &changes);
      !s.ok()) {
    return s;
  }
  absl::Status loaded = db::RunMapped(
      "loading the rebuild tables", [] {},
      [&]() -> absl::Status {
        if (bulk_ == nullptr) bulk_ = std::make_unique<Bulk>(session_.uri());
        db::BinaryCopyIn& c = bulk_->copy;
        for (const HistoryRow& h : changes.history) {
          c.StartRow(9);
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
          c.AddInt64(h.transaction_id);
        }
        return absl::OkStatus();
      });
  if (!loaded.ok()) {
    bulk_.reset();
    return loaded;
  }
  out = ResultOf(changes, events);
  out.moved.clear();  // Readers learn of a rebuild from the swap's reset.
  for (PoisonEvent& p : changes.poison) bulk_->poison.push_back(std::move(p));
  return out;
}

absl::Status RebuildWriter::Finish(
    const absl::flat_hash_map<std::string, AccountFold>& state,
    const Checkpoint& checkpoint) {
  std::unique_ptr<Bulk> bulk = std::move(bulk_);
  BatchChanges poison;
  if (bulk != nullptr) {
    absl::Status s = db::RunMapped(
        "loading the rebuild tables", [] {},
        [&]() -> absl::Status {
          bulk->copy.Finish();
          return absl::OkStatus();
        });
    if (!s.ok()) return s;
    poison.poison = std::move(bulk->poison);
  }
  // The balances, and the DDL of the indexes to build.
  std::vector<std::string> index_ddl, primary_keys;
  absl::Status written = session_.Run(
      "writing the rebuild balances", [&](pqxx::connection& c) -> absl::Status {
        pqxx::work tx(c);
        const std::vector<std::string> columns = {
            "account_id", "owner",     "currency",   "balance",      "version",
            "status",     "opened_at", "updated_at", "last_position"};
        pqxx::tablewriter copy(tx, kBalancesTable, columns.begin(),
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
        for (const auto& row : tx.exec(kShadowIndexesSql)) {
          index_ddl.push_back(row[0].as<std::string>());
          if (row[2].as<bool>())
            primary_keys.push_back(row[1].as<std::string>());
        }
        tx.commit();
        return absl::OkStatus();
      });
  if (!written.ok()) return written;
  if (absl::Status s = BuildIndexes(index_ddl); !s.ok()) return s;
  return session_.Run(
      "indexing the rebuild tables", [&](pqxx::connection& c) -> absl::Status {
        pqxx::work tx(c);
        for (const std::string& ddl : primary_keys) tx.exec(ddl);
        tx.exec(kAnalyzeShadowSql);
        // The poison met, and the shadow checkpoint moved, by the same batch
        // write as the live model's (it writes no rows here).
        const StoredCheckpoint from = LockCheckpoint(tx, shadow_projection_);
        BatchResult result;
        result.checkpoint = checkpoint;
        WriteBatch(tx, shadow_projection_, from, result, poison, {});
        tx.commit();
        return absl::OkStatus();
      });
}

absl::Status RebuildWriter::BuildIndexes(const std::vector<std::string>& ddl) {
  // Each index is one sort of its table: they are built side by side, one
  // connection each (committed tables, so no transaction is shared; a crash
  // here leaves shadow tables that the next rebuild drops). Statistics
  // sampled at the same time only slowed the sorts down on two cores.
  std::vector<absl::Status> built(ddl.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < ddl.size(); ++i) {
      threads.emplace_back([this, &ddl, &built, i] {
        db::Session indexer({.uri = session_.uri(),
                             .application_name = "bank-projector-indexer",
                             .on_connect = [](pqxx::connection& c) {
                               // One process per index: with both built at
                               // once, parallel workers only fought over the
                               // cores (about 10 % slower).
                               c.set_variable(
                                   "max_parallel_maintenance_workers", "0");
                             }});
        built[i] = indexer.Run("indexing the rebuild tables",
                               [&](pqxx::connection& c) -> absl::Status {
                                 pqxx::nontransaction tx(c);
                                 tx.exec(ddl[i]);
                                 return absl::OkStatus();
                               });
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const absl::Status& s : built) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> RebuildWriter::SwapIn(EventReader& reader,
                                                 int batch_size) {
  return session_.Run(
      "swapping in the rebuilt read model",
      [&](pqxx::connection& c) -> absl::StatusOr<Checkpoint> {
        pqxx::work tx(c);
        // Holding the live checkpoint's row lock stops the live projector
        // between batches; its next batch sees the moved checkpoint and
        // reloads.
        LockCheckpoint(tx, live_projection_);
        const Checkpoint shadow = LockCheckpoint(tx, shadow_projection_).at;
        tx.exec(kSwapTablesSql);
        for (const auto& row : tx.exec(kRenameIndexesSql)) {
          tx.exec(row[0].as<std::string>());
        }
        StoredCheckpoint at{shadow,
                            MoveCheckpoint(tx, live_projection_, shadow)};
        // What was committed since the load: the live projector's batches,
        // on the tables just swapped in.
        while (true) {
          absl::StatusOr<std::vector<eventstore::RecordedEvent>> events =
              reader.ReadAfter(at.at, batch_size);
          if (!events.ok()) return events.status();
          if (events->empty()) break;
          absl::StatusOr<BatchChanges> changes =
              ProjectBatch(CurrentRows(tx, *events, {}, nullptr), *events,
                           /*skip_poison=*/false);
          if (!changes.ok()) return changes.status();
          const BatchResult result = ResultOf(*changes, *events);
          at = {result.checkpoint,
                WriteBatch(tx, live_projection_, at, result, *changes, {})};
        }
        // Everything changed: readers drop what they cached.
        NotifyReset(tx);
        DeleteCheckpoint(tx, shadow_projection_);
        tx.commit();
        return at.at;
      });
}

}  // namespace bank::projector
