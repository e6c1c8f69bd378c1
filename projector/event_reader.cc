#include "projector/event_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/db/pg_status.h"
#include "common/db/run.h"

namespace bank::projector {
namespace {

// The gap-free tailing read: see sql/events/001_events.sql. Only what the
// projection uses: event_id and metadata are left out (printing them was a
// fifth of PostgreSQL's time for the read).
constexpr char kReadAfterSql[] = R"sql(
SELECT position, stream_id::text, stream_version, event_type,
       schema_version, data::text, transaction_id::text::bigint,
       (extract(epoch FROM recorded_at) * 1000000)::bigint
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
-- Qualified: the bare name would mean the bigint output column above, and
-- sorting by it cannot use the index.
ORDER BY events.transaction_id, events.position
LIMIT $3
)sql";

constexpr char kHeadSql[] = R"sql(
SELECT coalesce((SELECT max(position) FROM events), 0),
       (SELECT (extract(epoch FROM recorded_at) * 1000000)::bigint
        FROM events
        WHERE (transaction_id, position) > ($1::text::xid8, $2)
        ORDER BY transaction_id, position LIMIT 1)
)sql";

// CopyAfter's query: kReadAfterSql's, with the values as literals (COPY
// takes no parameters) and the columns in their own types.
constexpr char kCopyAfterSql[] = R"sql(
COPY (
  SELECT position, stream_id, stream_version, event_type, schema_version,
         data, transaction_id, recorded_at
  FROM events
  WHERE (transaction_id, position) > ('{T}'::xid8, {P})
    AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY events.transaction_id, events.position
  LIMIT {L}
) TO STDOUT (FORMAT binary)
)sql";

constexpr char kPlanCountsSql[] = R"sql(
SELECT generic_plans, custom_plans FROM pg_prepared_statements
WHERE name = 'read_after'
)sql";

constexpr char kExplainReadAfterSql[] =
    "EXPLAIN EXECUTE read_after('{T}', {P}, {L})";

}  // namespace

// The reader's session: only the two statements below run on it. One
// generic plan per session: planned for each call's checkpoint (the custom
// plan PostgreSQL's plan cache otherwise keeps choosing here), the read cost
// more to plan than to run, about 0.2 to 0.4 ms of PostgreSQL per wake-up. A
// generic plan cannot see how selective the checkpoint is, so the two
// settings after it rule out a full scan and a sort whatever the statistics
// say.
void PrepareReader(pqxx::connection& conn) {
  conn.set_variable("plan_cache_mode", "force_generic_plan");
  conn.set_variable("enable_seqscan", "off");
  conn.set_variable("enable_sort", "off");
  conn.prepare("read_after", kReadAfterSql);
  conn.prepare("head", kHeadSql);
}

EventReader::EventReader(std::string uri)
    : uri_(std::move(uri)),
      session_(std::make_unique<db::Session>(
          db::Session::Options{.uri = uri_,
                               .application_name = "bank-projector-reader",
                               .on_connect = PrepareReader})) {}

EventReader::~EventReader() = default;

void EventReader::Disconnect() {
  session_->Disconnect();
  copy_.reset();
}

absl::StatusOr<std::vector<eventstore::RecordedEvent>> EventReader::CopyAfter(
    const Checkpoint& after, int limit) {
  const std::string sql = absl::StrReplaceAll(
      kCopyAfterSql, {{"{T}", absl::StrCat(after.transaction_id)},
                      {"{P}", absl::StrCat(after.position)},
                      {"{L}", absl::StrCat(limit)}});
  std::vector<eventstore::RecordedEvent> out;
  out.reserve(static_cast<size_t>(std::max(0, limit)));
  absl::Status read = db::RunMapped(
      "reading events", [this] { copy_.reset(); },
      [&]() -> absl::Status {
        if (copy_ == nullptr) {
          copy_ = std::make_unique<db::BinaryCopyOut>(uri_,
                                                      "bank-projector-reader");
        }
        using F = db::BinaryCopyOut;
        copy_->Run(sql, [&out](const std::vector<F::Field>& row) {
          if (row.size() != 8) {
            throw pqxx::data_exception(
                "unexpected row shape in the events COPY");
          }
          eventstore::RecordedEvent& e = out.emplace_back();
          e.position = F::Int64(row[0]);
          e.stream_id = F::UuidText(row[1]);
          e.stream_version = F::Int64(row[2]);
          e.type = std::string(row[3].bytes);
          e.schema_version = F::Int32(row[4]);
          e.data = std::string(F::JsonbText(row[5]));
          e.transaction_id = F::Int64(row[6]);
          e.recorded_at = F::Timestamp(row[7]);
        });
        return absl::OkStatus();
      });
  if (!read.ok()) return read;
  return out;
}

absl::StatusOr<std::vector<eventstore::RecordedEvent>> EventReader::ReadAfter(
    const Checkpoint& after, int limit) {
  return session_->Run(
      "reading events",
      [&](pqxx::connection& c)
          -> absl::StatusOr<std::vector<eventstore::RecordedEvent>> {
        pqxx::nontransaction tx(c);
        pqxx::result r =
            tx.exec_prepared("read_after", std::to_string(after.transaction_id),
                             after.position, limit);
        std::vector<eventstore::RecordedEvent> out;
        out.reserve(r.size());
        for (const auto& row : r) {
          eventstore::RecordedEvent e;
          e.position = row[0].as<int64_t>();
          e.stream_id = row[1].as<std::string>();
          e.stream_version = row[2].as<int64_t>();
          e.type = row[3].as<std::string>();
          e.schema_version = row[4].as<int>();
          e.data = row[5].as<std::string>();
          e.transaction_id = row[6].as<int64_t>();
          e.recorded_at = absl::FromUnixMicros(row[7].as<int64_t>());
          out.push_back(std::move(e));
        }
        return out;
      });
}

absl::StatusOr<HeadInfo> EventReader::Head(const Checkpoint& after) {
  return session_->Run(
      "reading the events head",
      [&](pqxx::connection& c) -> absl::StatusOr<HeadInfo> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_prepared(
            "head", std::to_string(after.transaction_id), after.position);
        HeadInfo h;
        h.head_position = r[0][0].as<int64_t>();
        if (!r[0][1].is_null()) {
          h.oldest_pending = absl::FromUnixMicros(r[0][1].as<int64_t>());
        }
        return h;
      });
}

absl::StatusOr<EventReader::ReadPlan> EventReader::ExplainReadAfter(
    const Checkpoint& after, int limit) {
  return session_->Run(
      "explaining the events read",
      [&](pqxx::connection& c) -> absl::StatusOr<ReadPlan> {
        pqxx::nontransaction tx(c);
        ReadPlan plan;
        pqxx::result counts = tx.exec(kPlanCountsSql);
        if (counts.size() != 1) {
          return absl::InternalError(
              "read_after is not prepared on the reader");
        }
        plan.generic_plans = counts[0][0].as<int64_t>();
        plan.custom_plans = counts[0][1].as<int64_t>();
        // EXECUTE takes its arguments as literals; all three are integers.
        pqxx::result r = tx.exec(absl::StrReplaceAll(
            kExplainReadAfterSql, {{"{T}", absl::StrCat(after.transaction_id)},
                                   {"{P}", absl::StrCat(after.position)},
                                   {"{L}", absl::StrCat(limit)}}));
        for (const auto& row : r) {
          absl::StrAppend(&plan.explain, row[0].as<std::string>(), "\n");
        }
        return plan;
      });
}

}  // namespace bank::projector
