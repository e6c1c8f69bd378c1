#ifndef BANK_QUERY_SERVICE_STREAM_REACTOR_H_
#define BANK_QUERY_SERVICE_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc/status.h"
#include "common/metrics/metrics.h"

namespace bank::query {

// One open stream as its hub sees it.
class OpenStream {
 public:
  // The read model may have moved: read on if idle.
  virtual void Wake() = 0;
  // Ends the stream with `status` as soon as nothing of it is in flight.
  virtual void End(const grpc::Status& status) = 0;
  // When the write in flight started, or InfiniteFuture when none is.
  virtual absl::Time WriteStartedAt() const = 0;

 protected:
  ~OpenStream() = default;
};

// What a stream needs of its hub (StreamHub).
class StreamHost {
 public:
  // Registers a stream (with the version a WatchAccount stream has read,
  // null for others); false when no more may open.
  virtual bool Add(OpenStream* s, const std::string& account,
                   const std::atomic<int64_t>* version) = 0;
  // Registers a Consume stream: woken like a StreamEntries one.
  virtual bool AddConsumer(OpenStream* s) = 0;
  virtual void Remove(OpenStream* s, const std::string& account) = 0;
  // Runs `work` (a read, then what follows it) for `stream`, whose account
  // is `account` ("" for a StreamEntries stream), on a pool of its kind;
  // each stream queues one at a time.
  virtual void Run(OpenStream* stream, const std::string& account,
                   std::function<void()> work) = 0;
  // A write took `d` from its start to the client taking it.
  virtual void WriteTook(absl::Duration d) = 0;

 protected:
  ~StreamHost() = default;
};

// One stream: reads a batch of Resp on the hub's pool, writes them one at a
// time, reads again. At most one read or one write is in flight, and the
// call is finished (exactly once) only when neither is. Never calls into
// gRPC under its own lock, and never touches the stream after starting a
// write or finishing (either may lead to OnDone on another thread).
template <typename Resp>
class Stream : public grpc::ServerWriteReactor<Resp>, public OpenStream {
 public:
  Stream(StreamHost& host, metrics::RpcMetrics& rpc,
         metrics::Counter& sent, std::string account)
      : host_(host), rpc_(rpc), sent_(sent), account_(std::move(account)) {}

  void Wake() override {
    absl::MutexLock lock(&mu_);
    dirty_ = true;
    ScheduleIfIdle();
  }
  void End(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (!end_) end_ = status;
    ScheduleIfIdle();  // The pool finishes it.
  }
  absl::Time WriteStartedAt() const override {
    absl::MutexLock lock(&mu_);
    return writing_ ? write_started_ : absl::InfiniteFuture();
  }

 protected:
  // Reads what comes next into `out` (nothing: nothing new); `more` when
  // there may be more right away. On the pool, not under the lock.
  virtual absl::Status ReadMore(std::deque<Resp>& out, bool& more) = 0;
  virtual int EntriesIn(const Resp& r) const = 0;

  // Registers with the hub and starts reading; a stream the hub refuses is
  // finished with RESOURCE_EXHAUSTED. The subclass's last act.
  void Begin(const std::atomic<int64_t>* version) {
    if (!host_.Add(this, account_, version)) {
      registered_ = false;
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many open streams on this query service; "
                          "retry later or on another replica"));
      return;
    }
    // The response headers go now, not with the first entry: the client
    // sees the stream open at once, and a live entry does not pay for them.
    this->StartSendInitialMetadata();
    Wake();
  }

 private:
  enum class Next { kNothing, kWrite, kFinish };

  void ScheduleIfIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || writing_ || finished_ || (!dirty_ && !end_)) return;
    reading_ = true;
    dirty_ = false;
    host_.Run(this, account_, [this] { Step(); });
  }
  // What to do once no read or write is in flight.
  Next Advance(grpc::Status* finish) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (end_) {
      finished_ = true;
      *finish = *end_;
      return Next::kFinish;
    }
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      write_started_ = absl::Now();
      return Next::kWrite;
    }
    ScheduleIfIdle();
    return Next::kNothing;
  }
  void Perform(Next next, const grpc::Status& finish) {
    if (next == Next::kWrite) this->StartWrite(&current_);
    if (next == Next::kFinish) Finish(finish);
  }
  // On the pool: reads unless the stream is ending, then goes on.
  void Step() {
    bool ending;
    {
      absl::MutexLock lock(&mu_);
      ending = end_.has_value();
    }
    std::deque<Resp> got;
    bool more = false;
    absl::Status read = ending ? absl::OkStatus() : ReadMore(got, more);
    Next next;
    grpc::Status finish;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!read.ok() && !end_) end_ = grpcutil::ToGrpcStatus(read);
      dirty_ = dirty_ || more;
      pending_ = std::move(got);
      next = Advance(&finish);
    }
    Perform(next, finish);
  }
  void Finish(const grpc::Status& status) {
    status_ = status;
    grpc::ServerWriteReactor<Resp>::Finish(status);
  }

  void OnWriteDone(bool ok) override {
    Next next;
    grpc::Status finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      host_.WriteTook(absl::Now() - write_started_);
      if (ok) {
        sent_.Inc(EntriesIn(current_));
      } else if (!end_) {  // The client went away (OnCancel says so too).
        end_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      next = Advance(&finish);
    }
    Perform(next, finish);
  }
  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }
  void OnDone() override {
    if (registered_) host_.Remove(this, account_);
    rpc_.Record(static_cast<absl::StatusCode>(status_.error_code()),
                absl::Now() - started_);
    delete this;
  }

  StreamHost& host_;
  metrics::RpcMetrics& rpc_;
  metrics::Counter& sent_;
  const std::string account_;  // WatchAccount's; "" for StreamEntries.
  const absl::Time started_ = absl::Now();
  bool registered_ = true;
  grpc::Status status_;  // What the call was finished with.

  mutable absl::Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // Or finishing, on the pool.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;  // Woken since the last read.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);
  std::deque<Resp> pending_ ABSL_GUARDED_BY(mu_);  // Read, not yet written.
  Resp current_;                                   // The write in flight.
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_STREAM_REACTOR_H_
