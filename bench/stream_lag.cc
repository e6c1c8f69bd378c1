// bank-streamlag: how long after a deposit is acknowledged its entry reaches
// open streams. Opens --accounts accounts, follows StreamEntries from the
// first entry (its catch-up rate is measured on the way) and one
// WatchAccount stream per account, then sends deposits open loop at --rate
// for --duration and times each one from its acknowledgement to its arrival
// on each kind of stream (after a second's warm-up, while the new watchers
// make their first reads). The time includes the projector's own lag (the
// "lag ack->visible" rows of bench/run.sh). So each deposit is also read
// back with GetBalance min_version from its acknowledgement: the answer
// comes when the query service learns of the projector's commit (the same
// notice that wakes the streams), and the time from that answer to the
// arrival on a stream is the stream's own share (the issue's "from the
// projector's commit"). Entries that never arrive within 10 s count as
// errors.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bank/v1/bank.grpc.pb.h"
#include "common/util/uuid.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string command_host = "127.0.0.1:50051";
  std::string query_host = "127.0.0.1:50052";
  int accounts = 1000;
  double rate = 1000;
  double duration = 10;
  bool json = false;
};

// When each thing happened, by a key (an entry's position, or account and
// version); thread-safe.
template <typename Key>
class Times {
 public:
  void Set(const Key& key, Clock::time_point t) {
    absl::MutexLock lock(&mu_);
    at_.emplace(key, t);
  }
  bool Get(const Key& key, Clock::time_point* t) const {
    absl::MutexLock lock(&mu_);
    auto it = at_.find(key);
    if (it == at_.end()) return false;
    *t = it->second;
    return true;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return at_.size();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Clock::time_point> at_;
};

// One stream of Resp (opened by `start` with this reactor), handing each
// message to `on_message` as it arrives.
template <typename Resp>
class StreamReader final : public grpc::ClientReadReactor<Resp> {
 public:
  using Start = std::function<void(grpc::ClientContext*, StreamReader*)>;
  StreamReader(const Start& start, std::function<void(const Resp&)> on_message)
      : on_message_(std::move(on_message)) {
    start(&ctx_, this);
    this->StartRead(&msg_);
    this->StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }
  bool done() const { return done_.load(); }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) return;
    on_message_(msg_);
    this->StartRead(&msg_);
  }
  void OnDone(const grpc::Status&) override { done_ = true; }

  std::function<void(const Resp&)> on_message_;
  grpc::ClientContext ctx_;
  Resp msg_;
  std::atomic<bool> done_{false};
};

struct Row {
  std::vector<double> ms;
  int missing = 0;
  double seconds = 0;
};

std::string Json(const Row& r) {
  std::vector<double> v = r.ms;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v.empty() ? 0.0
                     : v[std::min(v.size() - 1,
                                  static_cast<size_t>(p * v.size()))];
  };
  return absl::StrFormat(
      "{\"ok\":%zu,\"errors\":%d,\"errors_by_code\":{%s},\"per_second\":%.1f,"
      "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}",
      v.size(), r.missing,
      r.missing ? absl::StrCat("\"missing\":", r.missing) : "",
      v.size() / std::max(r.seconds, 1e-9), pct(0.5), pct(0.99), pct(0.999),
      v.empty() ? 0.0 : v.back());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"bank-streamlag: acknowledgement to arrival on streams"};
  app.add_option("--command-host", o.command_host);
  app.add_option("--query-host", o.query_host);
  app.add_option("--accounts", o.accounts)->check(CLI::Range(1, 100000));
  app.add_option("--rate", o.rate, "deposits per second, open loop");
  app.add_option("--duration", o.duration, "seconds");
  app.add_flag("--json", o.json, "one JSON line");
  CLI11_PARSE(app, argc, argv);

  auto commands = bank::v1::CommandService::NewStub(grpc::CreateChannel(
      o.command_host, grpc::InsecureChannelCredentials()));
  auto queries = bank::v1::QueryService::NewStub(
      grpc::CreateChannel(o.query_host, grpc::InsecureChannelCredentials()));

  std::vector<std::string> accounts;
  int64_t last_open = 0;
  for (int i = 0; i < o.accounts; ++i) {
    bank::v1::OpenAccountRequest req;
    req.set_command_id(bank::util::NewUuid());
    req.set_owner("streamlag");
    req.set_currency("EUR");
    bank::v1::CommandResult r;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    grpc::Status s = commands->OpenAccount(&ctx, req, &r);
    if (!s.ok()) {
      std::fprintf(stderr, "open: %s\n", s.error_message().c_str());
      return 1;
    }
    accounts.push_back(r.account_id());
    last_open = std::max(last_open, r.position());
  }

  // StreamEntries from the first entry: catches up, then follows.
  // Only the measured entries are recorded (not the catch-up's, which would
  // make the client's own map the thing measured).
  Times<int64_t> by_position;
  Times<std::string> by_version;
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> highest{0};
  const auto catchup_start = Clock::now();
  // A connection of its own, as a consumer service would have.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto own = bank::v1::QueryService::NewStub(grpc::CreateCustomChannel(
      o.query_host, grpc::InsecureChannelCredentials(), args));
  bank::v1::StreamEntriesRequest entries_req;
  entries_req.set_max_batch(1000);
  StreamReader<bank::v1::EntryBatch> entries(
      [&](grpc::ClientContext* ctx, auto* r) {
        own->async()->StreamEntries(ctx, &entries_req, r);
      },
      [&](const bank::v1::EntryBatch& batch) {
        const auto now = Clock::now();
        for (const auto& e : batch.entries()) {
          if (e.entry().position() > last_open) {
            by_position.Set(e.entry().position(), now);
          }
          highest = std::max(highest.load(), e.entry().position());
        }
        received += batch.entries_size();
      });
  while (highest.load() < last_open) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double catchup_s =
      std::chrono::duration<double>(Clock::now() - catchup_start).count();
  const int64_t caught_up = received.load();
  const double catchup_rate = caught_up / catchup_s;

  std::vector<bank::v1::WatchAccountRequest> watch_reqs(accounts.size());
  std::vector<std::unique_ptr<StreamReader<bank::v1::AccountUpdate>>> watchers;
  for (size_t i = 0; i < accounts.size(); ++i) {
    watch_reqs[i].set_account_id(accounts[i]);
    watch_reqs[i].set_after_version(1);  // Past the opening.
    watchers.push_back(std::make_unique<StreamReader<bank::v1::AccountUpdate>>(
        [&, i](grpc::ClientContext* ctx, auto* r) {
          queries->async()->WatchAccount(ctx, &watch_reqs[i], r);
        },
        [&](const bank::v1::AccountUpdate& u) {
          by_version.Set(
              absl::StrCat(u.balance().account_id(), "/", u.entry().version()),
              Clock::now());
        }));
  }

  // Warm-up: each new watcher makes its first read (it finds nothing new)
  // before the measurement starts.
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // When each deposit became visible in the read model: a GetBalance with
  // min_version sent at its acknowledgement, answered when the query
  // service learns of the projector's commit (the notice that also wakes
  // the streams). A stream's time after that is its own share.
  Times<int64_t> visible;
  std::atomic<int> seeing{0};
  auto See = [&](const bank::v1::CommandResult& r) {
    struct Call {
      grpc::ClientContext ctx;
      bank::v1::GetBalanceRequest req;
      bank::v1::AccountBalance resp;
      int64_t position;
    };
    auto* call = new Call;
    call->req.set_account_id(r.account_id());
    call->req.set_min_version(r.version());
    call->position = r.position();
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(10));
    ++seeing;
    auto done = [&, call](grpc::Status s) {
      if (s.ok()) visible.Set(call->position, Clock::now());
      delete call;
      --seeing;
    };
    queries->async()->GetBalance(&call->ctx, &call->req, &call->resp, done);
  };

  // Deposits, open loop.
  struct Ack {
    std::string version_key;
    int64_t position;
    Clock::time_point at;
  };
  absl::Mutex acks_mu;
  std::vector<Ack> acks;
  std::atomic<int> failed{0}, in_flight{0};
  std::mt19937 rng(7);
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / o.rate));
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o.duration));
  auto next = start;
  while (next < end) {
    std::this_thread::sleep_until(next);
    next += interval;
    struct Call {
      grpc::ClientContext ctx;
      bank::v1::DepositRequest req;
      bank::v1::CommandResult resp;
    };
    auto* call = new Call;
    call->req.set_command_id(bank::util::NewUuid());
    call->req.set_account_id(accounts[rng() % accounts.size()]);
    call->req.set_amount(1);
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(10));
    ++in_flight;
    commands->async()->Deposit(
        &call->ctx, &call->req, &call->resp, [&, call](grpc::Status s) {
          const auto now = Clock::now();
          if (s.ok()) {
            {
              absl::MutexLock lock(&acks_mu);
              acks.push_back({absl::StrCat(call->resp.account_id(), "/",
                                           call->resp.version()),
                              call->resp.position(), now});
            }
            See(call->resp);
          } else {
            ++failed;
          }
          delete call;
          --in_flight;
        });
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  while (in_flight.load() > 0 || seeing.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Everything acknowledged arrives (or counts as missing after 10 s).
  std::vector<Ack> all;
  {
    absl::MutexLock lock(&acks_mu);
    all = acks;
  }
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  Row watch{.seconds = seconds}, stream{.seconds = seconds};
  // From visible (the read model's commit, as the query service learns it)
  // to arrival on the StreamEntries stream.
  Row stream_own{.seconds = seconds}, visible_row{.seconds = seconds};
  Row watch_own{.seconds = seconds};
  // Milliseconds from `from` to `to`, never negative.
  auto Ms = [](Clock::time_point from, Clock::time_point to) {
    return std::max(
        0.0, std::chrono::duration<double, std::milli>(to - from).count());
  };
  for (const Ack& a : all) {
    Clock::time_point t, v;
    const bool seen = visible.Get(a.position, &v);
    if (seen) {
      visible_row.ms.push_back(Ms(a.at, v));
    } else {
      ++visible_row.missing;  // the GetBalance failed or timed out
    }
    while (!by_position.Get(a.position, &t) && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (by_position.Get(a.position, &t)) {
      stream.ms.push_back(Ms(a.at, t));
      if (seen) stream_own.ms.push_back(Ms(v, t));
    } else {
      ++stream.missing;
    }
    while (!by_version.Get(a.version_key, &t) && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (by_version.Get(a.version_key, &t)) {
      watch.ms.push_back(Ms(a.at, t));
      if (seen) watch_own.ms.push_back(Ms(v, t));
    } else {
      ++watch.missing;
    }
  }
  entries.Cancel();
  for (auto& w : watchers) w->Cancel();
  while (!entries.done() ||
         std::any_of(watchers.begin(), watchers.end(),
                     [](const auto& w) { return !w->done(); })) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (o.json) {
    std::printf(
        "{\"watch\":%s,\"entries\":%s,\"visible\":%s,"
        "\"entries_after_visible\":%s,\"watch_after_visible\":%s,"
        "\"catchup_per_second\":%.0f,"
        "\"catchup_entries\":%lld,\"failed_deposits\":%d}\n",
        Json(watch).c_str(), Json(stream).c_str(), Json(visible_row).c_str(),
        Json(stream_own).c_str(), Json(watch_own).c_str(), catchup_rate,
        static_cast<long long>(caught_up), failed.load());
  } else {
    std::printf(
        "WatchAccount: %s\nStreamEntries: %s\nvisible (min_version): %s\n"
        "StreamEntries after visible: %s\nWatchAccount after visible: %s\n"
        "catch-up %.0f/s\n",
        Json(watch).c_str(), Json(stream).c_str(), Json(visible_row).c_str(),
        Json(stream_own).c_str(), Json(watch_own).c_str(), catchup_rate);
  }
  return 0;
}
