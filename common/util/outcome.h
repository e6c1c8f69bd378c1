#ifndef BANK_COMMON_UTIL_OUTCOME_H_
#define BANK_COMMON_UTIL_OUTCOME_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace bank::util {

// A write's failure says whether the write may have taken effect. Most
// failures are known to have changed nothing (nothing was sent, or the
// database refused it); one that may have committed carries this payload, set
// where that becomes known (the database edge) and read where the answer
// leaves the process (the command service's gRPC edge).
inline constexpr char kOutcomePayload[] = "bank.outcome";

// UNAVAILABLE for a write that may or may not have committed.
inline absl::Status OutcomeUnknownError(absl::string_view message) {
  absl::Status s = absl::UnavailableError(message);
  s.SetPayload(kOutcomePayload, absl::Cord("unknown"));
  return s;
}

inline bool IsOutcomeUnknown(const absl::Status& s) {
  return !s.ok() && s.GetPayload(kOutcomePayload).has_value();
}

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_OUTCOME_H_
