#include "query-service/stream_hub.h"

#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "common/util/uuid.h"
#include "query-service/resume_token.h"

namespace bank::query {
namespace {

// How long one read of a stream may take, the read database's outage wait
// included (the reader answers UNAVAILABLE sooner when it is down longer).
constexpr absl::Duration kReadDeadline = absl::Seconds(30);

metrics::RpcMetrics StreamMetrics(metrics::Registry& registry,
                                  const char* rpc) {
  return metrics::RpcMetrics(
      registry, "bank_streams_total", "Streams ended, by RPC and status code.",
      "bank_stream_duration_seconds", "How long streams stayed open, by RPC.",
      "rpc", rpc);
}

// How many WatchAccount streams one query reads for at most.
constexpr size_t kWatchReadBatch = 256;

class WatchStream;

}  // namespace

struct StreamHub::Shared final : public StreamHost {
  Shared(ReadModelReader& r, metrics::Registry& m, const Options& o)
      : reader(r),
        options(o),
        watch_metrics(StreamMetrics(m, "WatchAccount")),
        entries_metrics(StreamMetrics(m, "StreamEntries")),
        watch_sent(m.GetCounter("bank_stream_entries_total",
                                "Entries sent on streams, by RPC.",
                                {{"rpc", "WatchAccount"}})),
        entries_sent(m.GetCounter("bank_stream_entries_total",
                                  "Entries sent on streams, by RPC.",
                                  {{"rpc", "StreamEntries"}})),
        pauses(m.GetCounter(
            "bank_stream_pauses_total",
            "Writes that waited longer than the pause threshold for a "
            "client to read.")),
        watch_pool(o.watch_threads, o.max_streams + 16),
        entries_pool(o.entries_threads, o.max_streams + 16) {}

  // StreamHost: false when the hub is stopped or full.
  bool Add(OpenStream* s, const std::string& account,
           const std::atomic<int64_t>* version) override {
    absl::MutexLock lock(&mu);
    if (stopped || all.size() >= static_cast<size_t>(options.max_streams)) {
      return false;
    }
    all.insert(s);
    if (version != nullptr) {
      watches[account].emplace(s, version);
    } else {
      entries.insert(s);
    }
    return true;
  }
  bool AddConsumer(OpenStream* s) override {
    if (!Add(s, "", nullptr)) return false;
    absl::MutexLock lock(&mu);
    consumers.insert(s);
    return true;
  }
  void Remove(OpenStream* s, const std::string& account) override {
    absl::MutexLock lock(&mu);
    all.erase(s);
    entries.erase(s);
    consumers.erase(s);
    auto it = watches.find(account);
    if (it != watches.end()) {
      it->second.erase(s);
      if (it->second.empty()) watches.erase(it);
    }
  }

  void Run(OpenStream* stream, const std::string& account,
           std::function<void()> work) override;
  // Reads for the queued WatchAccount streams, many in one query, then runs
  // each one's work with its rows, until the queue is empty.
  void ReadWatches();
  void WriteTook(absl::Duration d) override {
    if (d >= options.pause_after) pauses.Inc();
  }

  // The deployment's name in resume tokens, read once it exists.
  absl::StatusOr<std::string> Origin() {
    {
      absl::MutexLock lock(&mu);
      if (!origin.empty()) return origin;
    }
    absl::StatusOr<std::string> o =
        reader.StreamOrigin(absl::Now() + kReadDeadline);
    if (o.ok() && !o->empty()) {
      absl::MutexLock lock(&mu);
      origin = *o;
    }
    return o;
  }

  ReadModelReader& reader;
  const Options options;
  // WatchAccount streams woken together are read for in one query: one
  // task at a time takes whatever is queued.
  absl::Mutex watch_mu;
  std::vector<std::pair<WatchStream*, std::function<void()>>> watch_queue
      ABSL_GUARDED_BY(watch_mu);
  bool watch_task ABSL_GUARDED_BY(watch_mu) = false;
  metrics::RpcMetrics watch_metrics;
  metrics::RpcMetrics entries_metrics;
  metrics::Counter& watch_sent;
  metrics::Counter& entries_sent;
  metrics::Counter& pauses;

  mutable absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
  absl::flat_hash_set<OpenStream*> all ABSL_GUARDED_BY(mu);
  // StreamEntries and Consume streams; the Consume ones.
  absl::flat_hash_set<OpenStream*> entries ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<OpenStream*> consumers ABSL_GUARDED_BY(mu);
  // Per account, its WatchAccount streams and the version each has read.
  absl::flat_hash_map<
      std::string,
      absl::flat_hash_map<OpenStream*, const std::atomic<int64_t>*>>
      watches ABSL_GUARDED_BY(mu);
  std::string origin ABSL_GUARDED_BY(mu);
  EntryPosition polled ABSL_GUARDED_BY(mu);  // The checkpoint last polled.
  bool poll_running ABSL_GUARDED_BY(mu) = false;

  // Each stream queues at most one read, on the pool of its kind: the many
  // WatchAccount streams' reads never hold up a StreamEntries consumer's.
  // Last, so that they are joined (running what is queued) first.
  util::WorkerPool watch_pool;
  util::WorkerPool entries_pool;
};

namespace {

class WatchStream final : public Stream<v1::AccountUpdate> {
 public:
  WatchStream(StreamHub::Shared& hub, std::string account,
              int64_t after_version)
      : Stream(hub, hub.watch_metrics, hub.watch_sent, account),
        hub_(hub),
        account_(std::move(account)),
        version_(after_version) {
    Begin(&version_);
  }

  // Where the next read starts.
  ReadModelReader::WatchFrom From() const { return {account_, version_}; }
  // The next read's rows, read for several streams at once (Shared::
  // ReadWatches), just before it.
  void Prefetched(ReadModelReader::WatchRows rows) {
    prefetched_ = std::move(rows);
  }

 private:
  absl::Status ReadMore(std::deque<v1::AccountUpdate>& out,
                        bool& more) override {
    const int limit = hub_.options.default_batch;
    std::optional<ReadModelReader::WatchRows> got = std::move(prefetched_);
    prefetched_.reset();
    if (!got) {
      auto read = hub_.reader.WatchEntries({From()}, limit,
                                           absl::Now() + kReadDeadline);
      if (!read.ok()) return read.status();
      got = std::move((*read)[0]);
    }
    if (!got->has_value()) {
      return absl::NotFoundError(
          absl::StrCat("account ", account_, " not found"));
    }
    std::vector<v1::AccountUpdate>& rows = **got;
    if (!rows.empty()) version_ = rows.back().entry().version();
    more = static_cast<int>(rows.size()) == limit;
    for (auto& r : rows) out.push_back(std::move(r));
    return absl::OkStatus();
  }
  int EntriesIn(const v1::AccountUpdate&) const override { return 1; }

  StreamHub::Shared& hub_;
  const std::string account_;
  std::atomic<int64_t> version_;  // The last version read.
  // Set and taken on the thread that reads for the stream.
  std::optional<ReadModelReader::WatchRows> prefetched_;
};

class EntriesStream final : public Stream<v1::EntryBatch> {
 public:
  EntriesStream(StreamHub::Shared& hub, std::string token, int batch)
      : Stream(hub, hub.entries_metrics, hub.entries_sent, ""),
        hub_(hub),
        token_(std::move(token)),
        batch_(batch) {
    Begin(nullptr);
  }

 private:
  absl::Status ReadMore(std::deque<v1::EntryBatch>& out, bool& more) override {
    if (!token_.empty() || origin_.empty()) {
      // The token is checked once the deployment's name is known.
      absl::StatusOr<std::string> origin = hub_.Origin();
      if (!origin.ok()) return origin.status();
      origin_ = *origin;
      if (!token_.empty()) {
        absl::StatusOr<EntryPosition> at = DecodeResumeToken(origin_, token_);
        if (!at.ok()) return at.status();
        after_ = *at;
        token_.clear();
      }
    }
    auto page =
        hub_.reader.ReadStream(after_, batch_, absl::Now() + kReadDeadline);
    if (!page.ok()) return page.status();
    if (page->entries.empty()) return absl::OkStatus();
    if (origin_.empty()) {
      absl::StatusOr<std::string> origin = hub_.Origin();
      if (!origin.ok()) return origin.status();
      origin_ = *origin;
    }
    after_ = page->at.back();
    v1::EntryBatch& b = out.emplace_back();
    b.mutable_entries()->Reserve(static_cast<int>(page->entries.size()));
    for (auto& e : page->entries) *b.add_entries() = std::move(e);
    b.set_resume_token(EncodeResumeToken(origin_, after_));
    more = b.entries_size() == batch_;
    return absl::OkStatus();
  }
  int EntriesIn(const v1::EntryBatch& b) const override {
    return b.entries_size();
  }

  StreamHub::Shared& hub_;
  std::string token_;  // The request's, until decoded.
  std::string origin_;
  EntryPosition after_;  // The last entry read.
  const int batch_;
};

// A stream refused before it started.
template <typename Resp>
class Refused final : public grpc::ServerWriteReactor<Resp> {
 public:
  Refused(metrics::RpcMetrics& rpc, const absl::Status& status) {
    rpc.Record(status.code(), absl::ZeroDuration());
    this->Finish(grpcutil::ToGrpcStatus(status));
  }

 private:
  void OnDone() override { delete this; }
};

}  // namespace

void StreamHub::Shared::Run(OpenStream* stream, const std::string& account,
                            std::function<void()> work) {
  // The queues hold one task per open stream: never refused.
  if (account.empty()) {
    entries_pool.TrySubmit(std::move(work));
    return;
  }
  absl::MutexLock lock(&watch_mu);
  watch_queue.emplace_back(static_cast<WatchStream*>(stream), std::move(work));
  if (!watch_task) {
    watch_task = true;
    watch_pool.TrySubmit([this] { ReadWatches(); });
  }
}

void StreamHub::Shared::ReadWatches() {
  while (true) {
    std::vector<std::pair<WatchStream*, std::function<void()>>> batch;
    {
      absl::MutexLock lock(&watch_mu);
      if (watch_queue.empty()) {
        watch_task = false;
        return;
      }
      const size_t n = std::min(watch_queue.size(), kWatchReadBatch);
      batch.assign(std::make_move_iterator(watch_queue.begin()),
                   std::make_move_iterator(watch_queue.begin() + n));
      watch_queue.erase(watch_queue.begin(), watch_queue.begin() + n);
    }
    std::vector<ReadModelReader::WatchFrom> from;
    from.reserve(batch.size());
    for (const auto& [s, work] : batch) from.push_back(s->From());
    auto rows = reader.WatchEntries(from, options.default_batch,
                                    absl::Now() + kReadDeadline);
    // On an error each stream reads alone, and meets it itself.
    for (size_t i = 0; i < batch.size(); ++i) {
      if (rows.ok()) batch[i].first->Prefetched(std::move((*rows)[i]));
      batch[i].second();
    }
  }
}

StreamHub::StreamHub(ReadModelReader& reader, metrics::Registry& metrics,
                     Options options)
    : shared_(std::make_unique<Shared>(reader, metrics, options)) {
  Shared* s = shared_.get();
  for (const char* rpc : {"WatchAccount", "StreamEntries", "Consume"}) {
    const char kind = rpc[0];
    metrics.AddCallbackGauge(
        "bank_streams_open", "Streams open, by RPC.",
        [s, kind] {
          absl::MutexLock lock(&s->mu);
          const size_t consume = s->consumers.size();
          const size_t entries = s->entries.size() - consume;
          return static_cast<double>(kind == 'W'
                                         ? s->all.size() - entries - consume
                                     : kind == 'S' ? entries
                                                   : consume);
        },
        {{"rpc", rpc}});
  }
  metrics.AddCallbackGauge(
      "bank_streams_paused",
      "Streams whose client has not taken the write in flight for the pause "
      "threshold (they catch up once it reads).",
      [s] {
        absl::Time before = absl::Now() - s->options.pause_after;
        absl::MutexLock lock(&s->mu);
        int n = 0;
        for (OpenStream* o : s->all) n += o->WriteStartedAt() <= before;
        return static_cast<double>(n);
      });
}

StreamHub::~StreamHub() = default;

StreamHost& StreamHub::host() { return *shared_; }

grpc::ServerWriteReactor<v1::AccountUpdate>* StreamHub::WatchAccount(
    grpc::CallbackServerContext*, const v1::WatchAccountRequest& req) {
  if (!util::IsUuid(req.account_id())) {
    return new Refused<v1::AccountUpdate>(
        shared_->watch_metrics,
        absl::InvalidArgumentError("account_id must be a UUID like "
                                   "123e4567-e89b-12d3-a456-426614174000"));
  }
  if (req.after_version() < 0) {
    return new Refused<v1::AccountUpdate>(
        shared_->watch_metrics,
        absl::InvalidArgumentError("after_version must be >= 0"));
  }
  return new WatchStream(*shared_, util::CanonicalUuid(req.account_id()),
                         req.after_version());
}

grpc::ServerWriteReactor<v1::EntryBatch>* StreamHub::StreamEntries(
    grpc::CallbackServerContext*, const v1::StreamEntriesRequest& req) {
  if (req.max_batch() < 0) {
    return new Refused<v1::EntryBatch>(
        shared_->entries_metrics,
        absl::InvalidArgumentError("max_batch must be >= 0"));
  }
  const int batch = req.max_batch() == 0
                        ? shared_->options.default_batch
                        : std::min(req.max_batch(), shared_->options.max_batch);
  return new EntriesStream(*shared_, req.resume_token(), batch);
}

grpc::ServerWriteReactor<v1::AccountUpdate>* StreamHub::RefuseWatch(
    const grpc::Status& status) {
  return new Refused<v1::AccountUpdate>(shared_->watch_metrics,
                                        grpcutil::FromGrpcStatus(status));
}

grpc::ServerWriteReactor<v1::EntryBatch>* StreamHub::RefuseEntries(
    const grpc::Status& status) {
  return new Refused<v1::EntryBatch>(shared_->entries_metrics,
                                     grpcutil::FromGrpcStatus(status));
}

void StreamHub::Stop() {
  absl::MutexLock lock(&shared_->mu);
  shared_->stopped = true;
  for (OpenStream* s : shared_->all) {
    s->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the query service is shutting down; resume from "
                        "the last version or token received"));
  }
}

void StreamHub::OnNotice(const readmodel::ProgressNotice& notice) {
  absl::MutexLock lock(&shared_->mu);
  if (notice.reset) {
    for (OpenStream* s : shared_->all) s->Wake();
    return;
  }
  for (OpenStream* s : shared_->entries) s->Wake();
  for (const readmodel::MovedAccount& a : notice.accounts) {
    auto it = shared_->watches.find(a.account_id);
    if (it == shared_->watches.end()) continue;
    for (auto& [s, version] : it->second) s->Wake();
  }
}

void StreamHub::OnTick(bool replica) {
  const absl::Time now = absl::Now();
  if (now - last_poll_ <
      (replica ? shared_->options.replica_poll : shared_->options.poll)) {
    return;
  }
  last_poll_ = now;
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->poll_running || shared_->all.empty()) return;
    shared_->poll_running = true;
  }
  shared_->watch_pool.TrySubmit([s = shared_.get()] { Poll(*s); });
}

// Wakes the streams that are behind the read model: the StreamEntries
// streams when the checkpoint moved, each WatchAccount stream whose account
// is past the version it read.
void StreamHub::Poll(Shared& s) {
  std::vector<std::string> accounts;
  {
    absl::MutexLock lock(&s.mu);
    accounts.reserve(s.watches.size());
    for (const auto& [account, streams] : s.watches)
      accounts.push_back(account);
  }
  const absl::Time deadline =
      absl::Now() + s.options.outage_wait + absl::Seconds(2);
  absl::StatusOr<EntryPosition> at = s.reader.LiveCheckpoint(deadline);
  absl::StatusOr<ReadModelReader::Balances> rows =
      accounts.empty() ? ReadModelReader::Balances{}
                       : s.reader.GetBalances(accounts, deadline);
  absl::MutexLock lock(&s.mu);
  s.poll_running = false;
  if (absl::IsUnavailable(at.status())) {
    // The read database stayed away: the clients resume elsewhere or later
    // from the last version or token they received.
    for (OpenStream* o : s.all) o->End(grpcutil::ToGrpcStatus(at.status()));
    return;
  }
  if (at.ok() && !(*at == s.polled)) {
    s.polled = *at;
    for (OpenStream* o : s.entries) o->Wake();
  }
  if (!rows.ok()) return;
  for (const v1::AccountBalance& b : rows->rows) {
    auto it = s.watches.find(b.account_id());
    if (it == s.watches.end()) continue;
    for (auto& [o, version] : it->second) {
      if (version->load() < b.version()) o->Wake();
    }
  }
}

}  // namespace bank::query
