#include "common/eventstore/memory_event_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bank::eventstore {
namespace {

absl::Status CheckDeadline(absl::Time deadline) {
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError("deadline passed before the call ran");
  }
  return absl::OkStatus();
}

}  // namespace

void MemoryEventStore::SetBeforeAppend(BeforeAppend hook) {
  absl::MutexLock lock(&mu_);
  before_append_ = std::move(hook);
}

absl::Status MemoryEventStore::RunBeforeAppend() {
  BeforeAppend hook;
  {
    absl::MutexLock lock(&mu_);
    hook = before_append_;
  }
  return hook ? hook() : absl::OkStatus();
}

absl::StatusOr<std::vector<StreamResult>> MemoryEventStore::ApplyLocked(
    const std::vector<StreamAppend>& appends, const CommandRecord* command,
    int64_t txid) {
  // Checked in full before anything is written: all of it or none.
  absl::flat_hash_set<std::string> new_ids;
  for (const StreamAppend& a : appends) {
    auto it = streams_.find(a.stream_id);
    const int64_t version =
        it == streams_.end() ? 0 : static_cast<int64_t>(it->second.size());
    if (a.expected_version != version) {
      return absl::AbortedError(absl::StrCat(
          "stream ", a.stream_id, " is at version ", version, ", not ",
          a.expected_version));
    }
    if (!a.after_event_id.empty() &&
        (version == 0 ||
         events_[it->second[version - 1]].event_id != a.after_event_id)) {
      return absl::AbortedError(
          absl::StrCat("stream ", a.stream_id, " does not follow event ",
                       a.after_event_id, " at version ", version));
    }
    for (const NewEvent& e : a.events) {
      if (event_ids_.contains(e.event_id) || !new_ids.insert(e.event_id).second) {
        return absl::AbortedError(
            absl::StrCat("event ", e.event_id, " is stored already"));
      }
    }
  }
  if (command != nullptr && commands_.contains(command->command_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("command ", command->command_id, " is recorded already"));
  }
  std::vector<StreamResult> results;
  const absl::Time now = absl::Now();
  for (const StreamAppend& a : appends) {
    std::vector<size_t>& stream = streams_[a.stream_id];
    for (const NewEvent& e : a.events) {
      RecordedEvent r;
      r.position = static_cast<int64_t>(events_.size()) + 1;
      r.event_id = e.event_id;
      r.stream_id = a.stream_id;
      r.stream_version = static_cast<int64_t>(stream.size()) + 1;
      r.type = e.type;
      r.schema_version = e.schema_version;
      r.data = e.data;
      r.metadata = e.metadata;
      r.transaction_id = txid;
      r.recorded_at = now;
      stream.push_back(events_.size());
      event_ids_.insert(e.event_id);
      events_.push_back(std::move(r));
    }
    const RecordedEvent& last = events_[stream.back()];
    results.push_back({a.stream_id, last.stream_version, last.position});
  }
  if (command != nullptr) {
    StoredCommand stored{command->request_type, command->request, results};
    // As the PostgreSQL store records them: by stream id.
    std::sort(stored.results.begin(), stored.results.end(),
              [](const StreamResult& x, const StreamResult& y) {
                return x.stream_id < y.stream_id;
              });
    commands_.emplace(command->command_id, std::move(stored));
  }
  return results;
}

absl::StatusOr<std::vector<StreamResult>> MemoryEventStore::Append(
    const std::vector<StreamAppend>& appends, const CommandRecord* command,
    absl::Time deadline) {
  if (absl::Status s = RunBeforeAppend(); !s.ok()) return s;
  if (absl::Status s = CheckDeadline(deadline); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  return ApplyLocked(appends, command, ++last_txid_);
}

std::vector<absl::StatusOr<std::vector<StreamResult>>>
MemoryEventStore::AppendBatch(const std::vector<BatchItem>& items,
                              absl::Time deadline) {
  absl::Status whole = RunBeforeAppend();
  if (whole.ok()) whole = CheckDeadline(deadline);
  std::vector<absl::StatusOr<std::vector<StreamResult>>> out;
  if (!whole.ok()) {
    out.assign(items.size(), whole);
    return out;
  }
  absl::MutexLock lock(&mu_);
  const int64_t txid = ++last_txid_;
  for (const BatchItem& item : items) {
    out.push_back(ApplyLocked(*item.appends, item.command, txid));
  }
  return out;
}

absl::StatusOr<std::vector<RecordedEvent>> MemoryEventStore::ReadStream(
    const std::string& stream_id, int64_t after_version, int max_count,
    absl::Time deadline) {
  if (absl::Status s = CheckDeadline(deadline); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  std::vector<RecordedEvent> out;
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return out;
  for (int64_t v = std::max<int64_t>(after_version, 0);
       v < static_cast<int64_t>(it->second.size()) &&
       static_cast<int>(out.size()) < max_count;
       ++v) {
    out.push_back(events_[it->second[v]]);
  }
  return out;
}

absl::StatusOr<std::optional<StoredCommand>> MemoryEventStore::FindCommand(
    const std::string& command_id, absl::Time deadline) {
  if (absl::Status s = CheckDeadline(deadline); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = commands_.find(command_id);
  if (it == commands_.end()) return std::optional<StoredCommand>();
  return std::optional<StoredCommand>(it->second);
}

absl::StatusOr<std::optional<Snapshot>> MemoryEventStore::LoadSnapshot(
    const std::string& stream_id, absl::Time deadline) {
  if (absl::Status s = CheckDeadline(deadline); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = snapshots_.find(stream_id);
  if (it == snapshots_.end()) return std::optional<Snapshot>();
  return std::optional<Snapshot>(it->second);
}

absl::Status MemoryEventStore::SaveSnapshot(const Snapshot& snapshot,
                                            absl::Time deadline) {
  if (absl::Status s = CheckDeadline(deadline); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = snapshots_.try_emplace(snapshot.stream_id, snapshot);
  // As sql: replaced by a newer one, or one of another schema version.
  if (!inserted && (it->second.version < snapshot.version ||
                    it->second.schema_version != snapshot.schema_version)) {
    it->second = snapshot;
  }
  return absl::OkStatus();
}

std::vector<RecordedEvent> MemoryEventStore::AllEvents() {
  absl::MutexLock lock(&mu_);
  return events_;
}

}  // namespace bank::eventstore
