#include "common/eventstore/pg_event_store.h"

#include <algorithm>
#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/db/array_literal.h"
#include "common/db/pg_status.h"
#include "common/db/run.h"
#include "common/eventstore/pg_append_outcome.h"
#include "common/log/log.h"
#include "common/util/outcome.h"
#include "nlohmann/json.hpp"

namespace bank::eventstore {
namespace {

using db::ToArrayLiteral;

// The appends of a batch of commands, as parallel arrays, in one statement
// (append_commands of sql/events/005_append_after_event.sql, the one append
// function since 006; its design is described in 003): one round trip, one
// transaction.
constexpr char kAppendBatchSql[] = R"sql(
SELECT command_index, outcome, stream_id::text, stream_version, event_position
FROM append_commands($1::int[], $2::uuid[], $3::uuid[], $4::bigint[],
                     $5::text[], $6::int[], $7::jsonb[], $8::jsonb[],
                     $9::text[], $10::text[], $11::bytea[], $12::uuid[])
)sql";

constexpr char kReadStreamSql[] = R"sql(
SELECT position, event_id::text, stream_version, event_type, schema_version,
       data::text, metadata::text, transaction_id::text::bigint,
       (extract(epoch FROM recorded_at) * 1000000)::bigint
FROM events
WHERE stream_id = $1::uuid AND stream_version > $2
ORDER BY stream_version
LIMIT $3
)sql";

constexpr char kFindCommandSql[] = R"sql(
SELECT request_type, encode(request, 'hex'), result::text
FROM commands WHERE command_id = $1
)sql";

constexpr char kLoadSnapshotSql[] = R"sql(
SELECT stream_version, schema_version, state::text
FROM snapshots WHERE stream_id = $1::uuid
)sql";

constexpr char kSaveSnapshotSql[] = R"sql(
INSERT INTO snapshots (stream_id, stream_version, schema_version, state)
VALUES ($1::uuid, $2, $3, $4::jsonb)
ON CONFLICT (stream_id) DO UPDATE
  SET stream_version = EXCLUDED.stream_version,
      schema_version = EXCLUDED.schema_version,
      state = EXCLUDED.state,
      taken_at = now()
  WHERE snapshots.stream_version < EXCLUDED.stream_version
     OR snapshots.schema_version <> EXCLUDED.schema_version
)sql";

void PrepareStatements(pqxx::connection& conn) {
  // Every statement is its own transaction; at REPEATABLE READ, all of
  // append_commands() sees one snapshot taken before its transaction got an
  // id. So an event it builds on (the version before its first one) was
  // committed by a transaction with a smaller id, and the readers' order,
  // (transaction_id, position), never puts a version before the one it
  // follows. At READ COMMITTED a later statement of the same transaction
  // could build on a commit newer than its own transaction id.
  conn.set_variable("default_transaction_isolation", "'repeatable read'");
  conn.prepare("append_batch", kAppendBatchSql);
  conn.prepare("read_stream", kReadStreamSql);
  conn.prepare("find_command", kFindCommandSql);
  conn.prepare("load_snapshot", kLoadSnapshotSql);
  conn.prepare("save_snapshot", kSaveSnapshotSql);
}

}  // namespace

PgEventStore::PgEventStore(Options options)
    : options_(options),
      pool_(db::ConnectionPool::Options{
          .uri = options.uri,
          .size = options.pool_size,
          .on_connect = PrepareStatements,
          .application_name = "bank-event-store"}) {}

db::PooledCall PgEventStore::Call(absl::Time deadline, const char* what,
                                  bool repeatable) const {
  return {.what = what,
          .deadline = deadline,
          .acquire_deadline = absl::Now() + options_.max_pool_wait,
          .max_statement_time = options_.max_statement_time,
          .repeatable = repeatable,
          .outage_wait = options_.outage_wait};
}

template <typename Fn>
auto PgEventStore::WithConnection(absl::Time deadline, const char* what,
                                  bool repeatable, Fn fn)
    -> decltype(fn(std::declval<db::ConnectionPool::Lease&>())) {
  return db::RunPooled(pool_, Call(deadline, what, repeatable), std::move(fn));
}

absl::StatusOr<std::vector<StreamResult>> PgEventStore::Append(
    const std::vector<StreamAppend>& appends, const CommandRecord* command,
    absl::Time deadline) {
  size_t events = 0;
  for (const StreamAppend& a : appends) events += a.events.size();
  if (events == 0) return absl::InvalidArgumentError("nothing to append");
  // A batch of one: the same statement, checks and answers.
  return std::move(AppendBatch({BatchItem{&appends, command}}, deadline)[0]);
}

absl::StatusOr<PgEventStore::Results> PgEventStore::AppendOnce(
    const std::vector<BatchItem>& items, absl::Time deadline, pg::SentOn* sent,
    bool* unconfirmed) {
  std::vector<std::string> cmd_of, ids, streams, versions, types, schemas,
      datas, metas, command_ids, request_types, requests, afters;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string index = std::to_string(i + 1);
    for (const StreamAppend& a : *items[i].appends) {
      int64_t v = a.expected_version;
      for (const NewEvent& e : a.events) {
        // Only the first event of an append follows a stored one.
        afters.push_back(v == a.expected_version ? a.after_event_id : "");
        cmd_of.push_back(index);
        ids.push_back(e.event_id);
        streams.push_back(a.stream_id);
        versions.push_back(std::to_string(++v));
        types.push_back(e.type);
        schemas.push_back(std::to_string(e.schema_version));
        datas.push_back(e.data);
        metas.push_back(e.metadata);
      }
    }
    const CommandRecord* c = items[i].command;
    command_ids.push_back(c ? c->command_id : "");
    request_types.push_back(c ? c->request_type : "");
    requests.push_back(
        absl::StrCat("\\x", c ? absl::BytesToHexString(c->request) : ""));
  }
  Results results(items.size());
  // Not repeated: a lost connection leaves the outcome unknown.
  db::PooledCall call = Call(deadline, "appending a batch of commands");
  // An append queued behind a batch that waited for the database has
  // waited too: the wait counts from the earliest start.
  const absl::Time now = absl::Now();
  absl::Time started = now;
  for (const BatchItem& item : items) started = std::min(started, item.started);
  call.outage_wait =
      std::max(absl::ZeroDuration(), started + options_.outage_wait - now);
  absl::StatusOr<bool> ran = db::RunPooled(
      pool_, call,
      [&](db::ConnectionPool::Lease& conn) -> absl::StatusOr<bool> {
        pqxx::nontransaction tx(*conn);
        *sent = {conn->backendpid(), conn.application_name()};
        pg::SyncReplicationWatch watch(*conn);
        pqxx::result r = tx.exec_prepared(
            "append_batch", ToArrayLiteral(cmd_of), ToArrayLiteral(ids),
            ToArrayLiteral(streams), ToArrayLiteral(versions),
            ToArrayLiteral(types), ToArrayLiteral(schemas),
            ToArrayLiteral(datas), ToArrayLiteral(metas),
            ToArrayLiteral(command_ids), ToArrayLiteral(request_types),
            ToArrayLiteral(requests),
            ToArrayLiteral(afters, /*empty_is_null=*/true));
        *unconfirmed = watch.cancelled();
        std::vector<std::vector<StreamResult>> ok(items.size());
        std::vector<std::string> outcome(items.size());
        for (const auto& row : r) {
          const size_t i = row[0].as<size_t>() - 1;
          if (i >= items.size()) continue;
          outcome[i] = row[1].as<std::string>();
          if (outcome[i] == "ok") {
            ok[i].push_back(StreamResult{row[2].as<std::string>(),
                                         row[3].as<int64_t>(),
                                         row[4].as<int64_t>()});
          }
        }
        for (size_t i = 0; i < items.size(); ++i) {
          if (outcome[i] == "ok") {
            // One result per StreamAppend, in the item's order.
            std::vector<StreamResult> in_order;
            for (const StreamAppend& a : *items[i].appends) {
              for (const StreamResult& sr : ok[i]) {
                if (sr.stream_id == a.stream_id) in_order.push_back(sr);
              }
            }
            results[i] = std::move(in_order);
          } else if (outcome[i] == "duplicate") {
            results[i] = absl::AlreadyExistsError(
                absl::StrCat("command ", items[i].command->command_id,
                             " is recorded already"));
          } else if (outcome[i] == "conflict") {
            results[i] = absl::AbortedError(
                "version conflict: another writer appended to the stream "
                "first");
          } else {
            results[i] = absl::InternalError(
                absl::StrCat("the batch append gave no outcome for item ", i));
          }
        }
        return true;
      });
  if (!ran.ok()) return ran.status();
  return results;
}

std::vector<absl::StatusOr<std::vector<StreamResult>>>
PgEventStore::AppendBatch(const std::vector<BatchItem>& items,
                          absl::Time deadline) {
  Results results(items.size());
  std::vector<size_t> todo(items.size());
  for (size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  while (!todo.empty()) {
    std::vector<BatchItem> batch;
    for (size_t i : todo) batch.push_back(items[i]);
    pg::SentOn sent;
    bool unconfirmed = false;
    absl::StatusOr<Results> got =
        AppendOnce(batch, deadline, &sent, &unconfirmed);
    if (got.ok() && !unconfirmed) {
      for (size_t k = 0; k < todo.size(); ++k) results[todo[k]] = (*got)[k];
      break;
    }
    // Unknown: the statement was sent and its connection lost (its commit
    // may have happened), or it committed without the synchronous
    // standby's word.
    const bool lost = !got.ok() && sent.pid != 0 &&
                      got.status().code() == absl::StatusCode::kUnavailable;
    if (!unconfirmed && !lost) {
      for (size_t i : todo) results[i] = got.status();  // Nothing written.
      break;
    }
    // A statement that returned is over; a lost one may still be running
    // (its commit not yet visible): FindOutcome ends it first.
    if (got.ok()) sent.pid = 0;
    unknown_outcomes_.fetch_add(1);
    spdlog::warn(
        "an append of {} commands may have committed ({}); looking it up",
        todo.size(),
        got.ok() ? "its commit stopped waiting for the synchronous standby"
                 : got.status().message());
    absl::StatusOr<std::vector<std::optional<std::vector<StreamResult>>>>
        outcome = pg::FindOutcome(
            pool_, Call(deadline, "finding out whether an append committed"),
            sent, batch);
    if (!outcome.ok()) {
      for (size_t i : todo) {
        results[i] = util::OutcomeUnknownError(absl::StrCat(
            "the connection to the database was lost after the command was "
            "sent, and whether it committed could not be learned before the "
            "deadline (",
            outcome.status().message(), ")"));
      }
      break;
    }
    std::vector<size_t> again;
    for (size_t k = 0; k < todo.size(); ++k) {
      if ((*outcome)[k].has_value()) {
        results[todo[k]] = *std::move((*outcome)[k]);
      } else if (got.ok()) {
        results[todo[k]] = (*got)[k];  // Refused in a committed batch.
      } else {
        again.push_back(todo[k]);  // Not written: run it again.
      }
    }
    todo = std::move(again);
  }
  return results;
}

absl::StatusOr<std::vector<RecordedEvent>> PgEventStore::ReadStream(
    const std::string& stream_id, int64_t after_version, int max_count,
    absl::Time deadline) {
  return WithConnection(
      deadline, "reading a stream", /*repeatable=*/true,
      [&](db::ConnectionPool::Lease& conn)
          -> absl::StatusOr<std::vector<RecordedEvent>> {
        pqxx::nontransaction tx(*conn);
        pqxx::result r = tx.exec_prepared("read_stream", stream_id,
                                          after_version, max_count);
        std::vector<RecordedEvent> events;
        events.reserve(r.size());
        for (const auto& row : r) {
          RecordedEvent e;
          e.position = row[0].as<int64_t>();
          e.event_id = row[1].as<std::string>();
          e.stream_id = stream_id;
          e.stream_version = row[2].as<int64_t>();
          e.type = row[3].as<std::string>();
          e.schema_version = row[4].as<int>();
          e.data = row[5].as<std::string>();
          e.metadata = row[6].as<std::string>();
          e.transaction_id = row[7].as<int64_t>();
          e.recorded_at = absl::FromUnixMicros(row[8].as<int64_t>());
          events.push_back(std::move(e));
        }
        return events;
      });
}

absl::StatusOr<std::optional<StoredCommand>> PgEventStore::FindCommand(
    const std::string& command_id, absl::Time deadline) {
  return WithConnection(
      deadline, "looking up a command", /*repeatable=*/true,
      [&](db::ConnectionPool::Lease& conn)
          -> absl::StatusOr<std::optional<StoredCommand>> {
        pqxx::nontransaction tx(*conn);
        pqxx::result r = tx.exec_prepared("find_command", command_id);
        if (r.empty()) return std::optional<StoredCommand>();
        StoredCommand c;
        c.request_type = r[0][0].as<std::string>();
        c.request = absl::HexStringToBytes(r[0][1].as<std::string>());
        nlohmann::json results =
            nlohmann::json::parse(r[0][2].as<std::string>(), nullptr, false);
        if (!results.is_array()) {
          return absl::InternalError(
              absl::StrCat("command ", command_id, " has a malformed result"));
        }
        for (const auto& item : results) {
          StreamResult sr;
          sr.stream_id = item.value("stream_id", "");
          sr.version = item.value("version", int64_t{0});
          sr.position = item.value("position", int64_t{0});
          c.results.push_back(std::move(sr));
        }
        return std::optional<StoredCommand>(std::move(c));
      });
}

absl::StatusOr<std::optional<Snapshot>> PgEventStore::LoadSnapshot(
    const std::string& stream_id, absl::Time deadline) {
  return WithConnection(deadline, "loading a snapshot", /*repeatable=*/true,
                        [&](db::ConnectionPool::Lease& conn)
                            -> absl::StatusOr<std::optional<Snapshot>> {
                          pqxx::nontransaction tx(*conn);
                          pqxx::result r =
                              tx.exec_prepared("load_snapshot", stream_id);
                          if (r.empty()) return std::optional<Snapshot>();
                          Snapshot s;
                          s.stream_id = stream_id;
                          s.version = r[0][0].as<int64_t>();
                          s.schema_version = r[0][1].as<int>();
                          s.state = r[0][2].as<std::string>();
                          return std::optional<Snapshot>(std::move(s));
                        });
}

absl::Status PgEventStore::SaveSnapshot(const Snapshot& snapshot,
                                        absl::Time deadline) {
  absl::StatusOr<bool> done = WithConnection(
      deadline, "saving a snapshot",
      // Repeatable: the upsert keeps the newer snapshot.
      /*repeatable=*/true,
      [&](db::ConnectionPool::Lease& conn) -> absl::StatusOr<bool> {
        // READ COMMITTED (the connections default to REPEATABLE READ): two
        // snapshots of one stream saved at once must not fail each other;
        // the upsert keeps the newer.
        pqxx::work tx(*conn);
        tx.exec("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
        tx.exec_prepared("save_snapshot", snapshot.stream_id, snapshot.version,
                         snapshot.schema_version, snapshot.state);
        tx.commit();
        return true;
      });
  return done.status();
}

}  // namespace bank::eventstore
