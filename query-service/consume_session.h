#ifndef BANK_QUERY_SERVICE_CONSUME_SESSION_H_
#define BANK_QUERY_SERVICE_CONSUME_SESSION_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "common/metrics/metrics.h"
#include "query-service/group_member.h"
#include "query-service/group_store.h"
#include "query-service/stream_page_cache.h"
#include "query-service/stream_reactor.h"

namespace bank::query {

class GroupCoordinator;

// What a Consume stream uses; owned by the GroupCoordinator.
struct ConsumeDeps {
  StreamHost& host;
  GroupCoordinator& groups;
  GroupStore& store;
  StreamPageCache& pages;
  metrics::Registry& registry;
  metrics::RpcMetrics& rpc;
  metrics::Counter& sent;
  metrics::Counter& fenced;
  int partition_count;   // Of groups created here.
  absl::Duration lease;  // Of a member's name.
  int default_unacked;
  int max_unacked;
  int page;  // Entries read at a time.
};

// One QueryService.Consume call (docs/architecture.md, "Consumer groups"),
// on gRPC's callback API. The client's messages are read one at a time;
// the work that touches the database (the join, saving progress, reading
// the entry stream) runs on the stream hub's pool, one task at a time per
// stream; entries and assignments are written one at a time. Like the
// other streams, it never calls into gRPC under its own lock, and is
// finished once nothing of it is in flight.
class ConsumeSession final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public OpenStream {
 public:
  explicit ConsumeSession(ConsumeDeps& deps);

  // OpenStream.
  void Wake() override;
  void End(const grpc::Status& status) override;
  absl::Time WriteStartedAt() const override;

  // The group as its latest rebalance left it (from the coordinator).
  void Apply(const GroupView& view);
  // Set once the join is stored; the same for the stream's life.
  const std::string& group() const { return group_; }
  const std::string& member() const { return member_; }
  const std::string& id() const { return id_; }
  int unacked() const;
  int partitions() const;

 private:
  enum class Next { kNothing, kWrite, kFinish };

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Handles one message from the client; an error ends the stream.
  grpc::Status Handle(const v1::ConsumeRequest& req)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WantsRead() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SaveDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleIfIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Next Advance() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Perform(Next next);
  // On the pool: the join, then progress to save, then a read.
  void Work();
  void Join(const v1::JoinGroup& join);

  ConsumeDeps& deps_;
  const std::string id_;
  const absl::Time started_ = absl::Now();
  // A ConsumeResponse's bytes to write: an entry's (as the page cache made
  // them, shared by the group's members) with its partition, or an
  // assignment's (partition -1).
  struct Out {
    int partition;
    grpc::ByteBuffer bytes;
  };
  grpc::ByteBuffer in_;
  Out current_;               // The write in flight,
  bool more_queued_ = false;  // and whether more were queued behind it.
  bool registered_ = true;
  grpc::Status status_;
  // Set by the join (on the pool) before `joined_`; read after it.
  std::string group_, member_;
  metrics::Counter* redelivered_ = nullptr;

  mutable absl::Mutex mu_;
  std::optional<v1::JoinGroup> join_ ABSL_GUARDED_BY(mu_);  // To store.
  bool join_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<GroupMember> state_ ABSL_GUARDED_BY(mu_);
  bool working_ ABSL_GUARDED_BY(mu_) = false;  // A task on the pool.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;     // Read again.
  bool save_due_ ABSL_GUARDED_BY(mu_) = false;  // Something to save,
  absl::Time next_save_ ABSL_GUARDED_BY(mu_);   // not before then.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  std::deque<Out> out_ ABSL_GUARDED_BY(mu_);  // To write.
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_CONSUME_SESSION_H_
