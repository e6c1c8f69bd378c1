#ifndef BANK_COMMON_LOG_LOG_H_
#define BANK_COMMON_LOG_LOG_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

// Debian's Abseil has its own string_view; let fmt print it like a std one.
#if !defined(ABSL_USES_STD_STRING_VIEW)
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(absl::string_view s, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(
        std::string_view(s.data(), s.size()), ctx);
  }
};
#endif

namespace bank::log {

// Sets up the process-wide logger: one line per event on stderr with UTC
// time, level and process name. `level` is trace, debug, info, warn, error
// or off; INVALID_ARGUMENT otherwise.
absl::Status Init(const std::string& process, const std::string& level);

}  // namespace bank::log

#endif  // BANK_COMMON_LOG_LOG_H_
