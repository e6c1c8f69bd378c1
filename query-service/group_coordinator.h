#ifndef BANK_QUERY_SERVICE_GROUP_COORDINATOR_H_
#define BANK_QUERY_SERVICE_GROUP_COORDINATOR_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "common/metrics/metrics.h"
#include "query-service/consume_session.h"
#include "query-service/group_store.h"
#include "query-service/read_model_reader.h"
#include "query-service/stream_hub.h"

namespace bank::query {

// The server side of QueryService.Consume on one query service
// (docs/architecture.md, "Consumer groups"). Its Consume streams register
// here once joined. A thread of its own, every `tick` and at once after a
// join or a leave, rebalances each group that has members here (renewing
// their leases: group_store.h) and hands each of them the result; the
// replicas share nothing else, so each learns within a tick what another
// changed. Thread-safe.
class GroupCoordinator {
 public:
  struct Options {
    int partition_count = 32;  // Of the groups created here.
    absl::Duration lease = absl::Seconds(5);
    absl::Duration tick = absl::Milliseconds(500);
    int default_unacked = 1000;
    int max_unacked = 10000;  // Larger requests are clamped.
    int page = 1000;          // Entries read at a time per stream.
  };

  // Records bank_group_members{group}, bank_group_partitions{group,member},
  // bank_group_unacked{group}, bank_group_redeliveries_total{group},
  // bank_group_lag_positions{group} and bank_group_fenced_total.
  GroupCoordinator(GroupStore& store, ReadModelReader& reader, StreamHub& hub,
                   metrics::Registry& metrics, Options options);
  // REQUIRES: no Consume stream is open (the server has shut down).
  ~GroupCoordinator();

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Consume();

  // From the streams: `s` stored its join, or is done (it is forgotten
  // before this returns).
  void Joined(ConsumeSession* s);
  void Left(ConsumeSession* s);

 private:
  struct Leaving {
    std::string group, member, session;
  };
  void Loop();
  // Rebalances `group` and tells its streams here.
  void Rebalance(const std::string& group, const EntryPosition* checkpoint);

  GroupStore& store_;
  ReadModelReader& reader_;
  metrics::Registry& metrics_;
  const Options options_;
  metrics::RpcMetrics rpc_;
  StreamPageCache pages_;
  ConsumeDeps deps_;

  absl::Mutex mu_;
  std::map<std::string, std::set<ConsumeSession*>> groups_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> kicked_ ABSL_GUARDED_BY(mu_);
  std::vector<Leaving> leaving_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: started once the rest is ready.
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_GROUP_COORDINATOR_H_
