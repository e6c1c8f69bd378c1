#ifndef BANK_COMMON_DB_HEALTH_PROBE_H_
#define BANK_COMMON_DB_HEALTH_PROBE_H_

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace bank::db {

// Checks every `interval` that a database answers (SELECT 1 on its own
// connection, reopened when needed) and calls on_change(reachable) whenever
// the answer changes, starting with the first check. Thread-safe.
class HealthProbe {
 public:
  HealthProbe(std::string uri, absl::Duration interval,
              std::function<void(bool)> on_change);
  ~HealthProbe();  // Stops the probe thread.
  bool reachable() const { return reachable_.load(); }

 private:
  void Loop();
  const std::string uri_;
  const absl::Duration interval_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> reachable_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace bank::db

#endif  // BANK_COMMON_DB_HEALTH_PROBE_H_
