// QueryService.WatchAccount and StreamEntries against the real executables
// and a real PostgreSQL: catch-up then live, resuming, bad requests, kill -9
// of the query service under load, a rebuild, a late commit, a client that
// stops reading, the read database away, and many streams at once. The
// oracle: what a consumer received equals the read model's history, entry
// for entry, and the read model equals the events (faults::Settle).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
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

using testing::CaughtUp;
using testing::Ctx;
using testing::Deposit;
using testing::EntryFollower;
using testing::HistoryRows;
using testing::PgCluster;
using testing::Process;
using testing::QueryMetric;
using testing::Received;
using testing::SettleAndExpectTheWholeHistory;
using testing::System;
using testing::WaitFor;

PgCluster* pg = nullptr;

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

TEST(StreamsTest, WatchAccountCatchesUpThenFollowsLive) {
  System sys(*pg, "watch");
  sys.StartAll();
  std::string a = testing::OpenAccount(sys.commands(), 100);
  Deposit(sys, a, 5);
  Deposit(sys, a, 7);
  // An account is watched once the read model has it (before, NOT_FOUND).
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
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

// bankctl watch and tail: live lines in decimals, Ctrl-C ends them cleanly,
// tail says where to resume and --resume goes on from there.
TEST(StreamsTest, BankctlWatchAndTailPrintEntriesLive) {
  System sys(*pg, "streamcli");
  sys.StartAll();
  const std::vector<std::string> hosts = {
      "--command-host", absl::StrCat("127.0.0.1:", sys.command_port),
      "--query-host", absl::StrCat("127.0.0.1:", sys.query_port)};
  auto bankctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), hosts.begin(), hosts.end());
    return std::make_unique<Process>(testing::BinDir() + "/bankctl", args);
  };
  std::string a = testing::OpenAccount(sys.commands(), 1000);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  auto watch = bankctl({"watch", a});
  auto tail = bankctl({"tail"});
  ASSERT_TRUE(WaitFor(
      [&] { return watch->Log().find("OPENED  10.00") != std::string::npos; },
      absl::Seconds(20)))
      << watch->Log();
  Deposit(sys, a, 250);
  ASSERT_TRUE(WaitFor(
      [&] {
        return watch->Log().find("DEPOSITED  2.50  -> 12.50 EUR") !=
               std::string::npos;
      },
      absl::Seconds(20)))
      << watch->Log();
  ASSERT_TRUE(WaitFor(
      [&] {
        return tail->Log().find(a + "  ") != std::string::npos &&
               tail->Log().find("DEPOSITED  2.50") != std::string::npos;
      },
      absl::Seconds(20)))
      << tail->Log();
  watch->Signal(SIGINT);
  EXPECT_EQ(watch->Wait(absl::Seconds(10)), 0) << watch->Log();
  tail->Signal(SIGINT);
  EXPECT_EQ(tail->Wait(absl::Seconds(10)), 0) << tail->Log();
  const std::string log = tail->Log();
  const size_t at = log.find("resume: --resume ");
  ASSERT_NE(at, std::string::npos) << log;
  std::string token = log.substr(at + 17);
  token = token.substr(0, token.find('\n'));
  Deposit(sys, a, 1);
  auto resumed = bankctl({"--json", "tail", "--resume", token});
  ASSERT_TRUE(WaitFor(
      [&] {
        return resumed->Log().find("\"version\":\"3\"") != std::string::npos;
      },
      absl::Seconds(20)))
      << resumed->Log();
  EXPECT_EQ(resumed->Log().find("\"version\":\"2\""), std::string::npos)
      << resumed->Log();
  resumed->Signal(SIGTERM);
  EXPECT_EQ(resumed->Wait(absl::Seconds(10)), 0);
  auto bad = bankctl({"watch", "not-a-uuid"});
  EXPECT_EQ(bad->Wait(absl::Seconds(10)), 1);
  EXPECT_NE(bad->Log().find("INVALID_ARGUMENT"), std::string::npos)
      << bad->Log();
}

// SIGTERM: open streams end UNAVAILABLE at once (their clients resume on
// another replica), not after the shutdown grace.
TEST(StreamsTest, ShutdownEndsOpenStreamsUnavailableAtOnce) {
  System sys(*pg, "streamstop");
  sys.StartAll();
  testing::OpenAccount(sys.commands(), 1);
  auto ctx = Ctx(60);
  auto reader = sys.queries().StreamEntries(ctx.get(), {});
  v1::EntryBatch batch;
  ASSERT_TRUE(reader->Read(&batch));
  const absl::Time stop = absl::Now();
  sys.query->Signal(SIGTERM);
  EXPECT_FALSE(reader->Read(&batch));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE) << s.error_message();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(4));  // The grace is 5 s.
  EXPECT_EQ(sys.query->Wait(absl::Seconds(10)), 0);
}

// Past --max-streams, a new stream is refused RESOURCE_EXHAUSTED.
TEST(StreamsTest, StreamsPastTheLimitAreRefused) {
  System sys(*pg, "streamlimit");
  sys.StartAll();
  sys.query->Signal(SIGTERM);
  ASSERT_EQ(sys.query->Wait(absl::Seconds(10)), 0);
  sys.query =
      sys.StartQueryService({"--max-streams", "2", "--metrics-listen",
                             absl::StrCat("127.0.0.1:", sys.query_metrics)});
  ASSERT_TRUE(System::WaitServing(sys.query_port, "", absl::Seconds(30)));
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::EntryBatch>>> open;
  for (int i = 0; i < 2; ++i) {
    ctxs.push_back(Ctx(30));
    open.push_back(sys.queries().StreamEntries(ctxs.back().get(), {}));
  }
  // Both are open once the service counts them.
  ASSERT_TRUE(WaitFor(
      [&] {
        return QueryMetric(sys, "bank_streams_open{rpc=\"StreamEntries\"}") ==
               2;
      },
      absl::Seconds(10)));
  grpc::Status s = EntriesError(sys, "");
  EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << s.error_message();
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : open) r->Finish();
}

// The Python consumer (clients/python/consumer.py) keeps its token in a
// file: killed (-9) and started again, it goes on where it stopped. It saves
// the token after handling a batch, so at most that one batch comes again.
TEST(StreamsTest, PythonConsumerResumesFromItsTokenFile) {
  System sys(*pg, "streampy");
  sys.StartAll();
  const std::string token_file =
      absl::StrCat(::testing::TempDir(), "/consumer-", getpid(), ".token");
  std::remove(token_file.c_str());
  auto consumer = [&] {
    return std::make_unique<Process>(
        "/usr/bin/python3",
        std::vector<std::string>{
            std::string(BANK_SOURCE_DIR) + "/clients/python/consumer.py",
            "--query-host", absl::StrCat("127.0.0.1:", sys.query_port),
            "--token-file", token_file, "--max-batch", "5"},
        std::map<std::string, std::string>{
            {"PYTHONPATH", std::string(BANK_BUILD_DIR) + "/python"}});
  };
  std::vector<std::string> accounts;
  for (int i = 0; i < 4; ++i) {
    accounts.push_back(testing::OpenAccount(sys.commands(), 100));
  }
  for (int i = 0; i < 20; ++i) Deposit(sys, accounts[i % 4], i + 1);
  auto lines = [](const std::string& log) {
    std::vector<Received> out;
    size_t at = 0;
    while ((at = log.find("{\"account_id\": \"", at)) != std::string::npos) {
      Received r;
      r.account_id = log.substr(at + 16, 36);
      size_t v = log.find("\"version\": ", at) + 11;
      r.version = std::stoll(log.substr(v));
      size_t p = log.find("\"position\": ", at) + 12;
      r.position = std::stoll(log.substr(p));
      out.push_back(r);
      ++at;
    }
    return out;
  };
  auto first = consumer();
  ASSERT_TRUE(WaitFor([&] { return lines(first->Log()).size() >= 24; },
                      absl::Seconds(30)))
      << first->Log();
  first->Signal(SIGKILL);
  first->Wait(absl::Seconds(10));
  std::vector<Received> before = lines(first->Log());
  for (int i = 0; i < 10; ++i) Deposit(sys, accounts[i % 4], 1000);
  ASSERT_TRUE(CaughtUp(sys, absl::Seconds(20)));
  const size_t total = static_cast<size_t>(HistoryRows(sys));
  auto second = consumer();
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<Received> after = lines(second->Log());
        return !after.empty() &&
               after.back().position ==
                   testing::HistoryInStreamOrder(sys.read_uri).back().position;
      },
      absl::Seconds(30)))
      << second->Log();
  std::vector<Received> after = lines(second->Log());
  second->Signal(SIGTERM);
  // The second run starts at most one batch (5) before where the first
  // stopped, and together they are the whole history.
  ASSERT_FALSE(after.empty());
  std::vector<Received> want = testing::HistoryInStreamOrder(sys.read_uri);
  ASSERT_EQ(want.size(), total);
  auto start = std::find(want.begin(), want.end(), after.front());
  ASSERT_NE(start, want.end());
  const size_t resumed_at = static_cast<size_t>(start - want.begin());
  EXPECT_LE(resumed_at, before.size());
  EXPECT_GE(resumed_at + 5, before.size());
  std::vector<Received> joined(before.begin(), before.begin() + resumed_at);
  joined.insert(joined.end(), after.begin(), after.end());
  std::vector<std::string> diffs =
      testing::CompareWithHistory(joined, sys.read_uri);
  EXPECT_TRUE(diffs.empty()) << diffs[0];
  std::remove(token_file.c_str());
}

}  // namespace
}  // namespace bank

int main(int argc, char** argv) {
  return bank::testing::RunAllTestsWith(
      argc, argv, new bank::testing::PgEnvironment(&bank::pg));
}
