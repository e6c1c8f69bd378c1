#include "query-service/consume_session.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "bank/internal/v1/wire.pb.h"
#include "common/grpc/raw_request.h"
#include "common/grpc/status.h"
#include "common/util/uuid.h"
#include "query-service/group_coordinator.h"
#include "query-service/group_logic.h"

namespace bank::query {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(30);
// Progress is saved at most this often while entries flow (and at the
// rebalance tick after, and when the stream ends): a save is a write to the
// database, and progress saved late only means more entries delivered again
// after a crash.
constexpr absl::Duration kSaveEvery = absl::Milliseconds(100);

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// A message to write, from a serialized ConsumeResponse (copied).
grpc::ByteBuffer Bytes(const std::string& wire) {
  grpc::Slice slice(wire.data(), wire.size());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

ConsumeSession::ConsumeSession(ConsumeDeps& deps)
    : deps_(deps), id_(util::NewUuid()) {
  if (!deps_.host.AddConsumer(this)) {
    registered_ = false;
    status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "too many open streams on this query service; "
                           "retry later or on another replica");
    Finish(status_);
    return;
  }
  StartSendInitialMetadata();
  StartRead(&in_);
}

void ConsumeSession::Wake() {
  absl::MutexLock lock(&mu_);
  dirty_ = true;
  ScheduleIfIdle();
}

void ConsumeSession::End(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!end_) end_ = status;
  ScheduleIfIdle();  // The pool finishes it.
}

absl::Time ConsumeSession::WriteStartedAt() const {
  absl::MutexLock lock(&mu_);
  return writing_ ? write_started_ : absl::InfiniteFuture();
}

int ConsumeSession::unacked() const {
  absl::MutexLock lock(&mu_);
  return state_ ? state_->unacked() : 0;
}

int ConsumeSession::partitions() const {
  absl::MutexLock lock(&mu_);
  return state_ ? static_cast<int>(state_->partitions().size()) : 0;
}

void ConsumeSession::Apply(const GroupView& view) {
  absl::MutexLock lock(&mu_);
  if (!state_ || end_) return;
  {
    if (std::find(view.members.begin(), view.members.end(), member_) ==
        view.members.end()) {
      // Its lease ran out (the database was away longer than the lease):
      // the partitions may be another member's now.
      end_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "this member's lease ran out and its partitions "
                          "may have moved; join again");
    } else if (state_->Apply(view)) {
      // Entries of partitions it no longer has are not sent.
      const std::vector<int> mine = state_->partitions();
      std::erase_if(out_, [&mine](const Out& o) {
        return o.partition >= 0 &&
               !std::binary_search(mine.begin(), mine.end(), o.partition);
      });
      v1::ConsumeResponse r;
      r.mutable_assignment()->set_partition_count(view.partition_count);
      for (int p : mine) r.mutable_assignment()->add_partitions(p);
      out_.push_back({-1, Bytes(r.SerializeAsString())});
      dirty_ = true;
    }
  }
  // The pool writes it (the coordinator calls this under its lock, so
  // nothing here may reach gRPC).
  ScheduleIfIdle();
}

void ConsumeSession::OnReadDone(bool ok) {
  Next next;
  bool read_on = false;
  {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      // The client closed its side (or the call ended): nothing more can
      // be acknowledged.
      if (!end_) end_ = grpc::Status::OK;
    } else {
      internal::v1::ConsumeRequestWire wire;
      v1::ConsumeRequest req;
      grpc::Status s = grpcutil::DecodeRequest(in_, wire, req);
      if (s.ok()) s = Handle(req);
      if (!s.ok() && !end_) end_ = s;
      read_on = !end_;
    }
    next = Advance();
  }
  if (read_on) StartRead(&in_);
  Perform(next);
}

grpc::Status ConsumeSession::Handle(const v1::ConsumeRequest& req) {
  switch (req.kind_case()) {
    case v1::ConsumeRequest::kJoin: {
      if (join_seen_) return Invalid("join was sent already; send it once");
      const v1::JoinGroup& j = req.join();
      if (absl::Status s = ValidateGroupName(j.group()); !s.ok()) {
        return Invalid(std::string(s.message()));
      }
      if (j.member().empty() || j.member().size() > 200) {
        return Invalid("member must be 1 to 200 bytes of UTF-8");
      }
      if (j.start() < 0 || j.start() > v1::JoinGroup::START_FROM_NOW) {
        return Invalid("start must be START_FROM_BEGINNING or START_FROM_NOW");
      }
      if (j.max_unacked() < 0) {
        return Invalid("max_unacked must be >= 0 (0: the server's default)");
      }
      join_seen_ = true;
      join_ = j;
      ScheduleIfIdle();
      return grpc::Status::OK;
    }
    case v1::ConsumeRequest::kAck:
      if (!join_seen_) return Invalid("ack before join: send join first");
      // Acknowledgements of entries not in flight here move nothing.
      if (state_ && state_->Ack({req.ack().positions().begin(),
                                 req.ack().positions().end()}) > 0) {
        save_due_ = dirty_ = true;
        ScheduleIfIdle();
      }
      return grpc::Status::OK;
    default:
      return Invalid("a ConsumeRequest must hold join or ack");
  }
}

bool ConsumeSession::SaveDue() const {
  return save_due_ && absl::Now() >= next_save_;
}

bool ConsumeSession::WantsRead() const {
  // Reads overlap the writes of what the last read found, one page ahead.
  return dirty_ && state_ && !end_ && state_->WantsEntries() &&
         static_cast<int>(out_.size()) < deps_.page;
}

void ConsumeSession::ScheduleIfIdle() {
  if (working_ || finished_) return;
  if (!join_ && !end_ && !SaveDue() && !WantsRead()) return;
  working_ = true;
  deps_.host.Run(this, "", [this] { Work(); });
}

void ConsumeSession::Work() {
  std::optional<v1::JoinGroup> join;
  std::vector<GroupStore::Progress> save;
  std::optional<EntryPosition> from;
  {
    absl::MutexLock lock(&mu_);
    if (!end_) join = std::move(join_);
    join_.reset();
    if (state_ && (SaveDue() || end_)) {
      save = state_->ProgressToSave();
      save_due_ = false;
      next_save_ = absl::Now() + kSaveEvery;
    }
    if (state_) {
      if (WantsRead()) {
        from = state_->ReadFrom();
        dirty_ = false;
      }
    }
  }
  if (join.has_value()) Join(*join);
  absl::Status failed;
  if (!save.empty()) {
    absl::StatusOr<int> fenced =
        deps_.store.SaveProgress(group_, save, absl::Now() + kDeadline);
    if (fenced.ok()) {
      deps_.fenced.Inc(*fenced);
      absl::MutexLock lock(&mu_);
      state_->Saved(save);
    } else {
      failed = fenced.status();
    }
  }
  absl::StatusOr<StreamPageCache::Slice> page;
  if (from.has_value() && failed.ok()) {
    page = deps_.pages.Read(*from, deps_.page, absl::Now() + kDeadline);
    if (!page.ok()) failed = page.status();
  }
  Next next;
  {
    absl::MutexLock lock(&mu_);
    working_ = false;
    if (!failed.ok() && !end_) end_ = grpcutil::ToGrpcStatus(failed);
    if (from.has_value() && page.ok() && !end_) {
      bool full = false;
      for (const GroupMember::Delivery& d :
           state_->Take(*from, page->entries(), page->at(), &full)) {
        if (d.redelivered) redelivered_->Inc();
        out_.push_back({d.partition, Bytes(page->wire()[d.index])});
      }
      if (!full && page->more) dirty_ = true;
      // How far it read: the delivered mark, and progress where nothing is
      // in flight.
      if (!page->entries().empty()) save_due_ = true;
    }
    next = Advance();
  }
  Perform(next);
}

void ConsumeSession::Join(const v1::JoinGroup& join) {
  const int max_unacked = join.max_unacked() == 0
                              ? deps_.default_unacked
                              : std::min(join.max_unacked(), deps_.max_unacked);
  group_ = join.group();
  member_ = join.member();
  absl::StatusOr<int> count = deps_.store.Join(
      group_, member_, id_, join.start() == v1::JoinGroup::START_FROM_NOW,
      deps_.partition_count, deps_.lease, absl::Now() + kDeadline);
  if (!count.ok()) {
    End(grpcutil::ToGrpcStatus(count.status()));
    return;
  }
  redelivered_ = &deps_.registry.GetCounter(
      "bank_group_redeliveries_total",
      "Entries delivered again to a new owner of their partition, by group.",
      {{"group", group_}});
  {
    absl::MutexLock lock(&mu_);
    state_.emplace(member_, max_unacked);
    joined_ = true;
  }
  deps_.groups.Joined(this);  // Its partitions come with a rebalance.
}

ConsumeSession::Next ConsumeSession::Advance() {
  if (finished_ || writing_) return Next::kNothing;
  if (end_) {
    // Progress acknowledged so far is saved first.
    if (working_ || (state_ && save_due_)) {
      ScheduleIfIdle();
      return Next::kNothing;
    }
    finished_ = true;
    status_ = *end_;
    return Next::kFinish;
  }
  if (!out_.empty()) {
    current_ = std::move(out_.front());
    out_.pop_front();
    // With more queued behind it, gRPC may hold it to send with the next
    // ones (one frame, one system call, for many entries); the last of a
    // run goes at once.
    more_queued_ = !out_.empty();
    writing_ = true;
    write_started_ = absl::Now();
    ScheduleIfIdle();
    return Next::kWrite;
  }
  ScheduleIfIdle();
  return Next::kNothing;
}

void ConsumeSession::Perform(Next next) {
  if (next == Next::kWrite) {
    StartWrite(&current_.bytes, more_queued_
                                    ? grpc::WriteOptions().set_buffer_hint()
                                    : grpc::WriteOptions());
  }
  if (next == Next::kFinish) Finish(status_);
}

void ConsumeSession::OnWriteDone(bool ok) {
  Next next;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    deps_.host.WriteTook(absl::Now() - write_started_);
    if (ok) {
      if (current_.partition >= 0) deps_.sent.Inc();
    } else if (!end_) {
      end_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    next = Advance();
  }
  Perform(next);
}

void ConsumeSession::OnCancel() {
  End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
}

void ConsumeSession::OnDone() {
  if (registered_) deps_.host.Remove(this, "");
  bool joined;
  {
    absl::MutexLock lock(&mu_);
    joined = joined_;
  }
  if (joined) deps_.groups.Left(this);
  deps_.rpc.Record(static_cast<absl::StatusCode>(status_.error_code()),
                   absl::Now() - started_);
  delete this;
}

}  // namespace bank::query
