#ifndef BANK_TESTS_FAULTS_WORKLOAD_H_
#define BANK_TESTS_FAULTS_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"

namespace bank::faults {

// One command the workload sent, and what the client saw.
struct Op {
  enum Kind { kDeposit, kWithdraw, kTransfer } kind;
  std::string command_id;
  std::string account;  // from, for transfers
  std::string to;       // transfers only
  int64_t amount = 0;
  // OK, a definitive refusal, or unknown (the outcome cannot be known yet:
  // UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED...).
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  bool unknown = true;
  // The first answer was UNAVAILABLE with "not applied: " (the service says
  // nothing of the command was written): a definitive outcome, never sent
  // again, which the oracle checks (no events).
  bool not_applied = false;
};

// What an UNAVAILABLE answer says of the command, by its message's prefix
// (command-service/command_rpcs.h).
enum class Unavailable { kNotApplied, kOutcomeUnknown, kTransport };
Unavailable ClassifyUnavailable(const std::string& message);

// A mixed workload of deposits, withdrawals and transfers over a set of
// accounts (some hot), from many client threads, logging every request and
// its outcome for the oracle. Bounded in time. Thread-safe.
class Workload {
 public:
  struct Options {
    int clients = 8;
    int accounts = 20;
    int64_t initial = 10000;  // per account
    absl::Duration call_timeout = absl::Seconds(3);
    absl::Duration pause = absl::Milliseconds(2);  // between a client's calls
    // When set, after an acknowledged command a client reads the account
    // back from the query service with min_version (read-your-writes).
    int query_port = 0;
  };

  Workload(int command_port, Options options);
  ~Workload();

  // Opens the accounts (retrying until the service answers).
  void OpenAccounts();
  void Start();
  void Stop();

  // Sends every unknown command again with the same command_id (and the same
  // request) until each gets a definitive answer or `timeout` passes; returns
  // how many stay unknown.
  int ResolveUnknown(absl::Duration timeout);

  // Swaps the command service address (after a restart on another port).
  void SetCommandPort(int port);

  std::vector<Op> ops() const;
  const std::vector<std::string>& accounts() const { return accounts_; }
  int64_t initial_total() const {
    return options_.initial * static_cast<int64_t>(accounts_.size());
  }
  // The longest stretch without an acknowledged command while running.
  absl::Duration longest_gap() const;
  // How often each status code was the first answer to a command.
  std::map<grpc::StatusCode, int64_t> first_codes() const;
  int64_t sent() const { return sent_.load(); }
  // Reads with min_version: answered, and answered with an older version
  // than asked for (must stay 0).
  int64_t reads() const { return reads_.load(); }
  int64_t stale_reads() const { return stale_reads_.load(); }
  // Reads with min_version that failed with a code no fault explains (not
  // UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED or CANCELLED), and
  // answers of INTERNAL to a command, first or while resolving (both must
  // stay 0: INTERNAL is a failure, never an unknown outcome).
  int64_t failed_reads() const { return failed_reads_.load(); }
  int64_t internal_answers() const { return internal_answers_.load(); }
  int64_t acked() const { return acked_.load(); }
  // First answers of UNAVAILABLE, by what they say (ClassifyUnavailable).
  int64_t unavailable(Unavailable kind) const {
    return unavailable_[static_cast<int>(kind)].load();
  }

 private:
  void Client(int index);
  grpc::Status Send(Op& op, absl::Duration timeout, int64_t* version = nullptr);
  void ReadBack(const std::string& account, int64_t version);
  std::shared_ptr<v1::CommandService::Stub> stub() const;

  const Options options_;
  std::vector<std::string> accounts_;
  mutable absl::Mutex mu_;
  std::shared_ptr<v1::CommandService::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::vector<Op> ops_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ack_ ABSL_GUARDED_BY(mu_);
  absl::Duration longest_gap_ ABSL_GUARDED_BY(mu_);
  std::map<grpc::StatusCode, int64_t> first_codes_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> running_{false};
  std::atomic<int64_t> sent_{0}, acked_{0}, reads_{0}, stale_reads_{0},
      failed_reads_{0}, internal_answers_{0};
  std::atomic<int64_t> unavailable_[3] = {0, 0, 0};
  std::unique_ptr<v1::QueryService::Stub> queries_;
  std::vector<std::thread> threads_;
};

}  // namespace bank::faults

#endif  // BANK_TESTS_FAULTS_WORKLOAD_H_
