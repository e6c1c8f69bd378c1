#ifndef BANK_TESTS_SUPPORT_ORACLE_H_
#define BANK_TESTS_SUPPORT_ORACLE_H_

#include <string>
#include <vector>

namespace bank::testing {

// "Nothing lost": folds every stream of the events database from scratch with
// the domain's own apply functions and compares the result with the read
// model, account by account and history row by history row. Returns the
// differences (empty when equal); `events` counts the events seen.
std::vector<std::string> CompareReadModel(const std::string& events_uri,
                                          const std::string& read_uri,
                                          long* events = nullptr);

}  // namespace bank::testing

#endif  // BANK_TESTS_SUPPORT_ORACLE_H_
