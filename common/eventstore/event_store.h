#ifndef BANK_COMMON_EVENTSTORE_EVENT_STORE_H_
#define BANK_COMMON_EVENTSTORE_EVENT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace bank::eventstore {

// An event to append. data and metadata are JSON objects.
struct NewEvent {
  std::string event_id;  // UUID
  std::string type;
  int schema_version = 1;
  std::string data;
  std::string metadata = "{}";
};

// Events to append to one stream; the first gets version
// expected_version + 1 (expected_version 0: the stream must not exist).
struct StreamAppend {
  std::string stream_id;  // UUID, lower case
  int64_t expected_version = 0;
  std::vector<NewEvent> events;
  // The event_id of the event at expected_version when this append was
  // decided on it before it committed (an append still in flight): the
  // append then conflicts unless that very event is stored there. Empty:
  // any stored event at expected_version will do (it was read as committed).
  std::string after_event_id;
};

// Where one stream stands after an append: its last version and the global
// position of its last event.
struct StreamResult {
  std::string stream_id;
  int64_t version = 0;
  int64_t position = 0;
};

// The command that caused an append, recorded with it for idempotency.
struct CommandRecord {
  std::string command_id;
  std::string request_type;  // e.g. "Deposit"
  std::string request;       // deterministic encoding of the request
};

// A command recorded earlier, and what its append produced.
struct StoredCommand {
  std::string request_type;
  std::string request;
  std::vector<StreamResult> results;
};

struct RecordedEvent {
  int64_t position = 0;
  std::string event_id;
  std::string stream_id;
  int64_t stream_version = 0;
  std::string type;
  int schema_version = 1;
  std::string data;
  std::string metadata;
  int64_t transaction_id = 0;
  absl::Time recorded_at;
};

struct Snapshot {
  std::string stream_id;
  int64_t version = 0;
  int schema_version = 0;
  std::string state;  // JSON
};

// An append started with EventStore::StartAppend.
class PendingAppend {
 public:
  using Callback =
      std::function<void(absl::StatusOr<std::vector<StreamResult>>)>;
  virtual ~PendingAppend() = default;
  // Blocks until the outcome is known; returns what Append would. Call once,
  // and not with Then.
  virtual absl::StatusOr<std::vector<StreamResult>> Wait() = 0;
  // Instead of Wait: calls `done` once with what Append would return, on the
  // thread that learns the outcome (this one, when it is known already). The
  // append's `appends` and `command` must stay alive until then. `done` must
  // not block: it may run on the thread that commits appends.
  virtual void Then(Callback done) = 0;
};

// The append-only event store. Implementations are thread-safe. Every call
// gives up at `deadline` (DEADLINE_EXCEEDED) and answers UNAVAILABLE when the
// database cannot be reached.
class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends the events of every stream, and the command record when given, in
  // one transaction: all of it or none. Returns one result per StreamAppend,
  // in the same order.
  //   ABORTED: a stream is no longer at its expected_version (another writer
  //            got there first); nothing was written.
  //   ALREADY_EXISTS: the command_id is recorded already; nothing written.
  //   UNAVAILABLE: no connection, or the commit's outcome is unknown.
  virtual absl::StatusOr<std::vector<StreamResult>> Append(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) = 0;

  // Starts an append and returns at once. Appends started one after the other
  // are applied in that order on each stream they share, so a later one may
  // build on the versions of an earlier one still in flight (and fails with
  // ABORTED if that one fails). `appends` and `command` must stay alive until
  // Wait returns. By default the append happens here, synchronously.
  virtual std::unique_ptr<PendingAppend> StartAppend(
      const std::vector<StreamAppend>& appends, const CommandRecord* command,
      absl::Time deadline) {
    class Done final : public PendingAppend {
     public:
      explicit Done(absl::StatusOr<std::vector<StreamResult>> r)
          : r_(std::move(r)) {}
      absl::StatusOr<std::vector<StreamResult>> Wait() override {
        return std::move(r_);
      }
      void Then(Callback done) override { done(std::move(r_)); }

     private:
      absl::StatusOr<std::vector<StreamResult>> r_;
    };
    return std::make_unique<Done>(Append(appends, command, deadline));
  }

  // Up to max_count events of a stream with version > after_version, in
  // version order (empty when there are none).
  virtual absl::StatusOr<std::vector<RecordedEvent>> ReadStream(
      const std::string& stream_id, int64_t after_version, int max_count,
      absl::Time deadline) = 0;

  // The record of command_id, or nullopt if none.
  virtual absl::StatusOr<std::optional<StoredCommand>> FindCommand(
      const std::string& command_id, absl::Time deadline) = 0;

  // The latest snapshot of a stream, or nullopt.
  virtual absl::StatusOr<std::optional<Snapshot>> LoadSnapshot(
      const std::string& stream_id, absl::Time deadline) = 0;

  // Stores a snapshot unless a newer one is stored already.
  virtual absl::Status SaveSnapshot(const Snapshot& snapshot,
                                    absl::Time deadline) = 0;
};

// One command's append inside a batch (see BatchAppender).
struct BatchItem {
  const std::vector<StreamAppend>* appends = nullptr;
  const CommandRecord* command = nullptr;  // null: not deduplicated
  // When the append was started: a wait for an unreachable database counts
  // from here (InfiniteFuture: from the call of AppendBatch).
  absl::Time started = absl::InfiniteFuture();
};

// Appends the events of many commands in one transaction (group commit).
// Each command is still all-or-nothing and independent of the others: one
// command's conflict or duplicate never fails its neighbours. Returns one
// result per item, in order, with the meanings of EventStore::Append; a
// failure of the whole transaction (connection lost, timeout) is returned
// for every item.
class BatchAppender {
 public:
  virtual ~BatchAppender() = default;
  virtual std::vector<absl::StatusOr<std::vector<StreamResult>>> AppendBatch(
      const std::vector<BatchItem>& items, absl::Time deadline) = 0;
};

}  // namespace bank::eventstore

#endif  // BANK_COMMON_EVENTSTORE_EVENT_STORE_H_
