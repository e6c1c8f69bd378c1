#ifndef BANK_TESTS_E2E_GROUP_SUPPORT_H_
#define BANK_TESTS_E2E_GROUP_SUPPORT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "tests/support/system.h"

namespace bank::testing {

// One member of a consumer group on its own thread, as a client would write
// one: joins, acknowledges each entry as it arrives (unless told not to),
// and when its stream ends UNAVAILABLE, or its join is refused
// ALREADY_EXISTS (its former connection's lease still runs), joins again.
// Any other end is a failure. Thread-safe.
class GroupWorker {
 public:
  struct Options {
    int port = 0;
    std::string group;
    std::string member;
    v1::JoinGroup::StartFrom start = v1::JoinGroup::START_FROM_BEGINNING;
    int max_unacked = 0;
    bool ack = true;  // False: AckAll() acknowledges.
  };
  explicit GroupWorker(Options options);
  ~GroupWorker();  // Stops.

  // Ends the stream (the member leaves) and the thread.
  void Stop();
  // Joins through another query service from now on (takes effect at the
  // next join).
  void SetPort(int port);
  // Acknowledges every entry received and not yet acknowledged; returns how
  // many.
  int AckAll();
  // Sends an acknowledgement of `positions` as it is.
  void Ack(const std::vector<int64_t>& positions);

  struct Got {
    std::string account_id;
    int64_t version = 0;
    int64_t position = 0;
    int partition = 0;
    int assignment = 0;  // How many assignments it had had when it came.
    int join = 0;        // Its connection (1 for the first).
  };
  // Each assignment received, in order.
  struct Assigned {
    int join = 0;
    std::vector<int> partitions;
  };
  std::vector<Assigned> history() const;
  std::vector<Got> received() const;
  size_t count() const;
  // The partitions of the latest assignment, and how many it had.
  std::vector<int> partitions() const;
  int assignments() const;
  int partition_count() const;
  int joins() const { return joins_.load(); }
  std::vector<std::string> failures() const;

 private:
  void Run();
  bool Write(const v1::ConsumeRequest& req);
  Options options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> joins_{0};
  mutable absl::Mutex mu_;
  int port_ ABSL_GUARDED_BY(mu_);
  std::vector<Got> received_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> unacked_ ABSL_GUARDED_BY(mu_);
  std::vector<int> partitions_ ABSL_GUARDED_BY(mu_);
  int assignments_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Assigned> history_ ABSL_GUARDED_BY(mu_);
  int partition_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>* stream_
      ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Mutex write_mu_;
  std::thread thread_;
};

// The first error of a Consume stream that sends `requests` and then reads
// until it ends (OK if it ends OK; the stream is cancelled after `wait`).
grpc::Status ConsumeError(int port,
                          const std::vector<v1::ConsumeRequest>& requests,
                          absl::Duration wait = absl::Seconds(10));

v1::ConsumeRequest JoinRequest(const std::string& group,
                               const std::string& member, int max_unacked = 0);
v1::ConsumeRequest AckRequest(const std::vector<int64_t>& positions);

// A group's partitions as stored: partition -> (owner, generation,
// progress position).
struct StoredPartition {
  std::string owner;
  int64_t generation = 0;
  int64_t transaction_id = 0;
  int64_t position = 0;
  int64_t delivered_transaction_id = 0;
  int64_t delivered_position = 0;
};
std::map<int, StoredPartition> StoredPartitions(const std::string& read_uri,
                                                const std::string& group);

}  // namespace bank::testing

#endif  // BANK_TESTS_E2E_GROUP_SUPPORT_H_
