#ifndef BANK_COMMON_UTIL_RUNTIME_H_
#define BANK_COMMON_UTIL_RUNTIME_H_

namespace bank::util {

// Process-wide settings for the long-running binaries. Call first thing in
// main, before any thread starts.
//
// Turns off absl::Mutex's deadlock detection. Debian builds Abseil without
// NDEBUG, which leaves the detection on: every Lock() then takes a global
// spin lock and updates a lock graph, a serialization point shared by all
// threads that showed up in profiles of the services. Tests keep it on.
void ConfigureServingRuntime();

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_RUNTIME_H_
