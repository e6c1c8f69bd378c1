#include "query-service/group_coordinator.h"

#include <algorithm>
#include <optional>

#include "common/log/log.h"

namespace bank::query {
namespace {

// How long one rebalance or leave may take (the store's outage wait
// included).
constexpr absl::Duration kDeadline = absl::Seconds(10);

}  // namespace

GroupCoordinator::GroupCoordinator(GroupStore& store, ReadModelReader& reader,
                                   StreamHub& hub, metrics::Registry& metrics,
                                   Options options)
    : store_(store),
      reader_(reader),
      metrics_(metrics),
      options_(options),
      rpc_(metrics, "bank_streams_total",
           "Streams ended, by RPC and status code.",
           "bank_stream_duration_seconds",
           "How long streams stayed open, by RPC.", "rpc", "Consume"),
      pages_([&reader](EntryPosition after, int limit, absl::Time deadline) {
        return reader.ReadStream(after, limit, deadline);
      }),
      deps_{.host = hub.host(),
            .groups = *this,
            .store = store,
            .pages = pages_,
            .registry = metrics,
            .rpc = rpc_,
            .sent = metrics.GetCounter("bank_stream_entries_total",
                                       "Entries sent on streams, by RPC.",
                                       {{"rpc", "Consume"}}),
            .fenced = metrics.GetCounter(
                "bank_group_fenced_total",
                "Progress updates of partitions that had moved to another "
                "member since (they moved nothing)."),
            .partition_count = options.partition_count,
            .lease = options.lease,
            .default_unacked = options.default_unacked,
            .max_unacked = options.max_unacked,
            .page = options.page},
      thread_([this] { Loop(); }) {}

GroupCoordinator::~GroupCoordinator() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
GroupCoordinator::Consume() {
  return new ConsumeSession(deps_);
}

void GroupCoordinator::Joined(ConsumeSession* s) {
  absl::MutexLock lock(&mu_);
  groups_[s->group()].insert(s);
  kicked_.insert(s->group());
}

void GroupCoordinator::Left(ConsumeSession* s) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(s->group());
  if (it != groups_.end()) {
    it->second.erase(s);
    if (it->second.empty()) groups_.erase(it);
  }
  leaving_.push_back({s->group(), s->member(), s->id()});
  metrics_
      .GetGauge("bank_group_partitions",
                "Partitions each member served here owns.",
                {{"group", s->group()}, {"member", s->member()}})
      .Set(0);
}

void GroupCoordinator::Loop() {
  absl::Time next_tick = absl::Now();
  while (true) {
    std::vector<Leaving> leaving;
    std::set<std::string> todo;
    bool tick;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !kicked_.empty() || !leaving_.empty();
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), next_tick);
      tick = absl::Now() >= next_tick;
      leaving.swap(leaving_);
      todo.swap(kicked_);
      if (tick) {
        for (const auto& [group, sessions] : groups_) todo.insert(group);
      }
    }
    for (const Leaving& l : leaving) {
      // Not given up: the name goes when its lease runs out.
      if (absl::Status s = store_.Leave(l.group, l.member, l.session,
                                        absl::Now() + kDeadline);
          !s.ok()) {
        spdlog::warn("member {} of group {} could not leave: {}", l.member,
                     l.group, s.message());
      }
      todo.insert(l.group);
    }
    {
      // Stopping: the members that left are gone (their names free for
      // another replica at once); nothing more to hand out.
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    std::optional<EntryPosition> checkpoint;
    if (tick) {
      absl::StatusOr<EntryPosition> c =
          reader_.LiveCheckpoint(absl::Now() + kDeadline);
      if (c.ok()) checkpoint = *c;
    }
    for (const std::string& group : todo) {
      Rebalance(group, checkpoint ? &*checkpoint : nullptr);
    }
    if (tick) next_tick = absl::Now() + options_.tick;
  }
}

void GroupCoordinator::Rebalance(const std::string& group,
                                 const EntryPosition* checkpoint) {
  std::vector<std::string> members, sessions;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(group);
    if (it != groups_.end()) {
      for (ConsumeSession* s : it->second) {
        members.push_back(s->member());
        sessions.push_back(s->id());
      }
    }
  }
  absl::StatusOr<GroupView> view = store_.Rebalance(
      group, members, sessions, options_.lease, absl::Now() + kDeadline);
  if (!view.ok()) {
    // Tried again next tick; a member whose lease runs out meanwhile is
    // ended when it is seen gone.
    spdlog::warn("group {}: rebalance failed: {}", group,
                 view.status().message());
    return;
  }
  metrics_
      .GetGauge("bank_group_members", "Live members of each group.",
                {{"group", group}})
      .Set(static_cast<double>(view->members.size()));
  if (checkpoint != nullptr && !view->partitions.empty()) {
    int64_t slowest = checkpoint->position;
    for (const PartitionState& p : view->partitions) {
      slowest = std::min(slowest, p.progress.position);
    }
    metrics_
        .GetGauge("bank_group_lag_positions",
                  "How far each group's slowest partition is behind the read "
                  "model, in event positions.",
                  {{"group", group}})
        .Set(static_cast<double>(checkpoint->position - slowest));
  }
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  int unacked = 0;
  for (ConsumeSession* s : it->second) {
    s->Apply(*view);
    unacked += s->unacked();
    metrics_
        .GetGauge("bank_group_partitions",
                  "Partitions each member served here owns.",
                  {{"group", group}, {"member", s->member()}})
        .Set(s->partitions());
  }
  metrics_
      .GetGauge("bank_group_unacked",
                "Entries delivered by this query service and not yet "
                "acknowledged, by group.",
                {{"group", group}})
      .Set(unacked);
}

}  // namespace bank::query
