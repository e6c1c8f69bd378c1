#ifndef BANK_QUERY_SERVICE_RESUME_TOKEN_H_
#define BANK_QUERY_SERVICE_RESUME_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace bank::query {

// Where a StreamEntries consumer stands: the event store's tailing order of
// the last entry it received (docs/architecture.md, "Streams"). {0, 0}: before
// the first entry.
struct EntryPosition {
  int64_t transaction_id = 0;
  int64_t position = 0;
  friend bool operator==(const EntryPosition& a, const EntryPosition& b) {
    return a.transaction_id == b.transaction_id && a.position == b.position;
  }
  friend bool operator<(const EntryPosition& a, const EntryPosition& b) {
    return a.transaction_id != b.transaction_id
               ? a.transaction_id < b.transaction_id
               : a.position < b.position;
  }
};

// The opaque resume token of `at`, for the deployment named by
// `deployment` (a token of another bank is refused). A page token
// (page_token.h) of its own scope.
std::string EncodeResumeToken(const std::string& deployment, EntryPosition at);
// The position of a token made by EncodeResumeToken for `deployment`; an
// empty token is {0, 0}. INVALID_ARGUMENT for any other.
absl::StatusOr<EntryPosition> DecodeResumeToken(const std::string& deployment,
                                                const std::string& token);

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_RESUME_TOKEN_H_
