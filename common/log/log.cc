#include "common/log/log.h"

#include "spdlog/sinks/stdout_sinks.h"

namespace bank::log {

absl::Status Init(const std::string& process, const std::string& level) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        "unknown log level \"" + level +
        "\" (trace, debug, info, warn, error, off)");
  }
  auto logger = spdlog::stderr_logger_mt(process);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %n[%P] %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace bank::log
