#ifndef BANK_COMMON_UTIL_UUID_H_
#define BANK_COMMON_UTIL_UUID_H_

#include <string>

#include "absl/strings/string_view.h"

namespace bank::util {

// True for the canonical textual form of a UUID: 8-4-4-4-12 hex digits
// (either case).
bool IsUuid(absl::string_view s);

// A random (version 4) UUID in lower case. Thread-safe.
std::string NewUuid();

// The UUID in lower case (REQUIRES: IsUuid(s)).
std::string CanonicalUuid(absl::string_view s);

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_UUID_H_
