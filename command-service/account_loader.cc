#include "command-service/account_loader.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/domain/event_codec.h"
#include "common/log/log.h"

namespace bank::command {
namespace {

constexpr int kReadBatch = 500;

}  // namespace

AccountLoader::AccountLoader(eventstore::EventStore& store,
                             size_t cache_capacity, int snapshot_every)
    : store_(store), snapshot_every_(snapshot_every), cache_(cache_capacity) {}

absl::StatusOr<domain::BankAccount> AccountLoader::Load(const std::string& id,
                                                        bool trust_cache,
                                                        bool* from_cache,
                                                        absl::Time deadline) {
  *from_cache = false;
  std::optional<domain::AccountState> state = cache_.Get(id);
  if (state.has_value() && trust_cache) {
    *from_cache = true;
    return domain::BankAccount(*std::move(state));
  }
  if (!state.has_value()) {
    absl::StatusOr<std::optional<eventstore::Snapshot>> snap =
        store_.LoadSnapshot(id, deadline);
    if (!snap.ok()) return snap.status();
    if (snap->has_value()) {
      absl::StatusOr<domain::AccountState> decoded =
          domain::DecodeSnapshot((*snap)->schema_version, (*snap)->state);
      if (decoded.ok() && decoded->id == id &&
          decoded->version == (*snap)->version) {
        state = *std::move(decoded);
      } else if (!decoded.ok()) {
        // An old or unreadable snapshot is ignored, never misread.
        spdlog::debug("ignoring snapshot of {}: {}", id,
                      decoded.status().message());
      }
    }
  }
  domain::BankAccount account = state.has_value()
                                    ? domain::BankAccount(*std::move(state))
                                    : domain::BankAccount(id);
  while (true) {
    absl::StatusOr<std::vector<eventstore::RecordedEvent>> events =
        store_.ReadStream(id, account.state().version, kReadBatch, deadline);
    if (!events.ok()) return events.status();
    for (const eventstore::RecordedEvent& e : *events) {
      if (e.stream_version != account.state().version + 1) {
        return absl::InternalError(
            absl::StrCat("stream ", id, " skips from version ",
                         account.state().version, " to ", e.stream_version));
      }
      absl::StatusOr<domain::AccountEvent> decoded =
          domain::DecodeEvent(e.type, e.schema_version, e.data);
      if (!decoded.ok()) {
        return absl::InternalError(
            absl::StrCat("event at position ", e.position, " of account ", id,
                         " cannot be read: ", decoded.status().message()));
      }
      if (absl::Status s = account.Apply(*decoded); !s.ok()) {
        return absl::InternalError(
            absl::StrCat("event at position ", e.position,
                         " cannot be applied: ", s.message()));
      }
    }
    if (static_cast<int>(events->size()) < kReadBatch) break;
  }
  if (account.state().version > 0) cache_.Put(account.state());
  return account;
}

bool AccountLoader::SnapshotDue(
    const std::vector<domain::BankAccount>& accounts) const {
  const int n = snapshot_every_;
  if (n <= 0) return false;
  for (const domain::BankAccount& account : accounts) {
    if (account.state().version / n != account.committed_version() / n) {
      return true;
    }
  }
  return false;
}

void AccountLoader::SaveSnapshots(
    const std::vector<domain::BankAccount>& accounts, absl::Time deadline) {
  const int n = snapshot_every_;
  if (n <= 0) return;
  for (const domain::BankAccount& account : accounts) {
    const domain::AccountState& state = account.state();
    if (state.version / n == account.committed_version() / n) continue;
    eventstore::Snapshot snap{state.id, state.version,
                              domain::kSnapshotSchemaVersion,
                              domain::EncodeSnapshot(state)};
    absl::Status s = store_.SaveSnapshot(snap, deadline);
    if (!s.ok()) {
      spdlog::warn("snapshot of {} failed: {}", state.id, s.message());
    }
  }
}

}  // namespace bank::command
