#ifndef BANK_QUERY_SERVICE_STREAM_HUB_H_
#define BANK_QUERY_SERVICE_STREAM_HUB_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "common/metrics/metrics.h"
#include "common/readmodel/progress_notice.h"
#include "common/util/worker_pool.h"
#include "query-service/progress_follower.h"
#include "query-service/read_model_reader.h"
#include "query-service/stream_reactor.h"

namespace bank::query {

// The server side of QueryService.WatchAccount and StreamEntries
// (docs/architecture.md, "Streams"), on gRPC's callback API: no thread per
// stream. Each stream reads a batch from the read database on a small
// worker pool of its kind (WatchAccount streams woken together in one
// query), writes it, one write in flight, and reads on when the
// write is done; with nothing new it sleeps until woken. The projector's
// progress notices (through the ProgressFollower) wake the streams of the
// accounts a batch moved and every StreamEntries stream; a poll, every
// `poll` (every `replica_poll` on a streaming replica, which gets no
// notices), wakes those that are behind. A client that stops reading holds
// its one batch and one write: its stream pauses, and catches up from the
// database once the client reads again. Thread-safe.
class StreamHub final : public ProgressFollower::Listener {
 public:
  struct Options {
    int default_batch = 100;
    int max_batch = 1000;
    int max_streams = 5000;  // More are refused with RESOURCE_EXHAUSTED.
    // Threads reading for WatchAccount streams, and for StreamEntries ones.
    int watch_threads = 3;
    int entries_threads = 2;
    // The reader's wait for an unreachable read database: a poll that
    // still cannot reach it after this ends every stream UNAVAILABLE.
    absl::Duration outage_wait = absl::Seconds(2);
    absl::Duration poll = absl::Milliseconds(250);
    absl::Duration replica_poll = absl::Milliseconds(20);
    // A stream whose write has waited this long counts as paused.
    absl::Duration pause_after = absl::Seconds(1);
  };

  // Records bank_streams_open{rpc}, bank_stream_entries_total{rpc},
  // bank_streams_paused, bank_stream_pauses_total and bank_streams_total
  // {rpc,code} in `metrics`.
  StreamHub(ReadModelReader& reader, metrics::Registry& metrics,
            Options options);
  // REQUIRES: no stream is open (the server has shut down).
  ~StreamHub();

  grpc::ServerWriteReactor<v1::AccountUpdate>* WatchAccount(
      grpc::CallbackServerContext* ctx, const v1::WatchAccountRequest& req);
  grpc::ServerWriteReactor<v1::EntryBatch>* StreamEntries(
      grpc::CallbackServerContext* ctx, const v1::StreamEntriesRequest& req);

  // Streams whose request could not be decoded: finished with `status`.
  grpc::ServerWriteReactor<v1::AccountUpdate>* RefuseWatch(
      const grpc::Status& status);
  grpc::ServerWriteReactor<v1::EntryBatch>* RefuseEntries(
      const grpc::Status& status);

  // Where other streams (Consume, consume_session.h) register, are woken
  // and read.
  StreamHost& host();

  // Ends every open stream with UNAVAILABLE (its client resumes elsewhere)
  // and refuses new ones.
  void Stop();

  // ProgressFollower::Listener.
  void OnNotice(const readmodel::ProgressNotice& notice) override;
  void OnTick(bool replica) override;

  // For the streams (stream_hub.cc).
  struct Shared;

 private:
  static void Poll(Shared& s);
  std::unique_ptr<Shared> shared_;
  absl::Time last_poll_ = absl::InfinitePast();  // The follower's thread.
};

}  // namespace bank::query

#endif  // BANK_QUERY_SERVICE_STREAM_HUB_H_
