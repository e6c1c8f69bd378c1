// QueryService.WatchAccount and StreamEntries against the real executables
// and a real PostgreSQL: catch-up then live, resuming, bad requests, kill -9
// of the query service under load, a rebuild, a late commit, a client that
// stops reading, the read database away, and many streams at once. The
// oracle: what a consumer received equals the read model's history, entry
// for entry, and the read model equals the events (faults::Settle).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/stream_follower.h"
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
using testing::WaitFor;

PgCluster* pg = nullptr;

int64_t HistoryRows(const System& sys) {
  return faults::QueryValue(sys.read_uri,
                            "SELECT count(*) FROM account_history");
}

int64_t EventRows(const System& sys) {
  return faults::QueryValue(sys.events_uri, "SELECT count(*) FROM events");
}

bool CaughtUp(const System& sys, absl::Duration timeout) {
  return WaitFor([&] { return HistoryRows(sys) == EventRows(sys); }, timeout);
}

void Deposit(System& sys, const std::string& account, int64_t amount) {
  v1::DepositRequest d;
  d.set_account_id(account);
  d.set_amount(amount);
  v1::CommandResult r;
  auto ctx = Ctx();
  grpc::Status s = sys.commands().Deposit(ctx.get(), d, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// The first error of a stream that must end at once.
grpc::Status WatchError(System& sys, const std::string& account,
                        int64_t after) {
  v1::WatchAccountRequest req;
  req.set_account_id(account);
  req.set_after_version(after);
  auto ctx = Ctx(10);
  auto reader = sys.queries().WatchAccount(ctx.get(), req);
  v1::AccountUpdate u;
  while (reader->Read(&u)) {
  }
  return reader->Finish();
}

grpc::Status EntriesError(System& sys, const std::string& token,
                          int max_batch = 0) {
  v1::StreamEntriesRequest req;
  req.set_resume_token(token);
  req.set_max_batch(max_batch);
  auto ctx = Ctx(10);
  auto reader = sys.queries().StreamEntries(ctx.get(), req);
  v1::EntryBatch b;
  while (reader->Read(&b)) {
  }
  return reader->Finish();
}

double Metric(const System& sys, const std::string& series) {
  return testing::MetricValue(
      testing::HttpGet(sys.query_metrics, "/metrics").body, series);
}

// The end of a scenario: the load stopped and checked (faults::Settle),
// then what `follower` received must be the whole history, exactly.
void SettleAndExpectTheWholeHistory(faults::Workload& w, System& sys,
                                    EntryFollower& follower) {
  faults::Settled settled = faults::Settle(w, sys.events_uri, sys.read_uri);
  EXPECT_TRUE(settled.diffs.empty());
  const size_t total = static_cast<size_t>(HistoryRows(sys));
  EXPECT_GT(total, 1000u);
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() >= total; }, absl::Seconds(60)));
  follower.Stop();
  std::vector<std::string> failures = follower.failures();
  EXPECT_TRUE(failures.empty()) << failures[0];
  std::vector<std::string> diffs =
      testing::CompareWithHistory(follower.received(), sys.read_uri);
  EXPECT_TRUE(diffs.empty()) << diffs[0];
}

TEST(StreamsTest, WatchAccountCatchesUpThenFollowsLive) {
  System sys(*pg, "watch");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 100);
  Deposit(sys, a, 5);
  Deposit(sys, a, 7);
  v1::WatchAccountRequest req;
  req.set_account_id(a);
  req.set_after_version(1);
  auto ctx = Ctx(30);
  auto reader = sys.queries().WatchAccount(ctx.get(), req);
  v1::AccountUpdate u;
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_EQ(u.entry().version(), 2);
  EXPECT_EQ(u.entry().kind(), v1::ENTRY_KIND_DEPOSITED);
  EXPECT_EQ(u.entry().amount(), 5);
  EXPECT_EQ(u.balance().balance(), 105);
  EXPECT_EQ(u.balance().version(), 2);
  EXPECT_EQ(u.balance().account_id(), a);
  EXPECT_EQ(u.balance().currency(), "EUR");
  EXPECT_EQ(u.balance().status(), v1::ACCOUNT_STATUS_OPEN);
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_EQ(u.entry().version(), 3);
  EXPECT_EQ(u.balance().balance(), 112);
  // Live: a deposit made now arrives on the open stream.
  Deposit(sys, a, 1);
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_EQ(u.entry().version(), 4);
  EXPECT_EQ(u.balance().balance(), 113);
  v1::CloseAccountRequest close;
  close.set_account_id(a);
  {
    v1::WithdrawRequest w;
    w.set_account_id(a);
    w.set_amount(113);
    v1::CommandResult r;
    auto c = Ctx();
    ASSERT_TRUE(sys.commands().Withdraw(c.get(), w, &r).ok());
    auto c2 = Ctx();
    ASSERT_TRUE(sys.commands().CloseAccount(c2.get(), close, &r).ok());
  }
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_EQ(u.entry().kind(), v1::ENTRY_KIND_WITHDRAWN);
  ASSERT_TRUE(reader->Read(&u));
  EXPECT_EQ(u.entry().kind(), v1::ENTRY_KIND_CLOSED);
  EXPECT_EQ(u.balance().status(), v1::ACCOUNT_STATUS_CLOSED);
  EXPECT_EQ(u.balance().version(), 6);
  ctx->TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
}

TEST(StreamsTest, StreamEntriesCatchesUpFollowsLiveAndResumesFromItsToken) {
  System sys(*pg, "entries");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 100);
  std::string b = testing::OpenAccount(sys.commands(), 0);
  {
    v1::TransferRequest t;
    t.set_from_account_id(a);
    t.set_to_account_id(b);
    t.set_amount(30);
    v1::TransferResult r;
    auto c = Ctx();
    ASSERT_TRUE(sys.commands().Transfer(c.get(), t, &r).ok());
  }
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  v1::StreamEntriesRequest req;
  req.set_max_batch(1);  // One entry per batch: the transfer's two in a row.
  auto ctx = Ctx(30);
  auto reader = sys.queries().StreamEntries(ctx.get(), req);
  std::vector<v1::AccountEntry> got;
  std::vector<std::string> tokens;
  v1::EntryBatch batch;
  while (got.size() < 4 && reader->Read(&batch)) {
    EXPECT_EQ(batch.entries_size(), 1);
    for (const auto& e : batch.entries()) got.push_back(e);
    tokens.push_back(batch.resume_token());
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].account_id(), a);
  EXPECT_EQ(got[1].account_id(), b);
  // The transfer's two entries, one after the other (in the order the
  // transfer wrote them).
  std::map<std::string, v1::EntryKind> transfer = {
      {got[2].account_id(), got[2].entry().kind()},
      {got[3].account_id(), got[3].entry().kind()}};
  EXPECT_EQ(transfer[a], v1::ENTRY_KIND_TRANSFER_OUT);
  EXPECT_EQ(transfer[b], v1::ENTRY_KIND_TRANSFER_IN);
  EXPECT_EQ(got[3].entry().position(), got[2].entry().position() + 1);
  // Live.
  Deposit(sys, b, 9);
  ASSERT_TRUE(reader->Read(&batch));
  ASSERT_EQ(batch.entries_size(), 1);
  EXPECT_EQ(batch.entries(0).account_id(), b);
  EXPECT_EQ(batch.entries(0).entry().amount(), 9);
  ctx->TryCancel();
  reader->Finish();
  // Resuming from the second token gives the third entry on, exactly.
  EntryFollower follower(sys.query_port, tokens[1]);
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() >= 3; }, absl::Seconds(20)));
  std::vector<Received> rest = follower.received();
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].position, got[2].entry().position());
  EXPECT_EQ(rest[1].position, got[3].entry().position());
  EXPECT_EQ(rest[2].account_id, b);
  EXPECT_EQ(rest[2].version, 3);
  EXPECT_TRUE(follower.failures().empty());
}

TEST(StreamsTest, BadRequestsAreRefusedClearly) {
  System sys(*pg, "badstream");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 1);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  grpc::Status s = WatchError(sys, "not-a-uuid", 0);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("account_id"), std::string::npos);
  s = WatchError(sys, "123e4567-e89b-12d3-a456-426614174000", 0);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  s = WatchError(sys, a, -1);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("after_version"), std::string::npos);
  s = EntriesError(sys, "", -1);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("max_batch"), std::string::npos);
  s = EntriesError(sys, "garbage");
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("resume_token"), std::string::npos);
  // A page token of another listing.
  v1::GetHistoryRequest h;
  h.set_account_id(a);
  h.set_page_size(1);
  v1::GetHistoryResponse hr;
  {
    auto c = Ctx();
    Deposit(sys, a, 1);
    ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
    ASSERT_TRUE(sys.queries().GetHistory(c.get(), h, &hr).ok());
  }
  ASSERT_FALSE(hr.next_page_token().empty());
  EXPECT_EQ(EntriesError(sys, hr.next_page_token()).error_code(),
            grpc::INVALID_ARGUMENT);
  // A token of another bank (deployment).
  System other(*pg, "otherbank");
  other.StartAll();
  testing::OpenAccount(other.commands(), 1);
  ASSERT_TRUE(CaughtUp(other, absl::Seconds(20)));
  EntryFollower foreign(other.query_port);
  ASSERT_TRUE(WaitFor([&] { return foreign.count() >= 1; }, absl::Seconds(20)));
  foreign.Stop();
  s = EntriesError(sys, foreign.token());
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  // The same token is good where it came from.
  EntryFollower home(other.query_port, foreign.token());
  testing::OpenAccount(other.commands(), 2);
  ASSERT_TRUE(WaitFor([&] { return home.count() >= 1; }, absl::Seconds(20)));
  EXPECT_EQ(home.received()[0].version, 1);
  EXPECT_TRUE(home.failures().empty());
}

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

// A writing transaction takes a position, another commits with a higher
// one, then the first writes again (a still higher position) and commits
// late: the projector applies the first transaction's two events, then the
// other's, and a stream must deliver them in that order, one per batch
// here, skipping nothing. (Ordered by position alone, a stream would send
// the other's event second and then never the first's second one.)
TEST(StreamsTest, AnEventThatCommitsLateIsDeliveredInOrder) {
  System sys(*pg, "streamlate");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 100);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  EntryFollower follower(sys.query_port, "", 1);
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() == 1; }, absl::Seconds(20)));
  pqxx::connection held_conn(sys.events_uri);
  pqxx::work held(held_conn);
  auto deposit = [&](int version) {
    return held
        .exec_params(
            "INSERT INTO events (event_id, stream_id, stream_version, "
            "event_type, schema_version, data) VALUES (gen_random_uuid(), "
            "$1::uuid, $2, 'MoneyDeposited', 1, '{\"amount\":\"7\"}') "
            "RETURNING position",
            a, version)[0][0]
        .as<int64_t>();
  };
  const int64_t first = deposit(2);
  std::string b = testing::OpenAccount(sys.commands(), 5);
  const int64_t second = deposit(3);
  ASSERT_LT(first, second);
  // Committed past the held event, but not yet delivered: the stream
  // cannot pass a place the projector has not.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(follower.count(), 1u);
  held.commit();
  ASSERT_TRUE(
      WaitFor([&] { return follower.count() >= 4; }, absl::Seconds(20)));
  std::vector<Received> got = follower.received();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[1], (Received{a, 2, first}));
  EXPECT_EQ(got[2], (Received{a, 3, second}));
  EXPECT_EQ(got[3].account_id, b);
  EXPECT_GT(got[3].position, first);
  EXPECT_LT(got[3].position, second);
  follower.Stop();
  EXPECT_TRUE(testing::CompareWithHistory(got, sys.read_uri).empty());
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
  ASSERT_TRUE(WaitFor([&] { return Metric(sys, "bank_streams_paused") >= 1; },
                      absl::Seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return w.acked() >= 5000; }, absl::Seconds(60)));
  faults::Settled settled = faults::Settle(w, sys.events_uri, sys.read_uri);
  EXPECT_TRUE(settled.diffs.empty());
  const size_t total = static_cast<size_t>(HistoryRows(sys));
  // The reading consumer has everything while the other still holds back.
  ASSERT_TRUE(
      WaitFor([&] { return reading.count() >= total; }, absl::Seconds(30)));
  EXPECT_EQ(Metric(sys, "bank_streams_paused"), 1);
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
  EXPECT_GE(Metric(sys, "bank_stream_pauses_total"), 1);
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

int ThreadsOf(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
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
  const int threads_before = ThreadsOf(sys.query->pid());
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
  EXPECT_EQ(Metric(sys, "bank_streams_open{rpc=\"WatchAccount\"}"), 1000);
  EXPECT_EQ(Metric(sys, "bank_streams_open{rpc=\"StreamEntries\"}"), 50);
  // Live: one deposit per account reaches its ten watchers and every
  // consumer.
  for (const std::string& a : accounts) Deposit(sys, a, 2);
  EXPECT_TRUE(WaitFor([&] { return all(watchers, 2) && all(consumers, 200); },
                      absl::Seconds(60)));
  const int threads = ThreadsOf(sys.query->pid());
  EXPECT_LT(threads - threads_before, 20)
      << threads_before << " threads before the streams, " << threads
      << " with them";
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
        return Metric(sys, "bank_streams_open{rpc=\"WatchAccount\"}") == 0;
      },
      absl::Seconds(10)));
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
