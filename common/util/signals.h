#ifndef BANK_COMMON_UTIL_SIGNALS_H_
#define BANK_COMMON_UTIL_SIGNALS_H_

namespace bank::util {

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts
// afterwards. Call first thing in main.
void BlockTerminationSignals();

// Waits for SIGINT or SIGTERM (REQUIRES: BlockTerminationSignals() was called)
// and returns its number.
int WaitForTerminationSignal();

}  // namespace bank::util

#endif  // BANK_COMMON_UTIL_SIGNALS_H_
