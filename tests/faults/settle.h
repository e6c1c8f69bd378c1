#ifndef BANK_TESTS_FAULTS_SETTLE_H_
#define BANK_TESTS_FAULTS_SETTLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tests/faults/workload.h"

namespace bank::faults {

// Checks the oracle after a scenario (load stopped, unknowns resolved):
//   1. every acknowledged command has its events in the store exactly once,
//      in one transaction, and no command id has two sets of events;
//   2. (after the projector caught up) folding the events from scratch gives
//      exactly the read model;
//   3. money is conserved and no balance is negative.
// Returns the differences found.
std::vector<std::string> CheckOracle(const Workload& w,
                                     const std::string& events_uri,
                                     const std::string& read_uri);

// The end of a scenario: stops the load, resends unknown commands until
// each has a definitive answer, waits for the projector to catch up, and
// checks the oracle and the workload's counters (as gtest failures).
struct Settled {
  int unknown_before = 0;  // Commands whose first answer left them unknown.
  std::vector<std::string> diffs;  // The oracle's differences.
};
Settled Settle(Workload& w, const std::string& events_uri,
               const std::string& read_uri);

// How often each status code was the first answer, and what the
// UNAVAILABLE ones said, in one line.
std::string FirstAnswers(const Workload& w);

// The first value of `sql`'s first row; -1 for NULL or no row, -2 when the
// query fails.
int64_t QueryValue(const std::string& uri, const std::string& sql);

}  // namespace bank::faults

#endif  // BANK_TESTS_FAULTS_SETTLE_H_
