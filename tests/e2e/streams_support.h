#ifndef BANK_TESTS_E2E_STREAMS_SUPPORT_H_
#define BANK_TESTS_E2E_STREAMS_SUPPORT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bank/v1/bank.grpc.pb.h"
#include "tests/faults/workload.h"
#include "tests/support/system.h"

namespace bank::testing {

// One entry as a stream consumer received it.
struct Received {
  std::string account_id;
  int64_t version = 0;
  int64_t position = 0;
  bool operator==(const Received&) const = default;
};

// A StreamEntries consumer on its own thread, as a client would write one:
// it keeps the last token received and, when the stream ends UNAVAILABLE
// (the query service restarted, the database away), opens it again from
// that token. Any other end is recorded as a failure. Thread-safe.
class EntryFollower {
 public:
  EntryFollower(int port, std::string token = "", int max_batch = 0);
  ~EntryFollower();  // Stops.

  void Stop();
  std::vector<Received> received() const;
  size_t count() const;
  std::string token() const;
  int reconnects() const { return reconnects_.load(); }
  // Ends other than UNAVAILABLE (and than the cancel of Stop).
  std::vector<std::string> failures() const;

 private:
  void Run();
  const int port_;
  const int max_batch_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> reconnects_{0};
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

// The read model's history in the stream order, (transaction_id, position).
std::vector<Received> HistoryInStreamOrder(const std::string& read_uri);

// What is wrong with `got` as the whole stream of `read_uri`'s history:
// entries missing, repeated, out of the stream order, or an account's
// versions not 1, 2, 3... Empty when nothing is.
std::vector<std::string> CompareWithHistory(const std::vector<Received>& got,
                                            const std::string& read_uri);

// Rows of the read model's history, and of the events.
int64_t HistoryRows(const System& sys);
int64_t EventRows(const System& sys);
// True once the read model holds every event (within `timeout`).
bool CaughtUp(const System& sys, absl::Duration timeout);
// A deposit that must succeed.
void Deposit(System& sys, const std::string& account, int64_t amount);
// One series of the query service's /metrics (-1 when absent).
double QueryMetric(const System& sys, const std::string& series);

// Once the load stopped and the read model caught up: waits for `follower`
// to have as many entries as the history, stops it, and expects them to be
// the whole history, exactly, with no failure but UNAVAILABLE.
void ExpectTheWholeHistory(System& sys, EntryFollower& follower);

// The end of a scenario: the load stopped and checked (faults::Settle),
// then ExpectTheWholeHistory.
void SettleAndExpectTheWholeHistory(faults::Workload& w, System& sys,
                                    EntryFollower& follower);

}  // namespace bank::testing

#endif  // BANK_TESTS_E2E_STREAMS_SUPPORT_H_
