#ifndef BANK_COMMON_DOMAIN_EVENT_CODEC_H_
#define BANK_COMMON_DOMAIN_EVENT_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/bank_account.h"
#include "common/domain/events.h"

namespace bank::domain {

// An event as stored: its type name, the schema version of its data, and
// its data as JSON (the protobuf JSON mapping, proto field names).
struct EncodedEvent {
  std::string type;
  int schema_version = 1;
  std::string json;
};

// The schema version that EncodeEvent writes for a type name (0 if unknown).
int CurrentSchemaVersion(absl::string_view type);

EncodedEvent EncodeEvent(const AccountEvent& event);

// Decodes a stored event, upcasting older schema versions to the current one.
// INVALID_ARGUMENT (naming the problem) for an unknown type, an unknown or
// future schema version, or data that does not parse: the caller decides
// whether that is poison.
absl::StatusOr<AccountEvent> DecodeEvent(absl::string_view type,
                                         int schema_version,
                                         absl::string_view json);

// DecodeEvent with only the full protobuf JSON parser, without the fast path
// DecodeEvent tries first; for tests that check the two agree.
absl::StatusOr<AccountEvent> DecodeEventWithoutFastPathForTesting(
    absl::string_view type, int schema_version, absl::string_view json);

// Snapshots of the aggregate's state.
inline constexpr int kSnapshotSchemaVersion = 1;
std::string EncodeSnapshot(const AccountState& state);
// INVALID_ARGUMENT when the data does not parse; FAILED_PRECONDITION when
// schema_version is not kSnapshotSchemaVersion (callers ignore the snapshot).
absl::StatusOr<AccountState> DecodeSnapshot(int schema_version,
                                            absl::string_view json);

}  // namespace bank::domain

#endif  // BANK_COMMON_DOMAIN_EVENT_CODEC_H_
