#include "common/util/runtime.h"

#include "absl/synchronization/mutex.h"

namespace bank::util {

void ConfigureServingRuntime() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace bank::util
