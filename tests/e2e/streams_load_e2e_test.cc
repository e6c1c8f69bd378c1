// QueryService streams under load and faults, against the real executables
// and a real PostgreSQL: kill -9 of the query service under 10,000
// commands, a rebuild, a client that stops reading, the read database away,
// 1,000 watchers and 50 consumers at once. The oracle: what a consumer
// received equals the read model's history, entry for entry, and the read
// model equals the events (faults::Settle).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/streams_support.h"
#include "tests/faults/settle.h"
#include "tests/faults/workload.h"
#include "tests/support/pg_environment.h"
#include "tests/support/system.h"

namespace bank {
namespace {

using testing::Ctx;
using testing::EntryFollower;
using testing::PgCluster;
using testing::Process;
using testing::Received;
using testing::System;
using testing::CaughtUp;
using testing::Deposit;
using testing::HistoryRows;
using testing::QueryMetric;
using testing::SettleAndExpectTheWholeHistory;
using testing::WaitFor;

PgCluster* pg = nullptr;

// 10,000 commands while the query service is killed (-9) and restarted
// under a StreamEntries consumer: resumed from its last token, it received
// the whole history exactly once, in order.
TEST(StreamsTest, KillNineOfTheQueryServiceLosesAndRepeatsNothing) {
  System sys(*pg, "streamkill");
  sys.StartAll();
  faults::Workload w(sys.command_port, {.clients = 8,
                                        .accounts = 40,
                                        .pause = absl::ZeroDuration(),
                                        .query_port = sys.query_port});
  w.OpenAccounts();
  EntryFollower follower(sys.query_port, "", 50);
  w.Start();
  for (int kill = 0; kill < 2; ++kill) {
    const int64_t target = 3000 * (kill + 1);
    ASSERT_TRUE(
        WaitFor([&] { return w.acked() >= target; }, absl::Seconds(120)));
    ASSERT_GT(follower.count(), 0u);
    sys.query->Signal(SIGKILL);
    sys.query->Wait(absl::Seconds(10));
    sys.query = sys.StartQueryService(
        {"--metrics-listen", absl::StrCat("127.0.0.1:", sys.query_metrics)});
    ASSERT_TRUE(System::WaitServing(sys.query_port, "", absl::Seconds(30)));
    // The consumer is back on the new process before the next kill.
    ASSERT_TRUE(WaitFor([&] { return follower.reconnects() > kill; },
                        absl::Seconds(30)));
    const size_t back = follower.count();
    ASSERT_TRUE(WaitFor([&] { return follower.count() > back + 100; },
                        absl::Seconds(30)));
  }
  ASSERT_TRUE(WaitFor([&] { return w.acked() >= 10000; }, absl::Seconds(180)));
  EXPECT_GE(follower.reconnects(), 2);
  SettleAndExpectTheWholeHistory(w, sys, follower);
}

// A rebuild swaps the read model's tables under open streams: tokens name
// places in the event store, not rows, so the consumer goes on exactly.
TEST(StreamsTest, ARebuildUnderAStreamLosesAndRepeatsNothing) {
  System sys(*pg, "streamrebuild");
  sys.StartAll();
  faults::Workload w(
      sys.command_port,
      {.clients = 4, .accounts = 20, .query_port = sys.query_port});
  w.OpenAccounts();
  EntryFollower follower(sys.query_port, "", 20);
  w.Start();
  ASSERT_TRUE(WaitFor([&] { return w.acked() >= 1000; }, absl::Seconds(60)));
  Process rebuild(
      testing::BinDir() + "/projector",
      {"--events-db", sys.events_uri, "--read-db", sys.read_uri, "--rebuild"});
  EXPECT_EQ(rebuild.Wait(absl::Seconds(120)), 0) << rebuild.Log();
  ASSERT_NE(rebuild.Log().find("rebuild done"), std::string::npos);
  const int64_t after = w.acked();
  ASSERT_TRUE(
      WaitFor([&] { return w.acked() >= after + 1000; }, absl::Seconds(60)));
  SettleAndExpectTheWholeHistory(w, sys, follower);
}

// A client that stops reading: its stream pauses with one batch and one
// write held (bounded by gRPC's flow control), the other streams go on
// live, and once it reads again it catches up from the database, exactly.
TEST(StreamsTest, AClientThatStopsReadingPausesAndCatchesUpAlone) {
  System sys(*pg, "streamslow");
  sys.StartAll();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);  // The window stays 64 KiB.
  auto slow_stub = v1::QueryService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", sys.query_port),
                                grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_ctx;
  v1::StreamEntriesRequest req;
  req.set_max_batch(100);
  auto slow = slow_stub->StreamEntries(&slow_ctx, req);
  EntryFollower reading(sys.query_port);
  faults::Workload w(sys.command_port, {.clients = 8,
                                        .accounts = 40,
                                        .pause = absl::ZeroDuration(),
                                        .query_port = sys.query_port});
  w.OpenAccounts();
  w.Start();
  ASSERT_TRUE(WaitFor([&] { return QueryMetric(sys, "bank_streams_paused") >= 1; },
                      absl::Seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return w.acked() >= 5000; }, absl::Seconds(60)));
  faults::Settled settled = faults::Settle(w, sys.events_uri, sys.read_uri);
  EXPECT_TRUE(settled.diffs.empty());
  const size_t total = static_cast<size_t>(HistoryRows(sys));
  // The reading consumer has everything while the other still holds back.
  ASSERT_TRUE(
      WaitFor([&] { return reading.count() >= total; }, absl::Seconds(30)));
  EXPECT_EQ(QueryMetric(sys, "bank_streams_paused"), 1);
  reading.Stop();
  EXPECT_TRUE(
      testing::CompareWithHistory(reading.received(), sys.read_uri).empty());
  // Now it reads: all of it, in order, once.
  std::vector<Received> got;
  v1::EntryBatch batch;
  while (got.size() < total && slow->Read(&batch)) {
    EXPECT_LE(batch.entries_size(), 100);
    for (const auto& e : batch.entries()) {
      got.push_back(
          {e.account_id(), e.entry().version(), e.entry().position()});
    }
  }
  std::vector<std::string> diffs =
      testing::CompareWithHistory(got, sys.read_uri);
  EXPECT_TRUE(diffs.empty()) << diffs[0];
  EXPECT_GE(QueryMetric(sys, "bank_stream_pauses_total"), 1);
  slow_ctx.TryCancel();
  slow->Finish();
}

// The read database away: open streams end UNAVAILABLE once the query
// service's outage wait is over, and resume from their token once it is
// back.
TEST(StreamsTest, TheReadDatabaseAwayEndsStreamsUnavailableAndTheyResume) {
  System sys(*pg, "streamdbdown");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 10);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  auto ctx = Ctx(60);
  auto reader = sys.queries().StreamEntries(ctx.get(), {});
  v1::EntryBatch batch;
  ASSERT_TRUE(reader->Read(&batch));
  const std::string token = batch.resume_token();
  const std::string db = "streamdbdown_read";
  auto admin = [&](const std::string& sql) {
    pqxx::connection c(pg->Uri("postgres"));
    pqxx::nontransaction tx(c);
    tx.exec(sql);
  };
  admin("ALTER DATABASE " + db + " ALLOW_CONNECTIONS false");
  admin(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
      "datname = '" +
      db + "'");
  const absl::Time away = absl::Now();
  EXPECT_FALSE(reader->Read(&batch));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE) << s.error_message();
  EXPECT_LT(absl::Now() - away, absl::Seconds(20));
  admin("ALTER DATABASE " + db + " ALLOW_CONNECTIONS true");
  EntryFollower follower(sys.query_port, token);
  Deposit(sys, a, 5);
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() >= 1; }, absl::Seconds(30)));
  std::vector<Received> got = follower.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].account_id, a);
  EXPECT_EQ(got[0].version, 2);
}

// A stream as a client of the callback API: counts what it reads.
template <typename Resp>
class CountingReader final : public grpc::ClientReadReactor<Resp> {
 public:
  std::atomic<int> read{0};
  std::atomic<bool> done{false};
  grpc::ClientContext ctx;

  void Start() {
    this->StartRead(&msg_);
    this->StartCall();
  }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if constexpr (std::is_same_v<Resp, v1::EntryBatch>) {
      read += msg_.entries_size();
    } else {
      ++read;
    }
    this->StartRead(&msg_);
  }
  void OnDone(const grpc::Status&) override { done = true; }
  Resp msg_;
};

// A field of /proc/<pid>/status, e.g. "Threads:" or "VmRSS:" (in kB).
int64_t StatusOf(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(field.size()));
  }
  return -1;
}

// 1,000 WatchAccount and 50 StreamEntries streams on one query service:
// every one gets its entries live, and the service keeps its few threads.
TEST(StreamsTest, AThousandWatchersAndFiftyConsumersWithoutAThreadEach) {
  System sys(*pg, "streammany");
  sys.StartAll();
  std::vector<std::string> accounts;
  for (int i = 0; i < 100; ++i) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 1));
  }
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  const int64_t threads_before = StatusOf(sys.query->pid(), "Threads:");
  const int64_t rss_before = StatusOf(sys.query->pid(), "VmRSS:");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", sys.query_port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::QueryService::NewStub(channel);
  std::vector<std::unique_ptr<CountingReader<v1::AccountUpdate>>> watchers;
  std::vector<v1::WatchAccountRequest> watch_reqs(1000);
  for (int i = 0; i < 1000; ++i) {
    watch_reqs[i].set_account_id(accounts[i % 100]);
    auto& r = watchers.emplace_back(
        std::make_unique<CountingReader<v1::AccountUpdate>>());
    stub->async()->WatchAccount(&r->ctx, &watch_reqs[i], r.get());
    r->Start();
  }
  std::vector<std::unique_ptr<CountingReader<v1::EntryBatch>>> consumers;
  v1::StreamEntriesRequest entries_req;
  for (int i = 0; i < 50; ++i) {
    auto& r = consumers.emplace_back(
        std::make_unique<CountingReader<v1::EntryBatch>>());
    stub->async()->StreamEntries(&r->ctx, &entries_req, r.get());
    r->Start();
  }
  auto all = [](auto& readers, int n) {
    for (auto& r : readers) {
      if (r->read.load() < n) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return all(watchers, 1) && all(consumers, 100); },
                      absl::Seconds(60)));
  EXPECT_EQ(QueryMetric(sys, "bank_streams_open{rpc=\"WatchAccount\"}"), 1000);
  EXPECT_EQ(QueryMetric(sys, "bank_streams_open{rpc=\"StreamEntries\"}"), 50);
  // Live: one deposit per account reaches its ten watchers and every
  // consumer.
  for (const std::string& a : accounts) Deposit(sys, a, 2);
  EXPECT_TRUE(WaitFor([&] { return all(watchers, 2) && all(consumers, 200); },
                      absl::Seconds(60)));
  const int64_t threads = StatusOf(sys.query->pid(), "Threads:");
  EXPECT_LT(threads - threads_before, 20)
      << threads_before << " threads before the streams, " << threads
      << " with them";
  // Memory: a stream holds its state and at most one batch (a full batch
  // in each of the 1,050 would be about 20 MB; they hold far less here).
  const int64_t rss = StatusOf(sys.query->pid(), "VmRSS:");
  EXPECT_LT(rss - rss_before, 64 * 1024)
      << rss_before << " kB before the streams, " << rss << " kB with them";
  for (auto& r : watchers) r->ctx.TryCancel();
  for (auto& r : consumers) r->ctx.TryCancel();
  EXPECT_TRUE(WaitFor(
      [&] {
        for (auto& r : watchers) {
          if (!r->done.load()) return false;
        }
        for (auto& r : consumers) {
          if (!r->done.load()) return false;
        }
        return true;
      },
      absl::Seconds(30)));
  EXPECT_TRUE(WaitFor(
      [&] {
        return QueryMetric(sys, "bank_streams_open{rpc=\"WatchAccount\"}") == 0;
      },
      absl::Seconds(10)));
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
