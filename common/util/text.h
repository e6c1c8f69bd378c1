#ifndef BANK_COMMON_UTIL_TEXT_H_
#define BANK_COMMON_UTIL_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bank::util {

// Number of code points in s when s is valid UTF-8 (shortest form, no
// surrogates, at most U+10FFFF); nullopt otherwise.
std::optional<size_t> Utf8Length(absl::string_view s);

// True when s contains an ASCII control character (U+0000..U+001F, U+007F).
bool HasControlCharacter(absl::string_view s);

// Appends t in UTC as "YYYY-MM-DD HH:MM:SS.ffffff+00", the form PostgreSQL
// reads for timestamptz (microseconds; finer digits are dropped), the same as
// absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", t, UTC) but without the time
// zone machinery, for bulk loads (years 1000 to 9999; others go through
// absl::FormatTime). REQUIRES: t is finite.
void AppendUtcTimestamp(absl::Time t, std::string* out);

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_TEXT_H_
