#include "common/eventstore/pg_append_outcome.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/db/array_literal.h"

namespace bank::eventstore::pg {
namespace {

// Ends the server process of the lost connection, waiting up to $3 ms for
// it to exit (false: it has not yet). No row: it is gone already (or the
// server restarted, or this is another server since a failover).
constexpr char kEndSenderSql[] = R"sql(
SELECT pg_terminate_backend(pid, $3::bigint)
FROM pg_stat_activity
WHERE pid = $1 AND application_name = $2
)sql";

// The events of the batch that are stored. When it finds any, the
// statement writes a (transactional) WAL record of its own, so that its
// commit waits for the synchronous standby to have everything before it,
// those events included. (A transaction id alone writes no WAL, and its
// commit does not wait.)
constexpr char kFindEventsSql[] = R"sql(
SELECT event_id::text, stream_version, position,
       pg_logical_emit_message(true, 'bank.append-outcome', '')
FROM events
WHERE event_id = ANY($1::uuid[])
)sql";

struct Stored {
  int64_t version = 0;
  int64_t position = 0;
};
using Found = absl::flat_hash_map<std::string, Stored>;

}  // namespace

bool SyncReplicationWatch::operator()(const char msg[]) noexcept {
  // PostgreSQL's words, whatever cancelled the wait.
  if (std::strstr(msg, "wait for synchronous replication") != nullptr) {
    cancelled_ = true;
  }
  return true;
}

absl::StatusOr<std::vector<std::optional<std::vector<StreamResult>>>>
FindOutcome(db::ConnectionPool& pool, db::PooledCall call, const SentOn& sent,
            const std::vector<BatchItem>& items) {
  std::vector<std::string> ids;
  for (const BatchItem& item : items) {
    for (const StreamAppend& a : *item.appends) {
      for (const NewEvent& e : a.events) ids.push_back(e.event_id);
    }
  }
  const std::string id_array = db::ToArrayLiteral(ids);
  call.repeatable = true;
  // Give up early enough for the answer to reach the caller before its own
  // deadline (which is this one, seen from the other end): "outcome
  // unknown" is worth more to it than DEADLINE_EXCEEDED.
  call.deadline -=
      std::min(absl::Milliseconds(250), (call.deadline - absl::Now()) / 10);
  absl::Status last = absl::DeadlineExceededError("no time was left");
  absl::Duration backoff = absl::Milliseconds(20);
  absl::StatusOr<Found> found = last;
  while (absl::Now() < call.deadline) {
    call.outage_wait = call.deadline - absl::Now();
    found = db::RunPooled(
        pool, call,
        [&](db::ConnectionPool::Lease& conn) -> absl::StatusOr<Found> {
          pqxx::nontransaction tx(*conn);
          if (sent.pid != 0) {
            const int64_t wait_ms = std::clamp<int64_t>(
                absl::ToInt64Milliseconds(call.deadline - absl::Now()), 1,
                1000);
            pqxx::result r = tx.exec_params(kEndSenderSql, sent.pid,
                                            sent.application_name, wait_ms);
            if (!r.empty() && !r[0][0].as<bool>()) {
              return absl::UnavailableError(
                  "the server process of the lost connection has not ended");
            }
          }
          SyncReplicationWatch watch(*conn);
          pqxx::result r = tx.exec_params(kFindEventsSql, id_array);
          if (watch.cancelled()) {
            return absl::UnavailableError(
                "the synchronous standby did not confirm the append");
          }
          Found out;
          for (const auto& row : r) {
            out[row[0].as<std::string>()] =
                Stored{row[1].as<int64_t>(), row[2].as<int64_t>()};
          }
          return out;
        });
    if (found.ok()) break;
    last = found.status();
    absl::SleepFor(std::min(backoff, call.deadline - absl::Now()));
    backoff = std::min(2 * backoff, absl::Milliseconds(500));
  }
  if (!found.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "could not learn whether the append committed: ", last.message()));
  }
  // A command's events are stored all or none: its first tells.
  std::vector<std::optional<std::vector<StreamResult>>> outcome;
  for (const BatchItem& item : items) {
    const auto& appends = *item.appends;
    if (!found->contains(appends.front().events.front().event_id)) {
      outcome.emplace_back();
      continue;
    }
    std::vector<StreamResult> results;
    for (const StreamAppend& a : appends) {
      auto it = found->find(a.events.back().event_id);
      if (it == found->end()) {
        return absl::InternalError(absl::StrCat("a command's events on stream ",
                                                a.stream_id,
                                                " are stored only in part"));
      }
      results.push_back({a.stream_id, it->second.version, it->second.position});
    }
    outcome.emplace_back(std::move(results));
  }
  return outcome;
}

}  // namespace bank::eventstore::pg
