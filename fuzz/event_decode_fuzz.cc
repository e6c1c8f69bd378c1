// Fuzzes the decoding of stored data: event JSON of every type and schema
// version (with the upcaster), snapshots, and query page tokens. Whatever the
// bytes, decoding returns a value or an error, the same with and without the
// fast path for plain JSON; what decodes re-encodes to something that decodes
// to the same event. Progress notices likewise.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/domain/event_codec.h"
#include "common/readmodel/progress_notice.h"
#include "query-service/page_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bank;
  if (size < 1) return 0;
  static const char* kTypes[] = {
      "AccountOpened",    "MoneyDeposited", "MoneyWithdrawn", "TransferSent",
      "TransferReceived", "AccountClosed",  "Unknown"};
  const char* type = kTypes[data[0] % 7];
  const int version = 1 + (data[0] >> 4) % 3;
  const std::string json(reinterpret_cast<const char*>(data + 1), size - 1);
  absl::StatusOr<domain::AccountEvent> e =
      domain::DecodeEvent(type, version, json);
  // The fast path DecodeEvent tries first must agree with the full parser.
  absl::StatusOr<domain::AccountEvent> full =
      domain::DecodeEventWithoutFastPathForTesting(type, version, json);
  if (e.ok() != full.ok()) __builtin_trap();
  if (e.ok() &&
      (e->index() != full->index() ||
       domain::EncodeEvent(*e).json != domain::EncodeEvent(*full).json)) {
    __builtin_trap();
  }
  if (e.ok()) {
    domain::EncodedEvent again = domain::EncodeEvent(*e);
    absl::StatusOr<domain::AccountEvent> back =
        domain::DecodeEvent(again.type, again.schema_version, again.json);
    if (!back.ok() || domain::EncodeEvent(*back).json != again.json) {
      __builtin_trap();
    }
  }
  absl::StatusOr<domain::AccountState> snap =
      domain::DecodeSnapshot(domain::kSnapshotSchemaVersion, json);
  if (snap.ok()) {
    absl::StatusOr<domain::AccountState> back = domain::DecodeSnapshot(
        domain::kSnapshotSchemaVersion, domain::EncodeSnapshot(*snap));
    if (!back.ok() || !(*back == *snap)) __builtin_trap();
  }
  (void)query::DecodePageToken("accounts", json);
  // A progress notice that decodes re-encodes to notices that decode to the
  // same batch.
  readmodel::ProgressNotice notice = readmodel::DecodeProgress(json);
  if (!notice.reset && !notice.accounts.empty() && notice.accounts[0].has_row) {
    std::vector<readmodel::MovedAccount> back;
    for (const std::string& payload :
         readmodel::EncodeProgress(notice.applied, notice.accounts)) {
      readmodel::ProgressNotice part = readmodel::DecodeProgress(payload);
      if (part.reset || part.applied != notice.applied) __builtin_trap();
      back.insert(back.end(), part.accounts.begin(), part.accounts.end());
    }
    // Owners and currencies go along only when every account has them.
    std::vector<readmodel::MovedAccount> expected = notice.accounts;
    const bool owners =
        std::all_of(expected.begin(), expected.end(),
                    [](const auto& a) { return !a.owner.empty(); });
    for (readmodel::MovedAccount& a : expected) {
      if (!owners) a.owner.clear(), a.currency.clear();
    }
    if (back != expected) __builtin_trap();
  }
  return 0;
}
