// bank-groupdrain: how fast a consumer group drains a backlog, against one
// StreamEntries consumer in the same run. The read model holds --entries
// entries and nothing is being written. First one StreamEntries stream
// reads from the first entry until it has them all; then a new group of
// --members members (each its own connection and thread, acknowledging
// every entry, in acks of up to 64) consumes from the first entry until
// the members have had every entry between them. Each rate is entries per
// second of wall time from the first request; entries a member had again
// after a partition moved (the members join one after another) are
// counted apart.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "bank/v1/bank.grpc.pb.h"
#include "common/util/uuid.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::unique_ptr<bank::v1::QueryService::Stub> Stub(const std::string& host) {
  // A channel of its own per stream: each member is its own client.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return bank::v1::QueryService::NewStub(grpc::CreateCustomChannel(
      host, grpc::InsecureChannelCredentials(), args));
}

// Seconds for one StreamEntries stream to deliver `entries` entries.
double StreamEntries(const std::string& host, int64_t entries) {
  auto stub = Stub(host);
  grpc::ClientContext ctx;
  bank::v1::StreamEntriesRequest req;
  req.set_max_batch(1000);
  const auto start = Clock::now();
  auto reader = stub->StreamEntries(&ctx, req);
  bank::v1::EntryBatch batch;
  int64_t got = 0;
  while (got < entries && reader->Read(&batch)) got += batch.entries_size();
  const double seconds = SecondsSince(start);
  ctx.TryCancel();
  reader->Finish();
  return got >= entries ? seconds : -1;
}

struct GroupResult {
  double seconds = -1;
  int64_t again = 0;  // Entries a member had that another had already.
};

GroupResult Group(const std::string& host, int members, int64_t entries) {
  const std::string group = "drain-" + bank::util::NewUuid().substr(0, 8);
  absl::Mutex mu;
  absl::flat_hash_set<int64_t> seen;
  std::atomic<int64_t> again{0};
  std::atomic<bool> done{false};
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  for (int i = 0; i < members; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
  }
  const auto start = Clock::now();
  std::atomic<double> finished_at{-1};
  std::vector<std::thread> threads;
  for (int i = 0; i < members; ++i) {
    threads.emplace_back([&, i] {
      auto stub = Stub(host);
      auto stream = stub->Consume(ctxs[i].get());
      bank::v1::ConsumeRequest join;
      join.mutable_join()->set_group(group);
      join.mutable_join()->set_member("m" + std::to_string(i));
      join.mutable_join()->set_start(bank::v1::JoinGroup::START_FROM_BEGINNING);
      stream->Write(join);
      bank::v1::ConsumeResponse r;
      bank::v1::ConsumeRequest ack;
      while (stream->Read(&r)) {
        if (!r.has_entry()) continue;
        const int64_t position = r.entry().entry().position();
        ack.mutable_ack()->add_positions(position);
        if (ack.ack().positions_size() == 64) {
          stream->Write(ack);
          ack.Clear();
        }
        absl::MutexLock lock(&mu);
        if (!seen.insert(position).second) {
          ++again;
        } else if (static_cast<int64_t>(seen.size()) == entries) {
          finished_at = SecondsSince(start);
          done = true;
        }
      }
      stream->Finish();
    });
  }
  while (!done.load() && SecondsSince(start) < 600) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& ctx : ctxs) ctx->TryCancel();
  for (auto& t : threads) t.join();
  return {finished_at.load(), again.load()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1:50052";
  int64_t entries = 0;
  int members = 4;
  bool json = false;
  CLI::App app{"bank-groupdrain: a consumer group's drain of a backlog"};
  app.add_option("--query-host", host)->capture_default_str();
  app.add_option("--entries", entries, "entries in the read model")->required();
  app.add_option("--members", members)->capture_default_str();
  app.add_flag("--json", json);
  CLI11_PARSE(app, argc, argv);
  const double single = StreamEntries(host, entries);
  const GroupResult group = Group(host, members, entries);
  const double single_rate = single > 0 ? entries / single : 0;
  const double group_rate = group.seconds > 0 ? entries / group.seconds : 0;
  if (json) {
    std::printf(
        "{\"entries\":%lld,\"members\":%d,\"stream_per_second\":%.0f,"
        "\"group_per_second\":%.0f,\"delivered_again\":%lld}\n",
        static_cast<long long>(entries), members, single_rate, group_rate,
        static_cast<long long>(group.again));
  } else {
    std::printf(
        "%lld entries: one StreamEntries stream %.0f/s, a group of %d "
        "members %.0f/s (%lld had again)\n",
        static_cast<long long>(entries), single_rate, members, group_rate,
        static_cast<long long>(group.again));
  }
  return single > 0 && group.seconds > 0 ? 0 : 1;
}
