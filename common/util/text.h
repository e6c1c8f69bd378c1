#ifndef BANK_COMMON_UTIL_TEXT_H_
#define BANK_COMMON_UTIL_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace bank::util {

// Number of code points in s when s is valid UTF-8 (shortest form, no
// surrogates, at most U+10FFFF); nullopt otherwise.
std::optional<size_t> Utf8Length(absl::string_view s);

// True when s contains an ASCII control character (U+0000..U+001F, U+007F).
bool HasControlCharacter(absl::string_view s);

// True for the canonical textual form of a UUID: 8-4-4-4-12 hex digits
// (either case).
bool IsUuid(absl::string_view s);

// A random (version 4) UUID in lower case. Thread-safe.
std::string NewUuid();

// The UUID in lower case (REQUIRES: IsUuid(s)).
std::string CanonicalUuid(absl::string_view s);

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_TEXT_H_
